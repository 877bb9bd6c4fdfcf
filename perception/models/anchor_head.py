"""PointPillars-style anchor head: per feature cell, one anchor per class and rotation (0, 90 deg),
each with a score, a 7-value box residual and a 2-way direction classifier."""

from __future__ import annotations

import math

import torch
from torch import nn

from perception.models import box_coder
from perception.models.heads import FeatureGrid, LossTerms


class AnchorHead(nn.Module):
    """Input (B, C, H, W) BEV features -> per-anchor scores, residuals and direction logits.

    Args:
        anchor_sizes: per class (l, w, h) metres.
        anchor_z: per class anchor centre height (ego frame, metres).
        pos_iou, neg_iou: per class matching thresholds on axis-aligned BEV IoU.
    """

    def __init__(
        self, in_channels: int, fgrid: FeatureGrid, num_classes: int, anchor_sizes: list[list[float]], anchor_z: list[float],
        pos_iou: list[float], neg_iou: list[float], losses: LossTerms, max_detections: int = 100,
        dir_offset: float = math.pi / 4,
    ):  # fmt: skip
        super().__init__()
        if not len(anchor_sizes) == len(anchor_z) == len(pos_iou) == len(neg_iou) == num_classes:
            raise ValueError(f"anchor_sizes, anchor_z, pos_iou, neg_iou need one entry per class ({num_classes})")
        self.num_classes, self.fgrid, self.losses = num_classes, fgrid, losses
        self.max_detections, self.dir_offset = max_detections, dir_offset
        self.A = 2 * num_classes
        self.cls = nn.Conv2d(in_channels, self.A, 1)
        self.box = nn.Conv2d(in_channels, self.A * 7, 1)
        self.dir = nn.Conv2d(in_channels, self.A * 2, 1)
        nn.init.constant_(self.cls.bias, -math.log((1 - 0.01) / 0.01))
        anchors, anchor_cls = make_anchors(fgrid, anchor_sizes, anchor_z)
        self.register_buffer("anchors", anchors, persistent=False)
        self.register_buffer("anchor_cls", anchor_cls, persistent=False)
        self.register_buffer("pos_iou", torch.tensor(pos_iou)[anchor_cls], persistent=False)
        self.register_buffer("neg_iou", torch.tensor(neg_iou)[anchor_cls], persistent=False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """-> cls (B, P), box (B, P, 7), dir (B, P, 2) with P = H * W * A anchors."""
        B = x.shape[0]
        return {
            "cls": self.cls(x).permute(0, 2, 3, 1).reshape(B, -1),
            "box": self.box(x).permute(0, 2, 3, 1).reshape(B, -1, 7),
            "dir": self.dir(x).permute(0, 2, 3, 1).reshape(B, -1, 2),
        }

    def decode(self, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """First sample of the batch -> top-K boxes (K, 7), scores (K,), labels (K,); no NMS."""
        scores = torch.sigmoid(out["cls"][0])
        k = min(self.max_detections, scores.shape[0])
        top, idx = torch.topk(scores, k)
        anchors = self.anchors[idx]
        boxes = box_coder.decode(out["box"][0][idx], anchors)
        flip = torch.argmax(out["dir"][0][idx], dim=1).to(boxes.dtype)
        yaw = box_coder.limit_period(boxes[:, 6] - self.dir_offset, 0.0, math.pi) + self.dir_offset + math.pi * flip
        boxes = torch.cat([boxes[:, :6], yaw[:, None]], dim=1)
        return boxes, top, self.anchor_cls[idx]

    def loss(
        self, out: dict[str, torch.Tensor], gt_boxes: list[torch.Tensor], gt_labels: list[torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        targets = [self.assign(b, l) for b, l in zip(gt_boxes, gt_labels)]
        pos = torch.stack([t[0] for t in targets])
        care = torch.stack([t[1] for t in targets])
        box_t = torch.stack([t[2] for t in targets])
        num_pos = pos.sum().clamp(min=1).float()
        cls = self.losses.cls_loss(out["cls"], pos.float())
        loss_cls = (cls * care.float()).sum() / num_pos
        anchors = self.anchors.expand(pos.shape[0], -1, -1)[pos]
        target = box_coder.encode(box_t[pos], anchors)
        pred, target = box_coder.sin_difference(out["box"][pos].float(), target)
        loss_box = self.losses.box_fn(pred, target).sum() / num_pos
        dir_t = box_coder.direction_bin(box_t[pos][:, 6], self.dir_offset)
        loss_dir = self.losses.dir_loss(out["dir"][pos], dir_t).sum() / num_pos
        w = self.losses
        return {"cls": w.cls_weight * loss_cls, "box": w.box_weight * loss_box, "dir": w.dir_weight * loss_dir}

    def assign(self, boxes: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Match anchors to one sample's (M, 7) boxes of (M,) labels.

        Returns positive mask (P,), cared-for mask (P,) (positives and negatives; the rest is
        ignored) and the (P, 7) box each anchor is matched to (zeros where unmatched).
        """
        P = self.anchors.shape[0]
        if boxes.shape[0] == 0:
            return (
                torch.zeros(P, dtype=torch.bool, device=boxes.device),
                torch.ones(P, dtype=torch.bool, device=boxes.device),
                boxes.new_zeros(P, 7),
            )
        iou = box_coder.aligned_iou(box_coder.nearest_bev_xyxy(self.anchors), box_coder.nearest_bev_xyxy(boxes))
        iou = iou * (self.anchor_cls[:, None] == labels[None, :]).to(iou.dtype)
        best_iou, best_gt = iou.max(dim=1)
        pos = best_iou >= self.pos_iou
        gt_best = iou.max(dim=0).values
        is_best = (iou == gt_best[None, :]) & (gt_best[None, :] > 0)
        forced = is_best.any(dim=1)
        best_gt = torch.where(forced, is_best.float().argmax(dim=1), best_gt)
        pos = pos | forced
        care = pos | (best_iou < self.neg_iou)
        return pos, care, boxes[best_gt] * pos[:, None].to(boxes.dtype)


def make_anchors(fgrid: FeatureGrid, sizes: list[list[float]], z: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(H * W * A, 7) anchors in (row, col, class, rotation) order and their (H * W * A,) class."""
    centres = fgrid.centres()  # (H, W, 2)
    per_cell = []
    for c, (size, zc) in enumerate(zip(sizes, z)):
        for yaw in (0.0, math.pi / 2):
            per_cell.append([zc, *size, yaw, c])
    spec = torch.tensor(per_cell, dtype=torch.float32)  # (A, 6)
    H, W, A = fgrid.H, fgrid.W, spec.shape[0]
    xy = centres[:, :, None, :].expand(H, W, A, 2)
    rest = spec[None, None, :, :5].expand(H, W, A, 5)
    anchors = torch.cat([xy, rest], dim=-1).reshape(-1, 7)
    return anchors, spec[:, 5].long().repeat(H * W)
