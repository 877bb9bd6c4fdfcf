"""What a dataset holds, and whether every file of it reads: ``perception data info|check <dataset yaml>``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from perception.data.base import DriveDataset
from perception.errors import PerceptionError


def dataset_info(ds: DriveDataset, limit: int | None = None) -> dict[str, Any]:
    """Counts over the frames of ``ds`` (every frame, or ``limit`` evenly spaced ones); images are not decoded.

    Returns:
        ``{"dataset", "root", "split", "frames", "frames_read", "sequences", "classes",
        "labelled_frames", "boxes_per_class": {class: n}, "tracks_per_class": {class: n}
        (only when boxes carry track ids), "frames_with_points", "points_per_frame":
        {"min", "mean", "max"} or None, "camera_sizes": {camera: {"WxH": frames}}}``.
    """
    n = len(ds)
    indices = range(n) if limit is None or limit >= n else np.linspace(0, n - 1, limit).round().astype(int)
    boxes, tracks, sizes = Counter(), set(), {}
    points, labelled = [], 0
    for i in indices:
        frame = ds.load_frame(int(i), images=False)
        if frame.points is not None:
            points.append(len(frame.points))
        for cam, intr in frame.calibration.cameras.items():
            sizes.setdefault(cam, Counter())[f"{intr.width}x{intr.height}"] += 1
        if frame.boxes3d is None:
            continue
        labelled += 1
        boxes.update(frame.boxes3d.labels.tolist())
        if frame.boxes3d.track_ids is not None:
            tracks.update(
                (frame.sequence, int(c), int(t)) for c, t in zip(frame.boxes3d.labels, frame.boxes3d.track_ids)
            )
    names = ds.class_names
    info = {
        "dataset": ds.name, "root": str(ds.spec.root), "split": ds.split, "frames": n, "frames_read": len(indices),
        "sequences": len(ds.sequences()), "classes": list(names), "labelled_frames": labelled,
        "boxes_per_class": {c: boxes[k] for k, c in enumerate(names)},
        "frames_with_points": len(points),
        "points_per_frame": {"min": min(points), "mean": float(np.mean(points)), "max": max(points)} if points else None,
        "camera_sizes": {cam: dict(c) for cam, c in sizes.items()},
    }  # fmt: skip
    if tracks:
        info["tracks_per_class"] = {c: sum(1 for _, k2, _ in tracks if k2 == k) for k, c in enumerate(names)}
    return info


def format_info(info: dict[str, Any]) -> str:
    """The ``dataset_info`` dict as an aligned text block with a per-class table."""
    read = "" if info["frames_read"] == info["frames"] else f" ({info['frames_read']} read)"
    lines = [
        f"dataset    {info['dataset']} (split: {info['split'] or 'all'}) at {info['root']}",
        f"frames     {info['frames']}{read} in {info['sequences']} sequence(s), {info['labelled_frames']} labelled",
    ]
    pts = info["points_per_frame"]
    if pts:
        lines.append(f"points     min {pts['min']} / mean {pts['mean']:.0f} / max {pts['max']} per frame"
                     f" ({info['frames_with_points']} frames with points)")  # fmt: skip
    else:
        lines.append("points     none")
    for cam, sizes in info["camera_sizes"].items():
        lines.append(f"camera     {cam}: " + ", ".join(f"{s} ({n} frames)" for s, n in sizes.items()))
    tracks = info.get("tracks_per_class")
    lines += ["", f"{'class':<16}{'boxes':>8}" + (f"{'tracks':>8}" if tracks else "")]
    for c, n in info["boxes_per_class"].items():
        lines.append(f"{c:<16}{n:>8}" + (f"{tracks[c]:>8}" if tracks else ""))
    return "\n".join(lines)


def check_dataset(yaml_path: str | Path, split: str | None = None) -> int:
    """Read every file of the dataset, print every problem (one line each) and a summary; return the count."""
    from perception.data.registry import load_dataset

    try:
        ds = load_dataset(yaml_path, split=split)
    except PerceptionError as e:
        print(f"problem: {e}")
        return 1
    problems = ds.check()
    for e in problems:
        print(f"problem: {e}")
    print(f"{len(ds)} frames of {ds.name} checked: {len(problems)} problem(s)")
    return len(problems)
