"""Per-frame matching of predictions to ground truth, vectorised over frames.

Boxes of all frames are passed as flat arrays with a frame id each; only boxes of the same frame
can match. Predictions are visited in a given order (decreasing score) and the loop runs over
"k-th prediction of every frame" at once, so its length is the largest per-frame count, not the
total.
"""

from __future__ import annotations

import numpy as np


def frame_candidates(gt_frame: np.ndarray, dt_frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each prediction, the ground-truth indices of its frame, in their original order.

    Returns:
        gidx: (P, K) int64 flat ground-truth indices (K = most ground truth in one frame).
        valid: (P, K) bool, False for padding.
    """
    order = np.argsort(gt_frame, kind="stable")
    sorted_frames = gt_frame[order]
    first = np.searchsorted(sorted_frames, dt_frame, "left")
    count = np.searchsorted(sorted_frames, dt_frame, "right") - first
    k = int(count.max()) if len(count) else 0
    valid = np.arange(k)[None, :] < count[:, None]
    cols = np.minimum(first[:, None] + np.arange(k)[None, :], max(len(order) - 1, 0))
    gidx = order[cols] if len(order) else np.zeros((len(dt_frame), 0), np.int64)
    return gidx, valid


def rank_in_frame(dt_frame: np.ndarray, visit_order: np.ndarray) -> np.ndarray:
    """(P,) position of each prediction within its frame when predictions are visited in ``visit_order``."""
    by_frame = visit_order[np.argsort(dt_frame[visit_order], kind="stable")]
    frames = dt_frame[by_frame]
    rank = np.empty(len(dt_frame), np.int64)
    rank[by_frame] = np.arange(len(by_frame)) - np.searchsorted(frames, frames, "left")
    return rank


def greedy_nearest_free(
    dist: np.ndarray, gidx: np.ndarray, valid: np.ndarray, rank: np.ndarray, num_gt: int, thresholds: np.ndarray
) -> np.ndarray:
    """nuScenes-style matching: each prediction (by rank) takes the nearest ground truth not yet
    taken (first on ties) when its distance is ``< threshold``.

    Args:
        dist: (P, K) distances to the candidates ``gidx`` (P, K); ``valid`` (P, K) masks padding.
        rank: (P,) visiting position within the frame.
        num_gt: number of flat ground-truth boxes.
        thresholds: (T,) distance thresholds, matched independently.

    Returns:
        (T, P) int64 matched flat ground-truth index, or -1.
    """
    t, p = len(thresholds), len(rank)
    out = np.full((t, p), -1, np.int64)
    if p == 0 or num_gt == 0 or gidx.shape[1] == 0:
        return out
    free = np.ones((t, num_gt), bool)
    reachable = np.where(valid, dist, np.inf).min(axis=1) < thresholds.max()
    for k in range(int(rank.max()) + 1):
        rows = np.nonzero((rank == k) & reachable)[0]
        if len(rows) == 0:
            continue
        g = gidx[rows]  # (R, K)
        d = np.where(free[:, g] & valid[rows][None], dist[rows][None], np.inf)  # (T, R, K)
        best = np.argmin(d, axis=2)
        dmin = np.take_along_axis(d, best[..., None], axis=2)[..., 0]
        ok = dmin < thresholds[:, None]
        ti, ri = np.nonzero(ok)
        matched = g[ri, best[ti, ri]]
        out[ti, rows[ri]] = matched
        free[ti, matched] = False
    return out
