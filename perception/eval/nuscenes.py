"""nuScenes detection metrics: mAP over centre-distance thresholds, TP errors, NDS.

Implements the official ``nuscenes-devkit`` detection evaluation (``detection_cvpr_2019``):

* boxes farther from the ego vehicle than their class range (car 50 m ... barrier 30 m) are
  dropped, and so is ground truth without any lidar or radar point (``attributes["num_points"]
  == 0``); the bike-rack filter needs map annotations and is not applied;
* per class, predictions of all frames are taken by decreasing score and greedily matched to the
  nearest free ground truth (BEV centre distance) when closer than 0.5 / 1 / 2 / 4 m;
* precision is interpolated at 101 recall points; AP = mean(max(0, p - 0.1)) / 0.9 over recall
  > 0.1; mAP averages classes and thresholds;
* TP errors at 2 m (translation, scale 1 - aligned IoU, orientation, velocity, attribute) are
  cumulative means over the matches, re-sampled at the 101 recall points and averaged over recall
  > 0.1 up to the highest recall reached (1 when none); orientation error uses period pi for
  barrier; traffic_cone has no orientation / velocity / attribute error and barrier no velocity /
  attribute error (NaN, skipped in class means);
* NDS = (5 mAP + sum over the 5 errors of (1 - min(1, error))) / 10.

Inputs are ego-frame ``Boxes3D`` per frame (distances, yaw differences and velocity differences
do not depend on the frame); ground truth may carry ``attributes["num_points"]`` and
``attributes["attribute_name"]``, predictions ``scores``, ``velocity_xy`` and ``attribute_name``.
Exercised by ``perception val`` on nuScenes datasets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.core import Boxes3D
from perception.errors import ConfigError, ShapeError

NUSCENES_CLASSES = (
    "car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian", "motorcycle", "bicycle", "traffic_cone", "barrier",
)  # fmt: skip
CLASS_RANGE_M = {
    "car": 50.0, "truck": 50.0, "bus": 50.0, "trailer": 50.0, "construction_vehicle": 50.0,
    "pedestrian": 40.0, "motorcycle": 40.0, "bicycle": 40.0, "traffic_cone": 30.0, "barrier": 30.0,
}  # fmt: skip
DIST_THS_M = (0.5, 1.0, 2.0, 4.0)
DIST_TH_TP_M = 2.0
MIN_RECALL = 0.1
MIN_PRECISION = 0.1
MEAN_AP_WEIGHT = 5
TP_METRICS = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")
_UNMEASURED = {"traffic_cone": ("attr_err", "vel_err", "orient_err"), "barrier": ("attr_err", "vel_err")}
_RECALLS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class MetricData:
    """One class at one distance threshold, sampled at 101 recall points ``recall``."""

    recall: np.ndarray
    precision: np.ndarray
    confidence: np.ndarray
    errors: dict[str, np.ndarray]  # TP_METRICS -> (101,)

    @classmethod
    def no_predictions(cls) -> MetricData:
        return cls(_RECALLS.copy(), np.zeros(101), np.zeros(101), {m: np.ones(101) for m in TP_METRICS})

    @property
    def max_recall_index(self) -> int:
        nonzero = np.nonzero(self.confidence)[0]
        return int(nonzero[-1]) if len(nonzero) else 0


@dataclass(frozen=True)
class NuScenesResult:
    """``ap[class][dist_th]`` in [0, 1], ``tp_errors[class][metric]`` (NaN where not measured),
    class means ``mean_tp_errors``, ``mean_ap`` and ``nds``; ``curves[class][dist_th]`` for plots."""

    mean_ap: float
    nds: float
    ap: dict[str, dict[float, float]]
    tp_errors: dict[str, dict[str, float]]
    mean_tp_errors: dict[str, float]
    tp_scores: dict[str, float]
    curves: dict[str, dict[float, MetricData]]

    def summary(self, prefix: str = "nuscenes") -> dict[str, float]:
        out = {f"{prefix}/mAP": self.mean_ap, f"{prefix}/NDS": self.nds}
        out.update({f"{prefix}/{m}": v for m, v in self.mean_tp_errors.items()})
        out.update({f"{prefix}/AP/{c}": float(np.mean(list(v.values()))) for c, v in self.ap.items()})
        return out


def cummean(x: np.ndarray) -> np.ndarray:
    """Running mean ignoring NaN (devkit ``cummean``); all NaN gives ones (the worst error)."""
    if np.isnan(x).all():
        return np.ones(len(x))
    sums, counts = np.nancumsum(x.astype(np.float64)), np.cumsum(~np.isnan(x))
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts != 0)


def angle_diff(a: np.ndarray, b: np.ndarray, period: float) -> np.ndarray:
    """Smallest signed a - b modulo ``period``, then wrapped into (-pi, pi] (devkit ``angle_diff``)."""
    d = (np.asarray(a, np.float64) - b + period / 2) % period - period / 2
    return np.where(d > np.pi, d - 2 * np.pi, d)


def scale_iou(lwh_a: np.ndarray, lwh_b: np.ndarray) -> np.ndarray:
    """(N, 3), (N, 3) -> (N,) IoU of boxes sharing centre and heading (devkit ``scale_iou``)."""
    inter = np.prod(np.minimum(lwh_a, lwh_b), axis=1)
    return inter / (np.prod(lwh_a, axis=1) + np.prod(lwh_b, axis=1) - inter)


def filter_boxes(boxes: Boxes3D, class_names: tuple[str, ...], class_range: dict[str, float], gt: bool) -> Boxes3D:
    """Drop boxes at or beyond their class range (BEV distance from the ego origin) and, for ground
    truth, boxes with ``num_points == 0`` (devkit ``filter_eval_boxes``)."""
    limit = np.array([class_range.get(class_names[i], -np.inf) for i in boxes.labels])
    keep = np.hypot(boxes.xyz[:, 0], boxes.xyz[:, 1]) < limit
    if gt and "num_points" in boxes.attributes:
        keep &= np.asarray(boxes.attributes["num_points"]) != 0
    return boxes[np.nonzero(keep)[0]]


def _class_boxes(frames: list[Boxes3D], label: int) -> list[Boxes3D]:
    return [b[np.nonzero(b.labels == label)[0]] for b in frames]


def _attr(boxes: Boxes3D) -> np.ndarray:
    return np.asarray(boxes.attributes.get("attribute_name", np.full(len(boxes), "")), dtype=str)


def _velocity(boxes: Boxes3D) -> np.ndarray:
    return boxes.velocity_xy.astype(np.float64) if boxes.velocity_xy is not None else np.full((len(boxes), 2), np.nan)


def _match_frame(gt: Boxes3D, dt: Boxes3D, order: np.ndarray, dist_th: float) -> np.ndarray:
    """Greedy matching in one frame: for predictions in ``order``, the index of the matched
    ground truth or -1. Nearest free ground truth (first on ties), matched when ``< dist_th``."""
    out = np.full(len(dt), -1)
    if len(gt) == 0:
        return out
    dist = np.linalg.norm(dt.xyz[:, None, :2].astype(np.float64) - gt.xyz[None, :, :2], axis=2)
    free = np.ones(len(gt), bool)
    for j in order[dist.min(axis=1)[order] < dist_th]:  # others can never match
        d = np.where(free, dist[j], np.inf)
        g = int(np.argmin(d))
        if d[g] < dist_th:
            out[j], free[g] = g, False
    return out


def accumulate(gt: list[Boxes3D], dt: list[Boxes3D], class_name: str, dist_th: float) -> MetricData:
    """PR curve and TP errors of one class (boxes already restricted to it) at one threshold."""
    npos = sum(len(g) for g in gt)
    if npos == 0:
        return MetricData.no_predictions()
    scores = np.concatenate([d.scores for d in dt]).astype(np.float64) if dt else np.zeros(0)
    frame_of = np.concatenate([np.full(len(d), i) for i, d in enumerate(dt)]) if dt else np.zeros(0, int)
    # devkit order: decreasing score, ties by decreasing position in the flat prediction list
    order = np.lexsort((-np.arange(len(scores)), -scores))
    start = np.cumsum([0] + [len(d) for d in dt])
    by_frame = np.lexsort((-np.arange(len(scores)), -scores, frame_of))  # the same order within each frame
    match = np.full(len(scores), -1)
    for i, d in enumerate(dt):
        local = by_frame[start[i] : start[i + 1]] - start[i]
        match[start[i] : start[i + 1]] = _match_frame(gt[i], d, local, dist_th)
    is_tp = match[order] >= 0
    if not is_tp.any():
        return MetricData.no_predictions()
    tp, fp = np.cumsum(is_tp).astype(np.float64), np.cumsum(~is_tp).astype(np.float64)
    conf_sorted = scores[order]
    precision = np.interp(_RECALLS, tp / npos, tp / (tp + fp), right=0)
    confidence = np.interp(_RECALLS, tp / npos, conf_sorted, right=0)
    tp_idx = order[is_tp]
    gt_start = np.cumsum([0] + [len(g) for g in gt])
    errors = _tp_errors(_flat(gt), _flat(dt), tp_idx, gt_start[frame_of[tp_idx]] + match[tp_idx], class_name)
    tp_conf = conf_sorted[is_tp]
    resampled = {k: np.interp(confidence[::-1], tp_conf[::-1], cummean(v)[::-1])[::-1] for k, v in errors.items()}
    return MetricData(_RECALLS.copy(), precision, confidence, resampled)


def _flat(frames: list[Boxes3D]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All frames' boxes (n, 7), velocities (n, 2) (NaN when unknown) and attribute names (n,)."""
    if not frames:
        return np.zeros((0, 7)), np.zeros((0, 2)), np.zeros(0, str)
    boxes = np.concatenate([f.xyz_lwh_yaw for f in frames]).astype(np.float64)
    return boxes, np.concatenate([_velocity(f) for f in frames]), np.concatenate([_attr(f) for f in frames])


