"""KITTI tracking files for the tracker: detection inputs, result outputs and the seqmap.

Detections come in two layouts, told apart by the separator:
- AB3DMOT's: comma-separated ``frame, type, x1, y1, x2, y2, score, h, w, l, x, y, z, rot_y, alpha``
  with type 1 Pedestrian, 2 Car, 3 Cyclist (camera coordinates, bottom centre, as KITTI).
- KITTI tracking result rows (space-separated, 18 fields, track id -1 or anything).
Results are KITTI tracking rows with a score, one ``<seq>.txt`` per sequence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perception.data.kitti_format import KittiObjects, parse_label_rows, read_rows, write_label_file
from perception.errors import CorruptFileError, DataError

AB3DMOT_TYPES = {1: "Pedestrian", 2: "Car", 3: "Cyclist"}
_AB3DMOT_COLUMNS = 15


def read_seqmap(path: str | Path) -> list[tuple[str, int, int]]:
    """``evaluate_tracking.seqmap`` rows ``seq empty first last`` -> [(seq, first, last)]."""
    out = []
    for line_no, f in read_rows(path):
        try:
            out.append((f"{int(f[0]):04d}", int(f[2]), int(f[3])))
        except (ValueError, IndexError):
            raise CorruptFileError(
                "expected 'sequence empty first_frame last_frame'", path=path, line=line_no
            ) from None
    return out


def read_detections(path: str | Path, n_frames: int | None = None) -> KittiObjects:
    """Read one sequence's detections (either layout); an empty file means no detections.

    Raises ``CorruptFileError`` naming the file and line for a wrong column count, a
    non-number, a non-finite value, a non-positive size, an unknown class id, a frame out of
    order or a frame at or beyond ``n_frames``.
    """
    path = Path(path)
    rows = read_rows(path, sep=",")
    if rows and len(rows[0][1]) == 1:  # no commas: KITTI tracking rows
        objs = parse_label_rows(read_rows(path), path, tracking=True)
        line_nos = [n for n, _ in read_rows(path)]
    else:
        objs = _parse_ab3dmot(rows, path)
        line_nos = [n for n, _ in rows]
    _check_frames(objs, line_nos, path, n_frames)
    bad = np.flatnonzero(~(objs.dimensions_hwl > 0).all(axis=1))
    if len(bad):
        raise CorruptFileError(
            f"box size h w l {objs.dimensions_hwl[bad[0]].tolist()} is not positive", path=path, line=line_nos[bad[0]]
        )
    return objs


def _parse_ab3dmot(rows: list[tuple[int, list[str]]], path: Path) -> KittiObjects:
    if not rows:
        return KittiObjects.empty(tracking=True)
    for line_no, f in rows:
        if len(f) != _AB3DMOT_COLUMNS:
            raise CorruptFileError(
                f"expected {_AB3DMOT_COLUMNS} comma-separated fields, got {len(f)}", path=path, line=line_no
            )
    try:
        num = np.array([[float(v) for v in f] for _, f in rows])
    except ValueError:
        for line_no, f in rows:
            for v in f:
                try:
                    float(v)
                except ValueError:
                    raise CorruptFileError(f"{v!r} is not a number", path=path, line=line_no) from None
        raise
    finite = np.isfinite(num).all(axis=1)
    if not finite.all():
        raise CorruptFileError("non-finite value", path=path, line=rows[int(np.flatnonzero(~finite)[0])][0])
    types = num[:, 1]
    unknown = np.flatnonzero(~np.isin(types, list(AB3DMOT_TYPES)))
    if len(unknown):
        i = int(unknown[0])
        raise CorruptFileError(f"unknown class id {types[i]:g}; known: {AB3DMOT_TYPES}", path=path, line=rows[i][0])
    n = len(num)
    return KittiObjects(
        type=np.array([AB3DMOT_TYPES[int(t)] for t in types], dtype="<U16"),
        truncated=np.zeros(n), occluded=np.zeros(n, np.int64), alpha=num[:, 14], bbox=num[:, 2:6],
        dimensions_hwl=num[:, 7:10], location=num[:, 10:13], rotation_y=num[:, 13], score=num[:, 6],
        track_id=-np.ones(n, np.int64), frame=num[:, 0].astype(np.int64),
    )  # fmt: skip


def _check_frames(objs: KittiObjects, line_nos: list[int], path: Path, n_frames: int | None) -> None:
    frames = objs.frame
    if len(frames) == 0:
        return
    back = np.flatnonzero(np.diff(frames) < 0)
    if len(back):
        i = int(back[0]) + 1
        raise CorruptFileError(
            f"frame {frames[i]} after frame {frames[i - 1]}: frames out of order", path=path, line=line_nos[i]
        )
    bad = np.flatnonzero((frames < 0) | (frames >= n_frames if n_frames is not None else False))
    if len(bad):
        i = int(bad[0])
        raise CorruptFileError(
            f"frame {frames[i]} is outside the sequence (0..{(n_frames or 0) - 1})", path=path, line=line_nos[i]
        )


def frame_slices(frames: np.ndarray, n_frames: int) -> list[slice]:
    """Row ranges of each frame 0..n_frames-1 in frame-sorted rows."""
    starts = np.searchsorted(frames, np.arange(n_frames + 1))
    return [slice(int(starts[i]), int(starts[i + 1])) for i in range(n_frames)]


def write_results(path: str | Path, objs: KittiObjects) -> None:
    """Write one sequence's tracks as KITTI tracking rows with scores (atomic)."""
    if objs.frame is None or objs.track_id is None:
        raise DataError("tracking results need frame and track_id columns", path=path)
    write_label_file(path, objs)


def read_results(path: str | Path, n_frames: int | None = None) -> KittiObjects:
    """Read one sequence's tracking results (KITTI rows with a score); a missing file is an error.

    Besides the row checks of ``read_label_file``: frames must lie in the sequence, and a
    track id may appear once per frame (the devkit refuses such files too).
    """
    path = Path(path)
    rows = read_rows(path)
    objs = parse_label_rows(rows, path, tracking=True)
    if not len(objs):
        return objs
    line_nos = np.array([n for n, _ in rows])
    bad = np.flatnonzero((objs.frame < 0) | (objs.frame >= (n_frames if n_frames is not None else np.inf)))
    if len(bad):
        raise CorruptFileError(
            f"frame {objs.frame[bad[0]]} is outside the sequence (0..{(n_frames or 0) - 1})",
            path=path,
            line=int(line_nos[bad[0]]),
        )
    key = objs.frame * (int(objs.track_id.max()) + 2) + objs.track_id
    uniq, counts = np.unique(key, return_counts=True)
    if (counts > 1).any():
        dup = np.flatnonzero(key == uniq[np.flatnonzero(counts > 1)[0]])[1]
        raise CorruptFileError(
            f"track id {objs.track_id[dup]} appears twice in frame {objs.frame[dup]}",
            path=path,
            line=int(line_nos[dup]),
        )
    return objs
