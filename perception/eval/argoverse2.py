"""Argoverse 2 3D detection metrics: AP over centre-distance thresholds, ATE / ASE / AOE, CDS.

Implements ``av2.evaluation.detection`` (``eval.evaluate`` / ``summarize_metrics``,
``utils.accumulate`` / ``assign``):

* ground truth counts when its centre is within 150 m (3D distance from the ego origin) and it
  holds at least one lidar point (``attributes["num_points"]``); per frame and class, detections
  (by decreasing score) count while within 150 m, up to the first 100 such;
* per frame and class, each detection points at its nearest ground truth (3D centre distance,
  first on ties); each ground truth keeps the highest-scoring detection pointing at it, which is a
  TP at threshold t (0.5 / 1 / 2 / 4 m) when nearer than t; all other detections are FP;
* AP: VOC-interpolated precision (running max from high recall) sampled at 101 recalls in [0, 1],
  averaged; ATE (3D centre distance), ASE (1 - min-volume / max-volume of the aligned sizes),
  AOE (|yaw error| in [0, pi]) are means over the TPs at 2 m, defaulting to 2 m, 1 and pi;
* CDS = mAP * mean(1 - ATE / 2 m, 1 - ASE / 1, 1 - AOE / pi); the summary averages every
  requested class, classes without ground truth contributing their defaults (AP 0, CDS 0).

Not applied: the region-of-interest filter, which needs the log's map raster. Ties in score keep
the input order (frames, then boxes). Exercised by ``perception val`` on Argoverse 2 datasets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.core import Boxes3D
from perception.eval.matching import frame_candidates
from perception.eval.nuscenes import check_inputs, flatten, select

AV2_CLASSES = (
    "ARTICULATED_BUS", "BICYCLE", "BICYCLIST", "BOLLARD", "BOX_TRUCK", "BUS", "CONSTRUCTION_BARREL",
    "CONSTRUCTION_CONE", "DOG", "LARGE_VEHICLE", "MESSAGE_BOARD_TRAILER", "MOBILE_PEDESTRIAN_CROSSING_SIGN",
    "MOTORCYCLE", "MOTORCYCLIST", "PEDESTRIAN", "REGULAR_VEHICLE", "SCHOOL_BUS", "SIGN", "STOP_SIGN", "STROLLER",
    "TRUCK", "TRUCK_CAB", "VEHICULAR_TRAILER", "WHEELCHAIR", "WHEELED_DEVICE", "WHEELED_RIDER",
)  # fmt: skip
AFFINITY_THRESHOLDS_M = (0.5, 1.0, 2.0, 4.0)
TP_THRESHOLD_M = 2.0
MAX_RANGE_M = 150.0
MAX_DETECTIONS_PER_CLASS = 100
TP_NORMALISATION = {"ATE": TP_THRESHOLD_M, "ASE": 1.0, "AOE": np.pi}
_RECALLS = np.linspace(0.0, 1.0, 101)
_EPS = np.finfo(float).eps


@dataclass(frozen=True)
class AV2Result:
    """Per class: ``ap[class][threshold_m]``, ``metrics[class]`` with AP (mean over thresholds),
    ATE, ASE, AOE, CDS; ``mean`` averages ``metrics`` over the evaluated classes."""

    ap: dict[str, dict[float, float]]
    metrics: dict[str, dict[str, float]]
    mean: dict[str, float]

    def summary(self, prefix: str = "av2") -> dict[str, float]:
        out = {f"{prefix}/{k}": v for k, v in self.mean.items()}
        out.update({f"{prefix}/CDS/{c}": m["CDS"] for c, m in self.metrics.items()})
        return out


def wrap_angles(angles: np.ndarray, period: float = np.pi) -> np.ndarray:
    """AV2 ``wrap_angles``: |angle| folded into [0, pi) (exact for |angle| <= 2 pi)."""
    angles = np.abs(np.asarray(angles, np.float64))
    divs, mods = np.divmod(angles, period)
    return np.where(divs != 0, period - mods, angles)


def _evaluated_detections(dt: dict, order: np.ndarray, max_range_m: float, max_per_frame: int) -> np.ndarray:
    """(P,) bool: within range and among the first ``max_per_frame`` in-range ones of its frame."""
    in_range = np.linalg.norm(dt["box"][:, :3], axis=1) < max_range_m
    by_frame = order[np.argsort(dt["frame"][order], kind="stable")]  # frame-major, score-descending
    frames, inside = dt["frame"][by_frame], in_range[by_frame].astype(np.int64)
    running = np.cumsum(inside)
    before = np.concatenate([[0], running])[np.searchsorted(frames, frames, "left")]
    keep = np.zeros(len(order), bool)
    keep[by_frame] = inside.astype(bool) & (running - before <= max_per_frame)
    return keep


def _assign(gt: dict, dt: dict, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AV2 ``assign``: (P,) matched ground-truth row (or -1) and (P,) its centre distance."""
    gidx, valid = frame_candidates(gt["frame"], dt["frame"])
    match, dist = np.full(len(order), -1), np.full(len(order), np.inf)
    if gidx.shape[1] == 0 or len(order) == 0:
        return match, dist
    d = np.where(valid, np.linalg.norm(dt["box"][:, None, :3] - gt["box"][gidx][..., :3], axis=2), np.inf)
    has = valid.any(axis=1)
    nearest = gidx[np.arange(len(order)), np.argmin(d, axis=1)]
    ranked = order[has[order]]  # score order; first detection per ground truth wins
    _, first = np.unique(nearest[ranked], return_index=True)
    winners = ranked[first]
    match[winners] = nearest[winners]
    dist[winners] = d[winners].min(axis=1)
    return match, dist


