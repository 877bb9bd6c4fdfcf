"""Pillarization on a dense grid and the pillar feature net: raw points -> BEV pseudo-image.

Every point gets a cell index; points outside the range, or beyond a pillar's point limit,
go to one extra "trash" cell that is dropped at the end. Pillar sums use ``scatter_add`` and the
pillar feature is a ``scatter_reduce('amax')`` over its points, so there is no Python loop over
points and no data-dependent shape: the graph exports to ONNX (opset 18) as it is.
"""

from __future__ import annotations

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


def assign_pillars(xyz: torch.Tensor, batch_idx: torch.Tensor, grid: PillarGrid, batch_size: int, max_points: int):
    """Cell of every point.

    Args:
        xyz: (N, 3) float32 points (ego frame, metres).
        batch_idx: (N,) int64 sample of every point.
        max_points: points kept per pillar (in input order); 0 keeps all.

    Returns:
        cell: (N,) int64 in [0, batch_size * cells]; the last value is the trash cell.
        col, row: (N,) int64 grid column and row (meaningless for trash points).
    """
    x0, y0, z0, _, _, z1 = grid.point_range
    # one contiguous pass per axis: broadcasting over the (N, 3) view and reducing over its short
    # last dimension took several times longer than these 1-D passes
    col = torch.floor((xyz[:, 0] - x0) / grid.voxel_size[0])
    row = torch.floor((xyz[:, 1] - y0) / grid.voxel_size[1])
    level = (xyz[:, 2] - z0) / (z1 - z0)  # inside the z range iff 0 <= level < 1 (floor(level) == 0)
    inside = (col >= 0) & (col < grid.nx) & (row >= 0) & (row < grid.ny) & (level >= 0) & (level < 1)
    trash = batch_size * grid.cells
    # int32 keeps the index arithmetic and the sort below about twice as fast as int64
    cell = batch_idx.to(torch.int32) * grid.cells + row.to(torch.int32) * grid.nx + col.to(torch.int32)
    cell = torch.where(inside, cell, torch.full_like(cell, trash))
    if max_points > 0:
        cell = _drop_beyond_limit(cell, max_points, trash)
    return cell.long(), col.long(), row.long()


def _drop_beyond_limit(cell: torch.Tensor, max_points: int, trash: int) -> torch.Tensor:
    """(N,) cells with every point after the first ``max_points`` of its cell (input order) moved to ``trash``.

    After a stable sort the points of a cell are one contiguous run in input order, so a point is
    beyond the limit exactly when the point ``max_points`` places before it has the same cell: one
    shifted comparison instead of counting the cells and ranking within them.
    """
    sorted_cell, order = torch.sort(cell, stable=True)
    before = torch.cat([torch.full_like(sorted_cell[:max_points], -1), sorted_cell])[: cell.shape[0]]
    kept_sorted = torch.where(before == sorted_cell, torch.full_like(sorted_cell, trash), sorted_cell)
    return torch.empty_like(cell).scatter(0, order, kept_sorted)


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
        cell, col, row = assign_pillars(points[:, :3], batch_idx, grid, batch_size, self.max_points)
        feats = [points]
        if "mean_offset" in self.decorations:
            ones = torch.ones_like(points[:, :1])
            sums = points.new_zeros(n_cells, 4).scatter_add(
                0, cell[:, None].expand(-1, 4), torch.cat([points[:, :3], ones], 1)
            )
            mean = sums[:, :3] / sums[:, 3:].clamp(min=1.0)
            feats.append(points[:, :3] - mean[cell])
        if "centre_offset" in self.decorations:
            cx = grid.point_range[0] + (col.to(points.dtype) + 0.5) * grid.voxel_size[0]
            cy = grid.point_range[1] + (row.to(points.dtype) + 0.5) * grid.voxel_size[1]
            feats.append(torch.stack([points[:, 0] - cx, points[:, 1] - cy], 1))
        if "distance" in self.decorations:
            feats.append(torch.linalg.vector_norm(points[:, :2], dim=1, keepdim=True))
        valid = (cell < n_cells - 1).to(points.dtype)[:, None]
        x = self.net(torch.cat(feats, 1) * valid)
        pooled = x.new_zeros(n_cells, x.shape[1]).scatter_reduce(0, cell[:, None].expand(-1, x.shape[1]), x, "amax")
        bev = pooled[: n_cells - 1].view(batch_size, grid.ny, grid.nx, x.shape[1])
        return bev.permute(0, 3, 1, 2).contiguous()
