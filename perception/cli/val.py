"""``perception val``: KITTI AP (2D / BEV / 3D, R11 / R40, easy / moderate / hard) of a checkpoint on a dataset.

perception val --weights runs/exp/weights/best.pt --data datasets/synthetic.yaml --split val
"""

from __future__ import annotations

import argparse

HELP = "evaluate a checkpoint on a dataset split (KITTI AP table)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="detect3d", choices=["detect3d"])
    p.add_argument("--weights", required=True, help="checkpoint (.pt)")
    p.add_argument("--data", required=True, help="dataset YAML")
    p.add_argument("--split", default=None, help="split (default: the dataset's default split)")
    p.add_argument("--max-frames", type=int, default=0, help="evaluate the first N frames only (0 = all)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="also write every AP value to this JSON file")


def run(args: argparse.Namespace) -> int:
    tasks = {"detect3d": val_detect3d}  # one entry per task
    return tasks[args.task](args)


def val_detect3d(args: argparse.Namespace) -> int:
    import json

    from perception.data.registry import load_dataset
    from perception.engine.evaluate import evaluate_model
    from perception.engine.trainer import check_classes
    from perception.eval.kitti import format_kitti_table
    from perception.files import atomic_write
    from perception.models import load_model
    from perception.models.detector import model_settings

    model, cfg = load_model(args.weights, args.device)
    settings = model_settings(cfg)
    dataset = load_dataset(args.data, split=args.split)
    check_classes(dataset.class_names, settings["classes"], args.data)
    result, summary = evaluate_model(model, dataset, settings, args.device, args.max_frames, progress=True)
    print(format_kitti_table(result))
    if args.json:
        with atomic_write(args.json) as f:
            json.dump(summary, f, indent=1)
        print(f"metrics written to {args.json}")
    return 0
