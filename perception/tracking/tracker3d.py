"""3D multi-object tracker: per-class Kalman filters on boxes, matched to detections every frame.

State per track: ``x y z l w h yaw vx vy vz`` (the box plus a constant velocity). With ego poses
the tracks live in the world frame, so the vehicle's own motion is not mistaken for the
objects'; without them (KITTI tracking has no oxts here) they live in the frame of the boxes.
Exercised by ``perception track`` and ``benchmarks/bench_tracking.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from perception.core import SE3, Boxes3D, wrap_angle
from perception.errors import ConfigError
from perception.tracking.association import SIMILARITIES_3D, check_similarity, mahalanobis, match, similarity_3d
from perception.tracking.kalman import BatchKalman
from perception.tracking.tracks import Lifecycle, TrackSet, check_fields

_YAW = 6


@dataclass(frozen=True)
class Params3D(Lifecycle):
    """Parameters of one class (see ``Lifecycle`` for birth/death/output rules).

    Attributes:
        similarity: ``giou_3d``, ``iou_3d``, ``iou_bev``, ``dist_3d``, ``dist_bev`` or ``mahalanobis``.
        threshold: smallest similarity of a match (distances are negated: -2.0 means 2 m).
        matcher: ``hungarian`` or ``greedy``.
        gate_m: pairs whose BEV centres are farther apart never match (and cost nothing).
        report_detection: a matched track reports its detection's centre (heading aligned with the
            track) rather than the filtered one; coasting tracks always report their prediction.
        measure_var: (7,) detection noise variances of x y z l w h yaw.
        process_var: (10,) process noise per time step of x y z l w h yaw vx vy vz.
        init_var: (10,) initial variances (velocities start unknown).
        time_step_s: the model's time step; timestamps are measured in it and velocities reported in m/s.
    """

    similarity: str = "giou_3d"
    threshold: float = -0.2
    matcher: str = "hungarian"
    gate_m: float = 5.0
    report_detection: bool = False
    measure_var: tuple[float, ...] = (1.0,) * 7
    process_var: tuple[float, ...] = (1.0,) * 7 + (0.01,) * 3
    init_var: tuple[float, ...] = (10.0,) * 7 + (1e4,) * 3
    time_step_s: float = 0.1

    @classmethod
    def of(cls, value: Params3D | Mapping[str, Any] | None, base: Params3D | None = None) -> Params3D:
        base = base if base is not None else cls()
        if value is None:
            return base
        if isinstance(value, Params3D):
            return value
        check_fields(cls, value, "tracker")
        params = replace(base, **value)
        check_similarity(params.similarity, SIMILARITIES_3D)
        if params.matcher not in ("hungarian", "greedy"):
            raise ConfigError(f"tracker: matcher {params.matcher!r}: choose from ['greedy', 'hungarian']")
        return params


class Tracker3D:
    """Track ``Boxes3D`` over a sequence; one call of ``update`` per frame.

    Args:
        params: parameters for every class (a ``Params3D`` or a dict of its fields).
        per_class: label -> overrides of ``params`` for that class.
    """

    def __init__(self, params: Params3D | Mapping[str, Any] | None = None, per_class: Mapping[int, Any] | None = None):
        self.params = Params3D.of(params)
        self.per_class = {int(k): Params3D.of(v, self.params) for k, v in (per_class or {}).items()}
        self.reset()

    def reset(self) -> None:
        """Forget every track (start of a new sequence); ids restart at 1."""
        self._sets: dict[int, TrackSet] = {}
        self._ids = itertools.count(1)
        self._frames = 0
        self._last_ts: float | None = None

    def _set(self, label: int) -> TrackSet:
        if label not in self._sets:
            p = self.per_class.get(label, self.params)
            kf = BatchKalman(p.measure_var, p.process_var, p.init_var, n_rates=3)
            self._sets[label] = TrackSet(kf, p, self._ids)
        return self._sets[label]

    def update(self, boxes: Boxes3D, ego_pose: SE3 | None = None, timestamp_s: float | None = None) -> Boxes3D:
        """Advance one frame.

        Args:
            boxes: this frame's detections (scores used when present), in the ego frame.
            ego_pose: ``T_world_from_ego``; tracks are kept in the world frame when given.
            timestamp_s: frame time; without it frames are ``time_step_s`` apart.

        Returns:
            The reported tracks in the ego frame, with ``track_ids``, ``scores`` and
            ``velocity_xy`` (m/s), carrying the attributes of each track's last detection.
        """
        self._frames += 1
        dt = 1.0
        if timestamp_s is not None:
            if self._last_ts is not None:
                dt = (timestamp_s - self._last_ts) / self.params.time_step_s
            self._last_ts = timestamp_s
        dets = boxes.transformed(ego_pose) if ego_pose is not None else boxes
        scores = dets.scores if dets.scores is not None else np.ones(len(dets), np.float32)
        present = set(dets.labels.tolist())
        outs = []
        for label in sorted(set(self._sets) | present):
            # one class in the frame (the usual case): views of every detection, no per-class copies
            sel = slice(None) if present == {label} else np.flatnonzero(dets.labels == label)
            sub_attrs = {k: v[sel] for k, v in dets.attributes.items()}
            outs.append(self._step_class(label, dets.xyz_lwh_yaw[sel].astype(np.float64), scores[sel], sub_attrs, dt))
        out = outs[0] if len(outs) == 1 else Boxes3D.concatenate(outs) if outs else _empty_tracks()
        return out.transformed(ego_pose.inverse()) if ego_pose is not None else out

    def _step_class(self, label: int, z: np.ndarray, scores: np.ndarray, attrs: dict, dt: float) -> Boxes3D:
        ts = self._set(label)
        p = ts.life
        ts.kf.predict(dt)
        pred = ts.kf.x[:, :7]
        if p.similarity == "mahalanobis":
            sim = -mahalanobis(pred, ts.kf.innovation_cov(), z)
        else:
            sim = similarity_3d(p.similarity, pred, z, p.gate_m)
        rows, cols = match(sim, p.threshold, p.matcher)
        zm, pred_yaw = z[cols], pred[rows, _YAW]
        diff = wrap_angle(zm[:, _YAW] - pred_yaw)
        flip = np.abs(diff) > np.pi / 2  # a detector's heading is often off by pi: keep the track's
        zm[:, _YAW] = pred_yaw + wrap_angle(diff + flip * np.pi)
        ts.kf.update(rows, zm)
        ts.kf.x[:, _YAW] = wrap_angle(ts.kf.x[:, _YAW])
        ts.step(rows, scores.astype(np.float64), attrs, cols)
        if len(cols) < len(z):  # unmatched detections start tracks
            new = np.ones(len(z), bool)
            new[cols] = False
            ts.birth(z[new], scores[new], {k: v[new] for k, v in attrs.items()})
        show = ts.reported(self._frames)
        ids = ts.ids[show]
        boxes = ts.kf.x[:, :7]
        if p.report_detection:
            boxes = boxes.copy()
            boxes[rows, :3] = zm[:, :3]
        out = Boxes3D(
            boxes[show],
            np.full(len(ids), label, np.int64),
            scores=ts.reported_scores(show),
            track_ids=ids,
            velocity_xy=ts.kf.x[show, 7:9] / p.time_step_s,
            attributes={k: v[show] for k, v in (ts.attrs or {}).items()},
        )
        ts.prune()
        return out


def _empty_tracks() -> Boxes3D:
    e = Boxes3D.empty()
    return e.replace(
        scores=np.zeros(0, np.float32), track_ids=np.zeros(0, np.int64), velocity_xy=np.zeros((0, 2), np.float32)
    )
