"""Scenario of one synthetic sequence: a road, buildings, moving actors and the ego's path.

Everything is laid out in road coordinates ``(s, d)``: ``s`` metres along the road centre line,
``d`` metres to its left. The road is an arc of constant curvature ``kappa`` (1/m, 0 = straight)
in the flat *road frame* (x, y on the ground, z up, ground at z = 0). Traffic keeps right: lanes
with ``d < 0`` drive towards +s, lanes with ``d > 0`` towards -s. Every actor moves along its
own lane at its own lane's speed, so no two actors ever overlap::

    d:  -13.5 .. -9.5  sidewalk (pedestrians)     +9.5 .. +13.5
        -9.35 .. -7.65 parked cars                +7.65 .. +9.35
        -6.6           cyclists                   +6.6
        -5.25, -1.75   lanes towards +s (ego)     +1.75, +5.25 lanes towards -s
        -9.7, -13.6    lamp posts, trees          +9.7, +13.6
        <= -14.5       buildings                  >= +14.5

The ego drives in lane ``d = -1.75`` at constant speed; the lidar is 1.73 m above the ground.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.core import SE3, rotation_z

CLASSES = ("Car", "Pedestrian", "Cyclist")
CAR, PEDESTRIAN, CYCLIST = 0, 1, 2
LIDAR_HEIGHT_M = 1.73
EGO_LANE_D = -1.75
FRAME_PERIOD_S = 0.1
LANE_D = (-5.25, -1.75, 1.75, 5.25)
CYCLIST_D = 6.6
PARKED_D = 8.5
SIDEWALK_D = (10.2, 11.5, 12.8)  # pedestrian slots on each side, 1.3 m apart
BUILDING_D = 14.5
WINDOW_BACK_M, WINDOW_FRONT_M = 60.0, 110.0  # actors exist where the ego can sense them
# (mean l, w, h), (std l, w, h) per class, metres
_SIZE_MEAN = np.array([[4.0, 1.7, 1.5], [0.8, 0.6, 1.75], [1.8, 0.6, 1.7]])
_SIZE_STD = np.array([[0.3, 0.08, 0.1], [0.08, 0.05, 0.08], [0.1, 0.04, 0.06]])


@dataclass(frozen=True)
class Road:
    """A constant-curvature road; converts road coordinates to the road frame and back."""

    kappa: float  # 1/m, positive bends left

    def heading(self, s: np.ndarray) -> np.ndarray:
        """Road direction (rad, about +z) at ``s``."""
        return self.kappa * np.asarray(s, dtype=np.float64)

    def to_xy(self, s: np.ndarray, d: np.ndarray) -> np.ndarray:
        """(N,) s, d -> (N, 2) road-frame x, y."""
        s, d = np.asarray(s, dtype=np.float64), np.asarray(d, dtype=np.float64)
        if abs(self.kappa) < 1e-9:
            return np.stack([s, d], axis=-1)
        th = self.kappa * s
        r = 1.0 / self.kappa - d
        return np.stack([r * np.sin(th), 1.0 / self.kappa - r * np.cos(th)], axis=-1)

    def to_sd(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) road-frame x, y -> s, d (inverse of ``to_xy`` within the road's half-plane)."""
        xy = np.asarray(xy, dtype=np.float64)
        if abs(self.kappa) < 1e-9:
            return xy[..., 0], xy[..., 1]
        c = np.sign(self.kappa)
        vx, vy = xy[..., 0], xy[..., 1] - 1.0 / self.kappa
        return np.arctan2(c * vx, -c * vy) / self.kappa, 1.0 / self.kappa - c * np.hypot(vx, vy)

    def pose(self, s: float, d: float, z: float = 0.0) -> SE3:
        """Road-frame pose of a frame at ``(s, d)`` facing along the road, ``z`` above the ground."""
        x, y = self.to_xy(np.array([s]), np.array([d]))[0]
        return SE3.from_rt(rotation_z(float(self.heading(s))), [x, y, z])


