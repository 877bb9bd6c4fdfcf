"""Where ``perception stream`` gets its frames: a video file, a network stream (RTSP, HTTP,
RTMP, UDP...), a webcam, an image folder or glob, or a sequence of any dataset loader.

Every source yields ``Frame``s. Video-like sources give one image under the camera name
``"camera"`` and no calibration; a dataset sequence gives the loader's full frames (lidar,
every camera, calibration, ego pose, ground truth). Live sources (network, webcam) reconnect
with exponential back-off when the stream drops, and give up with one clear error after
``reconnect_timeout_s`` without a frame; files are read in full, in order.
"""

from __future__ import annotations

import abc
import contextlib
import glob
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from perception.core import Frame
from perception.errors import ConfigError, CorruptFileError, DataError

log = logging.getLogger(__name__)

VIDEO_CAMERA = "camera"
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".ts", ".mpg", ".mpeg", ".wmv", ".flv", ".gif"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "rtmps://", "http://", "https://", "udp://", "tcp://", "srt://")
RTSP_TRANSPORTS = ("auto", "tcp", "udp")
# OpenCV reads its FFmpeg options from this variable at each open (default: RTP over TCP preferred).
_CAPTURE_OPTIONS = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_CAPTURE_OPTIONS_LOCK = threading.Lock()
# FFmpeg decodes on the reader thread alone: its default frame threads (one per core) spent more CPU
# per frame (3.5 vs 3.0 ms for a 1242x375 H.264 frame, measured) and woke two more threads per
# frame to compete with the model's; one thread still decodes 1080p H.264 far faster than real time.
DECODE_PARAMS = [cv2.CAP_PROP_N_THREADS, 1]


class Source(abc.ABC):
    """An iterable of frames. ``live`` sources run in real time and may drop frames downstream;
    ``fps`` is the nominal rate (None when unknown). ``close()`` stops a live source early.
    ``fresh_images``: every frame's images are new arrays that nothing else holds, so the pipeline
    may draw on them instead of on a copy."""

    name: str = ""
    live: bool = False
    fps: float | None = None
    fresh_images: bool = False

    def __init__(self) -> None:
        self._stop = threading.Event()

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None:
        self._stop.set()


def video_frame(image: np.ndarray, name: str, index: int, timestamp_s: float) -> Frame:
    """Wrap one BGR picture as a camera-only Frame."""
    return Frame("video", name, index, timestamp_s, (), images={VIDEO_CAMERA: image})


def open_video_file(path: Path) -> cv2.VideoCapture:
    """A capture of a video file with FFmpeg decoding on one thread, or any backend that opens it."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, DECODE_PARAMS)
    return cap if cap.isOpened() else cv2.VideoCapture(str(path))


class VideoFileSource(Source):
    """Every frame of a video file, in order; timestamps from the container's frame rate."""

    fresh_images = True

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError("video file not found", path=self.path)
        cap = open_video_file(self.path)
        ok = cap.isOpened()
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0) or None if ok else None
        self.frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if ok else 0
        ok = ok and cap.read()[0]
        cap.release()
        if not ok:
            raise CorruptFileError("cannot decode a frame (not a video, or a codec OpenCV lacks)", path=self.path)
        self.name = self.path.stem

    def __iter__(self) -> Iterator[Frame]:
        cap = open_video_file(self.path)
        dt = 1.0 / self.fps if self.fps else float("nan")
        index = 0
        try:
            while not self._stop.is_set():
                ok, image = cap.read()
                if not ok:
                    break
                yield video_frame(image, self.name, index, index * dt)
                index += 1
        finally:
            cap.release()
        if not self._stop.is_set() and self.frame_count and index < self.frame_count - 1:
            log.warning("%s: decoding stopped after %d of %d frames", self.path, index, self.frame_count)


