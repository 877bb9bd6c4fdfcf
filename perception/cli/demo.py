"""``perception demo``: the main job end to end on synthetic data; everything lands in runs/demo/."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run the end-to-end demo on synthetic data (outputs under runs/demo/)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="output folder")
    p.add_argument("--seed", type=int, default=0)


def _step(title: str) -> None:
    print(f"\n[demo] {title}", flush=True)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    dataset = write_data(out, args.seed)
    save_frame_pictures(dataset, out)
    print(f"\n[demo] done: outputs in {out}/")
    return 0


def write_data(out: Path, seed: int):
    """Write the synthetic drives in KITTI layout and print what they hold."""
    from perception.data.inspect import dataset_info, format_info
    from perception.data.registry import load_dataset
    from perception.data.synthetic import write_synthetic_dataset

    _step("writing synthetic drives in KITTI object + tracking layouts")
    data_root = write_synthetic_dataset(out / "data", frames=40, sequences=3, seed=seed)
    dataset = load_dataset(data_root / "kitti_object.yaml")
    print(format_info(dataset_info(dataset)))
    return dataset


def save_frame_pictures(dataset, out: Path) -> None:
    """A BEV picture and a camera picture with projected 3D ground-truth boxes."""
    from perception.viz.bev import render_bev
    from perception.viz.overlay import draw_boxes3d
    from perception.viz.samples import write_png

    _step("drawing a frame: BEV and camera with projected 3D boxes")
    frame = dataset[len(dataset) // 2]
    bev = write_png(out / "frame_bev.png", render_bev(frame))
    camera = draw_boxes3d(frame.images["image_2"], frame.boxes3d, frame.calibration, "image_2", frame.class_names)
    cam = write_png(out / "frame_camera.png", camera)
    print(f"  {bev}\n  {cam}")
