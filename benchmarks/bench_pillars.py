"""Pillarization throughput (ours: dense-grid scatter in plain torch) against spconv's CPU
``PointToVoxel`` on the real KITTI clouds in ../shared/data, and training frames/s of the
demo-size detector on synthetic data.

    .venv/bin/python benchmarks/bench_pillars.py [--threads 1] [--repeats 20]

spconv is used here only (``pip install spconv`` into .venv; not a project dependency).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from perception.data.kitti_format import read_points_bin
from perception.models.pillars import PillarGrid, assign_pillars

KITTI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kitti" / "object" / "training" / "velodyne"
RANGE = [0.0, -39.68, -3.0, 69.12, 39.68, 1.0]  # PointPillars KITTI grid
VOXEL = [0.16, 0.16]
MAX_POINTS, MAX_PILLARS = 32, 16000


def ours(points: torch.Tensor, grid: PillarGrid) -> torch.Tensor:
    """Cell per point (point limit applied) and the per-pillar point count and mean (what the encoder needs)."""
    cell, _, _ = assign_pillars(points[:, :3], torch.zeros(len(points), dtype=torch.long), grid, 1, MAX_POINTS)
    sums = points.new_zeros(grid.cells + 1, 4).scatter_add(
        0, cell[:, None].expand(-1, 4), torch.cat([points[:, :3], torch.ones_like(points[:, :1])], 1)
    )
    return sums[:, :3] / sums[:, 3:].clamp(min=1)


def median_ms(fn, clouds, repeats: int) -> float:
    for c in clouds:
        fn(c)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for c in clouds:
            fn(c)
        times.append((time.perf_counter() - t0) * 1e3 / len(clouds))
    return statistics.median(times)


def bench_pillarization(repeats: int) -> None:
    files = sorted(KITTI.glob("*.bin"))
    if not files:
        print(f"skipped: no KITTI clouds at {KITTI}")
        return
    clouds = [torch.from_numpy(read_points_bin(f)) for f in files]
    grid = PillarGrid(RANGE, VOXEL)
    ms_ours = median_ms(lambda c: ours(c, grid), clouds, repeats)
    try:
        from spconv.pytorch.utils import PointToVoxel
    except ImportError:
        print(f"pillarization ours {ms_ours:.2f} ms/cloud; spconv not installed (pip install spconv) - no reference")
        return
    gen = PointToVoxel(vsize_xyz=[*VOXEL, RANGE[5] - RANGE[2]], coors_range_xyz=RANGE, num_point_features=4,
                       max_num_voxels=MAX_PILLARS, max_num_points_per_voxel=MAX_POINTS, device=torch.device("cpu"))  # fmt: skip
    ms_ref = median_ms(lambda c: gen(c), clouds, repeats)
    n = statistics.mean(len(c) for c in clouds)
    print(
        f"pillarization, {len(clouds)} KITTI clouds ({n:.0f} points avg), {grid.nx}x{grid.ny} grid, median of {repeats}:"
    )
    print(f"  ours (torch scatter)     {ms_ours:8.2f} ms/cloud")
    print(f"  spconv PointToVoxel CPU  {ms_ref:8.2f} ms/cloud")
    print(f"  ratio (reference / ours) {ms_ref / ms_ours:8.2f}x")


def bench_training(steps: int, config: str) -> None:
    from perception.data.registry import load_dataset
    from perception.data.torch_dataset import AugmentConfig, DetectionDataset, collate
    from perception.engine import resolve_config
    from perception.models import build_model_from_config

    root = Path(__file__).resolve().parents[1]
    cfg = resolve_config(root / config)
    model = build_model_from_config(cfg).train()
    s = cfg["model"]
    data = DetectionDataset(
        load_dataset(root / "datasets" / "synthetic.yaml", split="train"),
        s["point_channels"],
        s["point_range"],
        AugmentConfig(flip=True),
    )
    batches = [
        collate([data[(i * cfg["batch_size"] + j) * 7 % len(data)] for j in range(cfg["batch_size"])])
        for i in range(steps + 1)
    ]
    opt = torch.optim.AdamW(model.parameters(), 1e-3)

    def step(b):
        terms = model(b["points"], b["batch_idx"], b["batch_size"], b["gt_boxes"], b["gt_labels"])
        opt.zero_grad()
        sum(terms.values()).backward()
        opt.step()

    step(batches[0])
    t0 = time.perf_counter()
    for b in batches[1:]:
        step(b)
    dt = time.perf_counter() - t0
    print(
        f"training {config}: {steps * cfg['batch_size'] / dt:.2f} frames/s (batch {cfg['batch_size']}, {steps} steps, model + optimizer only)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--train-steps", type=int, default=5)
    p.add_argument("--config", default="configs/pointpillars_small.yaml")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    bench_pillarization(args.repeats)
    if args.train_steps:
        bench_training(args.train_steps, args.config)


if __name__ == "__main__":
    main()
