"""Pillarization against a per-point Python reference: cells, point limit, counts, means, edges, NaN."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from perception.data.kitti_format import read_points_bin
from perception.models.pillars import PillarGrid, assign_pillars, pillar_means

torch.set_num_threads(1)

KITTI = Path(__file__).resolve().parents[2] / "shared" / "data" / "kitti" / "object" / "training" / "velodyne"


def reference(xyz: np.ndarray, batch_idx: np.ndarray, grid: PillarGrid, batch_size: int, max_points: int):
    """(cell, counts) by a loop over points: float32 cell maths, the first max_points points of a cell kept."""
    x0, y0, z0, _, _, z1 = grid.point_range
    size = np.float32([grid.voxel_size[0], grid.voxel_size[1], z1 - z0])
    with np.errstate(invalid="ignore"):
        q = np.floor((xyz.astype(np.float32) - np.float32([x0, y0, z0])) / size)
    trash = batch_size * grid.cells
    counts = np.zeros(trash + 1, dtype=np.int64)
    cells = []
    for (col, row, level), b in zip(q.tolist(), batch_idx.tolist()):
        inside = 0 <= col < grid.nx and 0 <= row < grid.ny and level == 0  # False for NaN
        cell = b * grid.cells + int(row) * grid.nx + int(col) if inside else trash
        if cell != trash and max_points and counts[cell] >= max_points:
            cell = trash
        counts[cell] += 1
        cells.append(cell)
    counts[trash] = 0
    return np.array(cells, dtype=np.int64), counts


def check(xyz: np.ndarray, batch_idx: np.ndarray, grid: PillarGrid, batch_size: int, max_points: int) -> None:
    """Both point-limit paths, eager (data-dependent shapes) and traced (fixed shapes), equal the loop."""
    cell, counts = reference(xyz, batch_idx, grid, batch_size, max_points)
    for traced in (False, True):
        with mock.patch("torch.compiler.is_compiling", return_value=traced):
            got = assign_pillars(torch.from_numpy(xyz), torch.from_numpy(batch_idx), grid, batch_size, max_points)
        check_pillars(got, cell, counts, grid, batch_size)


def check_pillars(got, cell: np.ndarray, counts: np.ndarray, grid: PillarGrid, batch_size: int) -> None:
    np.testing.assert_array_equal(got.cell.numpy(), cell)
    np.testing.assert_array_equal(got.counts[:-1].numpy(), counts[:-1])  # the trash entry is no pillar
    kept = cell < batch_size * grid.cells
    local = cell[kept] % grid.cells
    np.testing.assert_array_equal(got.col.numpy()[kept], local % grid.nx)
    np.testing.assert_array_equal(got.row.numpy()[kept], local // grid.nx)


def edge_cloud(n: int, grid: PillarGrid, seed: int) -> np.ndarray:
    """Points over and beyond the range, a third of them exactly on cell and range edges."""
    rng = np.random.default_rng(seed)
    x0, y0, z0, x1, y1, z1 = grid.point_range
    lo, hi = np.float32([x0, y0, z0]), np.float32([x1, y1, z1])
    xyz = rng.uniform(lo - 1, hi + 1, (n, 3)).astype(np.float32)
    k = n // 3
    xyz[:k, 0] = np.float32(x0) + rng.integers(-1, grid.nx + 2, k) * np.float32(grid.voxel_size[0])
    xyz[:k, 1] = np.float32(y0) + rng.integers(-1, grid.ny + 2, k) * np.float32(grid.voxel_size[1])
    xyz[:k, 2] = rng.choice(np.float32([z0, z1, np.nextafter(z1, z0), np.nextafter(z0, z1)]), k)
    return xyz


@pytest.mark.parametrize("max_points", [0, 1, 3, 32])
def test_cells_and_counts_match_a_per_point_loop(max_points):
    grid = PillarGrid([0.0, -3.2, -3.0, 6.4, 3.2, 1.0], [0.16, 0.16])  # 40 x 40 cells
    for seed, (n, batch_size) in enumerate([(5000, 1), (20000, 3), (7, 2)]):
        xyz = edge_cloud(n, grid, seed)
        check(xyz, np.random.default_rng(seed).integers(0, batch_size, n), grid, batch_size, max_points)


def test_more_overfull_pillars_than_int16_keys():
    """40,000 pillars of 2 points at 1 point per pillar: 40,000 sort keys do not fit int16, and the
    80,000 points to rank are more than the padded length of a short key list."""
    grid = PillarGrid([0.0, 0.0, -1.0, 200.0, 200.0, 1.0], [1.0, 1.0])
    rng = np.random.default_rng(0)
    centres = np.stack(np.meshgrid(np.arange(200), np.arange(200)), -1).reshape(-1, 2) + 0.5
    xy = rng.permutation(np.concatenate([centres - 0.25, centres + 0.25]))
    xyz = np.concatenate([xy, rng.uniform(-0.9, 0.9, (len(xy), 1))], 1).astype(np.float32)
    check(xyz, np.zeros(len(xyz), dtype=np.int64), grid, 1, max_points=1)
    check(xyz, np.zeros(len(xyz), dtype=np.int64), grid, 1, max_points=2)  # no pillar overfull


def test_non_finite_and_empty_clouds_go_to_the_trash():
    grid = PillarGrid([0, 0, -1, 4, 2, 1], [1.0, 1.0])
    nan, inf = float("nan"), float("inf")
    xyz = np.float32([[nan, 0.5, 0], [0.5, nan, 0], [0.5, 0.5, nan], [inf, 0.5, 0], [-inf, 0.5, 0], [0.5, 0.5, 0]])
    got = assign_pillars(torch.from_numpy(xyz), torch.zeros(6, dtype=torch.long), grid, 1, max_points=4)
    assert got.cell.tolist() == [8, 8, 8, 8, 8, 0] and got.counts[:-1].tolist() == [1] + [0] * 7
    empty = assign_pillars(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), grid, 2, max_points=4)
    assert empty.cell.shape == (0,) and empty.counts.tolist() == [0] * 17


def test_pillar_means_average_only_the_kept_points():
    grid = PillarGrid([0, 0, -1, 4, 2, 1], [1.0, 1.0])
    xyz = torch.tensor([[0.2, 0.2, 0.0], [0.4, 0.6, 0.2], [0.9, 0.9, 0.9], [3.5, 1.5, -0.5], [9.0, 0.5, 0.0]])
    pillars = assign_pillars(xyz, torch.zeros(5, dtype=torch.long), grid, 1, max_points=2)
    means = pillar_means(xyz, pillars).T
    assert means.shape == (9, 3)
    assert torch.allclose(means[0], torch.tensor([0.3, 0.4, 0.1]))  # the third point of cell 0 is dropped
    assert torch.allclose(means[7], xyz[3]) and means[1:7].abs().sum() == 0


def test_kitti_clouds_match_a_per_point_loop():
    files = sorted(KITTI.glob("*.bin"))[:2]
    if not files:
        pytest.skip(f"no KITTI clouds at {KITTI}")
    grid = PillarGrid([0.0, -39.68, -3.0, 69.12, 39.68, 1.0], [0.16, 0.16])  # PointPillars KITTI grid
    for f in files:
        xyz = read_points_bin(f)[:, :3]  # a strided view, as the encoder passes it
        check(xyz, np.zeros(len(xyz), dtype=np.int64), grid, 1, max_points=32)
