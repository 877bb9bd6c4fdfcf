"""KITTI object detection AP: 2D box, BEV and 3D, R11 and R40, easy / moderate / hard.

Implements the official devkit (``evaluate_object.cpp``, ``evaluate_object_3d_offline.cpp``):

* per class and difficulty, ground truth of a neighbour class (Van for Car, Person_sitting for
  Pedestrian) or outside the difficulty (2D height, occlusion, truncation: ``kitti_difficulty``)
  is ignored: matching it is neither TP nor FP; detections shorter than the difficulty's minimum
  2D height are ignored too; detections inside DontCare regions are not FP (2D metric only, as in
  the devkit, whose DontCare rows have no 3D box);
* an overlap counts when strictly greater than the class's minimum (``strict``: Car 0.7,
  Pedestrian / Cyclist 0.5 for every metric; ``loose``: 0.5 / 0.25 for BEV and 3D);
* 41 score thresholds are chosen at evenly spaced recall (``getThresholds``), precision is made
  monotone from the right, AP(R40) averages samples 1..40 and AP(R11) samples 0, 4, ..., 40;
* AOS (orientation similarity with the 2D matching) when every detection has alpha != -10.

Exercised by ``perception val`` (KITTI datasets) and by the trainer's validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from perception.core import SE3, Boxes3D, Calibration, Frame
from perception.data.kitti_format import _MIN_HEIGHT_PX, RECT, KittiObjects, boxes3d_to_objects, kitti_difficulty
from perception.errors import ConfigError, ShapeError
from perception.eval.kitti_match import MAX_CELLS, MatchBatch, get_thresholds, pr_counts, tp_scores
from perception.eval.pair_iou import frame_pairs, paired_bev_and_3d_iou, paired_iou2d

DIFFICULTIES = ("easy", "moderate", "hard")
METRICS = ("bbox", "bev", "3d")
N_SAMPLE_PTS = 41
_NEIGHBOUR = {"car": "van", "pedestrian": "person_sitting"}
_STRICT = {"car": 0.7, "pedestrian": 0.5, "cyclist": 0.5, "van": 0.7, "person_sitting": 0.5, "truck": 0.7}
KITTI_CLASSES = ("Car", "Pedestrian", "Cyclist", "Van", "Person_sitting", "Truck")  # with an overlap threshold
_LOOSE = {"car": 0.5, "pedestrian": 0.25, "cyclist": 0.25, "van": 0.5, "person_sitting": 0.25, "truck": 0.5}
# a virtual rectified camera for datasets without one: x right = -y ego, y down = -z ego, z = x ego
_R_EGO_FROM_RECT = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
_PLACEHOLDER_BOX2D = (0.0, 0.0, 100.0, 100.0)  # tall enough to count at every difficulty
_PAIR_CHUNK = 500_000


def min_overlap(metric: str, cls: str, overlaps: str = "strict") -> float:
    """Minimum IoU of the devkit (``strict``) or of the common looser set (``loose``: BEV/3D only)."""
    key = cls.lower()
    if key not in _STRICT:
        raise ConfigError(f"no KITTI overlap threshold for class {cls!r}; known: {sorted(_STRICT)}")
    if overlaps not in ("strict", "loose"):
        raise ConfigError(f"overlaps must be 'strict' or 'loose', got {overlaps!r}")
    return _LOOSE[key] if overlaps == "loose" and metric != "bbox" else _STRICT[key]


@dataclass(frozen=True)
class KittiResult:
    """AP in percent, indexed ``ap_r40[metric][class][difficulty]``; metric ``aos`` when computed.

    ``precision[metric][class][difficulty]`` is the (41,) interpolated precision (orientation
    similarity for ``aos``) at recall ``i / 40``; ``num_gt[class][difficulty]`` the counted boxes.
    """

    ap_r11: dict[str, dict[str, dict[str, float]]]
    ap_r40: dict[str, dict[str, dict[str, float]]]
    precision: dict[str, dict[str, dict[str, np.ndarray]]]
    num_gt: dict[str, dict[str, int]]
    min_overlaps: dict[str, dict[str, float]] = field(default_factory=dict)

    def summary(self, prefix: str = "kitti") -> dict[str, float]:
        """Flat ``{"kitti/3d/Car/moderate/R40": 81.2, ...}`` for loggers."""
        return {
            f"{prefix}/{m}/{c}/{d}/{rec}": v
            for rec, table in (("R11", self.ap_r11), ("R40", self.ap_r40))
            for m, per_class in table.items()
            for c, per_diff in per_class.items()
            for d, v in per_diff.items()
        }


def camera_boxes7(objs: KittiObjects) -> np.ndarray:
    """Label rows -> (N, 7) boxes for ``perception.core`` IoU: camera (x, z, up) axes, z the
    geometric centre height, yaw = -rotation_y (the devkit's BEV polygon, mirrored; IoU is the same)."""
    h, w, l = objs.dimensions_hwl.T
    x, y, z = objs.location.T
    return np.column_stack([x, z, -y + h / 2, l, w, h, -objs.rotation_y])


def _concat(objs: list[KittiObjects]) -> KittiObjects:
    """All frames' rows in one ``KittiObjects`` (score kept only when every frame has one)."""
    parts = [*objs, KittiObjects.empty()]
    names = ("type", "truncated", "occluded", "alpha", "bbox", "dimensions_hwl", "location", "rotation_y")
    score = np.concatenate([o.score for o in objs] + [np.zeros(0)]) if all(o.score is not None for o in objs) else None
    return KittiObjects(**{n: np.concatenate([getattr(o, n) for o in parts]) for n in names}, score=score)


@dataclass(frozen=True)
class _Flat:
    """Rows of all frames: ``rows`` concatenated, ``frame`` / ``pos`` (index within the frame) per row."""

    rows: KittiObjects
    counts: np.ndarray  # (F,)
    frame: np.ndarray
    pos: np.ndarray
    types: np.ndarray  # lower-case

    @classmethod
    def of(cls, objs: list[KittiObjects]) -> _Flat:
        counts = np.array([len(o) for o in objs], np.int64)
        frame = np.repeat(np.arange(len(objs)), counts)
        pos = np.arange(len(frame)) - np.repeat(np.cumsum(counts) - counts, counts)
        rows = _concat(objs)
        return cls(rows, counts, frame, pos, np.char.lower(rows.type.astype(str)))


def _pair_overlaps(gt: _Flat, dt: _Flat, metrics: tuple[str, ...]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """IoU of every same-frame (gt, det) pair per metric, in ``frame_pairs`` order, and (D,) the
    largest DontCare overlap of each detection (intersection / detection area, devkit criterion 0)."""
    gi, di = frame_pairs(gt.counts, dt.counts)
    names = (["bbox"] if "bbox" in metrics else []) + (["bev", "3d"] if {"bev", "3d"} & set(metrics) else [])
    out = {m: np.zeros(len(gi)) for m in names}
    g7, d7 = camera_boxes7(gt.rows), camera_boxes7(dt.rows)
    for s in range(0, len(gi), _PAIR_CHUNK):  # bounded temporaries for frames with many detections
        g, d = gi[s : s + _PAIR_CHUNK], di[s : s + _PAIR_CHUNK]
        if "bbox" in out:
            out["bbox"][s : s + len(g)] = paired_iou2d(gt.rows.bbox[g], dt.rows.bbox[d])
        if "bev" in out:
            out["bev"][s : s + len(g)], out["3d"][s : s + len(g)] = paired_bev_and_3d_iou(g7[g], d7[d])
    dc = gt.types[gi] == "dontcare"
    a, b = dt.rows.bbox[di[dc]], gt.rows.bbox[gi[dc]]
    w = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    h = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((w > 0) & (h > 0), w * h / ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])), 0.0)
    dc_overlap = np.zeros(len(dt.frame))
    np.maximum.at(dc_overlap, di[dc], np.nan_to_num(ratio))
    return out, dc_overlap


