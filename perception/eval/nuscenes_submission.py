"""The nuScenes detection submission JSON: write ours, read anyone's.

Format (nuScenes detection challenge)::

    {"meta": {"use_camera": false, "use_lidar": true, "use_radar": false, "use_map": false, "use_external": false},
     "results": {"<sample_token>": [{"sample_token": "...", "translation": [x, y, z], "size": [w, l, h],
                 "rotation": [qw, qx, qy, qz], "velocity": [vx, vy], "detection_name": "car",
                 "detection_score": 0.9, "attribute_name": "vehicle.moving"}, ...]}}

Boxes are in the global frame: centre, size as width / length / height, heading as a quaternion
about +z. Exercised by ``perception val`` with ``save_json=...`` on nuScenes datasets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from perception.core import SE3, Boxes3D, wrap_angle
from perception.errors import CorruptFileError, DataError, UnknownClassError
from perception.files import atomic_write

META_KEYS = ("use_camera", "use_lidar", "use_radar", "use_map", "use_external")
# attribute written when a prediction has none (as mmdetection3d does); '' for classes without attributes
DEFAULT_ATTRIBUTE = {
    "car": "vehicle.parked", "truck": "vehicle.parked", "bus": "vehicle.moving", "trailer": "vehicle.parked",
    "construction_vehicle": "vehicle.parked", "pedestrian": "pedestrian.moving", "motorcycle": "cycle.without_rider",
    "bicycle": "cycle.without_rider", "traffic_cone": "", "barrier": "",
}  # fmt: skip
_BOX_KEYS = ("translation", "size", "rotation", "detection_name", "detection_score")


def _box_rows(token: str, boxes: Boxes3D, class_names: tuple[str, ...]) -> list[dict]:
    vel = boxes.velocity_xy if boxes.velocity_xy is not None else np.zeros((len(boxes), 2))
    attrs = boxes.attributes.get("attribute_name")
    rows = []
    for i in range(len(boxes)):
        x, y, z, l, w, h, yaw = (float(v) for v in boxes.xyz_lwh_yaw[i])
        name = class_names[boxes.labels[i]]
        rows.append({
            "sample_token": token, "translation": [x, y, z], "size": [w, l, h],
            "rotation": [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))],
            "velocity": [float(vel[i, 0]), float(vel[i, 1])], "detection_name": name,
            "detection_score": float(boxes.scores[i]),
            "attribute_name": str(attrs[i]) if attrs is not None else DEFAULT_ATTRIBUTE.get(name, ""),
        })  # fmt: skip
    return rows


def write_submission(
    path: str | Path,
    predictions: dict[str, Boxes3D],
    class_names: tuple[str, ...],
    poses: dict[str, SE3] | None = None,
    meta: dict[str, bool] | None = None,
) -> None:
    """Write ``sample_token -> boxes`` atomically; ``poses[token]`` (``T_world_from_ego``) moves
    ego-frame boxes to the global frame (omit when the boxes are global already)."""
    results = {}
    for token, boxes in predictions.items():
        if boxes.scores is None:
            raise DataError(f"predictions of sample {token} have no scores", path=path)
        if poses is not None:
            boxes = boxes.transformed(poses[token])
        results[token] = _box_rows(token, boxes, class_names)
    full_meta = {k: False for k in META_KEYS} | {"use_lidar": True} | (meta or {})
    with atomic_write(path) as f:
        json.dump({"meta": full_meta, "results": results}, f)


def _parse_box(row: dict, path: Path, token: str) -> tuple:
    missing = [k for k in _BOX_KEYS if k not in row]
    if missing:
        raise CorruptFileError(f"sample {token}: box without {missing}", path=path)
    try:
        w, l, h = (float(v) for v in row["size"])
        qw, qx, qy, qz = (float(v) for v in row["rotation"])
        yaw = (
            2 * np.arctan2(qz, qw)
            if abs(qx) + abs(qy) < 1e-6
            else np.arctan2(2 * (qw * qz + qx * qy), 1 - 2 * (qy * qy + qz * qz))
        )
        box = [*(float(v) for v in row["translation"]), l, w, h, float(wrap_angle(np.array([yaw]))[0])]
        vel = [float(v) for v in row.get("velocity", (np.nan, np.nan))][:2]
        return box, vel, row["detection_name"], float(row["detection_score"]), row.get("attribute_name", "")
    except (TypeError, ValueError) as e:
        raise CorruptFileError(f"sample {token}: bad box values ({e})", path=path) from None


def read_submission_json(path: Path) -> dict:
    """The parsed JSON of a nuScenes detection or tracking submission, checked for ``results``."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptFileError(f"not a JSON file: {e}", path=path) from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise CorruptFileError("no 'results' object: not a nuScenes submission", path=path)
    return data


def read_submission(path: str | Path, class_names: tuple[str, ...]) -> tuple[dict, dict[str, Boxes3D]]:
    """Read a submission: ``(meta, sample_token -> global-frame Boxes3D with scores, velocity and
    attribute_name)``. Errors name the file and the sample."""
    path = Path(path)
    data = read_submission_json(path)
    index = {c: i for i, c in enumerate(class_names)}
    out = {}
    for token, rows in data["results"].items():
        parsed = [_parse_box(r, path, token) for r in rows]
        unknown = sorted({p[2] for p in parsed} - set(index))
        if unknown:
            raise UnknownClassError(
                f"sample {token}: unknown detection_name {unknown}; known: {list(class_names)}", path=path
            )
        n = len(parsed)
        out[token] = Boxes3D(
            np.array([p[0] for p in parsed], np.float32).reshape(n, 7), np.array([index[p[2]] for p in parsed], np.int64),
            scores=np.array([p[3] for p in parsed], np.float32), velocity_xy=np.array([p[1] for p in parsed], np.float32).reshape(n, 2),
            attributes={"attribute_name": np.array([p[4] for p in parsed], dtype=str).reshape(n)},
        )  # fmt: skip
    return data.get("meta", {}), out
