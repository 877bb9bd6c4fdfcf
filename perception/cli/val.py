"""``perception val``: KITTI AP (2D / BEV / 3D, R11 / R40, easy / moderate / hard) of a checkpoint on a dataset.

perception val --weights runs/exp/weights/best.pt --data datasets/synthetic.yaml --split val
"""

from __future__ import annotations

import argparse

from perception.cli.detect2d import add_detect2d_arguments, require_options

HELP = "evaluate a checkpoint on a dataset split (KITTI AP table)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="detect3d", choices=["detect3d", "detect2d", "track"])
    p.add_argument("--weights", help="checkpoint (.pt / .onnx / .engine)")
    p.add_argument("--data", required=True, help="dataset YAML")
    p.add_argument("--split", default=None, help="split (default: the dataset's default split)")
    p.add_argument("--max-frames", type=int, default=0, help="evaluate the first N frames only (0 = all)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="also write every AP value to this JSON file")
    p.add_argument("--results", help="track: folder of KITTI tracking result files, one per sequence")
    p.add_argument("--iou", default="3d", choices=["3d", "2d"], help="track: matching overlap")
    p.add_argument("--thresholds", default="0.25", help="track: IoU thresholds, comma separated")
    add_detect2d_arguments(p)


def run(args: argparse.Namespace) -> int:
    from perception.cli import detect2d

    tasks = {"detect3d": val_detect3d, "detect2d": detect2d.val, "track": val_track}  # one entry per task
    return tasks[args.task](args)


def val_track(args: argparse.Namespace) -> int:
    from perception.errors import ConfigError
    from perception.eval.tracking import run_track_eval

    if not args.results:
        raise ConfigError("--task track needs --results DIR (KITTI tracking result files)")
    thresholds = tuple(float(t) for t in args.thresholds.split(","))
    return run_track_eval(args.data, args.results, split=args.split or "val", iou=args.iou, thresholds=thresholds)


def val_detect3d(args: argparse.Namespace) -> int:
    """The dataset's official metric (KITTI AP for KITTI-like data) of a .pt / .onnx / .engine detector."""
    import dataclasses
    import json

    from tqdm import tqdm

    from perception.data.registry import load_dataset
    from perception.deploy.predictor import load_predictor
    from perception.engine.trainer import check_classes
    from perception.eval.detection import evaluate_detections
    from perception.files import atomic_write

    require_options(args, "weights")
    predictor = load_predictor(args.weights, args.device)
    dataset = load_dataset(args.data, split=args.split)
    check_classes(dataset.class_names, list(predictor.class_names), args.data)
    n = len(dataset) if not args.max_frames else min(args.max_frames, len(dataset))
    frames, predictions = [], []
    for i in tqdm(range(n), desc="val", unit="frame"):
        frame = dataset.load_frame(i)
        predictions.append(predictor.predict(frame).boxes3d)
        frames.append(dataclasses.replace(frame, points=None, images={}))  # keep only what scoring reads
    report = evaluate_detections(frames, predictions, dataset)
    print(report.table)
    if args.json:
        with atomic_write(args.json) as f:
            json.dump(dict(report.summary), f, indent=1, default=float)
        print(f"metrics written to {args.json}")
    return 0
