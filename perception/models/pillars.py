"""Pillarization on a dense grid and the pillar feature net: raw points -> BEV pseudo-image.

Every point gets a cell index; points outside the range, or beyond a pillar's point limit,
go to one extra "trash" cell that is dropped at the end. Pillar sums use ``scatter_add`` and the
pillar feature is a ``scatter_reduce('amax')`` over its points, so there is no Python loop over
points. Traced graphs have no data-dependent shape and export to ONNX (opset 18) as they are; eager
runs apply the point limit to the points of overfull pillars only (same cells, fewer passes).
Speed against spconv's voxelizer: ``benchmarks/bench_pillars.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

# per-point decorations added to the raw channels, by name
DECORATIONS = {"mean_offset": 3, "centre_offset": 2, "distance": 1}


class PillarGrid:
    """The BEV grid: ``point_range`` = (x0, y0, z0, x1, y1, z1) metres, ``voxel_size`` = (vx, vy) metres.

    The grid has ``ny`` rows (y) by ``nx`` columns (x); cell (row, col) covers
    ``x0 + col * vx .. x0 + (col + 1) * vx`` and likewise for y.
    """

    def __init__(self, point_range: list[float], voxel_size: list[float]):
        self.point_range = [float(v) for v in point_range]
        self.voxel_size = [float(v) for v in voxel_size[:2]]
        x0, y0, _, x1, y1, _ = self.point_range
        self.nx = round((x1 - x0) / self.voxel_size[0])
        self.ny = round((y1 - y0) / self.voxel_size[1])

    @property
    def cells(self) -> int:
        return self.nx * self.ny


class Pillars(NamedTuple):
    """The pillar of every point, from ``assign_pillars``."""

    cell: torch.Tensor  # (N,) int64 in [0, batch_size * cells]; the last value is the trash cell
    counts: torch.Tensor  # (batch_size * cells + 1,) int32 points kept per cell (the trash entry is no pillar)
    col: torch.Tensor  # (N,) float grid column, clamped into the grid (meaningless for trash points)
    row: torch.Tensor  # (N,) float grid row, likewise


def assign_pillars(
    xyz: torch.Tensor, batch_idx: torch.Tensor, grid: PillarGrid, batch_size: int, max_points: int
) -> Pillars:
    """Cell of every point and the number of points kept per cell.

    Args:
        xyz: (N, 3) float32 points (ego frame, metres).
        batch_idx: (N,) int64 sample of every point (not read when batch_size is 1).
        max_points: points kept per pillar (in input order); 0 keeps all.
    """
    x0, y0, z0, _, _, z1 = grid.point_range
    x, y, z = xyz.unbind(1)  # one pass per axis: the (N, 3) broadcast form ran 2x slower
    col_raw = (x - x0).div_(grid.voxel_size[0]).floor_()
    row_raw = (y - y0).div_(grid.voxel_size[1]).floor_()
    level = (z - z0).div_(z1 - z0).floor_()  # 0 inside the z range
    # Comparisons and where() cost several arithmetic passes each (their boolean tensors are not
    # vectorised), so the range test is arithmetic: clamp into the grid; a point is outside iff
    # that moved it or its level is not 0. NaN clamps to NaN, which counts as outside.
    col = col_raw.clamp(0, grid.nx - 1).nan_to_num_()
    row = row_raw.clamp(0, grid.ny - 1).nan_to_num_()
    moved = col_raw.sub_(col).abs_().add_(row_raw.sub_(row).abs_()).add_(level.abs_())
    trash = batch_size * grid.cells
    # int32 arithmetic (int64 passes move twice the bytes), one int64 copy for the scatters
    cell = row.to(torch.int32).mul_(grid.nx).add_(col.to(torch.int32))
    if batch_size > 1:
        cell.add_(batch_idx.to(torch.int32).mul_(grid.cells))
    # every cell is below trash, so raising the cells to trash-or-0 moves exactly the outside points
    cell.clamp_(min=moved.clamp_(max=1).nan_to_num_(1.0).to(torch.int32).mul_(trash))
    cell = cell.long()
    counts = torch.zeros(trash + 1, dtype=torch.int32)
    counts.scatter_add_(0, cell, counts.new_ones(1).expand(cell.shape[0]))
    if max_points > 0:
        kept = counts.clamp(max=max_points)
        excess = counts.sub_(kept)  # points beyond the limit, per cell
        if torch.compiler.is_compiling():
            _drop_beyond_limit_static(cell, excess, max_points, trash)
        else:
            _drop_beyond_limit(cell, excess, max_points, trash)
        counts = kept
    return Pillars(cell, counts, col, row)


def _drop_beyond_limit_static(cell: torch.Tensor, excess: torch.Tensor, max_points: int, trash: int) -> None:
    """Move every point after the first ``max_points`` of its cell (input order) to ``trash``, in place,
    with fixed shapes (the traced/exported graph).

    Only cells with ``excess`` points need ranking. They get keys 1..K and all other points key 0;
    after a stable sort of the keys the points of an overfull cell are one run in input order, so a
    point is beyond the limit exactly when the point ``max_points`` places before it has the same
    non-zero key. Keys are int32: runtimes' integer kernels are mostly int32/int64 only. (The trash
    cell may be overfull too: its "dropped" points stay in the trash.)
    """
    n = cell.shape[0]
    overfull = excess.clamp_(max=1)
    key_of_cell = torch.cumsum(overfull, 0, dtype=torch.int32).mul_(overfull)
    sorted_key, order = torch.sort(key_of_cell.index_select(0, cell), stable=True)
    earlier, later = sorted_key[:-max_points], sorted_key[max_points:]
    # signed keys ascend, so later >= earlier: 1 where earlier is non-zero and later equals it
    drop_later = earlier.clamp(max=1).sub_((later - earlier).clamp_(max=1)).clamp_(min=0)
    drop = sorted_key.new_zeros(n).scatter_(0, order[max_points:], drop_later)
    cell.clamp_(min=drop.to(cell.dtype).mul_(trash))


# torch sorts integers by radix from at::internal::GRAIN_SIZE elements on; shorter inputs get a
# comparison sort that is ~6x slower per element, so a shorter key list is padded to this length
RADIX_SORT_MIN = 32768


def _drop_beyond_limit(cell: torch.Tensor, excess: torch.Tensor, max_points: int, trash: int) -> None:
    """The same as ``_drop_beyond_limit_static`` for eager runs, where shapes may depend on the data:
    only the points of overfull cells (usually 5-30% of a cloud) are gathered and sorted.

    Their cells get keys 1..K in cell order (a cumulative sum over the cells they span), int16
    when K fits, whose radix sort takes half the passes of int32.
    """
    excess[trash] = 0  # points already in the trash stay there
    at = excess.index_select(0, cell).nonzero().squeeze(1)  # points of overfull cells, in input order
    if at.shape[0] == 0:
        return
    crowded = cell.index_select(0, at)
    low, high = (int(v) for v in crowded.aminmax())
    key_of_cell = excess[low : high + 1].clamp_(max=1).cumsum(0, dtype=torch.int32)
    key = key_of_cell.index_select(0, crowded.sub_(low))
    if int(key_of_cell[-1]) < 2**15:
        key = key.to(torch.int16)
    m = key.shape[0]
    if m < RADIX_SORT_MIN:
        key = torch.cat([key, key.new_full((RADIX_SORT_MIN - m,), torch.iinfo(key.dtype).max)])
    sorted_key, order = torch.sort(key, stable=True)
    sorted_key, order = sorted_key[:m], order[:m]
    # trash exceeds every cell: the max with it drops a point, the max with 0 leaves it where it is
    drop = (sorted_key[max_points:] == sorted_key[:-max_points]).to(cell.dtype).mul_(trash)
    cell.scatter_reduce_(0, at.index_select(0, order[max_points:]), drop, "amax")


def pillar_means(xyz: torch.Tensor, pillars: Pillars) -> torch.Tensor:
    """(3, batch_size * cells + 1) mean x, y, z of the kept points of every cell (0 where there are none).

    Axis-major: one scatter along rows of length N runs about twice as fast as one into (cells, 3).
    """
    n = pillars.cell.shape[0]
    sums = xyz.new_zeros(3, pillars.counts.shape[0]).scatter_add_(1, pillars.cell.expand(3, n), xyz.T)
    return sums.div_(pillars.counts.clamp(min=1))


class PillarFeatureNet(nn.Module):
    """Decorate points, encode them with a shared Linear+BN+ReLU stack, max-pool per pillar.

    Input points (N, C) carry the channels the config names (x, y, z first); decorations add
    the offset to the pillar's point mean (3), to the pillar's centre (2) and optionally the
    range from the sensor (1).
    """

    def __init__(
        self, grid: PillarGrid, in_channels: int, channels: list[int], max_points: int, decorations: list[str]
    ):
        super().__init__()
        unknown = set(decorations) - set(DECORATIONS)
        if unknown:
            raise ValueError(f"unknown decorations {sorted(unknown)}")
        self.grid, self.max_points, self.decorations = grid, max_points, list(decorations)
        width = in_channels + sum(DECORATIONS[d] for d in decorations)
        layers: list[nn.Module] = []
        for c in channels:
            layers += [nn.Linear(width, c, bias=False), nn.BatchNorm1d(c, eps=1e-3, momentum=0.1), nn.ReLU()]
            width = c
        self.net = nn.Sequential(*layers)
        self.out_channels = width

    def forward(self, points: torch.Tensor, batch_idx: torch.Tensor, batch_size: int) -> torch.Tensor:
        """(N, C) points, (N,) sample index -> (B, C_out, ny, nx) pseudo-image."""
        grid = self.grid
        n_cells = batch_size * grid.cells + 1
        pillars = assign_pillars(points[:, :3], batch_idx, grid, batch_size, self.max_points)
        cell = pillars.cell
        feats = [points]
        if "mean_offset" in self.decorations:
            feats.append(points[:, :3] - pillar_means(points[:, :3], pillars).index_select(1, cell).T)
        if "centre_offset" in self.decorations:
            cx = grid.point_range[0] + (pillars.col + 0.5) * grid.voxel_size[0]
            cy = grid.point_range[1] + (pillars.row + 0.5) * grid.voxel_size[1]
            feats.append(torch.stack([points[:, 0] - cx, points[:, 1] - cy], 1))
        if "distance" in self.decorations:
            feats.append(torch.linalg.vector_norm(points[:, :2], dim=1, keepdim=True))
        valid = (cell < n_cells - 1).to(points.dtype)[:, None]
        x = self.net(torch.cat(feats, 1) * valid)
        pooled = x.new_zeros(n_cells, x.shape[1]).scatter_reduce(0, cell[:, None].expand(-1, x.shape[1]), x, "amax")
        bev = pooled[: n_cells - 1].view(batch_size, grid.ny, grid.nx, x.shape[1])
        return bev.permute(0, 3, 1, 2).contiguous()