class ImageFolderSource(Source):
    """Images of a folder (sorted by name) or of a glob pattern; unreadable files are skipped with a warning."""

    fresh_images = True

    def __init__(self, pattern: str | Path, fps: float | None = None):
        super().__init__()
        path = Path(pattern)
        if path.is_dir():
            files = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        else:
            files = [Path(p) for p in glob.glob(str(pattern)) if Path(p).suffix.lower() in IMAGE_SUFFIXES]
        self.files = sorted(files)
        if not self.files:
            raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found", path=pattern)
        self.name = path.name if path.is_dir() else path.parent.name
        self.fps = fps

    def __iter__(self) -> Iterator[Frame]:
        dt = 1.0 / self.fps if self.fps else float("nan")
        for index, path in enumerate(self.files):
            if self._stop.is_set():
                return
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("%s: cannot decode image, skipped", path)
                continue
            yield video_frame(image, self.name, index, index * dt)


class LiveSource(Source):
    """A network stream URL or a webcam index, read until stopped.

    Args:
        target: URL (``rtsp://...``, ``http://...``) or webcam index.
        open_timeout_s: how long the first connection may take before it is an error.
        reconnect_timeout_s: how long a dropped stream may stay away before it is an error.
        max_backoff_s: the longest pause between reconnection attempts (pauses double from 0.25 s).
        rtsp_transport: how RTP travels for ``rtsp://`` URLs: ``"tcp"``, ``"udp"``, or ``"auto"``
            (TCP first; after a failed open the next attempt switches to the other one, and the one
            that worked is kept for reconnections). Servers that only send RTP over UDP (relays such
            as Debian's ``rtsp-server-perl``, many cameras) answer TCP with "400 Bad Request", on
            which FFmpeg does not fall back by itself. A user-set ``OPENCV_FFMPEG_CAPTURE_OPTIONS``
            wins over this choice.
    """

    live = True
    fresh_images = True

    def __init__(
        self,
        target: str | int,
        open_timeout_s: float = 10.0,
        reconnect_timeout_s: float = 30.0,
        max_backoff_s: float = 4.0,
        rtsp_transport: str = "auto",
    ):
        super().__init__()
        if rtsp_transport not in RTSP_TRANSPORTS:
            raise ConfigError(f"rtsp_transport {rtsp_transport!r}: choose from {list(RTSP_TRANSPORTS)}")
        self.target, self.open_timeout_s = target, open_timeout_s
        self.reconnect_timeout_s, self.max_backoff_s = reconnect_timeout_s, max_backoff_s
        self.name = f"webcam{target}" if isinstance(target, int) else str(target).split("://", 1)[-1].replace("/", "_")
        self.reconnects = 0
        rtsp = str(target).lower().startswith(("rtsp://", "rtsps://"))
        self.transport = (None if rtsp_transport == "auto" else rtsp_transport) if rtsp else None
        self._alternate = rtsp and rtsp_transport == "auto"

    def _open(self) -> cv2.VideoCapture:
        if isinstance(self.target, int):
            return cv2.VideoCapture(self.target)
        ms = int(max(self.open_timeout_s, 0.5) * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms, *DECODE_PARAMS]
        with _capture_options(f"rtsp_transport;{self.transport}" if self.transport else None):
            cap = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, params)
        if self._alternate and not cap.isOpened():
            self.transport = "tcp" if self.transport == "udp" else "udp"
        return cap

    def __iter__(self) -> Iterator[Frame]:
        index, backoff = 0, 0.25
        last_frame_at = start = time.monotonic()
        while not self._stop.is_set():
            cap = self._open()
            if cap.isOpened() and self.fps is None:
                self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0) or None
            try:
                while cap.isOpened() and not self._stop.is_set():
                    ok, image = cap.read()
                    if not ok:
                        break
                    last_frame_at, backoff = time.monotonic(), 0.25
                    yield video_frame(image, self.name, index, time.time())
                    index += 1
            finally:
                cap.release()
            if self._stop.is_set():
                return
            self._check_gone(index, start, last_frame_at)
            what = f"stream interrupted after frame {index}" if index else "no answer yet"
            log.warning("%s: %s; reconnecting in %.2f s", self.target, what, backoff)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)
            self.reconnects += 1

    def _check_gone(self, frames: int, start: float, last_frame_at: float) -> None:
        """Raise once the source has been silent for longer than allowed."""
        now = time.monotonic()
        if frames == 0 and now - start > self.open_timeout_s:
            raise DataError(
                f"no frames within {self.open_timeout_s:g} s (unreachable, or not a video stream)",
                path=str(self.target),
            )
        if frames and now - last_frame_at > self.reconnect_timeout_s:
            raise DataError(
                f"stream lost: no frames for {self.reconnect_timeout_s:g} s after {frames} frames",
                path=str(self.target),
            )


