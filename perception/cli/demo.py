"""``perception demo``: the main job end to end on synthetic data; everything lands in runs/demo/."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run the end-to-end demo on synthetic data (outputs under runs/demo/)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="output folder")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from perception.data.inspect import dataset_info, format_info
    from perception.data.registry import load_dataset
    from perception.data.synthetic import write_synthetic_dataset

    out = Path(args.out)
    data_root = write_synthetic_dataset(out / "data", frames=40, sequences=3, seed=args.seed)
    print(f"[demo] synthetic data: {data_root}")
    dataset = load_dataset(data_root / "kitti_object.yaml")
    print(format_info(dataset_info(dataset)))
    return 0