def _tp_errors(gt: tuple, dt: tuple, p: np.ndarray, g: np.ndarray, class_name: str) -> dict[str, np.ndarray]:
    """Errors of matched pairs (flat prediction rows ``p`` with ground-truth rows ``g``), in match order."""
    (gb, gv, ga), (pb, pv, pa) = (x[g] for x in gt), (x[p] for x in dt)
    period = np.pi if class_name == "barrier" else 2 * np.pi
    return {
        "trans_err": np.linalg.norm(pb[:, :2] - gb[:, :2], axis=1),
        "scale_err": 1.0 - scale_iou(gb[:, 3:6], pb[:, 3:6]),
        "orient_err": np.abs(angle_diff(gb[:, 6], pb[:, 6], period)),
        "vel_err": np.linalg.norm(gv - pv, axis=1),
        "attr_err": np.where(ga == "", np.nan, 1.0 - (ga == pa)),
    }


def calc_ap(md: MetricData, min_recall: float = MIN_RECALL, min_precision: float = MIN_PRECISION) -> float:
    """Area under the precision curve above ``min_precision`` for recall > ``min_recall``, in [0, 1]."""
    prec = md.precision[round(100 * min_recall) + 1 :] - min_precision
    return float(np.mean(np.clip(prec, 0.0, None))) / (1.0 - min_precision)


