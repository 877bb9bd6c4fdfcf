"""IoU of box pairs (row i of ``a`` with row i of ``b``), for metrics over many frames at once.

``perception.core`` gives full (N, M) matrices for one frame; evaluating thousands of frames that
way costs one call per frame. Here the pairs of every frame are listed once and measured in a few
vectorised calls, with the same exact polygon overlap (``quad_intersection_area``).
"""

from __future__ import annotations

import numpy as np

from perception.core import bev_corners
from perception.core.iou import quad_intersection_area

_EPS = 1e-9
_CHUNK = 50_000


def frame_pairs(counts_a: np.ndarray, counts_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) with i, j in the same frame, for flat arrays grouped by frame.

    Args:
        counts_a, counts_b: (F,) boxes per frame of each flat array.

    Returns:
        Flat indices into a and b, (K,) each, frame by frame, a-major.
    """
    per_frame = counts_a * counts_b
    frame = np.repeat(np.arange(len(per_frame)), per_frame)
    local = np.arange(per_frame.sum()) - np.repeat(np.cumsum(per_frame) - per_frame, per_frame)
    width = np.maximum(counts_b[frame], 1)
    start_a, start_b = np.cumsum(counts_a) - counts_a, np.cumsum(counts_b) - counts_b
    return start_a[frame] + local // width, start_b[frame] + local % width


def paired_iou2d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(K, 4), (K, 4) xyxy -> (K,) IoU."""
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return inter / np.maximum(union, _EPS)


def paired_bev_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(K, 7), (K, 7) boxes -> (K,) BEV overlap area; pairs whose bounding circles miss are 0."""
    out = np.zeros(len(a))
    reach = (np.hypot(a[:, 3], a[:, 4]) + np.hypot(b[:, 3], b[:, 4])) / 2 + 1e-6
    near = np.nonzero(np.hypot(a[:, 0] - b[:, 0], a[:, 1] - b[:, 1]) <= reach)[0]
    for s in range(0, len(near), _CHUNK):
        idx = near[s : s + _CHUNK]
        out[idx] = quad_intersection_area(bev_corners(a[idx]), bev_corners(b[idx]))
    return out


def paired_bev_and_3d_iou(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, 7), (K, 7) upright boxes (z = geometric centre) -> (K,) BEV IoU and (K,) 3D IoU."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    inter = paired_bev_intersection(a, b)
    bev = inter / np.maximum(a[:, 3] * a[:, 4] + b[:, 3] * b[:, 4] - inter, _EPS)
    top = np.minimum(a[:, 2] + a[:, 5] / 2, b[:, 2] + b[:, 5] / 2)
    bottom = np.maximum(a[:, 2] - a[:, 5] / 2, b[:, 2] - b[:, 5] / 2)
    inter3 = inter * np.clip(top - bottom, 0.0, None)
    vol = a[:, 3:6].prod(axis=1) + b[:, 3:6].prod(axis=1) - inter3
    return bev, inter3 / np.maximum(vol, _EPS)
