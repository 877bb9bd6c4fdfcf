"""Waymo Open Dataset 3D detection metrics: AP and APH at LEVEL_1 / LEVEL_2, without TensorFlow.

Implements ``waymo_open_dataset/metrics`` (``detection_metrics.cc``, ``matcher.cc``,
``metrics_utils.cc``) with the configuration of ``compute_detection_metrics_main.cc``:

* ground truth without lidar points is dropped; unlabelled difficulty becomes LEVEL_2 when the
  box holds <= 5 points, else LEVEL_1 (``attributes["num_points"]``, ``attributes["difficulty"]``);
* per frame, class and score cutoff (0, 0.01, ..., 0.99, 1), predictions with ``score >= cutoff``
  are matched to ground truth by the Hungarian algorithm maximising the sum of IoUs (quantised to
  1e-6) over pairs with ``IoU >= threshold`` (Vehicle 0.7, Pedestrian / Cyclist / Sign 0.5);
* every matched prediction is a TP (at both levels) and adds heading accuracy
  ``1 - |dheading| / pi``; unmatched predictions are FP; unmatched ground truth is FN at level L
  only when its difficulty <= L, so LEVEL_2 includes LEVEL_1;
* precision (heading-weighted for APH) and recall per cutoff; precision is 1 where recall is 0;
  AP is the trapezoid area of the max-precision envelope, sampled at least every 0.05 recall.

Not supported: no-label-zone overlap (predictions in NLZ are FP here) and the range / velocity
breakdowns. The Hungarian solver is SciPy's: among equally good assignments it may pick another
one than the official solver. Exercised by ``perception val`` on Waymo datasets.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception.core import Boxes3D
from perception.errors import ConfigError, ShapeError
from perception.eval.nuscenes import flatten, select
from perception.eval.pair_iou import frame_pairs, paired_bev_and_3d_iou

IOU_THRESHOLDS = {"vehicle": 0.7, "pedestrian": 0.5, "cyclist": 0.5, "sign": 0.5}
SCORE_CUTOFFS = np.append(np.arange(100) * 0.01, 1.0).astype(np.float32)  # i * 0.01 in double, stored as float
LEVELS = (1, 2)
RECALL_DELTA = 0.05
_LEVEL2_MAX_POINTS = 5
_IOU_QUANTUM = 1_000_000


@dataclass(frozen=True)
class WaymoCurve:
    """Per score cutoff (101,): precision, heading-weighted precision, recall."""

    precision: np.ndarray
    precision_ha: np.ndarray
    recall: np.ndarray


@dataclass(frozen=True)
class WaymoResult:
    """``ap[class][level]`` and ``aph[class][level]`` in [0, 1] (level 1 or 2), class means
    ``map[level]`` / ``maph[level]``, and the curves behind them."""

    ap: dict[str, dict[int, float]]
    aph: dict[str, dict[int, float]]
    map: dict[int, float]
    maph: dict[int, float]
    curves: dict[str, dict[int, WaymoCurve]]

    def summary(self, prefix: str = "waymo") -> dict[str, float]:
        out = {f"{prefix}/mAP_L{lv}": v for lv, v in self.map.items()}
        out.update({f"{prefix}/mAPH_L{lv}": v for lv, v in self.maph.items()})
        for c in self.ap:
            out.update({f"{prefix}/AP_L{lv}/{c}": self.ap[c][lv] for lv in LEVELS})
            out.update({f"{prefix}/APH_L{lv}/{c}": self.aph[c][lv] for lv in LEVELS})
        return out


def mean_average_precision(precision: np.ndarray, recall: np.ndarray, delta: float = RECALL_DELTA) -> float:
    """Official ``ComputeMeanAveragePrecision``: area under the max-precision envelope, with extra
    points every ``delta`` recall where the curve has gaps, recall 0 taking the next precision."""
    best = {0.0: 1.0}
    for p, r in zip(np.asarray(precision, np.float32).tolist(), np.asarray(recall, np.float32).tolist()):
        best[r] = max(best.get(r, 0.0), p)
    pts, last, envelope = [], 0.0, 0.0
    for r in sorted(best, reverse=True):
        while last - r > delta + 1e-6:
            last -= delta
            pts.append((envelope, last))
        envelope = max(best[r], envelope)
        pts.append((envelope, r))
        last = r
    if len(pts) < 2:
        return 0.0
    pts[-1] = (pts[-2][0], pts[-1][1])
    return float(sum(0.5 * (r0 - r1) * (p0 + p1) for (p0, r0), (p1, r1) in pairwise(pts)))


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (np.asarray(angle, np.float64) + np.pi) % (2 * np.pi) - np.pi


def heading_accuracy(yaw_dt: np.ndarray, yaw_gt: np.ndarray) -> np.ndarray:
    """``1 - |heading error| / pi`` with headings wrapped to [-pi, pi) first (official)."""
    d = np.abs(_wrap(yaw_dt) - _wrap(yaw_gt))
    d = np.where(d > np.pi, 2 * np.pi - d, d)
    return np.clip(1.0 - d / np.pi, 0.0, 1.0)


def gt_levels(flat: dict[str, np.ndarray], difficulty: np.ndarray | None) -> np.ndarray:
    """(N,) detection difficulty 1 or 2 (0 for boxes without points, which are dropped)."""
    level = np.ones(len(flat["frame"]), np.int64) if difficulty is None else np.asarray(difficulty, np.int64).copy()
    pts = flat["num_points"]
    known_pts = pts >= 0
    unknown = (level <= 0) & known_pts
    level[unknown] = np.where(pts[unknown] <= _LEVEL2_MAX_POINTS, 2, 1)
    level[(level <= 0) & ~known_pts] = 1
    level[known_pts & (pts == 0)] = 0
    return level


def _counts_above(scores: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(C,) sum of ``weights`` (default 1) over items with ``score >= cutoff`` for each cutoff."""
    k = np.searchsorted(SCORE_CUTOFFS, scores.astype(np.float32), side="right")  # cutoffs <= score
    hist = np.bincount(k, weights=weights, minlength=len(SCORE_CUTOFFS) + 1)[1:]
    return np.cumsum(hist[::-1])[::-1]


