"""Synthetic data speed: generating a frame in memory vs reading the same frame back from disk.

    .venv/bin/python benchmarks/bench_synthetic.py [--frames 20]

Prints, per line, ours / reference / ratio (ratio > 1: ours is faster):
- a full frame (lidar sweep + rendered 1242x375 image + ground truth) generated in memory vs
  the same frame read from the KITTI layout that ``perception data synth`` wrote (KITTI loader:
  .bin + PNG + calib + label);
- the lidar sweep alone: our culled, vectorised ray casting vs testing every ray against every
  box (the plain slab method over all pairs), same scene, same points.
Times are CPU time of this process (1 thread), median over frames.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from perception.data.registry import load_dataset
from perception.data.synthetic import SyntheticDataset, write_synthetic_dataset
from perception.data.synthetic_lidar import _slab


def cpu_ms(fn, reps: list) -> float:
    times = []
    for r in reps:
        t0 = time.process_time()
        fn(r)
        times.append((time.process_time() - t0) * 1000)
    return float(np.median(times))


def brute_force_cast(lidar, boxes: np.ndarray) -> np.ndarray:
    """Nearest hit distance of every ray against every box (reference: no culling)."""
    dirs = lidar.directions
    t_best = np.where(dirs[:, 2] < 0, -1.73 / np.minimum(dirs[:, 2], -1e-12), np.inf)
    for box in boxes:
        t, _ = _slab(dirs, np.broadcast_to(box, (len(dirs), 7)))
        t_best = np.minimum(t_best, t)
    return t_best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=20)
    args = p.parse_args()
    ds = SyntheticDataset.from_options(sequences=1, frames=args.frames, seed=0, val_sequences=0)
    ds.load_frame(0)  # per-sequence set-up (scenario, camera background) is not per-frame cost
    frames = list(range(1, args.frames))
    gen = cpu_ms(lambda i: ds.load_frame(i), frames)
    gen_pts = cpu_ms(lambda i: ds.load_frame(i, images=False), frames)
    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic_dataset(tmp, frames=args.frames, sequences=1, seed=0, progress=False)
        kitti = load_dataset(f"{tmp}/kitti_object.yaml")
        kitti.load_frame(0)
        read = cpu_ms(lambda i: kitti.load_frame(i), frames)
        read_pts = cpu_ms(lambda i: kitti.load_frame(i, images=False), frames)
    scenes = [ds._scene(0, i) for i in frames[:5]]
    lidar_boxes = []
    for s in scenes:
        solid = s["parts"]["solid"]
        lidar_boxes.append(np.concatenate([s["statics"], s["parts"]["boxes"][solid]]))
    reflect = [np.full(len(b), 0.5) for b in lidar_boxes]
    rng = np.random.default_rng(0)
    ours = cpu_ms(lambda k: ds.lidar.cast(lidar_boxes[k], reflect[k], -1.73, lambda xy: np.zeros(len(xy)), rng),
                  range(5))  # fmt: skip
    ref = cpu_ms(lambda k: brute_force_cast(ds.lidar, lidar_boxes[k]), range(5))
    print(f"{'what':58s} {'ours ms':>9s} {'ref ms':>9s} {'ratio':>7s}")
    print(f"{'frame: generate (points+image+truth) / read KITTI files':58s} {gen:9.1f} {read:9.1f} {read / gen:7.2f}")
    print(f"{'frame: generate (points+truth) / read KITTI .bin+labels':58s} {gen_pts:9.1f} {read_pts:9.1f} "
          f"{read_pts / gen_pts:7.2f}")  # fmt: skip
    print(f"{'lidar sweep: culled vectorised / every ray x every box':58s} {ours:9.1f} {ref:9.1f} {ref / ours:7.2f}")
    print(f"boxes per sweep: {np.mean([len(b) for b in lidar_boxes]):.0f}, rays: {len(ds.lidar.directions)}")


if __name__ == "__main__":
    main()
