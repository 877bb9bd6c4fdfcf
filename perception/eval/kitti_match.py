"""The KITTI devkit's matching (``computeStatistics`` in ``evaluate_object.cpp``), vectorised.

The devkit walks every frame, every score threshold, every ground-truth box and every detection
in nested loops. Frames are independent and thresholds only hide low-scoring detections, so we
run the ground-truth loop once for a whole batch of frames and all thresholds together: array
axes are (frame F, threshold T, detection D). The decisions are the devkit's, one by one:

* ground truth is walked in file order; flag 0 = counted, 1 = ignored (neighbour class such as
  Van for Car, or outside the difficulty), detections flagged 1 are too small (min height);
* collecting thresholds (first pass): each ground truth takes the free detection with overlap
  ``> min_overlap`` and the highest score;
* counting (second pass, per threshold): it takes the free counted detection with the largest
  overlap (first one on ties), else the first free too-small one;
* a match involving an ignored box is neither TP nor FP; a counted ground truth left alone is FN;
* free counted detections are FP unless they lie (overlap ``> min_overlap`` measured on the
  detection's own area) in a DontCare region.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_CELLS = 2_000_000  # elements of one (F, T or G, D) array: bounds memory per chunk of frames


@dataclass
class MatchBatch:
    """Padded per-frame inputs for one class and difficulty.

    Attributes:
        overlap: (F, G, D) float64 IoU of ground truth g with detection d; -1 for padding.
        gt_flag: (F, G) int8, 0 counted, 1 ignored, -1 padding.
        det_flag: (F, D) int8, 0 counted, 1 too small, -1 padding.
        score: (F, D) float64 detection scores (-inf for padding).
        dc_overlap: (F, D) float64 largest overlap of the detection with a DontCare region.
        gt_alpha: (F, G) float64 observation angle, for AOS.
        det_alpha: (F, D) float64.
    """

    overlap: np.ndarray
    gt_flag: np.ndarray
    det_flag: np.ndarray
    score: np.ndarray
    dc_overlap: np.ndarray
    gt_alpha: np.ndarray
    det_alpha: np.ndarray


def tp_scores(batch: MatchBatch, min_overlap: float) -> np.ndarray:
    """First pass: scores of the detections matched to counted ground truth (devkit ``v``)."""
    f, g, d = batch.overlap.shape
    rows = np.arange(f)
    assigned = np.zeros((f, d), bool)
    scores = []
    for k in range(g):
        cand = (batch.overlap[:, k] > min_overlap) & ~assigned & (batch.det_flag >= 0)
        best = np.argmax(np.where(cand, batch.score, -np.inf), axis=1)
        found = cand.any(axis=1) & (batch.gt_flag[:, k] >= 0)
        tp = found & (batch.gt_flag[:, k] == 0) & (batch.det_flag[rows, best] == 0)
        scores.append(batch.score[rows[tp], best[tp]])
        assigned[rows[found], best[found]] = True
    return np.concatenate(scores) if scores else np.zeros(0)


def pr_counts(batch: MatchBatch, min_overlap: float, thresholds: np.ndarray, dontcare: bool) -> dict[str, np.ndarray]:
    """Second pass: per-threshold totals over the batch, each (T,): tp, fp, fn, similarity (AOS)."""
    f, g, d = batch.overlap.shape
    t = len(thresholds)
    live = (batch.score[:, None, :] >= thresholds[None, :, None]) & (batch.det_flag[:, None, :] >= 0)
    assigned = np.zeros((f, t, d), bool)
    tp, fn, sim = np.zeros(t, np.int64), np.zeros(t, np.int64), np.zeros(t)
    for k in range(g):
        # only frames whose k-th ground truth overlaps some detection can match; the others miss it
        reachable = (batch.overlap[:, k] > min_overlap).any(axis=1)
        fn += int(((batch.gt_flag[:, k] == 0) & ~reachable).sum())
        r = np.nonzero(reachable & (batch.gt_flag[:, k] >= 0))[0]
        if len(r) == 0:
            continue
        rows, flag, det_flag = np.arange(len(r))[:, None], batch.gt_flag[r, k][:, None], batch.det_flag[r][:, None, :]
        ov = batch.overlap[r, k][:, None, :]  # (R, 1, D)
        cand = (ov > min_overlap) & ~assigned[r] & live[r]
        counted = cand & (det_flag == 0)
        best = np.argmax(np.where(counted, ov, -np.inf), axis=2)
        chosen = np.where(counted.any(axis=2), best, np.argmax(cand & (det_flag == 1), axis=2))
        found = cand.any(axis=2)  # (R, T)
        fi, ti = np.nonzero(found)
        assigned[r[fi], ti, chosen[fi, ti]] = True
        is_tp = found & (flag == 0) & (batch.det_flag[r][rows, chosen] == 0)
        tp += is_tp.sum(axis=0)
        fn += (~found & (flag == 0)).sum(axis=0)
        delta = batch.gt_alpha[r, k][:, None] - batch.det_alpha[r][rows, chosen]
        sim += np.where(is_tp, (1.0 + np.cos(delta)) / 2.0, 0.0).sum(axis=0)
    free = live & ~assigned & (batch.det_flag[:, None, :] == 0)
    if dontcare:
        free &= ~(batch.dc_overlap[:, None, :] > min_overlap)
    return {"tp": tp, "fp": free.sum(axis=(0, 2)), "fn": fn, "similarity": sim}


def get_thresholds(scores: np.ndarray, num_gt: int, num_sample_pts: int = 41) -> np.ndarray:
    """Scores at which recall passes each of ``num_sample_pts`` evenly spaced steps (devkit
    ``getThresholds``): walk TP scores high to low, keep a score when its recall is closer to the
    next step than the following score's recall would be."""
    scores = np.sort(np.asarray(scores, np.float64))[::-1]
    out, current = [], 0.0
    for i, s in enumerate(scores):
        left = (i + 1) / num_gt
        right = (i + 2) / num_gt if i < len(scores) - 1 else left
        if (right - current) < (current - left) and i < len(scores) - 1:
            continue
        out.append(s)
        current += 1.0 / (num_sample_pts - 1.0)
    return np.array(out)
