"""A simulated spinning lidar: rays of fixed elevation (rings) x azimuth, cast against a ground
plane and oriented boxes (buildings, actor parts); the nearest hit wins, so near objects hide far
ones. All in the lidar (= ego) frame: x forward, y left, z up, metres.

Each box is tested only against the rays (azimuth columns x rings) its bounds can cover, all
pairs at once, so a frame of ~300 boxes costs a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from perception.core import bev_corners


@dataclass(frozen=True)
class LidarModel:
    """Ring and beam layout (HDL-64-like field of view) and the sensor's imperfections."""

    rings: int = 32
    azimuth_steps: int = 1024
    fov_up_deg: float = 2.0
    fov_down_deg: float = -24.8
    max_range_m: float = 100.0
    range_noise_m: float = 0.015
    dropout: float = 0.03

    @cached_property
    def directions(self) -> np.ndarray:
        """(rings * azimuth_steps, 3) unit rays, ring-major, azimuth from -pi (behind, turning left)."""
        elevation = np.deg2rad(np.linspace(self.fov_up_deg, self.fov_down_deg, self.rings))
        azimuth = -np.pi + (np.arange(self.azimuth_steps) + 0.5) * (2 * np.pi / self.azimuth_steps)
        ce, se = np.cos(elevation)[:, None], np.sin(elevation)[:, None]
        d = np.stack(
            [ce * np.cos(azimuth), ce * np.sin(azimuth), np.broadcast_to(se, (self.rings, self.azimuth_steps))]
        )
        return np.ascontiguousarray(d.reshape(3, -1).T)

    def _candidate_rays(self, boxes: np.ndarray, reach_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ray, box) pairs worth testing: the azimuth columns and rings that each box's bounds cover,
        less the rays that meet the ground (or the range limit) before the box (``reach_m`` (R*A,)
        horizontal distance at which each ray ends).

        Returns (P,) ray indices and (P,) box indices.
        """
        corners = bev_corners(boxes)  # (K, 4, 2)
        centre_az = np.arctan2(boxes[:, 1], boxes[:, 0])
        rel = (np.arctan2(corners[..., 1], corners[..., 0]) - centre_az[:, None] + np.pi) % (2 * np.pi) - np.pi
        reach = np.hypot(boxes[:, 3], boxes[:, 4]) / 2
        dist = np.hypot(boxes[:, 0], boxes[:, 1])
        ok = (dist - reach < self.max_range_m) & (np.ptp(rel, axis=1) < np.pi * 0.95) & (dist > reach)
        step = 2 * np.pi / self.azimuth_steps
        c0 = np.floor((centre_az + rel.min(axis=1) + np.pi) / step).astype(np.int64)
        nc = np.ceil((centre_az + rel.max(axis=1) + np.pi) / step).astype(np.int64) - c0 + 1
        near, far = np.maximum(dist - reach, 0.1), dist + reach
        z_lo, z_hi = boxes[:, 2] - boxes[:, 5] / 2, boxes[:, 2] + boxes[:, 5] / 2
        elev_hi = np.rad2deg(np.maximum(np.arctan2(z_hi, near), np.arctan2(z_hi, far)))
        elev_lo = np.rad2deg(np.minimum(np.arctan2(z_lo, near), np.arctan2(z_lo, far)))
        ring_step = (self.fov_up_deg - self.fov_down_deg) / max(self.rings - 1, 1)
        r0 = np.clip(np.floor((self.fov_up_deg - elev_hi) / ring_step), 0, self.rings).astype(np.int64)
        r1 = np.clip(np.ceil((self.fov_up_deg - elev_lo) / ring_step) + 1, 0, self.rings).astype(np.int64)
        nr = np.where(ok, np.maximum(r1 - r0, 0), 0)
        count = nr * nc
        box = np.repeat(np.arange(len(boxes)), count)
        local = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        ring = r0[box] + local // nc[box]
        col = (c0[box] + local % nc[box]) % self.azimuth_steps
        ray = ring * self.azimuth_steps + col
        keep = reach_m[ray] >= near[box]
        return ray[keep], box[keep]

    def cast(
        self,
        boxes: np.ndarray,
        reflectivity: np.ndarray,
        ground_z: float,
        ground_reflectivity: Callable[[np.ndarray], np.ndarray],
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sweep once.

        Args:
            boxes: (K, 7) solid boxes in the lidar frame.
            reflectivity: (K,) in [0, 1].
            ground_z: height of the ground plane in the lidar frame (m, negative).
            ground_reflectivity: (N, 2) ground hit x, y -> (N,) reflectivity (lane paint is bright).
            rng: source of range noise, dropout and intensity noise.

        Returns:
            points: (N, 4) float32 x, y, z, intensity in [0, 1].
            hit: (N,) int64 index of the box each point lies on, -1 for the ground.
        """
        dirs = self.directions
        with np.errstate(divide="ignore"):
            t_best = np.where(dirs[:, 2] < 0, ground_z / dirs[:, 2], np.inf)
        hit = np.full(len(dirs), -1, np.int64)
        cos_inc = -dirs[:, 2].copy()
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
        if len(boxes):
            reach = np.minimum(t_best, self.max_range_m) * np.hypot(dirs[:, 0], dirs[:, 1])
            ray, box = self._candidate_rays(boxes, reach)
            t, cos = _slab(dirs[ray], boxes[box])
            np.minimum.at(t_best, ray, t)
            won = np.isfinite(t) & (t == t_best[ray])
            hit[ray[won]], cos_inc[ray[won]] = box[won], cos[won]
        keep = (t_best <= self.max_range_m) & (rng.random(len(dirs)) >= self.dropout)
        t = t_best[keep] + rng.normal(0.0, self.range_noise_m, int(keep.sum()))
        xyz = dirs[keep] * t[:, None]
        hit = hit[keep]
        refl = ground_reflectivity(xyz[:, :2])
        on_box = hit >= 0
        refl[on_box] = np.asarray(reflectivity)[hit[on_box]]
        intensity = np.clip(refl * (0.4 + 0.6 * cos_inc[keep]) + rng.normal(0.0, 0.02, len(t)), 0.0, 1.0)
        return np.column_stack([xyz, intensity]).astype(np.float32), hit


def _slab(dirs: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intersections of rays from the origin (P, 3) with oriented boxes (P, 7), pair by pair (slab method).

    Returns (P,) entry distances (inf for a miss) and |cos| of the incidence on the face hit.
    """
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    # ray and sensor in box coordinates (rotate by -yaw)
    d = np.column_stack([c * dirs[:, 0] + s * dirs[:, 1], -s * dirs[:, 0] + c * dirs[:, 1], dirs[:, 2]])
    o = -np.column_stack([c * boxes[:, 0] + s * boxes[:, 1], -s * boxes[:, 0] + c * boxes[:, 1], boxes[:, 2]])
    half = boxes[:, 3:6] / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t1, t2 = (-half - o) * inv, (half - o) * inv
    near = np.minimum(t1, t2)
    t_near, t_far = near.max(axis=1), np.maximum(t1, t2).min(axis=1)
    ok = (t_near <= t_far) & (t_near > 0)
    cos = np.abs(np.take_along_axis(d, near.argmax(axis=1)[:, None], axis=1)[:, 0])
    return np.where(ok, t_near, np.inf), cos
