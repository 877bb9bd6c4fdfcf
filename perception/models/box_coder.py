"""Residual box coding against anchors (SECOND / PointPillars) and box helpers in torch.

Boxes are (..., 7) = (x, y, z, l, w, h, yaw): ego frame, geometric centre, metres, radians.
"""

from __future__ import annotations

import math

import torch


def encode(boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """(P, 7) boxes, (P, 7) anchors -> (P, 7) residuals: centre offsets over the anchor's BEV
    diagonal (x, y) and height (z), log size ratios, raw yaw difference."""
    diag = torch.sqrt(anchors[:, 3] ** 2 + anchors[:, 4] ** 2)
    dxy = (boxes[:, :2] - anchors[:, :2]) / diag[:, None]
    dz = (boxes[:, 2] - anchors[:, 2]) / anchors[:, 5]
    dsize = torch.log(boxes[:, 3:6].clamp(min=1e-3) / anchors[:, 3:6])
    return torch.cat([dxy, dz[:, None], dsize, (boxes[:, 6] - anchors[:, 6])[:, None]], dim=1)


def decode(residuals: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Inverse of ``encode``."""
    diag = torch.sqrt(anchors[:, 3] ** 2 + anchors[:, 4] ** 2)
    xy = residuals[:, :2] * diag[:, None] + anchors[:, :2]
    z = residuals[:, 2] * anchors[:, 5] + anchors[:, 2]
    size = torch.exp(residuals[:, 3:6].clamp(max=6.0)) * anchors[:, 3:6]
    yaw = residuals[:, 6] + anchors[:, 6]
    return torch.cat([xy, z[:, None], size, yaw[:, None]], dim=1)


def limit_period(angle: torch.Tensor, offset: float, period: float) -> torch.Tensor:
    """Wrap ``angle`` into [-offset * period, (1 - offset) * period)."""
    return angle - torch.floor(angle / period + offset) * period


def sin_difference(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace the yaw columns so that their difference is sin(pred - target) (SECOND): the loss
    then does not punish a box flipped by pi, which the direction classifier resolves."""
    a, b = pred[:, 6:7], target[:, 6:7]
    pred = torch.cat([pred[:, :6], torch.sin(a) * torch.cos(b)], dim=1)
    target = torch.cat([target[:, :6], torch.cos(a) * torch.sin(b)], dim=1)
    return pred, target


def direction_bin(yaw: torch.Tensor, offset: float) -> torch.Tensor:
    """(P,) yaw -> (P,) int64 in {0, 1}: which half-turn the heading lies in, past ``offset``."""
    return (limit_period(yaw - offset, 0.0, 2 * math.pi) >= math.pi).long()


def nearest_bev_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(P, 7) -> (P, 4) axis-aligned BEV rectangle of each box rotated to the nearest of 0 / 90 deg."""
    yaw = limit_period(boxes[:, 6], 0.5, math.pi)
    swap = yaw.abs() > math.pi / 4
    l = torch.where(swap, boxes[:, 4], boxes[:, 3])
    w = torch.where(swap, boxes[:, 3], boxes[:, 4])
    return torch.stack([boxes[:, 0] - l / 2, boxes[:, 1] - w / 2, boxes[:, 0] + l / 2, boxes[:, 1] + w / 2], dim=1)


def aligned_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(P, 4), (M, 4) xyxy -> (P, M) IoU."""
    w = (torch.minimum(a[:, None, 2], b[None, :, 2]) - torch.maximum(a[:, None, 0], b[None, :, 0])).clamp(min=0)
    h = (torch.minimum(a[:, None, 3], b[None, :, 3]) - torch.maximum(a[:, None, 1], b[None, :, 1])).clamp(min=0)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-6)
