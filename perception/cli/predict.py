"""``perception predict``: run a checkpoint over a dataset and write KITTI label files with scores.

    perception predict --weights runs/exp/weights/best.pt --data datasets/kitti.yaml --out runs/exp/pred
writes ``<out>/<frame id>.txt`` (``<out>/<sequence>/<frame id>.txt`` for datasets with sequences).
"""

from __future__ import annotations

import argparse

from perception.cli.detect2d import add_detect2d_arguments, require_options

HELP = "predict a dataset split and write KITTI label files"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="detect3d", choices=["detect3d", "detect2d"])
    p.add_argument("--weights", required=True, help="checkpoint (.pt / .onnx / .engine)")
    p.add_argument("--data", help="dataset YAML (detect3d)")
    p.add_argument("--split", default=None)
    p.add_argument("--out", help="output folder for label files")
    p.add_argument("--max-frames", type=int, default=0, help="first N frames only (0 = all)")
    p.add_argument("--device", default="cpu")
    add_detect2d_arguments(p)


def run(args: argparse.Namespace) -> int:
    from perception.cli import detect2d

    tasks = {"detect3d": predict_detect3d, "detect2d": detect2d.predict}  # one entry per task
    return tasks[args.task](args)


def predict_detect3d(args: argparse.Namespace) -> int:
    from pathlib import Path

    from perception.data.kitti_format import write_label_file
    from perception.data.registry import load_dataset
    from perception.engine.evaluate import predict_dataset
    from perception.engine.trainer import check_classes
    from perception.eval.kitti import boxes_to_kitti
    from perception.models import load_model
    from perception.models.detector import model_settings

    require_options(args, "data", "out")
    model, cfg = load_model(args.weights, args.device)
    settings = model_settings(cfg)
    dataset = load_dataset(args.data, split=args.split)
    check_classes(dataset.class_names, settings["classes"], args.data)
    out, n_frames, n_boxes = Path(args.out), 0, 0
    for _, frame, dets in predict_dataset(model, dataset, settings, args.device, args.max_frames, progress=True):
        objs = boxes_to_kitti(dets, frame)
        folder = out / frame.sequence if frame.sequence else out
        write_label_file(folder / f"{frame.index:06d}.txt", objs)
        n_frames, n_boxes = n_frames + 1, n_boxes + len(objs)
    print(f"{n_boxes} detections in {n_frames} label files under {out}")
    return 0
