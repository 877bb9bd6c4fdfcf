"""The pillar detector: pillar feature net -> BEV backbone -> neck -> anchor or centre head,
built by name from the ``model:`` section of a config (``configs/pointpillars.yaml``).

Inference: ``model(points)`` with points (N, C) float32 in the ego frame returns fixed-size
``boxes (K, 7)``, ``scores (K,)``, ``labels (K,)`` (top-K before NMS; tensor ops only, so it
exports as one ONNX graph). Training: ``model(points, batch_idx, B, gt_boxes, gt_labels)``
returns the loss dict.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from perception.config import check_keys, close_match_hint
from perception.errors import ConfigError
from perception.models.anchor_head import AnchorHead
from perception.models.backbone import BlockBackbone, UpsampleNeck
from perception.models.center_head import CenterHead
from perception.models.heads import FeatureGrid, LossTerms
from perception.models.pillars import DECORATIONS, PillarFeatureNet, PillarGrid

# every key of the model section with its default; a model YAML may set any of them
MODEL_DEFAULTS: dict[str, Any] = {
    "name": "pillars",  # label shown in runs and checkpoints
    "classes": ["Car", "Pedestrian", "Cyclist"],  # must equal the dataset's classes
    "point_channels": ["x", "y", "z", "intensity"],  # input channels, by name (missing ones are zeros)
    "point_range": [0.0, -39.68, -3.0, 69.12, 39.68, 1.0],  # x0 y0 z0 x1 y1 z1, metres
    "voxel_size": [0.16, 0.16],  # pillar size x, y metres
    "max_points_per_pillar": 32,  # 0 = no limit
    "decorations": ["mean_offset", "centre_offset"],  # per-point features added (+ "distance")
    "encoder_channels": [64],
    "backbone_channels": [64, 128, 256],
    "backbone_layers": [3, 5, 5],
    "backbone_strides": [2, 2, 2],
    "neck_channels": [128, 128, 128],
    "neck_se": False,  # squeeze-excitation gate on the neck output
    "dropout": 0.0,  # Dropout2d before the head
    "head": "anchor",  # anchor | center
    "head_channels": 64,  # center head shared conv width
    "iou_power": 0.75,  # center head score = heat ** (1 - a) * predicted IoU ** a (0: heat only)
    "reg_radius": 1,  # center head: cells this far (Chebyshev) from an object's centre cell also regress its box
    "vote_gate": 0.5,  # center head: output box = IoU-weighted mean of the site boxes within this many metres (0: peak only)
    # typical l w h and centre height (ego frame) per class: the anchor head's anchors, the centre
    # head's priors that size and height are regressed relative to
    "anchor_sizes": [[3.9, 1.6, 1.56], [0.8, 0.6, 1.73], [1.76, 0.6, 1.73]],
    "anchor_z": [-1.0, -0.6, -0.6],
    "pos_iou": [0.6, 0.5, 0.5],
    "neg_iou": [0.45, 0.35, 0.35],
    "max_detections": 100,  # fixed top-K of the graph output
    "score_thresholds": [0.3, 0.3, 0.3],  # per class, applied after the graph
    "nms_iou": 0.1,  # rotated BEV IoU for class-wise NMS after the graph
}
HEADS = ("anchor", "center")


class PillarDetector(nn.Module):
    """Composition of the stages; see the module docstring for the two call forms."""

    def __init__(
        self, encoder: PillarFeatureNet, backbone: BlockBackbone, neck: UpsampleNeck, head: nn.Module, dropout: float
    ):
        super().__init__()
        self.encoder, self.backbone, self.neck, self.head = encoder, backbone, neck, head
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()

    def forward(
        self, points: torch.Tensor, batch_idx: torch.Tensor | None = None, batch_size: int = 1,
        gt_boxes: list[torch.Tensor] | None = None, gt_labels: list[torch.Tensor] | None = None,
    ):  # fmt: skip
        if batch_idx is None:
            batch_idx = torch.zeros(points.shape[0], dtype=torch.long, device=points.device)
        bev = self.encoder(points, batch_idx, batch_size)
        out = self.head(self.dropout(self.neck(self.backbone(bev))))
        if gt_boxes is None:
            return self.head.decode(out)
        return self.head.loss(out, gt_boxes, gt_labels)


def build_model(model_cfg: dict[str, Any], losses: LossTerms | None = None) -> PillarDetector:
    """Build from a ``model:`` section (keys of ``MODEL_DEFAULTS``); unknown keys fail with a hint."""
    check_keys(model_cfg, MODEL_DEFAULTS, where="model")
    m = {**MODEL_DEFAULTS, **model_cfg}
    if m["head"] not in HEADS:
        raise ConfigError(f"unknown model.head {m['head']!r}{close_match_hint(str(m['head']), HEADS)}")
    bad = set(m["decorations"]) - set(DECORATIONS)
    if bad:
        raise ConfigError(f"unknown model.decorations {sorted(bad)}; valid: {', '.join(DECORATIONS)}")
    n_cls = len(m["classes"])
    for key in ("score_thresholds", "anchor_sizes", "anchor_z") + (
        ("pos_iou", "neg_iou") if m["head"] == "anchor" else ()
    ):
        if len(m[key]) != n_cls:
            raise ConfigError(f"model.{key} has {len(m[key])} entries for {n_cls} classes {m['classes']}")
    grid = PillarGrid(m["point_range"], m["voxel_size"])
    stride = m["backbone_strides"][0]
    if grid.nx % math.prod(m["backbone_strides"]) or grid.ny % math.prod(m["backbone_strides"]):
        raise ConfigError(
            f"grid {grid.nx}x{grid.ny} pillars is not divisible by the backbone strides {m['backbone_strides']}"
        )
    encoder = PillarFeatureNet(
        grid, len(m["point_channels"]), m["encoder_channels"], m["max_points_per_pillar"], m["decorations"]
    )
    backbone = BlockBackbone(encoder.out_channels, m["backbone_channels"], m["backbone_layers"], m["backbone_strides"])
    neck = UpsampleNeck(backbone.channels, backbone.strides, m["neck_channels"], se=m["neck_se"])
    fgrid = FeatureGrid(grid, stride)
    losses = losses or LossTerms()
    if m["head"] == "anchor":
        head: nn.Module = AnchorHead(
            neck.out_channels,
            fgrid,
            n_cls,
            m["anchor_sizes"],
            m["anchor_z"],
            m["pos_iou"],
            m["neg_iou"],
            losses,
            m["max_detections"],
        )
    else:
        head = CenterHead(
            neck.out_channels, fgrid, n_cls, losses, m["anchor_sizes"], m["anchor_z"], m["head_channels"],
            m["max_detections"], m["iou_power"], m["reg_radius"], m["vote_gate"],
        )
    return PillarDetector(encoder, backbone, neck, head, m["dropout"])


def build_model_from_config(cfg: dict[str, Any]) -> PillarDetector:
    """Build from a resolved run config: its ``model:`` section plus the loss keys
    (``loss_cls``, ``loss_box``, ``loss_dir``, ``*_weight``, ``label_smoothing``) at the top level."""
    keys = {"loss_cls": "cls", "loss_box": "box", "loss_dir": "dir", "cls_weight": "cls_weight", "box_weight": "box_weight",
            "dir_weight": "dir_weight", "iou_weight": "iou_weight", "label_smoothing": "label_smoothing"}  # fmt: skip
    losses = LossTerms(**{v: cfg[k] for k, v in keys.items() if k in cfg})
    return build_model(dict(cfg.get("model") or {}), losses)


def model_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """The model section with every default filled in."""
    return {**MODEL_DEFAULTS, **dict(cfg.get("model") or {})}
