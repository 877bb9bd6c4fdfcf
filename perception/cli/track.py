"""``perception track``: detections (files or a checkpoint) -> 3D tracks in KITTI tracking result files.

    perception track --data datasets/kitti_tracking.yaml --split val \
        --detections ../shared/data/kitti/tracking/detections/pointrcnn_Car_val --out runs/track/car --eval
    perception track --data datasets/kitti_tracking.yaml --split val --weights runs/train/best.pt --out runs/track/pp
    perception track --data datasets/kitti_tracking.yaml --split val --results runs/track/car --eval
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "track 3D detections over sequences (KITTI tracking results out), optionally evaluate them"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset YAML (KITTI tracking layout)")
    p.add_argument("--split", default=None, help="split of the YAML (e.g. val: a seqmap)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--detections", help="folder of <seq>.txt detections (AB3DMOT or KITTI tracking rows)")
    src.add_argument("--weights", help="3D detector checkpoint: detect every frame, then track")
    src.add_argument("--results", help="existing result folder: only evaluate it")
    p.add_argument("--out", default="runs/track", help="result folder: one <seq>.txt per sequence")
    p.add_argument("--preset", default="kitti", help="per-class tracker parameters (perception.tracking.presets)")
    p.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="tracker parameters for every class, e.g. max_age=3"
    )
    p.add_argument("--eval", action="store_true", help="evaluate the results against label_02 (KITTI/AB3DMOT protocol)")
    p.add_argument("--iou", default="3d", choices=["3d", "2d"], help="IoU used to match tracks to ground truth")
    p.add_argument("--thresholds", default="0.25", help="comma-separated IoU thresholds for --eval")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from perception.config import parse_overrides
    from perception.data.registry import load_dataset
    from perception.eval.tracking import run_track_eval
    from perception.tracking.presets import tracker_for_classes
    from perception.tracking.run import (
        KITTI_TRACK_CLASSES,
        sequence_lengths,
        track_dataset_with_predictor,
        track_kitti_folder,
    )

    out = Path(args.results or args.out)
    thresholds = tuple(float(t) for t in args.thresholds.split(","))
    if args.results is None:
        dataset = load_dataset(args.data, split=args.split)
        overrides = parse_overrides(args.set)
        if args.detections:
            sequences = sequence_lengths(dataset)
            stats = track_kitti_folder(
                lambda: tracker_for_classes(KITTI_TRACK_CLASSES, args.preset, overrides),
                Path(args.detections), dataset.spec.root / "training" / "calib", sequences, out, progress=not args.no_progress,
            )  # fmt: skip
        else:
            from perception.deploy.predictor import load_predictor

            tracker = tracker_for_classes(tuple(dataset.class_names), args.preset, overrides)
            stats = track_dataset_with_predictor(
                load_predictor(args.weights), tracker, dataset, out, progress=not args.no_progress
            )
        print(f"tracked {stats['frames']} frames at {stats['fps']:.0f} frames/s (tracker only); results in {out}")
    if args.eval or args.results:
        return run_track_eval(args.data, out, split=args.split, iou=args.iou, thresholds=thresholds)
    return 0
