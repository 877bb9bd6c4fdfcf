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
from perception.eval.matching import frame_candidates, greedy_nearest_free, rank_in_frame

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


def flatten(frames: list[Boxes3D]) -> dict[str, np.ndarray]:
    """All frames' boxes as flat columns: frame, label, box (n, 7) float64, score, velocity (n, 2)
    (NaN when unknown), attribute_name (n,) str ('' when unknown), num_points (-1 when unknown)."""
    cols: dict[str, list] = {
        k: [] for k in ("frame", "label", "box", "score", "velocity", "attribute_name", "num_points")
    }
    for i, b in enumerate(frames):
        n = len(b)
        cols["frame"].append(np.full(n, i))
        cols["label"].append(b.labels)
        cols["box"].append(b.xyz_lwh_yaw.astype(np.float64))
        cols["score"].append(b.scores if b.scores is not None else np.full(n, np.nan))
        cols["velocity"].append(b.velocity_xy if b.velocity_xy is not None else np.full((n, 2), np.nan))
        cols["attribute_name"].append(np.asarray(b.attributes.get("attribute_name", np.full(n, "")), dtype=str))
        cols["num_points"].append(np.asarray(b.attributes.get("num_points", np.full(n, -1))))
    if not frames:
        return {"frame": np.zeros(0, int), "label": np.zeros(0, int), "box": np.zeros((0, 7)), "score": np.zeros(0),
                "velocity": np.zeros((0, 2)), "attribute_name": np.zeros(0, str), "num_points": np.zeros(0, int)}  # fmt: skip
    return {
        k: np.concatenate(v).astype(np.float64) if k in ("score", "velocity") else np.concatenate(v)
        for k, v in cols.items()
    }


def select(flat: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[mask] for k, v in flat.items()}


def in_range(
    flat: dict[str, np.ndarray], class_names: tuple[str, ...], class_range: dict[str, float], gt: bool
) -> np.ndarray:
    """Devkit ``filter_eval_boxes``: keep boxes nearer than their class range (BEV distance from the
    ego origin) and, for ground truth, drop boxes with ``num_points == 0``."""
    ranges = {k.lower(): v for k, v in class_range.items()}
    limit = np.array([ranges.get(class_names[i].lower(), -np.inf) for i in flat["label"]])
    keep = np.hypot(flat["box"][:, 0], flat["box"][:, 1]) < limit
    return keep & (flat["num_points"] != 0) if gt else keep


def accumulate(
    gt: dict, dt: dict, class_name: str, dist_ths: tuple[float, ...] = DIST_THS_M
) -> dict[float, MetricData]:
    """PR curves and TP errors of one class (flat columns already restricted to it) per threshold."""
    npos = len(gt["frame"])
    if npos == 0 or len(dt["frame"]) == 0:
        return {th: MetricData.no_predictions() for th in dist_ths}
    # devkit order: decreasing score, ties by decreasing position in the flat prediction list
    order = np.lexsort((-np.arange(len(dt["score"])), -dt["score"]))
    gidx, valid = frame_candidates(gt["frame"], dt["frame"])
    dist = np.linalg.norm(dt["box"][:, None, :2] - gt["box"][gidx][..., :2], axis=2)
    match = greedy_nearest_free(dist, gidx, valid, rank_in_frame(dt["frame"], order), npos, np.array(dist_ths))
    return {th: _metric_data(gt, dt, order, match[i], class_name) for i, th in enumerate(dist_ths)}


def _metric_data(gt: dict, dt: dict, order: np.ndarray, match: np.ndarray, class_name: str) -> MetricData:
    is_tp = match[order] >= 0
    if not is_tp.any():
        return MetricData.no_predictions()
    npos = len(gt["frame"])
    tp, fp = np.cumsum(is_tp).astype(np.float64), np.cumsum(~is_tp).astype(np.float64)
    conf_sorted = dt["score"][order]
    precision = np.interp(_RECALLS, tp / npos, tp / (tp + fp), right=0)
    confidence = np.interp(_RECALLS, tp / npos, conf_sorted, right=0)
    tp_idx = order[is_tp]
    errors = _tp_errors(gt, dt, tp_idx, match[tp_idx], class_name)
    tp_conf = conf_sorted[is_tp]
    resampled = {k: np.interp(confidence[::-1], tp_conf[::-1], cummean(v)[::-1])[::-1] for k, v in errors.items()}
    return MetricData(_RECALLS.copy(), precision, confidence, resampled)


def _tp_errors(gt: dict, dt: dict, p: np.ndarray, g: np.ndarray, class_name: str) -> dict[str, np.ndarray]:
    """Errors of matched pairs (prediction rows ``p`` with ground-truth rows ``g``), in match order."""
    pb, gb = dt["box"][p], gt["box"][g]
    ga, pa = gt["attribute_name"][g], dt["attribute_name"][p]
    period = np.pi if class_name.lower() == "barrier" else 2 * np.pi
    return {
        "trans_err": np.linalg.norm(pb[:, :2] - gb[:, :2], axis=1),
        "scale_err": 1.0 - scale_iou(gb[:, 3:6], pb[:, 3:6]),
        "orient_err": np.abs(angle_diff(gb[:, 6], pb[:, 6], period)),
        "vel_err": np.linalg.norm(gt["velocity"][g] - dt["velocity"][p], axis=1),
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


def check_inputs(gt: list[Boxes3D], dt: list[Boxes3D], class_names: tuple[str, ...], classes: tuple[str, ...]) -> None:
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
    check_inputs(gt, dt, class_names, classes)
    worst = max((len(d) for d in dt), default=0)
    if worst > max_boxes_per_frame:
        raise ShapeError(f"a frame has {worst} predictions; the nuScenes limit is {max_boxes_per_frame}")
    ranges = {**CLASS_RANGE_M, **(class_range or {})}
    missing_range = [c for c in classes if c.lower() not in {k.lower() for k in ranges}]
    if missing_range:
        raise ConfigError(f"no evaluation range for classes {missing_range}: pass class_range")
    g_flat, d_flat = flatten(gt), flatten(dt)
    g_flat = select(g_flat, in_range(g_flat, class_names, ranges, gt=True))
    d_flat = select(d_flat, in_range(d_flat, class_names, ranges, gt=False))
    ap, tp_errors, curves = {}, {}, {}
    for name in classes:
        label = class_names.index(name)
        curves[name] = accumulate(
            select(g_flat, g_flat["label"] == label), select(d_flat, d_flat["label"] == label), name
        )
        ap[name] = {th: calc_ap(md) for th, md in curves[name].items()}
        md = curves[name][DIST_TH_TP_M]
        tp_errors[name] = {m: np.nan if m in _UNMEASURED.get(name.lower(), ()) else calc_tp(md, m) for m in TP_METRICS}
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
