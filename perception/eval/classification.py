"""Classification quality of a detector: which class did it give the objects it found?

Detections and ground truth of a frame are matched class-agnostically (by decreasing score, each
detection takes the free ground truth of highest IoU >= ``iou_threshold``). Each match adds one
count at (true class, predicted class); an unmatched detection counts at (background, predicted),
an unmatched ground truth at (true class, background). From that (C+1) x (C+1) matrix:

* precision_c = M[c, c] / column sum (false positives include background detections);
* recall_c = M[c, c] / row sum (misses included); F1 their harmonic mean;
* accuracy = correct / all counts (background cell excluded); ``matched_accuracy`` only over the
  matched pairs, i.e. how often a found object gets the right class.

Exercised by ``perception val`` (confusion matrix table and PNG) and by the trainer's validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.core import Boxes2D, Boxes3D, bev_iou, iou2d
from perception.errors import ShapeError

BACKGROUND = "background"


@dataclass(frozen=True)
class ClassificationReport:
    """``confusion[true, predicted]`` (C+1, C+1) int64; index C is background."""

    class_names: tuple[str, ...]
    confusion: np.ndarray

    @property
    def labels(self) -> tuple[str, ...]:
        return (*self.class_names, BACKGROUND)

    def _diag(self) -> np.ndarray:
        return np.diag(self.confusion)[:-1].astype(np.float64)

    @property
    def precision(self) -> np.ndarray:
        """(C,) per class; NaN for a class never predicted."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._diag() / self.confusion[:, :-1].sum(axis=0)

    @property
    def recall(self) -> np.ndarray:
        """(C,) per class; NaN for a class absent from the ground truth."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._diag() / self.confusion[:-1, :].sum(axis=1)

    @property
    def f1(self) -> np.ndarray:
        p, r = self.precision, self.recall
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(p + r > 0, 2 * p * r / (p + r), 0.0 * (p + r))

    @property
    def accuracy(self) -> float:
        total = self.confusion.sum() - self.confusion[-1, -1]
        return float(self._diag().sum() / total) if total else float("nan")

    @property
    def matched_accuracy(self) -> float:
        matched = self.confusion[:-1, :-1]
        return float(np.trace(matched) / matched.sum()) if matched.sum() else float("nan")

    def summary(self, prefix: str = "cls") -> dict[str, float]:
        out = {f"{prefix}/accuracy": self.accuracy, f"{prefix}/matched_accuracy": self.matched_accuracy}
        for name, values in (("precision", self.precision), ("recall", self.recall), ("f1", self.f1)):
            out[f"{prefix}/{name}"] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        return out


def match_boxes(gt: Boxes3D | Boxes2D, dt: Boxes3D | Boxes2D, iou_threshold: float) -> np.ndarray:
    """Class-agnostic greedy matching of one frame: (D,) matched ground-truth index or -1.

    3D boxes use rotated BEV IoU, 2D boxes image IoU; detections go by decreasing score."""
    if len(dt) == 0 or len(gt) == 0:
        return np.full(len(dt), -1)
    iou = iou2d(dt.xyxy, gt.xyxy) if isinstance(dt, Boxes2D) else bev_iou(dt.xyz_lwh_yaw, gt.xyz_lwh_yaw)
    order = np.argsort(-dt.scores, kind="stable") if dt.scores is not None else np.arange(len(dt))
    out, free = np.full(len(dt), -1), np.ones(len(gt), bool)
    for j in order:
        cand = np.where(free, iou[j], -1.0)
        g = int(np.argmax(cand))
        if cand[g] >= iou_threshold:
            out[j], free[g] = g, False
    return out


def confusion_matrix(
    gt: list[Boxes3D | Boxes2D],
    dt: list[Boxes3D | Boxes2D],
    num_classes: int,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.3,
) -> np.ndarray:
    """(C+1, C+1) counts over frames; detections below ``score_threshold`` are dropped first."""
    if len(gt) != len(dt):
        raise ShapeError(f"{len(gt)} ground-truth frames but {len(dt)} prediction frames")
    m = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    for g, d in zip(gt, dt):
        if d.scores is not None:
            d = d[np.nonzero(d.scores >= score_threshold)[0]]
        match = match_boxes(g, d, iou_threshold)
        found = match >= 0
        np.add.at(m, (g.labels[match[found]], d.labels[found]), 1)
        np.add.at(m, (np.full((~found).sum(), num_classes), d.labels[~found]), 1)
        missed = np.setdiff1d(np.arange(len(g)), match[found])
        np.add.at(m, (g.labels[missed], np.full(len(missed), num_classes)), 1)
    return m


def classification_report(
    gt: list[Boxes3D | Boxes2D],
    dt: list[Boxes3D | Boxes2D],
    class_names: tuple[str, ...],
    iou_threshold: float = 0.5,
    score_threshold: float = 0.3,
) -> ClassificationReport:
    """Confusion matrix and the metrics derived from it (see module docstring)."""
    return ClassificationReport(
        tuple(class_names), confusion_matrix(gt, dt, len(class_names), iou_threshold, score_threshold)
    )


def format_classification_table(report: ClassificationReport) -> str:
    """Confusion matrix (rows true, columns predicted) and per-class precision / recall / F1."""
    labels = report.labels
    width = max(10, *(len(x) + 2 for x in labels))
    lines = ["true \\ predicted".ljust(width) + "".join(f"{x[: width - 1]:>{width}}" for x in labels)]
    lines += [
        f"{labels[i]:<{width}}" + "".join(f"{v:>{width}d}" for v in row) for i, row in enumerate(report.confusion)
    ]
    lines += ["", f"{'class':<{width}}{'precision':>{width}}{'recall':>{width}}{'F1':>{width}}"]
    for i, name in enumerate(report.class_names):
        lines.append(
            f"{name:<{width}}{report.precision[i]:>{width}.3f}{report.recall[i]:>{width}.3f}{report.f1[i]:>{width}.3f}"
        )
    lines.append(f"accuracy {report.accuracy:.4f}  matched accuracy {report.matched_accuracy:.4f}")
    return "\n".join(lines)
