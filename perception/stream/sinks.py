"""Where ``perception stream`` puts what it draws: an MP4 file, an image folder, JSON lines of
detections and tracks per frame, or a window.

Every file sink checks at construction that its path can be written (so a bad path fails before
any frame is read), writes to a temporary name and renames on ``close()``; ``close()`` runs on
normal end, on errors and on Ctrl-C, so an MP4 is always finalised and never left half written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from perception.errors import ConfigError, PerceptionError

log = logging.getLogger(__name__)


class Sink:
    """Receives each drawn frame (``image``, BGR uint8) and its JSON-ready ``record``."""

    def write(self, image: np.ndarray, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> Path | None:
        """Finish; returns the written path (None when nothing was written)."""
        return None


def check_writable(path: Path, kind: str) -> Path:
    """Make the parent folder and check it can be written; ``ConfigError`` naming ``path`` if not."""
    path = Path(path)
    if path.is_dir() and kind != "folder":
        raise ConfigError(f"cannot write the {kind}: the path is a folder", path=path)
    parent = path if kind == "folder" else path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot write the {kind}: {e.strerror or e}", path=path) from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write the {kind}: {parent} is not writable", path=path)
    return path


def fit_to(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Letterbox ``image`` into ``width`` x ``height`` (scaled to fit, centred, black bars)."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    out = np.zeros((height, width, 3), np.uint8)
    x, y = (width - nw) // 2, (height - nh) // 2
    out[y : y + nh, x : x + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


class VideoSink(Sink):
    """An MP4 file: H.264 through the ``ffmpeg`` program when it is installed (plays everywhere),
    else MPEG-4 part 2 through OpenCV. The size is fixed by the first frame; a frame of another
    size is letterboxed into it (logged once), so the file stays valid."""

    def __init__(self, path: str | Path, fps: float = 10.0, codec: str = "auto", preset: str = "ultrafast"):
        self.path = check_writable(Path(path), "video")
        self.fps = float(fps) if fps and fps > 0 else 10.0
        if codec not in ("auto", "h264", "mp4v"):
            raise ConfigError(f"codec {codec!r}: choose from auto, h264, mp4v", path=self.path)
        if codec == "h264" and not shutil.which("ffmpeg"):
            raise ConfigError("codec h264 needs the ffmpeg program (apt install ffmpeg); or use mp4v", path=self.path)
        self.codec = ("h264" if shutil.which("ffmpeg") else "mp4v") if codec == "auto" else codec
        self.preset = preset  # x264 speed/size trade-off: ultrafast keeps encoding off the critical path
        self.tmp = self.path.with_name(f".{self.path.stem}.tmp{self.path.suffix or '.mp4'}")
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._ffmpeg: subprocess.Popen | None = None
        self._warned_size = False

    def _open(self, width: int, height: int) -> None:
        self.size = (width, height)
        if self.codec == "h264":
            # Own session: Ctrl-C reaches us, not ffmpeg, so we can still close the file properly.
            cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}",
                   "-r", f"{self.fps:g}", "-i", "-", "-an", "-c:v", "libx264", "-preset", self.preset, "-crf", "23",
                   "-pix_fmt", "yuv420p", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-movflags", "+faststart",
                   "-f", "mp4", str(self.tmp)]  # fmt: skip
            self._ffmpeg = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        else:
            self._writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
            if not self._writer.isOpened():
                raise PerceptionError("OpenCV cannot open an MP4 writer", path=self.path)

    def write(self, image: np.ndarray, record: dict[str, Any]) -> None:
        h, w = image.shape[:2]
        if self.size is None:
            self._open(w, h)
        if (w, h) != self.size:
            if not self._warned_size:
                log.warning("%s: frame %dx%d differs from the video's %dx%d; letterboxing", self.path, w, h, *self.size)
                self._warned_size = True
            image = fit_to(image, *self.size)
        if self._ffmpeg is not None:
            try:
                self._ffmpeg.stdin.write(memoryview(np.ascontiguousarray(image)).cast("B"))
            except BrokenPipeError:
                err = self._ffmpeg.stderr.read().decode(errors="replace").strip()
                raise PerceptionError(f"ffmpeg stopped while writing: {err[-300:]}", path=self.path) from None
        else:
            self._writer.write(np.ascontiguousarray(image))
        self.frames += 1

    def close(self) -> Path | None:
        """Finalise the MP4 and move it into place; None when no frame was written."""
        ok = self._finish()
        if self.frames and ok and self.tmp.exists() and self.tmp.stat().st_size > 0:
            os.replace(self.tmp, self.path)
            return self.path
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()
        if self.frames:
            raise PerceptionError(f"the encoder failed after {self.frames} frames; no video written", path=self.path)
        return None

    def _finish(self) -> bool:
        """Close the encoder so the container is complete; True when it ended cleanly."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            return True
        if self._ffmpeg is None:
            return False
        proc, self._ffmpeg = self._ffmpeg, None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode != 0:
            log.error("%s: ffmpeg failed: %s", self.path, proc.stderr.read().decode(errors="replace")[-300:])
        return proc.returncode == 0


