"""The whole 3D detector as one exportable graph: raw points -> pillars -> network -> decoding ->
per-class score thresholds -> class-wise rotated BEV NMS -> fixed-size detections.

``DetectorGraph(model, settings)(points)`` returns

- ``boxes`` (K, 7) float32, ``scores`` (K,) float32, ``labels`` (K,) int64: the kept detections
  first, best first, then padding (score 0);
- ``num_detections`` () int64: how many rows are kept.

K is the model's ``max_detections``. Fixed-size outputs with a count (the layout of TensorRT's
EfficientNMS) keep every shape static, which TensorRT needs, and the greedy NMS is unrolled over
the K candidates (K small vector steps), so the graph has no loop or data-dependent shape. It
keeps exactly the rows ``perception.models.postprocess`` keeps, in the same order.
Used by ``perception export`` (``perception.deploy.export_onnx``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from perception.models.rotated_iou import pairwise_bev_iou

OUTPUT_NAMES = ("boxes", "scores", "labels", "num_detections")


def greedy_nms_keep(iou: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, threshold: float) -> torch.Tensor:
    """Class-wise greedy NMS over candidates already sorted best first.

    Args:
        iou: (K, K) pairwise IoU.
        labels: (K,) class of each candidate; only same-class candidates suppress each other.
        valid: (K,) bool, candidates taking part (a dropped candidate suppresses nothing).
        threshold: a candidate is suppressed by a kept, better one with IoU above this.

    Returns:
        (K,) float32, 1 for kept candidates, 0 otherwise.
    """
    k = iou.shape[0]
    earlier = torch.ones(k, k, dtype=torch.bool, device=iou.device).triu(1)  # [j, i]: j ranks before i
    suppresses = ((iou > threshold) & (labels[:, None] == labels[None, :]) & earlier).to(torch.float32)
    keep = valid.to(torch.float32)
    eye = torch.eye(k, dtype=torch.float32, device=iou.device)
    for i in range(k):  # unrolled: candidate i is decided once every better candidate is
        hit = (suppresses[:, i] * keep).amax(dim=0)
        keep = keep * (1.0 - eye[i] * hit)
    return keep


def descending_order(scores: torch.Tensor) -> torch.Tensor:
    """(K,) -> (K,) int64 order, best first, equal scores in input order (as ``np.argsort(-s, kind="stable")``).

    Ranks come from pairwise comparisons, so the order never depends on a runtime's sort tie rule."""
    k = scores.shape[0]
    idx = torch.arange(k, device=scores.device)
    ahead = (scores[None, :] > scores[:, None]) | ((scores[None, :] == scores[:, None]) & (idx[None, :] < idx[:, None]))
    rank = ahead.to(torch.float32).sum(dim=1)  # unique 0 .. K-1
    return torch.topk(rank, k, largest=False).indices


class DetectorGraph(nn.Module):
    """A ``PillarDetector`` plus its post-processing, as one module with fixed-size outputs.

    Args:
        model: the detector in eval mode (``model(points)`` -> top-K boxes, scores, labels).
        settings: the model section with defaults (``score_thresholds``, ``nms_iou``).
    """

    def __init__(self, model: nn.Module, settings: dict[str, Any]):
        super().__init__()
        self.model = model
        self.register_buffer("thresholds", torch.tensor(settings["score_thresholds"], dtype=torch.float32))
        self.nms_iou = float(settings["nms_iou"])

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, C) float32 points (ego frame, the model's channels) -> see the module docstring."""
        boxes, scores, labels = self.model(points)
        order = descending_order(scores.float())
        scores, boxes, labels = scores.float()[order], boxes.float()[order], labels.long()[order]
        n_cls = self.thresholds.shape[0]
        known = (labels >= 0) & (labels < n_cls)
        thr = self.thresholds[labels.clamp(0, n_cls - 1)]
        valid = known & torch.isfinite(boxes).all(dim=1) & (scores >= thr)
        safe = torch.where(valid[:, None], boxes, torch.zeros_like(boxes))  # no NaN inside the IoU
        keep = greedy_nms_keep(pairwise_bev_iou(safe), labels, valid, self.nms_iou)
        k = keep.shape[0]
        rank = torch.arange(k, dtype=torch.float32, device=keep.device) + (1.0 - keep) * k
        out = torch.topk(rank, k, largest=False).indices  # kept rows first, each group in score order
        num = keep.sum().to(torch.int64)
        return boxes[out], scores[out] * keep[out], labels[out], num