@dataclass(frozen=True)
class Actors:
    """Every actor of a sequence (column-wise). Position at time t: ``s0 + speed * t`` along lane ``d0``."""

    kind: np.ndarray  # (N,) int64 CAR / PEDESTRIAN / CYCLIST
    track_id: np.ndarray  # (N,) int64, stable over the sequence
    s0: np.ndarray  # (N,) float64 m at t = 0
    d0: np.ndarray  # (N,) float64 m
    speed: np.ndarray  # (N,) float64 m/s along +s (negative: towards -s)
    backwards: np.ndarray  # (N,) bool, faces -s (oncoming, some parked cars)
    lwh: np.ndarray  # (N, 3) float64 m
    colour: np.ndarray  # (N, 3, 3) float64 BGR in [0, 1]: main, secondary, tertiary
    reflectivity: np.ndarray  # (N,) float64 lidar reflectivity in [0, 1]
    phase: np.ndarray  # (N,) float64 rad, gait / wobble phase of pedestrians

    def __len__(self) -> int:
        return len(self.kind)


@dataclass(frozen=True)
class Scenario:
    """A whole sequence: road, static structures (road-frame boxes), actors and the ego's motion."""

    road: Road
    ego_speed: float  # m/s along +s from s = 0
    actors: Actors
    statics: np.ndarray  # (B, 7) road-frame boxes of buildings, lamp posts, tree trunks and crowns
    static_colour: np.ndarray  # (B, 3) BGR in [0, 1]
    static_reflectivity: np.ndarray  # (B,)
    static_windows: np.ndarray  # (B,) bool, buildings (their walls get windows)
    sun_dir: np.ndarray  # (3,) unit vector towards the sun, road frame
    T_world_from_road: SE3  # world = the IMU frame of frame 0 (KITTI devkit convention)

    def ego_s(self, t_s: float) -> float:
        return self.ego_speed * t_s

    def T_road_from_ego(self, t_s: float) -> SE3:
        return self.road.pose(self.ego_s(t_s), EGO_LANE_D, LIDAR_HEIGHT_M)

    def actor_state(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Road-frame boxes (N, 7) and ground velocities (N, 2) of every actor at ``t_s``."""
        a = self.actors
        s = a.s0 + a.speed * t_s
        ped = a.kind == PEDESTRIAN
        wobble = np.where(ped, 0.06 * np.sin(0.7 * t_s + a.phase), 0.0)
        xy = self.road.to_xy(s, a.d0 + wobble)
        heading = self.road.heading(s)
        yaw = heading + np.where(a.backwards, np.pi, 0.0) + np.where(ped, 0.05 * np.cos(0.7 * t_s + a.phase), 0.0)
        boxes = np.column_stack([xy, a.lwh[:, 2] / 2, a.lwh, (yaw + np.pi) % (2 * np.pi) - np.pi])
        velocity = a.speed[:, None] * np.column_stack([np.cos(heading), np.sin(heading)])
        return boxes, velocity


def _lane_positions(rng: np.random.Generator, lo: float, hi: float, mean_gap: float, lengths: np.ndarray) -> list:
    """Non-overlapping centres along [lo, hi]: each slot is a length drawn from ``lengths`` + a random gap."""
    out, s = [], lo + rng.uniform(0, mean_gap)
    while s < hi:
        length = float(lengths[len(out) % len(lengths)])
        out.append(s + length / 2)
        s += length + 1.5 + rng.exponential(mean_gap)
    return out


def _span(speed: float, ego_speed: float, duration_s: float) -> tuple[float, float]:
    """Initial positions from which an actor at ``speed`` is within the ego's window at some time."""
    rel = (speed - ego_speed) * duration_s
    return -WINDOW_BACK_M - max(rel, 0.0), WINDOW_FRONT_M - min(rel, 0.0)


def _colours(rng: np.random.Generator, kind: int) -> np.ndarray:
    """(3, 3) BGR colours in [0, 1]: cars (paint, glass, tyre), people (top, trousers, skin/helmet)."""
    if kind == CAR:
        paints = np.array([[0.15, 0.15, 0.75], [0.7, 0.35, 0.1], [0.85, 0.85, 0.85], [0.6, 0.6, 0.62],
                           [0.12, 0.12, 0.12], [0.2, 0.4, 0.15], [0.1, 0.7, 0.85], [0.45, 0.2, 0.5]])  # fmt: skip
        main = np.clip(paints[rng.integers(len(paints))] + rng.normal(0, 0.04, 3), 0, 1)
        return np.array([main, [0.35, 0.25, 0.2], [0.08, 0.08, 0.08]])
    top = rng.uniform(0.1, 0.95, 3)
    trousers = np.array([[0.4, 0.2, 0.1], [0.1, 0.1, 0.1], [0.45, 0.6, 0.65], [0.3, 0.3, 0.3]])[rng.integers(4)]
    skin = np.array([0.55, 0.7, 0.9]) * rng.uniform(0.55, 1.0) if kind == PEDESTRIAN else rng.uniform(0.2, 1.0, 3)
    return np.array([top, trousers, skin])


def _lane_plan(rng: np.random.Generator, ego_speed: float, density: float) -> list[tuple]:
    """(kind, d, speed, backwards, mean_gap_m) for every lane or slot of actors."""
    plan = [
        (CAR, LANE_D[1], ego_speed, False, 45.0),
        (CAR, LANE_D[0], ego_speed + rng.uniform(-3, 3), False, 35.0),
        (CAR, LANE_D[2], -rng.uniform(7, 13), True, 45.0),
        (CAR, LANE_D[3], -rng.uniform(7, 13), True, 45.0),
        (CYCLIST, -CYCLIST_D, rng.uniform(3, 6), False, 55.0),
        (CYCLIST, CYCLIST_D, -rng.uniform(3, 6), True, 55.0),
    ]
    for side in (-1, 1):
        plan.append((CAR, side * PARKED_D, 0.0, None, 40.0))
        for d in SIDEWALK_D:
            speed = 0.0 if rng.random() < 0.2 else rng.uniform(0.6, 1.6) * rng.choice([-1, 1])
            plan.append((PEDESTRIAN, side * d, speed, speed < 0, 60.0))
    return [(k, d, v, b, gap / density) for k, d, v, b, gap in plan]


def make_actors(rng: np.random.Generator, ego_speed: float, duration_s: float, density: float) -> Actors:
    rows = []
    for kind, d, speed, backwards, gap in _lane_plan(rng, ego_speed, density):
        mean, std = _SIZE_MEAN[kind], _SIZE_STD[kind]
        lwh = np.clip(rng.normal(mean, std, (64, 3)), mean - 3 * std, mean + 3 * std)
        lo, hi = _span(speed, ego_speed, duration_s)
        for j, s in enumerate(_lane_positions(rng, lo, hi, gap, lwh[:, 0])):
            if d == EGO_LANE_D and -8.0 < s < 10.0:  # the ego's own place in its lane
                continue
            flip = bool(rng.random() < 0.3) if backwards is None else backwards
            rows.append((kind, s, d, speed, flip, lwh[j % 64], _colours(rng, kind)))
    n = len(rows)
    kind = np.array([r[0] for r in rows], dtype=np.int64)
    refl = np.where(kind == CAR, rng.uniform(0.35, 0.8, n), rng.uniform(0.2, 0.55, n))
    return Actors(
        kind=kind, track_id=rng.permutation(n).astype(np.int64), s0=np.array([r[1] for r in rows]),
        d0=np.array([r[2] for r in rows]), speed=np.array([r[3] for r in rows]),
        backwards=np.array([r[4] for r in rows], dtype=bool), lwh=np.array([r[5] for r in rows]).reshape(n, 3),
        colour=np.array([r[6] for r in rows]).reshape(n, 3, 3), reflectivity=refl, phase=rng.uniform(0, 2 * np.pi, n),
    )  # fmt: skip


def make_buildings(rng: np.random.Generator, road: Road, s_lo: float, s_hi: float) -> tuple[np.ndarray, ...]:
    """Blocks along both sides of the road: (B, 7) road-frame boxes, (B, 3) colours, (B,) reflectivity."""
    boxes = []
    for side in (-1, 1):
        s = s_lo
        while s < s_hi:
            length, depth, height = rng.uniform(8, 30), rng.uniform(8, 15), rng.uniform(5, 18)
            d = side * (BUILDING_D + rng.uniform(0, 4) + depth / 2)
            xy = road.to_xy(np.array([s + length / 2]), np.array([d]))[0]
            boxes.append([xy[0], xy[1], height / 2, length, depth, height, float(road.heading(s + length / 2))])
            s += length + rng.uniform(2, 12)
    b = len(boxes)
    tint = rng.uniform(0.35, 0.8, (b, 1)) * np.array([[0.85, 0.9, 1.0]]) + rng.normal(0, 0.05, (b, 3))
    return np.array(boxes), np.clip(tint, 0, 1), rng.uniform(0.15, 0.5, b)


def make_props(rng: np.random.Generator, road: Road, s_lo: float, s_hi: float) -> tuple[np.ndarray, ...]:
    """Lamp posts at the kerb and trees on the verge (clutter that is not an actor), like ``make_buildings``."""
    boxes, colour, refl = [], [], []
    for side in (-1, 1):
        for s in np.arange(s_lo + rng.uniform(0, 30), s_hi, 30.0):  # lamp posts every 30 m
            boxes.append((s, side * 9.7, 0.0, 0.25, 0.25, 5.0))
            colour.append([0.45, 0.45, 0.47])
            refl.append(0.6)
        s = s_lo + rng.uniform(0, 20)
        while s < s_hi:  # trees: a trunk and a crown
            crown, height = rng.uniform(1.8, 2.6), rng.uniform(4.0, 6.5)
            boxes += [
                (s, side * 13.6, 0.0, 0.35, 0.35, height - 1.5),
                (s, side * 13.6, height - 2.6, crown, crown, 2.6),
            ]
            colour += [[0.15, 0.25, 0.35], np.clip([0.15, 0.45, 0.25] + rng.normal(0, 0.04, 3), 0, 1)]
            refl += [0.3, 0.15]
            s += rng.uniform(12, 40)
    b = np.array(boxes)
    xy = road.to_xy(b[:, 0], b[:, 1])
    out = np.column_stack([xy, b[:, 2] + b[:, 5] / 2, b[:, 3:6], road.heading(b[:, 0])])
    return out, np.array(colour), np.array(refl)


def make_scenario(seed: int, sequence: int, frames: int, density: float, T_velo_from_imu: SE3) -> Scenario:
    """The deterministic scenario of ``sequence`` under ``seed`` (``frames`` at 10 Hz)."""
    rng = np.random.default_rng([seed, sequence, 7])
    duration = frames * FRAME_PERIOD_S
    road = Road(kappa=float(rng.choice([0.0, 1.0]) * rng.uniform(-1 / 400, 1 / 400)))
    ego_speed = float(rng.uniform(5, 11))
    actors = make_actors(rng, ego_speed, duration, density)
    s_range = (-150.0, ego_speed * duration + 250.0)
    buildings, props = make_buildings(rng, road, *s_range), make_props(rng, road, *s_range)
    statics, colour, refl = (np.concatenate([b, p]) for b, p in zip(buildings, props))
    windows = np.arange(len(statics)) < len(buildings[0])
    elevation, azimuth = rng.uniform(0.5, 1.1), rng.uniform(-np.pi, np.pi)
    sun = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
    T_road_from_imu0 = road.pose(0.0, EGO_LANE_D, LIDAR_HEIGHT_M) @ T_velo_from_imu
    return Scenario(road, ego_speed, actors, statics, colour, refl, windows, sun, T_road_from_imu0.inverse())


# Road surface: zones by |d| and painted lines (centre d, half width m, dashed) shared by lidar and camera.
ZONE_EDGES = (7.0, 9.5, 13.5)  # road | parking strip | sidewalk | verge
_LINES = ((0.0, 0.2, False), (3.5, 0.075, True), (7.0, 0.1, False))
DASH_PERIOD_M, DASH_LENGTH_M = 9.0, 3.0


def surface_zone(d: np.ndarray) -> np.ndarray:
    """(N,) int64 zone of ground points: 0 road, 1 parking strip, 2 sidewalk, 3 verge."""
    return np.searchsorted(np.array(ZONE_EDGES), np.abs(d))


def paint_coverage(s: np.ndarray, d: np.ndarray, pixel_m: np.ndarray | float = 0.0) -> np.ndarray:
    """(N,) fraction of a ground sample of size ``pixel_m`` covered by lane paint (0 or 1 when 0)."""
    ad = np.abs(d)
    cover = np.zeros(np.shape(d))
    for centre, half, dashed in _LINES:
        dist = np.abs(ad - centre)
        c = np.clip((half - dist) / np.maximum(pixel_m, 1e-6) + 0.5, 0.0, 1.0)
        if dashed:
            c = c * ((np.asarray(s) % DASH_PERIOD_M) < DASH_LENGTH_M)
        cover = np.maximum(cover, c)
    return cover


# Parts of each class, as fractions of the actor's box: x0 x1 y0 y1 (centred), z0 z1 (from the
# bottom), colour role (0-2 the actor's colours, 3 headlight, 4 tail light, 5 tyre), lidar-solid, decal,
# wheel (0 no; drawn round, seen from: 1 the left, 2 the right, 3 either side).
_PARTS = {
    CAR: np.array([
        [-0.5, 0.5, -0.5, 0.5, 0.2, 0.55, 0, 1, 0, 0],  # body
        [-0.32, 0.18, -0.45, 0.45, 0.55, 0.93, 1, 1, 0, 0],  # cabin glass
        [-0.3, 0.16, -0.43, 0.43, 0.93, 1.0, 0, 1, 0, 0],  # roof
        [0.19, 0.39, 0.38, 0.48, 0.0, 0.36, 2, 0, 0, 1], [0.19, 0.39, -0.48, -0.38, 0.0, 0.36, 2, 0, 0, 2],  # wheels
        [-0.39, -0.19, 0.38, 0.48, 0.0, 0.36, 2, 0, 0, 1], [-0.39, -0.19, -0.48, -0.38, 0.0, 0.36, 2, 0, 0, 2],
        [0.49, 0.5, 0.26, 0.44, 0.42, 0.52, 3, 0, 1, 0], [0.49, 0.5, -0.44, -0.26, 0.42, 0.52, 3, 0, 1, 0],  # lights
        [-0.5, -0.49, 0.26, 0.44, 0.42, 0.52, 4, 0, 1, 0], [-0.5, -0.49, -0.44, -0.26, 0.42, 0.52, 4, 0, 1, 0],
    ]),
    PEDESTRIAN: np.array([
        [-0.1, 0.1, 0.04, 0.3, 0.0, 0.48, 1, 1, 0, 0], [-0.1, 0.1, -0.3, -0.04, 0.0, 0.48, 1, 1, 0, 0],  # legs
        [-0.2, 0.2, -0.42, 0.42, 0.48, 0.83, 0, 1, 0, 0],  # torso
        [-0.14, 0.14, -0.2, 0.2, 0.86, 1.0, 2, 1, 0, 0],  # head
    ]),
    CYCLIST: np.array([
        [0.2, 0.5, -0.05, 0.05, 0.0, 0.32, 5, 1, 0, 3], [-0.5, -0.2, -0.05, 0.05, 0.0, 0.32, 5, 1, 0, 3],  # wheels
        [-0.3, 0.3, -0.06, 0.06, 0.2, 0.45, 2, 1, 0, 0],  # frame
        [-0.14, 0.1, -0.3, 0.3, 0.3, 0.56, 1, 1, 0, 0],  # legs
        [-0.12, 0.16, -0.38, 0.38, 0.56, 0.85, 0, 1, 0, 0],  # torso
        [0.02, 0.22, -0.2, 0.2, 0.87, 1.0, 2, 1, 0, 0],  # head with helmet
    ]),
}  # fmt: skip
_FIXED_BGR = np.array([[0.8, 0.95, 1.0], [0.1, 0.1, 0.75], [0.07, 0.07, 0.07]])
STRIDE_M = 1.4


def actor_parts(kind: np.ndarray, boxes: np.ndarray, colour: np.ndarray, gait_rad: np.ndarray) -> dict:
    """Solid parts that make up each actor, all inside its box.

    Args:
        kind: (N,) classes; boxes: (N, 7) actor boxes; colour: (N, 3, 3) BGR in [0, 1].
        gait_rad: (N,) walking phase: pedestrians' legs swing with ``sin(gait_rad)``.

    Returns:
        dict of (P, ...) arrays: ``boxes`` (P, 7), ``colour`` (P, 3), ``owner`` (P,) actor index,
        ``solid`` (P,) bool (the lidar sees it), ``decal`` (P,) bool, ``wheel`` (P,) int (0: a box; else drawn round, seen from 1 the left, 2 the right, 3 both).
    """
    out = {"boxes": [], "colour": [], "owner": [], "solid": [], "decal": [], "wheel": []}
    for k, template in _PARTS.items():
        idx = np.flatnonzero(kind == k)
        if len(idx) == 0:
            continue
        b, t = boxes[idx], template
        lwh = b[:, None, 3:6]
        centre = np.stack([(t[:, 0] + t[:, 1]) / 2, (t[:, 2] + t[:, 3]) / 2, (t[:, 4] + t[:, 5]) / 2 - 0.5], -1) * lwh
        if k == PEDESTRIAN:  # legs swing in opposite phase
            swing = 0.2 * np.sin(gait_rad[idx])[:, None] * np.array([1.0, -1.0, 0.0, 0.0])
            centre[..., 0] += swing * lwh[..., 0]
        size = np.stack([t[:, 1] - t[:, 0], t[:, 3] - t[:, 2], t[:, 5] - t[:, 4]], -1) * lwh
        c, s = np.cos(b[:, 6])[:, None], np.sin(b[:, 6])[:, None]
        xyz = b[:, None, :3] + np.stack([c * centre[..., 0] - s * centre[..., 1],
                                         s * centre[..., 0] + c * centre[..., 1], centre[..., 2]], -1)  # fmt: skip
        yaw = np.broadcast_to(b[:, None, 6:7], xyz.shape[:2] + (1,))
        out["boxes"].append(np.concatenate([xyz, size, yaw], -1).reshape(-1, 7))
        palette = np.concatenate([colour[idx], np.broadcast_to(_FIXED_BGR, (len(idx), 3, 3))], axis=1)
        out["colour"].append(palette[:, t[:, 6].astype(int)].reshape(-1, 3))
        out["owner"].append(np.repeat(idx, len(t)))
        out["solid"].append(np.tile(t[:, 7] > 0, len(idx)))
        out["decal"].append(np.tile(t[:, 8] > 0, len(idx)))
        out["wheel"].append(np.tile(t[:, 9].astype(np.int64), len(idx)))
    if not out["boxes"]:
        return {"boxes": np.zeros((0, 7)), "colour": np.zeros((0, 3)), "owner": np.zeros(0, np.int64),
                "solid": np.zeros(0, bool), "decal": np.zeros(0, bool), "wheel": np.zeros(0, np.int64)}  # fmt: skip
    return {k: np.concatenate(v) for k, v in out.items()}