class ImageFolderSink(Sink):
    """One JPEG (or PNG) per frame, ``000000.jpg``, ``000001.jpg``..., each written atomically."""

    def __init__(self, folder: str | Path, ext: str = ".jpg"):
        self.folder = check_writable(Path(folder), "folder")
        self.ext = ext if ext.startswith(".") else f".{ext}"
        self.count = 0

    def write(self, image: np.ndarray, record: dict[str, Any]) -> None:
        path = self.folder / f"{self.count:06d}{self.ext}"
        tmp = path.with_name(f".{path.stem}.tmp{self.ext}")
        if not cv2.imwrite(str(tmp), image):
            raise PerceptionError("cannot write image", path=path)
        os.replace(tmp, path)
        self.count += 1

    def close(self) -> Path | None:
        return self.folder if self.count else None


class JsonlSink(Sink):
    """One JSON object per line and frame (see ``perception.stream.records``); renamed into place on close."""

    def __init__(self, path: str | Path):
        self.path = check_writable(Path(path), "JSON lines file")
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._file = None  # opened on the first record, so a run that fails early leaves nothing behind
        self.count = 0

    def write(self, image: np.ndarray, record: dict[str, Any]) -> None:
        if self._file is None:
            self._file = open(self.tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.count += 1

    def close(self) -> Path | None:
        if self._file is None or self._file.closed:
            return None
        self._file.close()
        os.replace(self.tmp, self.path)
        return self.path


class WindowSink(Sink):
    """An OpenCV window; ``q`` or Esc asks the pipeline to stop (``stop_requested``)."""

    def __init__(self, title: str = "perception"):
        self.title = title
        self.stop_requested = False

    def write(self, image: np.ndarray, record: dict[str, Any]) -> None:
        cv2.imshow(self.title, image)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stop_requested = True

    def close(self) -> Path | None:
        with contextlib.suppress(cv2.error):
            cv2.destroyWindow(self.title)
        return None


def display_available() -> bool:
    """True when a window can open (an X11 or Wayland display on Linux; always elsewhere)."""
    if os.name != "posix" or "darwin" in os.uname().sysname.lower():
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def build_sinks(
    save: str | None = None,
    save_dir: str | None = None,
    jsonl: str | None = None,
    show: bool = False,
    fps: float | None = None,
    codec: str = "auto",
) -> list[Sink]:
    """The sinks the ``stream`` options ask for; every path is checked before any frame is read."""
    sinks: list[Sink] = []
    if save:
        sinks.append(VideoSink(save, fps or 10.0, codec=codec))
    if save_dir:
        sinks.append(ImageFolderSink(save_dir))
    if jsonl:
        sinks.append(JsonlSink(jsonl))
    if show:
        if display_available():
            sinks.append(WindowSink())
        else:
            log.warning("--show: no display (DISPLAY / WAYLAND_DISPLAY unset); not opening a window")
    return sinks
