"""Track trails: the recent positions of every track, kept in a fixed frame so they stay put on
the ground while the ego moves (3D), or in pixels (2D)."""

from __future__ import annotations

from collections import deque

import numpy as np

from perception.core import SE3


class TrailHistory:
    """The last ``length`` positions of each track id; tracks unseen for ``max_age`` updates are forgotten.

    3D use: ``update(ids, box_centres_ego, ego_pose)`` stores world positions (``T_world_from_ego``;
    without poses the ego frame is the world), ``trails(ego_pose)`` returns them in the current ego
    frame. 2D use: pass pixel positions and no poses.
    """

    def __init__(self, length: int = 30, max_age: int = 10):
        self.length, self.max_age = length, max_age
        self._points: dict[int, deque] = {}
        self._last_seen: dict[int, int] = {}
        self._step = 0

    def update(self, track_ids: np.ndarray | None, positions: np.ndarray, ego_pose: SE3 | None = None) -> None:
        """Record ``positions`` ((N, D) floats, D = 2 or 3) of ``track_ids`` ((N,) int; negative ids ignored)."""
        self._step += 1
        if track_ids is not None and len(track_ids):
            pos = np.asarray(positions, dtype=np.float64)
            if ego_pose is not None:
                pos = ego_pose.apply(pos)
            for tid, p in zip(np.asarray(track_ids).tolist(), pos):
                if tid < 0:
                    continue
                self._points.setdefault(tid, deque(maxlen=self.length)).append(p)
                self._last_seen[tid] = self._step
        for tid in [t for t, s in self._last_seen.items() if self._step - s > self.max_age]:
            del self._points[tid], self._last_seen[tid]

    def trails(self, ego_pose: SE3 | None = None) -> dict[int, np.ndarray]:
        """Track id -> (K, D) positions, oldest first, in the current ego frame (or pixels)."""
        out = {}
        T_ego_from_world = ego_pose.inverse() if ego_pose is not None else None
        for tid, pts in self._points.items():
            arr = np.array(pts)
            out[tid] = T_ego_from_world.apply(arr) if T_ego_from_world is not None else arr
        return out

    def reset(self) -> None:
        self._points.clear()
        self._last_seen.clear()
