"""Shared parts of the detection heads: the loss terms a head is trained with, and the
BEV feature-map geometry (which ego-frame point each feature cell sits on)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from perception.models.losses import build_loss, smooth_binary
from perception.models.pillars import PillarGrid


@dataclass
class LossTerms:
    """Loss names and weights of a head (names as in ``perception.models.losses.LOSSES``)."""

    cls: str = "focal"
    box: str = "smooth_l1"
    dir: str = "cross_entropy"
    cls_weight: float = 1.0
    box_weight: float = 2.0
    dir_weight: float = 0.2
    iou_weight: float = 1.0
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        self.cls_fn, self.box_fn, self.dir_fn = (
            build_loss("cls", self.cls),
            build_loss("box", self.box),
            build_loss("dir", self.dir),
        )

    def cls_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Element-wise; smoothing applies to binary targets, not to focal's soft heat-map targets."""
        if self.cls != "focal":
            target = smooth_binary(target, self.label_smoothing)
        return self.cls_fn(logits.float(), target)

    def dir_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.dir_fn(logits.float(), target, label_smoothing=self.label_smoothing)


class FeatureGrid:
    """A pillar grid seen at ``stride``: (H, W) cells of ``cell_x`` by ``cell_y`` metres."""

    def __init__(self, grid: PillarGrid, stride: int):
        self.x0, self.y0 = grid.point_range[0], grid.point_range[1]
        self.cell_x, self.cell_y = grid.voxel_size[0] * stride, grid.voxel_size[1] * stride
        self.H, self.W = grid.ny // stride, grid.nx // stride

    def centres(self) -> torch.Tensor:
        """(H, W, 2) ego-frame x, y of every cell centre."""
        ys = self.y0 + (torch.arange(self.H, dtype=torch.float32) + 0.5) * self.cell_y
        xs = self.x0 + (torch.arange(self.W, dtype=torch.float32) + 0.5) * self.cell_x
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        return torch.stack([gx, gy], dim=-1)