def _match_frame(iou: np.ndarray, thr: float, score: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Hungarian matches ``(dt_rows, gt_rows)`` of one frame for each score cutoff."""
    score = score.astype(np.float32)  # compared as float, like the official protos
    order = np.argsort(-score, kind="stable")
    above = np.searchsorted(-score[order], -SCORE_CUTOFFS, side="right")  # predictions kept per cutoff
    out, cache = [], {}
    for n in above:
        if n not in cache:
            rows = order[:n]
            weight = np.where(iou[rows] >= thr, np.round(iou[rows] * _IOU_QUANTUM), 0)
            r, c = linear_sum_assignment(weight, maximize=True) if n else (np.zeros(0, int), np.zeros(0, int))
            ok = iou[rows[r], c] >= thr
            cache[n] = (rows[r[ok]], c[ok])
        out.append(cache[n])
    return out


def _class_counts(gt: dict, dt: dict, level: np.ndarray, thr: float, box_type: str) -> dict[str, np.ndarray]:
    """TP, FP, FN per level and heading-accuracy sums of one class over all frames, each (C,)."""
    n_frames = int(max(gt["frame"].max(initial=-1), dt["frame"].max(initial=-1))) + 1
    gc, dc = np.bincount(gt["frame"], minlength=n_frames), np.bincount(dt["frame"], minlength=n_frames)
    gi, di = frame_pairs(gc, dc)
    bev, iou3 = paired_bev_and_3d_iou(gt["box"][gi], dt["box"][di])
    ious = iou3 if box_type == "3d" else bev
    cand = ious >= thr
    conflict = np.zeros(n_frames, bool)
    conflict[dt["frame"][np.bincount(di[cand], minlength=len(dt["frame"])) > 1]] = True
    conflict[gt["frame"][np.bincount(gi[cand], minlength=len(gt["frame"])) > 1]] = True
    # frames without conflicts: every candidate pair is matched whenever its prediction is kept
    simple = cand & ~conflict[gt["frame"][gi]]
    s_score = dt["score"][di[simple]]
    tp = _counts_above(s_score)
    sum_ha = _counts_above(s_score, heading_accuracy(dt["box"][di[simple], 6], gt["box"][gi[simple], 6]))
    free_gt = ~conflict[gt["frame"]]
    fn = {
        lv: (free_gt & (level <= lv)).sum() - _counts_above(s_score, (level[gi[simple]] <= lv) * 1.0) for lv in LEVELS
    }
    kept = _counts_above(dt["score"][~conflict[dt["frame"]]])
    g_start, d_start, p_start = (np.cumsum(x) - x for x in (gc, dc, gc * dc))
    for f in np.nonzero(conflict)[0]:
        g_rows, d_rows = np.arange(g_start[f], g_start[f] + gc[f]), np.arange(d_start[f], d_start[f] + dc[f])
        iou = ious[p_start[f] : p_start[f] + gc[f] * dc[f]].reshape(gc[f], dc[f]).T
        for c, (dr, gr) in enumerate(_match_frame(iou, thr, dt["score"][d_rows])):
            tp[c] += len(dr)
            sum_ha[c] += heading_accuracy(dt["box"][d_rows[dr], 6], gt["box"][g_rows[gr], 6]).sum()
            for lv in LEVELS:
                fn[lv][c] += (level[g_rows] <= lv).sum() - (level[g_rows[gr]] <= lv).sum()
        kept = kept + _counts_above(dt["score"][d_rows])
    return {"tp": tp, "fp": kept - tp, "sum_ha": sum_ha, **{f"fn{lv}": fn[lv] for lv in LEVELS}}


def _curve(counts: dict[str, np.ndarray], level: int) -> WaymoCurve:
    """Official ``ToDetectionMetrics``: precision 0 without predictions, 1 where recall is 0."""
    tp, fp, fn = counts["tp"], counts["fp"], counts[f"fn{level}"]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        precision_ha = np.where(tp + fp > 0, counts["sum_ha"] / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
    precision, precision_ha = np.where(recall == 0, 1.0, precision), np.where(recall == 0, 1.0, precision_ha)
    return WaymoCurve(precision.astype(np.float32), precision_ha.astype(np.float32), recall.astype(np.float32))


def _threshold(cls: str, iou_thresholds: dict[str, float] | None) -> float:
    table = {k.lower(): v for k, v in {**IOU_THRESHOLDS, **(iou_thresholds or {})}.items()}
    if cls.lower() not in table:
        raise ConfigError(f"no IoU threshold for class {cls!r}: pass iou_thresholds (known: {sorted(table)})")
    return table[cls.lower()]


def evaluate_waymo(
    gt: list[Boxes3D],
    dt: list[Boxes3D],
    class_names: tuple[str, ...],
    classes: tuple[str, ...] = ("Vehicle", "Pedestrian", "Cyclist"),
    iou_thresholds: dict[str, float] | None = None,
    box_type: str = "3d",
) -> WaymoResult:
    """Waymo AP / APH (LEVEL_1, LEVEL_2) of per-frame predictions against ground truth (ego frame,
    labels indexing ``class_names``); ``box_type`` ``3d`` (official 3D detection) or ``bev``."""
    if len(gt) != len(dt):
        raise ShapeError(f"{len(gt)} ground-truth frames but {len(dt)} prediction frames")
    if any(d.scores is None for d in dt):
        raise ShapeError("predictions need scores")
    if box_type not in ("3d", "bev"):
        raise ConfigError(f"box_type must be '3d' or 'bev', got {box_type!r}")
    missing = [c for c in classes if c not in class_names]
    if missing:
        raise ConfigError(f"classes {missing} are not in the dataset's class names {list(class_names)}")
    g_flat, d_flat = flatten(gt), flatten(dt)
    difficulty = np.concatenate(
        [np.asarray(g.attributes.get("difficulty", np.zeros(len(g))), np.int64) for g in gt] + [np.zeros(0, np.int64)]
    )
    level = gt_levels(g_flat, difficulty)
    g_flat, level = select(g_flat, level > 0), level[level > 0]
    ap, aph, curves = {}, {}, {}
    for name in classes:
        label = class_names.index(name)
        gm, dm = g_flat["label"] == label, d_flat["label"] == label
        counts = _class_counts(
            select(g_flat, gm), select(d_flat, dm), level[gm], _threshold(name, iou_thresholds), box_type
        )
        curves[name] = {lv: _curve(counts, lv) for lv in LEVELS}
        ap[name] = {lv: mean_average_precision(c.precision, c.recall) for lv, c in curves[name].items()}
        aph[name] = {lv: mean_average_precision(c.precision_ha, c.recall) for lv, c in curves[name].items()}
    return WaymoResult(ap, aph, _class_mean(ap), _class_mean(aph), curves)


def _class_mean(table: dict[str, dict[int, float]]) -> dict[int, float]:
    return {lv: float(np.mean([v[lv] for v in table.values()])) if table else 0.0 for lv in LEVELS}


def format_waymo_table(result: WaymoResult) -> str:
    """AP / APH per class and level, then the class means."""
    head = f"{'class':<14}" + "".join(f"{k + '_L' + str(lv):>10}" for lv in LEVELS for k in ("AP", "APH"))
    lines = [head, "-" * len(head)]
    for c in result.ap:
        lines.append(f"{c:<14}" + "".join(f"{result.ap[c][lv]:10.4f}{result.aph[c][lv]:10.4f}" for lv in LEVELS))
    lines.append(f"{'mean':<14}" + "".join(f"{result.map[lv]:10.4f}{result.maph[lv]:10.4f}" for lv in LEVELS))
    return "\n".join(lines)
