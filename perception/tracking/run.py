"""Run a tracker over KITTI-layout sequences: detection files in, KITTI tracking results out.

Used by ``perception track`` and ``benchmarks/bench_tracking.py``. Boxes go through the ego
(Velodyne) frame of each sequence's calibration and back, exactly as any other ``Boxes3D``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from perception.core import Boxes3D, Calibration
from perception.data.kitti_format import (
    KittiObjects,
    boxes3d_to_objects,
    kitti_calibration,
    objects_to_boxes3d,
    read_calib_file,
)
from perception.errors import DataError
from perception.tracking.kitti_io import frame_slices, read_detections, write_results

KITTI_TRACK_CLASSES = ("Car", "Pedestrian", "Cyclist")


def sequence_lengths(dataset) -> list[tuple[str, int]]:
    """(sequence, number of frames counted from frame 0) for every sequence of a dataset split."""
    return [(seq, max(dataset.frame_key(i)[1] for i in idx) + 1) for seq, idx in dataset.sequences().items()]


@dataclass
class SequenceInput:
    """One sequence ready to track: per-frame detections in the ego frame."""

    name: str
    calib: Calibration
    frames: list[Boxes3D]


def load_sequence(
    det_path: Path, calib_path: Path, n_frames: int, classes: tuple[str, ...] = KITTI_TRACK_CLASSES
) -> SequenceInput:
    """Read a detection file and its calib; a missing detection file means no detections."""
    calib = kitti_calibration(read_calib_file(calib_path))
    objs = read_detections(det_path, n_frames) if det_path.exists() else KittiObjects.empty(tracking=True)
    keep = np.isin(objs.type, classes)
    objs = objs[np.flatnonzero(keep)]
    boxes, _ = objects_to_boxes3d(objs, calib, classes, {}, path=det_path)
    slices = frame_slices(objs.frame, n_frames)
    return SequenceInput(det_path.stem, calib, [boxes[np.arange(s.start, s.stop)] for s in slices])


def track_sequence(tracker, seq: SequenceInput) -> tuple[list[Boxes3D], float]:
    """Run ``tracker`` (reset first) over every frame; returns the tracks per frame and the seconds spent in ``update``."""
    tracker.reset()
    out, spent = [], 0.0
    for boxes in seq.frames:
        t0 = time.perf_counter()
        out.append(tracker.update(boxes))
        spent += time.perf_counter() - t0
    return out, spent


def tracks_to_objects(
    tracks: list[Boxes3D], calib: Calibration, classes: tuple[str, ...] = KITTI_TRACK_CLASSES
) -> KittiObjects:
    """Per-frame tracks -> KITTI tracking rows (2D box of each track's last detection when known)."""
    frames = (
        np.concatenate([np.full(len(t), i, np.int64) for i, t in enumerate(tracks)])
        if tracks
        else np.zeros(0, np.int64)
    )
    allb = Boxes3D.concatenate([t for t in tracks if len(t)]) if any(len(t) for t in tracks) else None
    if allb is None:
        return KittiObjects.empty(tracking=True)
    objs = boxes3d_to_objects(allb, calib, classes)
    return replace(objs, frame=frames, truncated=np.zeros(len(objs)), occluded=np.zeros(len(objs), np.int64))


def track_kitti_folder(
    make_tracker: Callable[[], object],
    det_dir: Path,
    calib_dir: Path,
    sequences: list[tuple[str, int]],
    out_dir: Path,
    progress: bool = True,
) -> dict[str, float]:
    """Track every ``(sequence, n_frames)``; write ``out_dir/<seq>.txt``. Returns frames and seconds in the tracker."""
    from tqdm import tqdm

    tracker = make_tracker()
    frames, spent = 0, 0.0
    for name, n_frames in tqdm(sequences, desc="track", unit="seq", disable=not progress):
        calib_path = calib_dir / f"{name}.txt"
        if not calib_path.exists():
            raise DataError("calibration file not found", path=calib_path)
        seq = load_sequence(det_dir / f"{name}.txt", calib_path, n_frames)
        tracks, s = track_sequence(tracker, seq)
        write_results(out_dir / f"{name}.txt", tracks_to_objects(tracks, seq.calib))
        frames += n_frames
        spent += s
    return {"frames": frames, "tracker_s": spent, "fps": frames / max(spent, 1e-9)}


def track_dataset_with_predictor(predictor, tracker, dataset, out_dir: Path, progress: bool = True) -> dict[str, float]:
    """Detect every frame with ``predictor`` (``predict(frame) -> Predictions``), track, write KITTI results.

    Tracks use each frame's ego pose and timestamp when the dataset has them.
    """
    from tqdm import tqdm

    frames, spent = 0, 0.0
    for seq, indices in tqdm(list(dataset.sequences().items()), desc="detect+track", unit="seq", disable=not progress):
        tracker.reset()
        tracks, calib = [], None
        for i in indices:
            frame = dataset.load_frame(i, images=False)
            boxes = predictor.predict(frame).boxes3d
            t0 = time.perf_counter()
            out = tracker.update(boxes, ego_pose=frame.ego_pose, timestamp_s=frame.timestamp_s)
            spent += time.perf_counter() - t0
            while len(tracks) < frame.index:  # frames missing from the split stay empty
                tracks.append(Boxes3D.empty())
            tracks.append(out)
            calib = frame.calibration
        frames += len(indices)
        if calib is not None:
            write_results(out_dir / f"{seq}.txt", tracks_to_objects(tracks, calib, tuple(dataset.class_names)))
    return {"frames": frames, "tracker_s": spent, "fps": frames / max(spent, 1e-9)}


def track_and_evaluate(
    dataset, detect: Callable, tracker=None, threshold: float = 0.25, points: bool = True, progress: bool = False
) -> dict[str, dict[str, float]]:
    """Track every sequence of ``dataset`` on ``detect(frame) -> Boxes3D`` and score against its ground truth.

    For ``perception demo``: ``detect`` is e.g. ``lambda f: predictor.predict(f).boxes3d``. Tracks
    use each frame's ego pose and timestamp. Metrics as ``perception.eval.tracking.evaluate_sequences``
    (3D IoU >= ``threshold``); print them with ``perception.eval.tracking.format_table``.
    """
    from tqdm import tqdm

    from perception.eval.tracking import evaluate_sequences
    from perception.tracking.presets import tracker_for_classes

    tracker = tracker if tracker is not None else tracker_for_classes(tuple(dataset.class_names))
    gt, pred = {}, {}
    for seq, indices in tqdm(list(dataset.sequences().items()), desc="track", unit="seq", disable=not progress):
        tracker.reset()
        gt[seq], pred[seq] = [], []
        for i in indices:
            frame = dataset.load_frame(i, points=points, images=False)
            pred[seq].append(tracker.update(detect(frame), ego_pose=frame.ego_pose, timestamp_s=frame.timestamp_s))
            gt[seq].append(frame.boxes3d if frame.boxes3d is not None else Boxes3D.empty())
    return evaluate_sequences(gt, pred, tuple(dataset.class_names), threshold, "iou_3d")
