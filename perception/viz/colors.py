"""Fixed colours: one per class (by name, so Car is the same orange in every dataset) and one
per track id (a golden-ratio walk round the hue circle, so neighbouring ids look different).

All colours are BGR ``tuple[int, int, int]`` as OpenCV draws them.
"""

from __future__ import annotations

import colorsys

import numpy as np

Color = tuple[int, int, int]

# Names of the common driving classes across KITTI, nuScenes, Waymo and AV2 (lower case).
_NAMED: dict[str, Color] = {
    "car": (0, 140, 255),  # orange
    "vehicle": (0, 140, 255),
    "regular_vehicle": (0, 140, 255),
    "van": (0, 200, 255),
    "truck": (0, 215, 160),
    "bus": (40, 180, 40),
    "trailer": (90, 160, 60),
    "construction_vehicle": (40, 120, 160),
    "pedestrian": (60, 60, 240),  # red
    "person_sitting": (120, 90, 240),
    "cyclist": (240, 200, 40),  # light blue
    "bicycle": (240, 200, 40),
    "motorcycle": (220, 120, 60),
    "barrier": (170, 170, 170),
    "traffic_cone": (60, 220, 255),
    "sign": (200, 60, 200),
}
# For class names not above: a fixed palette indexed by label.
_PALETTE: tuple[Color, ...] = (
    (75, 25, 230), (75, 180, 60), (25, 225, 255), (200, 130, 0), (48, 130, 245), (180, 30, 145),
    (240, 240, 70), (230, 50, 240), (60, 245, 210), (212, 190, 250), (128, 128, 0), (255, 190, 220),
)  # fmt: skip
GT_COLOR: Color = (80, 220, 80)  # ground truth drawn in green when shown beside predictions


def class_color(label: int, class_names: tuple[str, ...] | list[str] | None = None) -> Color:
    """The colour of class ``label`` (index into ``class_names``)."""
    if class_names is not None and 0 <= label < len(class_names):
        name = str(class_names[label]).lower().replace(" ", "_").replace(".", "_")
        if name in _NAMED:
            return _NAMED[name]
    return _PALETTE[int(label) % len(_PALETTE)]


def track_color(track_id: int) -> Color:
    """A bright colour that is the same for a track id in every frame and every run.

    Fibonacci hashing in integers (not floats), so 64-bit ids (Waymo, AV2 UUID hashes) spread too.
    """
    hue = ((int(track_id) * 0x9E3779B1) & 0xFFFFFFFF) / 2**32
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def box_colors(labels: np.ndarray, track_ids: np.ndarray | None, class_names, by_track: bool) -> list[Color]:
    """Per-box colours: by track id when ``by_track`` and ids are known (>= 0), else by class."""
    out = []
    for i, label in enumerate(labels):
        if by_track and track_ids is not None and track_ids[i] >= 0:
            out.append(track_color(int(track_ids[i])))
        else:
            out.append(class_color(int(label), class_names))
    return out


def _ramp(n: int = 256) -> np.ndarray:
    """A short piecewise-linear "turbo-like" ramp, blue -> cyan -> green -> yellow -> red, (n, 3) uint8 BGR."""
    stops = np.array([[180, 60, 30], [220, 170, 40], [90, 220, 90], [40, 200, 240], [40, 60, 240]], np.float32)
    pos = np.linspace(0.0, len(stops) - 1, n)
    lo = np.minimum(pos.astype(np.int64), len(stops) - 2)
    frac = (pos - lo)[:, None]
    return (stops[lo] * (1 - frac) + stops[lo + 1] * frac).astype(np.uint8)


HEIGHT_LUT = _ramp()


def ground_z_range(z_m: np.ndarray, above_m: float = 3.0) -> tuple[float, float]:
    """Heights for the colour ramp: from just under the ground (the 5th percentile of ``z``) to
    ``above_m`` over it, so clouds look alike whether the ego origin is on the ground or the roof."""
    z = np.asarray(z_m, dtype=np.float32)
    if len(z) == 0:
        return -2.0, 1.0
    ground = float(np.partition(z, len(z) // 20)[len(z) // 20])
    return ground - 0.2, ground + above_m


def height_colormap(z_m: np.ndarray, z_min: float = -2.0, z_max: float = 2.0) -> np.ndarray:
    """(N,) heights in metres -> (N, 3) uint8 BGR, blue (low) through green to red (high)."""
    scale = 255.0 / max(z_max - z_min, 1e-6)
    idx = np.clip((np.asarray(z_m, dtype=np.float32) - z_min) * scale, 0, 255).astype(np.uint8)
    return HEIGHT_LUT[idx]