def _flags(gt: _Flat, dt: _Flat, difficulty: np.ndarray, cls: str, level: int) -> tuple[np.ndarray, np.ndarray]:
    """Devkit ``cleanData`` over all frames: ground-truth and detection flags, 0 counted / 1 ignored / -1 other."""
    inside = (difficulty >= 0) & (difficulty <= level)
    same = gt.types == cls.lower()
    neighbour = gt.types == _NEIGHBOUR.get(cls.lower(), "\0")
    gt_flag = np.where(same & inside, 0, np.where(neighbour | same, 1, -1))
    small = np.abs(dt.rows.bbox[:, 3] - dt.rows.bbox[:, 1]) < _MIN_HEIGHT_PX[level]
    dt_flag = np.where(small, 1, np.where(dt.types == cls.lower(), 0, -1))
    return gt_flag.astype(np.int8), dt_flag.astype(np.int8)


def _padded(flat: _Flat, keep: np.ndarray, frames: slice) -> np.ndarray:
    """(F', K) flat row indices of the kept rows of frames ``frames``, -1 padded."""
    rows = np.nonzero(keep & (flat.frame >= frames.start) & (flat.frame < frames.stop))[0]
    f = flat.frame[rows] - frames.start
    rank = np.arange(len(rows)) - np.searchsorted(f, f, "left")
    out = np.full((frames.stop - frames.start, int(rank.max()) + 1 if len(rows) else 1), -1)
    out[f, rank] = rows
    return out


