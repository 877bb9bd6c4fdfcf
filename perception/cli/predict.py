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

    from tqdm import tqdm

    from perception.data.kitti_format import write_label_file
    from perception.data.registry import load_dataset
    from perception.deploy.predictor import load_predictor
    from perception.engine.trainer import check_classes
    from perception.eval.kitti import boxes_to_kitti

    require_options(args, "data", "out")
    predictor = load_predictor(args.weights, args.device)
    dataset = load_dataset(args.data, split=args.split)
    check_classes(dataset.class_names, list(predictor.class_names), args.data)
    out, n_boxes = Path(args.out), 0
    n = len(dataset) if not args.max_frames else min(args.max_frames, len(dataset))
    for i in tqdm(range(n), desc="predict", unit="frame"):
        frame = dataset.load_frame(i)
        objs = boxes_to_kitti(predictor.predict(frame).boxes3d, frame)
        folder = out / frame.sequence if frame.sequence else out
        write_label_file(folder / f"{frame.index:06d}.txt", objs)
        n_boxes += len(objs)
    print(f"{n_boxes} detections in {n} label files under {out}")
    return 0