def calc_tp(md: MetricData, metric: str, min_recall: float = MIN_RECALL) -> float:
    """Mean TP error over recall > ``min_recall`` up to the highest recall reached (1.0 if none)."""
    first, last = round(100 * min_recall) + 1, md.max_recall_index
    return 1.0 if last < first else float(np.mean(md.errors[metric][first : last + 1]))


def _check(gt: list[Boxes3D], dt: list[Boxes3D], class_names: tuple[str, ...], classes: tuple[str, ...]) -> None:
    if len(gt) != len(dt):
        raise ShapeError(f"{len(gt)} ground-truth frames but {len(dt)} prediction frames")
    if any(d.scores is None for d in dt):
        raise ShapeError("predictions need scores")
    missing = [c for c in classes if c not in class_names]
    if missing:
        raise ConfigError(f"classes {missing} are not in the dataset's class names {list(class_names)}")


def evaluate_nuscenes(
    gt: list[Boxes3D],
    dt: list[Boxes3D],
    class_names: tuple[str, ...],
    classes: tuple[str, ...] = NUSCENES_CLASSES,
    class_range: dict[str, float] | None = None,
    max_boxes_per_frame: int = 500,
) -> NuScenesResult:
    """nuScenes mAP / TP errors / NDS of per-frame predictions ``dt`` against ground truth ``gt``
    (ego frame, labels indexing ``class_names``; ``classes`` are the evaluated names)."""
    _check(gt, dt, class_names, classes)
    worst = max((len(d) for d in dt), default=0)
    if worst > max_boxes_per_frame:
        raise ShapeError(f"a frame has {worst} predictions; the nuScenes limit is {max_boxes_per_frame}")
    ranges = {**CLASS_RANGE_M, **(class_range or {})}
    missing_range = [c for c in classes if c not in ranges]
    if missing_range:
        raise ConfigError(f"no evaluation range for classes {missing_range}: pass class_range")
    gt = [filter_boxes(g, class_names, ranges, gt=True) for g in gt]
    dt = [filter_boxes(d, class_names, ranges, gt=False) for d in dt]
    ap, tp_errors, curves = {}, {}, {}
    for name in classes:
        label = class_names.index(name)
        g, d = _class_boxes(gt, label), _class_boxes(dt, label)
        curves[name] = {th: accumulate(g, d, name, th) for th in DIST_THS_M}
        ap[name] = {th: calc_ap(md) for th, md in curves[name].items()}
        md = curves[name][DIST_TH_TP_M]
        tp_errors[name] = {m: np.nan if m in _UNMEASURED.get(name, ()) else calc_tp(md, m) for m in TP_METRICS}
    mean_ap = float(np.mean([np.mean(list(v.values())) for v in ap.values()]))
    mean_err = {m: _nanmean([tp_errors[c][m] for c in classes]) for m in TP_METRICS}
    tp_scores = {m: max(0.0, 1.0 - e) if np.isfinite(e) else 0.0 for m, e in mean_err.items()}
    nds = (MEAN_AP_WEIGHT * mean_ap + sum(tp_scores.values())) / (MEAN_AP_WEIGHT + len(TP_METRICS))
    return NuScenesResult(mean_ap, float(nds), ap, tp_errors, mean_err, tp_scores, curves)


def _nanmean(values: list[float]) -> float:
    arr = np.array(values, np.float64)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")


def format_nuscenes_table(result: NuScenesResult) -> str:
    """Per-class AP (mean over thresholds) and TP errors, then mAP, mean errors and NDS."""
    head = f"{'class':<22}{'AP':>7}" + "".join(f"{m[:-4].upper() + 'E':>8}" for m in TP_METRICS)
    lines = [head, "-" * len(head)]
    for c, per_th in result.ap.items():
        errs = "".join(f"{result.tp_errors[c][m]:8.3f}" for m in TP_METRICS)
        lines.append(f"{c:<22}{np.mean(list(per_th.values())):7.3f}{errs}")
    means = "".join(f"{result.mean_tp_errors[m]:8.3f}" for m in TP_METRICS)
    lines += [
        "-" * len(head),
        f"{'mean':<22}{result.mean_ap:7.3f}{means}",
        f"NDS {result.nds:.4f}  mAP {result.mean_ap:.4f}",
    ]
    return "\n".join(lines)