def _gather(values: np.ndarray, index: np.ndarray, fill: float) -> np.ndarray:
    """``values[index]`` with ``fill`` where ``index`` is -1 (padding)."""
    if len(values) == 0:
        return np.full(index.shape, fill)
    return np.where(index >= 0, values[np.maximum(index, 0)], fill)


def _batches(gt: _Flat, dt: _Flat, flags: tuple, ious: np.ndarray, dc_overlap: np.ndarray, depth: int):
    """Padded ``MatchBatch``es over chunks of frames, each within ``MAX_CELLS`` for ``depth`` thresholds."""
    gt_flag, dt_flag = flags
    widest = max(int(np.bincount(dt.frame[dt_flag >= 0], minlength=1).max(initial=0)), 1)
    tallest = max(int(np.bincount(gt.frame[gt_flag >= 0], minlength=1).max(initial=0)), 1)
    step = max(1, MAX_CELLS // (widest * max(depth, tallest)))
    pair_start = np.cumsum(gt.counts * dt.counts) - gt.counts * dt.counts
    for start in range(0, len(gt.counts), step):
        frames = slice(start, min(start + step, len(gt.counts)))
        g, d = _padded(gt, gt_flag >= 0, frames), _padded(dt, dt_flag >= 0, frames)
        f = np.arange(frames.start, frames.stop)[:, None, None]
        pair = pair_start[f] + _gather(gt.pos, g, 0)[:, :, None] * dt.counts[f] + _gather(dt.pos, d, 0)[:, None, :]
        real = (g[:, :, None] >= 0) & (d[:, None, :] >= 0)
        yield MatchBatch(
            overlap=_gather(ious, np.where(real, pair, -1), -1.0), gt_flag=_gather(gt_flag, g, -1),
            det_flag=_gather(dt_flag, d, -1), score=_gather(dt.rows.score, d, -np.inf),
            dc_overlap=_gather(dc_overlap, d, 0.0), gt_alpha=_gather(gt.rows.alpha, g, 0.0),
            det_alpha=_gather(dt.rows.alpha, d, 0.0),
        )  # fmt: skip


def _curves(gt, dt, flags, ious, dc_overlap, thr: float, dontcare: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """(41,) interpolated precision and AOS for one class / difficulty / metric, and the GT count."""
    num_gt = int((flags[0] == 0).sum())
    precision, aos = np.zeros(N_SAMPLE_PTS), np.zeros(N_SAMPLE_PTS)
    if num_gt == 0:
        return precision, aos, 0
    scores = np.concatenate([tp_scores(b, thr) for b in _batches(gt, dt, flags, ious, dc_overlap, 1)])
    thresholds = get_thresholds(scores, num_gt, N_SAMPLE_PTS)
    if len(thresholds) == 0:
        return precision, aos, num_gt
    totals = {"tp": 0, "fp": 0, "fn": 0, "similarity": 0.0}
    for batch in _batches(gt, dt, flags, ious, dc_overlap, len(thresholds)):
        for k, v in pr_counts(batch, thr, thresholds, dontcare).items():
            totals[k] = totals[k] + v
    n = len(thresholds)
    precision[:n] = totals["tp"] / (totals["tp"] + totals["fp"])
    aos[:n] = totals["similarity"] / (totals["tp"] + totals["fp"])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    aos = np.maximum.accumulate(aos[::-1])[::-1]
    return precision, aos, num_gt


def ap_r11(precision: np.ndarray) -> float:
    """Mean of the 41-sample precision at recall 0, 0.1, ..., 1 (samples 0, 4, ..., 40), in percent."""
    return float(precision[0::4].sum() / 11 * 100)


def ap_r40(precision: np.ndarray) -> float:
    """Mean of the precision at recall 1/40, ..., 1 (recall 0 excluded), in percent."""
    return float(precision[1:].sum() / 40 * 100)


def _check_inputs(gt: list[KittiObjects], dt: list[KittiObjects]) -> None:
    if len(gt) != len(dt):
        raise ShapeError(f"{len(gt)} ground-truth frames but {len(dt)} detection frames")
    for i, d in enumerate(dt):
        if d.score is None and len(d):
            raise ShapeError(f"detections of frame {i} have no score column")


def evaluate_kitti(
    gt: list[KittiObjects],
    dt: list[KittiObjects],
    classes: tuple[str, ...] = ("Car", "Pedestrian", "Cyclist"),
    metrics: tuple[str, ...] = METRICS,
    overlaps: str = "strict",
) -> KittiResult:
    """KITTI AP of detections ``dt`` against ground truth ``gt`` (one ``KittiObjects`` per frame).

    Ground truth keeps every row of the label file (DontCare, Van, Misc...); detections need
    ``score``. AOS is added as metric ``aos`` when ``bbox`` is asked and no alpha is -10.
    """
    _check_inputs(gt, dt)
    bad = set(metrics) - set(METRICS)
    if bad:
        raise ConfigError(f"unknown KITTI metric(s) {sorted(bad)}; choose from {list(METRICS)}")
    dt = [d if d.score is not None else replace(d, score=np.zeros(0)) for d in dt]
    with_aos = "bbox" in metrics and all((d.alpha != -10).all() for d in dt)
    g_flat, d_flat = _Flat.of(gt), _Flat.of(dt)
    difficulty = kitti_difficulty(g_flat.rows)
    ious, dc_overlap = _pair_overlaps(g_flat, d_flat, metrics)
    ap11: dict = {}
    ap40: dict = {}
    prec: dict = {}
    num_gt: dict = {}
    thresholds = {m: {c: min_overlap(m, c, overlaps) for c in classes} for m in metrics}
    for cls in classes:
        for level, name in enumerate(DIFFICULTIES):
            flags = _flags(g_flat, d_flat, difficulty, cls, level)
            for metric in metrics:
                p, aos, n = _curves(
                    g_flat, d_flat, flags, ious[metric], dc_overlap, thresholds[metric][cls], metric == "bbox"
                )
                num_gt.setdefault(cls, {})[name] = n
                curves = {metric: p, "aos": aos} if metric == "bbox" and with_aos else {metric: p}
                for m, curve in curves.items():
                    prec.setdefault(m, {}).setdefault(cls, {})[name] = curve
                    ap11.setdefault(m, {}).setdefault(cls, {})[name] = ap_r11(curve)
                    ap40.setdefault(m, {}).setdefault(cls, {})[name] = ap_r40(curve)
    return KittiResult(ap11, ap40, prec, num_gt, thresholds)


def format_kitti_table(result: KittiResult) -> str:
    """A fixed-width table: one row per class and metric, R11 and R40 for easy / moderate / hard."""
    head = f"{'class':<14}{'metric':<7}{'IoU':>5} | " + " ".join(f"{'R11 ' + d[:4]:>9}" for d in DIFFICULTIES)
    head += " | " + " ".join(f"{'R40 ' + d[:4]:>9}" for d in DIFFICULTIES)
    lines = [head, "-" * len(head)]
    classes = next(iter(result.ap_r40.values()), {})
    for cls in classes:
        for m in result.ap_r40:
            iou = result.min_overlaps.get("bbox" if m == "aos" else m, {}).get(cls, float("nan"))
            r11 = " ".join(f"{result.ap_r11[m][cls][d]:9.2f}" for d in DIFFICULTIES)
            r40 = " ".join(f"{result.ap_r40[m][cls][d]:9.2f}" for d in DIFFICULTIES)
            lines.append(f"{cls:<14}{m:<7}{iou:5.2f} | {r11} | {r40}")
    counts = ", ".join(f"{c} " + "/".join(str(result.num_gt[c][d]) for d in DIFFICULTIES) for c in result.num_gt)
    return "\n".join([*lines, f"counted ground truth (easy/moderate/hard): {counts}"])


def boxes_to_kitti(boxes: Boxes3D, frame: Frame) -> KittiObjects:
    """Ego-frame boxes of ``frame`` -> KITTI rows (for ground truth or, with scores, detections).

    Frames without a KITTI ``rect`` camera get a virtual one looking along ego +x and a
    placeholder 2D box that counts at every difficulty: only ``bev`` and ``3d`` are meaningful.
    """
    calib = frame.calibration
    if RECT in calib.extrinsics:
        return boxes3d_to_objects(boxes, calib, frame.class_names)
    placeholder = np.tile(np.array(_PLACEHOLDER_BOX2D), (len(boxes), 1))
    boxes = boxes.replace(attributes={**boxes.attributes, "box2d": boxes.attributes.get("box2d", placeholder)})
    virtual = Calibration({RECT: SE3.from_rt(_R_EGO_FROM_RECT, np.zeros(3))})
    return boxes3d_to_objects(boxes, virtual, frame.class_names)


def frame_to_kitti_gt(frame: Frame, dataset: object | None = None, index: int | None = None) -> KittiObjects:
    """Ground truth of a frame as KITTI rows: the label file itself when the dataset has one
    (``dataset.kitti_objects(index)``, which keeps DontCare and Van), else from ``frame.boxes3d``."""
    if dataset is not None and index is not None and hasattr(dataset, "kitti_objects"):
        return dataset.kitti_objects(index)
    boxes = frame.boxes3d if frame.boxes3d is not None else Boxes3D.empty()
    return boxes_to_kitti(boxes, frame)
