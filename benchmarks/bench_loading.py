"""KITTI loading and BEV IoU throughput.

    .venv/bin/python benchmarks/bench_loading.py [--rounds 200]

1. Our KITTI .bin loading (``KittiDataset.load_points``: path, size and NaN/inf checks, PointCloud)
   against bare ``np.fromfile(..., float32).reshape(-1, 4)`` on the same real files (page cache
   warm for both). The two are timed in alternating rounds so machine load hits both alike; the
   ratio is reference time / our time (1.0 = as fast as bare numpy; goal >= 0.9).
2. ``bev_iou`` on 1000 x 1000 boxes: a street-like scene (boxes spread over 100 m x 100 m) and a
   dense worst case (every pair may overlap).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _time(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def bench_bin_loading(rounds: int) -> None:
    from perception.data.registry import load_dataset

    ds = load_dataset(ROOT / "datasets" / "kitti.yaml")
    files = [str(ds.path("velodyne", i, ".bin")) for i in range(len(ds))]
    mb = sum(Path(f).stat().st_size for f in files) / 1e6

    def ours() -> None:
        for i in range(len(ds)):
            ds.load_points(i)

    def bare() -> None:
        for f in files:
            np.fromfile(f, dtype=np.float32).reshape(-1, 4)

    for fn in (ours, bare):  # warm up: page cache, imports
        fn()
    t_ours, t_bare = [], []
    for r in range(rounds):  # alternate which goes first, so neither always gets the warmer cache
        pair = (ours, bare) if r % 2 else (bare, ours)
        times = {fn: _time(fn) for fn in pair}
        t_ours.append(times[ours])
        t_bare.append(times[bare])
    ours_s, bare_s = float(np.median(t_ours)), float(np.median(t_bare))
    print(f"KITTI .bin loading, {len(files)} real files ({mb:.1f} MB), median of {rounds} rounds")
    print(f"  ours  (KittiDataset.load_points)  {ours_s * 1e3:8.3f} ms  {mb / ours_s:8.0f} MB/s")
    print(f"  bare  (np.fromfile + reshape)     {bare_s * 1e3:8.3f} ms  {mb / bare_s:8.0f} MB/s")
    print(f"  ratio (bare time / our time)      {bare_s / ours_s:8.3f}   goal >= 0.9")


def _random_boxes(rng: np.random.Generator, n: int, extent_m: float) -> np.ndarray:
    xy = rng.uniform(-extent_m / 2, extent_m / 2, (n, 2))
    lwh = rng.uniform([3.5, 1.5, 1.4], [5.0, 2.1, 1.8], (n, 3))
    return np.column_stack([xy, np.full(n, -1.0), lwh, rng.uniform(-np.pi, np.pi, n)])


def bench_bev_iou(repeat: int) -> None:
    from perception.core import bev_iou

    rng = np.random.default_rng(0)
    print("bev_iou, 1000 x 1000 boxes (exact rotated overlap, numpy)")
    for name, extent in (("scene 100 m x 100 m", 100.0), ("dense 10 m x 10 m", 10.0)):
        a, b = _random_boxes(rng, 1000, extent), _random_boxes(rng, 1000, extent)
        bev_iou(a, b)
        t = float(np.median([_time(bev_iou, a, b) for _ in range(repeat)]))
        overlapping = int((bev_iou(a, b) > 0).sum())
        print(f"  {name:<22} {t * 1e3:9.1f} ms  {1e6 / t / 1e6:7.2f} M pairs/s  ({overlapping} overlapping pairs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--iou-repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    bench_bin_loading(args.rounds)
    bench_bev_iou(args.iou_repeat)


if __name__ == "__main__":
    main()
