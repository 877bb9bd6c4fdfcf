"""``perception predict --task detect2d --source <image | folder | video>``: annotated images or
video plus KITTI-format 2D label files (``type 0 0 -10 x1 y1 x2 y2 -1 -1 -1 -1000 -1000 -1000 -10 score``).

Layout under ``out``: ``images/<stem>.<ext>`` (annotated), ``<video stem>.mp4`` (annotated video),
``labels/<stem>.txt`` (one per image; ``<video stem>_<frame:06d>.txt`` for videos).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from perception.data.kitti_format import write_label_file
from perception.errors import DataError
from perception.files import atomic_path
from perception.models.yolo.data import IMAGE_SUFFIXES
from perception.models.yolo.evaluate import boxes2d_to_kitti
from perception.models.yolo.predictor import YoloPredictor

VIDEO_SUFFIXES = (".avi", ".mkv", ".mov", ".mp4", ".webm")


def predict_yolo(
    predictor: YoloPredictor, source: str | Path, out: str | Path, *, save_images: bool = True
) -> dict[str, int]:
    """Run ``predictor`` on every image / video frame of ``source`` and write the results under ``out``.

    Returns:
        ``{"images": n, "boxes": m}`` counts.
    """
    from tqdm import tqdm

    from perception.viz.overlay import draw_boxes2d

    source, out = Path(source), Path(out)
    counts = {"images": 0, "boxes": 0}
    for video in _videos(source):
        counts_v = _predict_video(predictor, video, out, save_images)
        counts = {k: counts[k] + counts_v[k] for k in counts}
    for image_path in tqdm(_images(source), desc="predict", unit="img", leave=False):
        image = cv2.imread(str(image_path))
        if image is None:
            raise DataError("cannot decode image", path=image_path)
        (boxes,), _ = predictor.predict_images([image])
        _write_labels(out / "labels" / f"{image_path.stem}.txt", boxes, predictor.class_names)
        if save_images:
            with atomic_path(out / "images" / image_path.name) as tmp:
                cv2.imwrite(str(tmp), draw_boxes2d(image, boxes, predictor.class_names))
        counts["images"] += 1
        counts["boxes"] += len(boxes)
    if counts["images"] == 0:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) or videos ({', '.join(VIDEO_SUFFIXES)})", path=source)
    return counts


def _write_labels(path: Path, boxes, names: tuple[str, ...]) -> None:
    """KITTI result rows with 4 decimals, so low scores stay distinguishable."""
    write_label_file(path, boxes2d_to_kitti(boxes, names), decimals=4)


def _images(source: Path) -> list[Path]:
    if not source.exists():
        raise DataError("source not found", path=source)
    if source.is_file():
        return [source] if source.suffix.lower() in IMAGE_SUFFIXES else []
    return sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _videos(source: Path) -> list[Path]:
    if source.is_file():
        return [source] if source.suffix.lower() in VIDEO_SUFFIXES else []
    return sorted(p for p in source.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES) if source.is_dir() else []


def _video_frames(path: Path) -> Iterator[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError("cannot open video", path=path)
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()


def _predict_video(predictor: YoloPredictor, video: Path, out: Path, save: bool) -> dict[str, int]:
    """Annotated ``out/<stem>.mp4`` (same frame rate) and one label file per frame."""
    from perception.viz.overlay import draw_boxes2d

    fps = cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS) or 10.0
    counts = {"images": 0, "boxes": 0}
    writer = None
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(out / f"{video.stem}.mp4")) if save else None
        for i, frame in enumerate(_video_frames(video)):
            (boxes,), _ = predictor.predict_images([frame])
            _write_labels(out / "labels" / f"{video.stem}_{i:06d}.txt", boxes, predictor.class_names)
            if tmp is not None:
                if writer is None:
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, frame.shape[1::-1])
                writer.write(draw_boxes2d(frame, boxes, predictor.class_names))
            counts["images"] += 1
            counts["boxes"] += len(boxes)
        if writer is not None:
            writer.release()
        if counts["images"] == 0:
            raise DataError("video has no readable frames", path=video)
    return counts
