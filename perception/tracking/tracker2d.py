"""2D multi-object tracker, ByteTrack-style: confident detections first, then weak ones.

Weak detections (``low_score <= score < high_score``) would be discarded by a one-stage
tracker, yet they are often the same objects partly occluded; matching them in a second
stage, only to tracks that were seen in the previous frame, keeps those tracks alive without
letting clutter start new ones. State per track: box centre, width, height and their rates.
Shares matching (``association.match``) and bookkeeping (``tracks.TrackSet``) with ``Tracker3D``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from perception.core import Boxes2D, iou2d
from perception.tracking.association import match
from perception.tracking.kalman import BatchKalman
from perception.tracking.tracks import Lifecycle, TrackSet, check_fields


@dataclass(frozen=True)
class Params2D(Lifecycle):
    """ByteTrack parameters (see ``Lifecycle`` for birth/death/output rules).

    Attributes:
        high_score: detections at or above it are matched first and may start tracks.
        low_score: detections below it are dropped.
        match_iou: smallest IoU of a first-stage match.
        low_match_iou: smallest IoU of a second-stage (weak detection) match.
        measure_var / process_var / init_var: Kalman variances, relative to the box size
            (multiplied by the squared box height of each track).
    """

    min_hits: int = 1
    max_age: int = 30
    birth_score: float | None = 0.6
    high_score: float = 0.5
    low_score: float = 0.1
    match_iou: float = 0.2
    low_match_iou: float = 0.5
    measure_var: tuple[float, ...] = (0.05**2,) * 4
    process_var: tuple[float, ...] = (0.05**2,) * 4 + (0.01**2,) * 4
    init_var: tuple[float, ...] = (0.1**2,) * 4 + (0.1**2,) * 4

    @classmethod
    def of(cls, value: Params2D | Mapping[str, Any] | None) -> Params2D:
        if value is None or isinstance(value, Params2D):
            return value or cls()
        check_fields(cls, value, "tracker")
        return replace(cls(), **value)


def _cxcywh(xyxy: np.ndarray) -> np.ndarray:
    xyxy = np.asarray(xyxy, dtype=np.float64)
    return np.column_stack(
        [(xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2, xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]]
    )


def _xyxy(cxcywh: np.ndarray) -> np.ndarray:
    c, wh = cxcywh[:, :2], np.maximum(cxcywh[:, 2:4], 1e-3)
    return np.concatenate([c - wh / 2, c + wh / 2], axis=1)


class _ScaledKalman(BatchKalman):
    """Kalman filter whose noise scales with each box's size (pixels: big boxes move more)."""

    def predict(self, dt: float = 1.0) -> None:
        if not len(self.x):
            return
        F = self.transition(dt)
        scale = np.maximum(self.x[:, 3], 1.0) ** 2  # box height squared
        self.x = self.x @ F.T
        self.P = F @ self.P @ F.T + self.q[None, None, :] * np.eye(self.n)[None] * scale[:, None, None]

    def update(self, idx: np.ndarray, z: np.ndarray) -> None:
        r = self.R
        self.R = r[None] * np.maximum(self.x[idx, 3], 1.0)[:, None, None] ** 2
        try:
            super().update(idx, z)
        finally:
            self.R = r

    def add(self, z: np.ndarray) -> None:
        start = len(self.x)
        super().add(z)
        self.P[start:] = self.p0[None] * np.maximum(self.x[start:, 3], 1.0)[:, None, None] ** 2


class Tracker2D:
    """Track ``Boxes2D`` (pixels) over a sequence; one ``update`` per frame.

    Args:
        params: a ``Params2D`` or a dict of its fields.
    """

    def __init__(self, params: Params2D | Mapping[str, Any] | None = None):
        self.params = Params2D.of(params)
        self.reset()

    def reset(self) -> None:
        self._sets: dict[int, TrackSet] = {}
        self._ids = itertools.count(1)
        self._frames = 0

    def _set(self, label: int) -> TrackSet:
        if label not in self._sets:
            p = self.params
            self._sets[label] = TrackSet(_ScaledKalman(p.measure_var, p.process_var, p.init_var, 4), p, self._ids)
        return self._sets[label]

    def update(self, boxes: Boxes2D) -> Boxes2D:
        """Advance one frame; returns the reported tracks with ``track_ids`` and ``scores``."""
        self._frames += 1
        scores = boxes.scores if boxes.scores is not None else np.ones(len(boxes), np.float32)
        outs = []
        for label in sorted(set(self._sets) | set(np.unique(boxes.labels).tolist())):
            idx = np.flatnonzero(boxes.labels == label)
            attrs = {k: v[idx] for k, v in boxes.attributes.items()}
            outs.append(self._step_class(label, _cxcywh(boxes.xyxy[idx]), scores[idx].astype(np.float64), attrs))
        if not outs:
            e = Boxes2D.empty()
            return e.replace(scores=np.zeros(0, np.float32), track_ids=np.zeros(0, np.int64))
        return Boxes2D.concatenate(outs)

    def _step_class(self, label: int, z: np.ndarray, scores: np.ndarray, attrs: dict) -> Boxes2D:
        ts, p = self._set(label), self.params
        seen_last = ts.misses == 0
        ts.kf.predict()
        pred = _xyxy(ts.kf.x[:, :4])
        high = np.flatnonzero(scores >= p.high_score)
        low = np.flatnonzero((scores >= p.low_score) & (scores < p.high_score))
        r1, c1 = match(iou2d(pred, _xyxy(z[high])), p.match_iou)
        free = np.setdiff1d(np.flatnonzero(seen_last), r1)
        r2, c2 = match(iou2d(pred[free], _xyxy(z[low])), p.low_match_iou)
        rows = np.concatenate([r1, free[r2]])
        cols = np.concatenate([high[c1], low[c2]])
        ts.kf.update(rows, z[cols])
        ts.step(rows, scores, attrs, cols)
        new = np.setdiff1d(high, high[c1])
        ts.birth(z[new], scores[new], {k: v[new] for k, v in attrs.items()})
        show = ts.reported(self._frames)
        out = Boxes2D(
            _xyxy(ts.kf.x[show, :4]),
            np.full(int(show.sum()), label, np.int64),
            scores=ts.reported_scores(show),
            track_ids=ts.ids[show],
            attributes={k: v[show] for k, v in (ts.attrs or {}).items()},
        )
        ts.prune()
        return out
