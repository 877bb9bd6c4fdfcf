"""After the graph: per-class score thresholds and class-wise rotated BEV NMS (exact rotated IoU
from ``perception.core``), shared by every backend (torch, ONNX Runtime, TensorRT)."""

from __future__ import annotations

import numpy as np

from perception.core import Boxes3D, bev_iou


def rotated_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS on (N, 7) boxes by exact rotated BEV IoU; returns kept indices, best first."""
    order = np.argsort(-scores, kind="stable")
    if len(order) == 0:
        return order
    iou = bev_iou(boxes[order], boxes[order])
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(order[i])
        suppressed |= iou[i] > iou_threshold
    return np.asarray(keep, dtype=np.int64)


def postprocess(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, score_thresholds: list[float], nms_iou: float
) -> Boxes3D:
    """Graph outputs (K, 7), (K,), (K,) -> detections above their class's threshold, NMS'd per class.

    Rows with a score of 0 (padding of the fixed-size output) never pass a positive threshold.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 7)
    scores = np.asarray(scores, np.float32).reshape(-1)
    labels = np.asarray(labels, np.int64).reshape(-1)
    thr = np.asarray(score_thresholds, np.float32)
    ok = (labels >= 0) & (labels < len(thr)) & np.isfinite(boxes).all(axis=1)
    ok &= scores >= thr[np.clip(labels, 0, len(thr) - 1)]
    keep = []
    for c in np.unique(labels[ok]):
        idx = np.flatnonzero(ok & (labels == c))
        keep.append(idx[rotated_nms(boxes[idx], scores[idx], nms_iou)])
    keep_idx = np.concatenate(keep) if keep else np.zeros(0, np.int64)
    keep_idx = keep_idx[np.argsort(-scores[keep_idx], kind="stable")]
    return Boxes3D(boxes[keep_idx], labels[keep_idx], scores=scores[keep_idx])
