"""Pillarization throughput (ours: dense-grid cells in plain torch) against spconv's CPU
``PointToVoxel`` on the real KITTI clouds in ../shared/data, and training frames/s of the
demo-size detector on synthetic data (conv weights NCHW vs channels-last, side by side).

    .venv/bin/python benchmarks/bench_pillars.py [--threads 1] [--repeats 20]
    .venv/bin/python benchmarks/bench_pillars.py --repeats 0 --threads 2 --train-steps 40 \
        --config configs/centerpoint_pillar_small.yaml [--amp]

Like with like: both sides get the same range, grid and point limit and return the same
information, checked before timing: which points each pillar keeps (ours: a cell per point;
spconv: the (pillars, 32, 4) voxel buffer), the pillar coordinates and the kept-point counts.
A second row adds the per-pillar point mean on both sides (ours: ``pillar_means``; spconv: the
sum over its voxel buffer). spconv's CPU voxelizer is one sequential loop whatever the thread
setting, so the fair comparison is at 1 torch thread (the default). The two are timed
interleaved, repeat by repeat; the median wall time per cloud is reported, and the ratio of
process CPU times too (less sensitive to other jobs taking the cores).
spconv is used here only (``pip install spconv`` into .venv; not a project dependency).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from perception.data.kitti_format import read_points_bin
from perception.models.pillars import PillarGrid, Pillars, assign_pillars, pillar_means

KITTI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kitti" / "object" / "training" / "velodyne"
RANGE = [0.0, -39.68, -3.0, 69.12, 39.68, 1.0]  # PointPillars KITTI grid
VOXEL = [0.16, 0.16]
MAX_POINTS, MAX_PILLARS = 32, 16000  # every KITTI cloud here has fewer pillars than MAX_PILLARS


def ours(points: torch.Tensor, grid: PillarGrid) -> Pillars:
    """Cell per point (point limit applied), pillar column/row and kept-point count per cell."""
    return assign_pillars(points[:, :3], torch.zeros(len(points), dtype=torch.long), grid, 1, MAX_POINTS)


def ours_with_means(points: torch.Tensor, grid: PillarGrid) -> torch.Tensor:
    return pillar_means(points[:, :3], ours(points, grid))


def check_same_pillars(points: torch.Tensor, grid: PillarGrid, reference) -> None:
    """Same pillars, counts and means on both sides, or the timing compares different work."""
    pillars = ours(points, grid)
    voxels, coords, counts = reference(points)  # coords are (z, y, x)
    cell = coords[:, 1].long() * grid.nx + coords[:, 2].long()
    if not torch.equal(pillars.counts[cell], counts) or int(pillars.counts[:-1].sum()) != int(counts.sum()):
        raise AssertionError("ours and spconv keep different points per pillar")
    means = voxels[:, :, :3].sum(1) / counts[:, None]
    if not torch.allclose(pillar_means(points[:, :3], pillars)[:, cell].T, means, atol=1e-4):
        raise AssertionError("ours and spconv average different points")


def interleaved_ms(
    fns: dict[str, Callable], clouds: list[torch.Tensor], repeats: int
) -> dict[str, tuple[float, float]]:
    """name -> (median wall ms per cloud, median process CPU ms per cloud), the functions taking turns."""
    for fn in fns.values():
        for c in clouds:
            fn(c)  # warm-up
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for c in clouds:
                fn(c)
            wall[name].append((time.perf_counter() - t0) * 1e3 / len(clouds))
            cpu[name].append((time.process_time() - c0) * 1e3 / len(clouds))
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}


def bench_pillarization(repeats: int) -> None:
    files = sorted(KITTI.glob("*.bin"))
    if not files:
        print(f"skipped: no KITTI clouds at {KITTI}")
        return
    clouds = [torch.from_numpy(read_points_bin(f)) for f in files]
    grid = PillarGrid(RANGE, VOXEL)
    try:
        from spconv.pytorch.utils import PointToVoxel
    except ImportError:
        ms = interleaved_ms({"ours": lambda c: ours(c, grid)}, clouds, repeats)["ours"][0]
        print(f"pillarization ours {ms:.2f} ms/cloud; spconv not installed (pip install spconv) - no reference")
        return
    gen = PointToVoxel(vsize_xyz=[*VOXEL, RANGE[5] - RANGE[2]], coors_range_xyz=RANGE, num_point_features=4,
                       max_num_voxels=MAX_PILLARS, max_num_points_per_voxel=MAX_POINTS, device=torch.device("cpu"))  # fmt: skip

    def spconv_with_means(c: torch.Tensor) -> torch.Tensor:
        voxels, _, counts = gen(c)
        return voxels[:, :, :3].sum(1) / counts[:, None]

    for c in clouds:
        check_same_pillars(c, grid, gen)
    t = interleaved_ms(
        {"ours": lambda c: ours(c, grid), "spconv": gen,
         "ours+mean": lambda c: ours_with_means(c, grid), "spconv+mean": spconv_with_means},
        clouds, repeats,
    )  # fmt: skip
    n = statistics.mean(len(c) for c in clouds)
    print(
        f"pillarization, {len(clouds)} KITTI clouds ({n:.0f} points avg), {grid.nx}x{grid.ny} grid, "
        f"<= {MAX_POINTS} points per pillar, median of {repeats} (ms per cloud, wall / CPU):"
    )
    for what, a, b in (("cells + counts", "ours", "spconv"), ("with the pillar means", "ours+mean", "spconv+mean")):
        print(f"  {what:22s} ours {t[a][0]:6.2f} / {t[a][1]:6.2f}   spconv {t[b][0]:6.2f} / {t[b][1]:6.2f}   "
              f"ratio (spconv / ours) {t[b][0] / t[a][0]:.2f}x wall, {t[b][1] / t[a][1]:.2f}x CPU")  # fmt: skip


def bench_training(steps: int, config: str, amp: bool) -> None:
    """Model + optimizer steps/s with the conv weights in the default (NCHW) layout and channels-last
    (what the trainer uses), interleaved step by step on the same batches from the same weights."""
    from perception.data.registry import load_dataset
    from perception.data.torch_dataset import AugmentConfig, DetectionDataset, collate
    from perception.engine import resolve_config
    from perception.models import build_model_from_config

    root = Path(__file__).resolve().parents[1]
    cfg = resolve_config(root / config)
    s = cfg["model"]
    data = DetectionDataset(
        load_dataset(root / "datasets" / "synthetic.yaml", split="train"),
        s["point_channels"],
        s["point_range"],
        AugmentConfig(flip=True),
    )
    batches = [
        collate([data[(i * cfg["batch_size"] + j) * 7 % len(data)] for j in range(cfg["batch_size"])])
        for i in range(steps + 2)
    ]
    base = build_model_from_config(cfg).train()
    layouts = {"NCHW": torch.contiguous_format, "channels-last": torch.channels_last}
    models = {k: copy.deepcopy(base).to(memory_format=f) for k, f in layouts.items()}
    opts = {k: torch.optim.AdamW(m.parameters(), 1e-3) for k, m in models.items()}
    times: dict[str, list[float]] = {k: [] for k in layouts}
    for i, b in enumerate(batches):
        for k in layouts if i % 2 else reversed(layouts):  # alternate who goes first
            t0 = time.perf_counter()
            with torch.autocast("cpu", torch.bfloat16, enabled=amp):
                terms = models[k](b["points"], b["batch_idx"], b["batch_size"], b["gt_boxes"], b["gt_labels"])
            opts[k].zero_grad()
            sum(terms.values()).backward()
            opts[k].step()
            if i >= 2:  # the first two steps warm up oneDNN
                times[k].append(time.perf_counter() - t0)
    fps = {k: cfg["batch_size"] / statistics.median(v) for k, v in times.items()}
    print(
        f"training {config} ({'bf16' if amp else 'fp32'}, batch {cfg['batch_size']}, {steps} steps, model + optimizer only):"
    )
    print("  " + ", ".join(f"{k} {v:.2f} frames/s" for k, v in fps.items())
          + f"; ratio {fps['channels-last'] / fps['NCHW']:.2f}x")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--train-steps", type=int, default=5)
    p.add_argument("--config", default="configs/pointpillars_small.yaml")
    p.add_argument("--amp", action="store_true", help="bf16 autocast in the training steps")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    if args.repeats:
        bench_pillarization(args.repeats)
    if args.train_steps:
        bench_training(args.train_steps, args.config, args.amp)


if __name__ == "__main__":
    main()