def average_precision(is_tp: np.ndarray, num_gt: int) -> float:
    """AV2 ``compute_average_precision`` for TP flags in decreasing-score order."""
    if num_gt == 0 or len(is_tp) == 0:
        return 0.0
    tp, fp = np.cumsum(is_tp), np.cumsum(~is_tp)
    precision = np.maximum.accumulate((tp / (tp + fp + _EPS))[::-1])[::-1]
    return float(np.mean(np.interp(_RECALLS, tp / num_gt, precision, right=0)))


def _by_score(dt: dict) -> np.ndarray:
    """Indices by decreasing score, ties in input order."""
    return np.lexsort((np.arange(len(dt["score"])), -dt["score"]))


def _class_metrics(
    gt: dict, dt: dict, max_range_m: float, max_dets: int
) -> tuple[dict[float, float], dict[str, float]]:
    """AP per threshold and AP / ATE / ASE / AOE / CDS of one class (flat columns restricted to it)."""
    pts = gt["num_points"]  # -1 when unknown: kept
    gt = select(gt, (np.linalg.norm(gt["box"][:, :3], axis=1) < max_range_m) & (pts != 0))
    num_gt = len(gt["frame"])
    defaults = {"AP": 0.0, "ATE": TP_THRESHOLD_M, "ASE": 1.0, "AOE": np.pi, "CDS": 0.0}
    if num_gt == 0:
        return {t: 0.0 for t in AFFINITY_THRESHOLDS_M}, defaults
    dt = select(dt, _evaluated_detections(dt, _by_score(dt), max_range_m, max_dets))
    order = _by_score(dt)
    match, dist = _assign(gt, dt, order)
    ap = {t: average_precision((dist < t)[order], num_gt) for t in AFFINITY_THRESHOLDS_M}
    out = dict(defaults, AP=float(np.mean(list(ap.values()))))
    tp = np.nonzero(dist < TP_THRESHOLD_M)[0]
    if len(tp):
        p, g = dt["box"][tp], gt["box"][match[tp]]
        out["ATE"] = float(np.linalg.norm(p[:, :3] - g[:, :3], axis=1).mean())
        out["ASE"] = float(
            (1 - np.minimum(p[:, 3:6], g[:, 3:6]).prod(1) / np.maximum(p[:, 3:6], g[:, 3:6]).prod(1)).mean()
        )
        out["AOE"] = float(wrap_angles(p[:, 6] - g[:, 6]).mean())
    scores = [1 - out[k] / TP_NORMALISATION[k] for k in ("ATE", "ASE", "AOE")]
    out["CDS"] = out["AP"] * float(np.mean(scores))
    return ap, out


def evaluate_av2(
    gt: list[Boxes3D],
    dt: list[Boxes3D],
    class_names: tuple[str, ...],
    classes: tuple[str, ...] = AV2_CLASSES,
    max_range_m: float = MAX_RANGE_M,
    max_detections_per_class: int = MAX_DETECTIONS_PER_CLASS,
) -> AV2Result:
    """Argoverse 2 AP / ATE / ASE / AOE / CDS of per-frame predictions (ego frame, labels indexing
    ``class_names``); ``classes`` are the evaluated names, all of which enter the mean."""
    check_inputs(gt, dt, class_names, classes)
    g_flat, d_flat = flatten(gt), flatten(dt)
    ap, metrics = {}, {}
    for name in classes:
        label = class_names.index(name)
        g, d = select(g_flat, g_flat["label"] == label), select(d_flat, d_flat["label"] == label)
        ap[name], metrics[name] = _class_metrics(g, d, max_range_m, max_detections_per_class)
    keys = ("AP", "ATE", "ASE", "AOE", "CDS")
    mean = {k: float(np.mean([m[k] for m in metrics.values()])) if metrics else 0.0 for k in keys}
    return AV2Result(ap, metrics, mean)


def format_av2_table(result: AV2Result) -> str:
    """Per class AP, ATE, ASE, AOE, CDS, then their means."""
    keys = ("AP", "ATE", "ASE", "AOE", "CDS")
    head = f"{'class':<34}" + "".join(f"{k:>8}" for k in keys)
    rows = [f"{c:<34}" + "".join(f"{m[k]:8.3f}" for k in keys) for c, m in result.metrics.items()]
    return "\n".join([head, "-" * len(head), *rows, f"{'mean':<34}" + "".join(f"{result.mean[k]:8.3f}" for k in keys)])