@contextlib.contextmanager
def _capture_options(options: str | None) -> Iterator[None]:
    """Set OpenCV's FFmpeg capture options for one open (unless the user set them), then restore.
    The lock keeps two sources opening at once from seeing each other's options."""
    if options is None:
        yield
        return
    with _CAPTURE_OPTIONS_LOCK:
        if _CAPTURE_OPTIONS in os.environ:  # only ever set inside this lock, so the user's
            yield
            return
        os.environ[_CAPTURE_OPTIONS] = options
        try:
            yield
        finally:
            del os.environ[_CAPTURE_OPTIONS]


class DatasetSequenceSource(Source):
    """The frames of one sequence of a dataset (a YAML path or an open ``DriveDataset``), in time
    order, with lidar, cameras, calibration, poses and ground truth."""

    def __init__(self, dataset, sequence: str | None = None, split: str | None = None, fps: float = 10.0):
        super().__init__()
        if isinstance(dataset, (str, Path)):
            from perception.data.registry import load_dataset

            where, dataset = dataset, load_dataset(dataset, split=split)
        else:
            where = getattr(getattr(dataset, "spec", None), "source", None)
        self.dataset = dataset
        sequences = dataset.sequences()
        if not sequences:
            raise DataError("the dataset has no frames", path=where)
        if sequence is None:
            sequence = next(iter(sequences))
        if sequence not in sequences:
            raise ConfigError(f"no sequence {sequence!r}; sequences: {sorted(sequences)[:20]}", path=where)
        self.indices = sequences[sequence]
        stem = Path(where).stem if where is not None else type(dataset).__name__
        self.name = f"{stem}/{sequence}" if sequence else stem
        self.fps = fps
        self.class_names = tuple(dataset.class_names)

    def __iter__(self) -> Iterator[Frame]:
        for i in self.indices:
            if self._stop.is_set():
                return
            yield self.dataset.load_frame(i)


def open_source(
    spec: str | int | Path,
    *,
    sequence: str | None = None,
    split: str | None = None,
    fps: float | None = None,
    open_timeout_s: float = 10.0,
    reconnect_timeout_s: float = 30.0,
    rtsp_transport: str = "auto",
) -> Source:
    """The source a ``--source`` string names: a webcam index (``0``), a URL, a dataset YAML,
    an image folder or glob, or a video file. Errors name the source and what was expected.
    ``rtsp_transport`` ("auto", "tcp", "udp") applies to ``rtsp://`` URLs (see ``LiveSource``)."""
    text = str(spec)
    if isinstance(spec, int) or text.isdigit():
        return LiveSource(int(text), open_timeout_s, reconnect_timeout_s)
    if text.lower().startswith(URL_SCHEMES):
        return LiveSource(text, open_timeout_s, reconnect_timeout_s, rtsp_transport=rtsp_transport)
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml"):
        if not path.is_file():
            raise DataError("dataset YAML not found", path=path)
        return DatasetSequenceSource(path, sequence, split, fps or 10.0)
    if path.is_dir() or any(c in text for c in "*?["):
        return ImageFolderSource(text, fps)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFolderSource(text, fps)
    if not path.exists():
        raise DataError(
            "source not found (expected a video, image folder, glob, dataset YAML, URL or webcam index)", path=path
        )
    return VideoFileSource(path)
