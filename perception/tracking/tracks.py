"""Track bookkeeping shared by the 2D and 3D trackers: ids, hits, misses, scores, birth and death.

A ``TrackSet`` holds one row per live track in parallel arrays next to a ``BatchKalman``; the
trackers only decide *which* rows match *which* detections. Ids come from a shared counter so
that tracks of different classes never share an id.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields

import numpy as np

from perception.errors import ConfigError
from perception.tracking.kalman import BatchKalman


@dataclass(frozen=True)
class Lifecycle:
    """Birth, death and output rules of tracks.

    Attributes:
        min_hits: matched detections before a track is reported (except in a sequence's
            first ``min_hits`` frames, when every track is reported, as SORT/AB3DMOT do).
        max_age: missed frames after which a track is deleted.
        max_coast: missed frames during which a track is still reported (its prediction).
        birth_score: detections below this score do not start tracks (None: all do).
        score_momentum: track score = momentum * score + (1 - momentum) * detection score.
        coast_penalty: subtracted from a coasting track's reported score per missed frame.
        hit_bonus: added to the reported score times log(1 + matched detections): long-lived
            tracks are rarely false, so they should outrank young ones at equal detection scores.
    """

    min_hits: int = 3
    max_age: int = 2
    max_coast: int = 0
    birth_score: float | None = None
    score_momentum: float = 0.0
    coast_penalty: float = 0.0
    hit_bonus: float = 0.0


def check_fields(cls: type, values: Mapping[str, object], where: str) -> None:
    """Unknown keys are a ``ConfigError`` that lists the known ones."""
    known = {f.name for f in fields(cls)}
    bad = sorted(set(values) - known)
    if bad:
        raise ConfigError(f"{where}: unknown parameter(s) {bad}; known: {sorted(known)}")


class TrackSet:
    """Live tracks of one class: Kalman states plus per-track counters and carried attributes."""

    def __init__(self, kalman: BatchKalman, life: Lifecycle, ids: Iterator[int]):
        self.kf, self.life, self._ids = kalman, life, ids
        self.ids = np.zeros(0, np.int64)
        self.hits = np.zeros(0, np.int64)
        self.misses = np.zeros(0, np.int64)
        self.score = np.zeros(0, np.float64)
        self.attrs: dict[str, np.ndarray] | None = None  # last matched detection's attributes

    def __len__(self) -> int:
        return len(self.ids)

    def step(self, rows: np.ndarray, det_scores: np.ndarray, det_attrs: Mapping[str, np.ndarray], cols: np.ndarray):
        """Count a frame: matched ``rows`` got detections ``cols`` (their scores / attributes)."""
        self.misses += 1
        self.misses[rows] = 0
        self.hits[rows] += 1
        mom, latest = self.life.score_momentum, det_scores[cols]
        self.score[rows] = mom * self.score[rows] + (1 - mom) * latest if mom else latest  # 0 * old + new is new
        if self.attrs is not None:
            for k in self.attrs:
                self.attrs[k][rows] = det_attrs[k][cols]

    def birth(self, z: np.ndarray, scores: np.ndarray, attrs: Mapping[str, np.ndarray]) -> None:
        """Start tracks at measurements ``z`` (K, m)."""
        if self.life.birth_score is not None:
            keep = scores >= self.life.birth_score
            z, scores, attrs = z[keep], scores[keep], {k: v[keep] for k, v in attrs.items()}
        k = len(z)
        if k == 0:
            return
        self.kf.add(z)
        self.ids = np.concatenate([self.ids, np.fromiter(itertools.islice(self._ids, k), np.int64, k)])
        self.hits = np.concatenate([self.hits, np.ones(k, np.int64)])
        self.misses = np.concatenate([self.misses, np.zeros(k, np.int64)])
        self.score = np.concatenate([self.score, scores.astype(np.float64)])
        if self.attrs is None:
            self.attrs = {key: np.array(v, copy=True) for key, v in attrs.items()}
        else:
            keys = set(self.attrs) & set(attrs)
            self.attrs = {key: np.concatenate([self.attrs[key], attrs[key]]) for key in keys}

    def prune(self) -> None:
        """Delete tracks missed for more than ``max_age`` frames."""
        keep = self.misses <= self.life.max_age
        if keep.all():
            return
        self.kf.keep(keep)
        self.ids, self.hits, self.misses, self.score = (
            self.ids[keep],
            self.hits[keep],
            self.misses[keep],
            self.score[keep],
        )
        if self.attrs is not None:
            self.attrs = {k: v[keep] for k, v in self.attrs.items()}

    def reported(self, frame_count: int) -> np.ndarray:
        """(N,) bool: tracks to output in the sequence's ``frame_count``-th frame (1-based)."""
        confirmed = (self.hits >= self.life.min_hits) | (frame_count <= self.life.min_hits)
        return confirmed & (self.misses <= self.life.max_coast)

    def reported_scores(self, mask: np.ndarray) -> np.ndarray:
        bonus = self.life.hit_bonus * np.log1p(self.hits[mask]) if self.life.hit_bonus else 0.0
        return (self.score[mask] - self.life.coast_penalty * self.misses[mask] + bonus).astype(np.float32)
