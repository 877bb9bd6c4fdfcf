"""The streaming pipeline of ``perception stream``: source -> predictor -> tracker -> overlays -> sinks.

Three stages run at once, joined by bounded queues:

    reader thread      decode the next frame (live sources keep only the newest one)
    inference thread   predictor.predict(frame), then the tracker
    calling thread     draw overlays, BEV panel and HUD; write to every sink (and the window,
                       which GUI toolkits want on the main thread)

so decoding and drawing/encoding overlap with inference. Sinks are closed (the MP4 finalised)
whatever ends the run: the last frame, ``max_frames``, a window's ``q``, an error or Ctrl-C.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from perception.core import Boxes2D, Boxes3D, Frame
from perception.stream.reader import ThreadedReader
from perception.stream.records import frame_record
from perception.stream.sinks import Sink
from perception.stream.sources import Source
from perception.viz.frame_view import pick_camera, render_frame_view
from perception.viz.trails import TrailHistory

log = logging.getLogger(__name__)


@dataclass
class Result:
    """One frame after inference and tracking, on its way to the drawing stage."""

    frame: Frame
    boxes3d: Boxes3D | None
    boxes2d: dict[str, Boxes2D]
    latency_ms: dict[str, float]
    captured_at: float  # perf_counter() when the reader produced the frame


@dataclass
class StreamStats:
    """What a run did. ``fps`` counts frames written per second of wall time."""

    frames: int = 0
    dropped: int = 0
    reconnects: int = 0
    wall_s: float = 0.0
    inference_ms: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> str:
        inf = f", inference {np.median(self.inference_ms):.1f} ms" if self.inference_ms else ""
        lat = f", latency {np.median(self.latency_ms):.1f} ms" if self.latency_ms else ""
        extra = f", {self.dropped} stale frames dropped" if self.dropped else ""
        extra += f", {self.reconnects} reconnects" if self.reconnects else ""
        return f"{self.frames} frames in {self.wall_s:.1f} s ({self.fps:.1f} FPS{inf}{lat}{extra})"


class StreamPipeline:
    """Run a predictor (and trackers) over a source and draw the results into sinks.

    Args:
        predictor: anything with ``predict(frame) -> Predictions`` and ``class_names``; None
            streams the frames as they are (with ground truth when ``show_gt``).
        tracker3d: ``update(boxes3d, ego_pose=, timestamp_s=) -> Boxes3D`` (e.g. ``perception.tracking.Tracker3D``).
        tracker2d: ``update(boxes2d) -> Boxes2D`` (e.g. ``Tracker2D``), applied to the drawn camera's boxes.
        sinks: where drawn frames and records go.
        camera: the camera to draw (default: the first calibrated one).
        class_names: label names (default: the predictor's, else the frame's).
        show_gt: draw the frames' ground-truth 3D boxes too.
        bev: add the BEV panel when frames have points.
        hud: draw FPS and latency on every frame.
    """

    def __init__(
        self,
        predictor=None,
        *,
        tracker3d=None,
        tracker2d=None,
        sinks: Sequence[Sink] = (),
        camera: str | None = None,
        class_names: tuple[str, ...] | None = None,
        show_gt: bool = False,
        bev: bool = True,
        hud: bool = True,
        trail_length: int = 15,
    ):
        self.predictor, self.tracker3d, self.tracker2d = predictor, tracker3d, tracker2d
        self.sinks, self.camera, self.show_gt, self.bev, self.hud = list(sinks), camera, show_gt, bev, hud
        self.class_names = class_names or tuple(getattr(predictor, "class_names", ()) or ())
        self.trails3d, self.trails2d = TrailHistory(trail_length), TrailHistory(trail_length)
        self._fps_ema: float | None = None
        self._last_written: float | None = None

    def run(self, source: Source, max_frames: int | None = None) -> StreamStats:
        """Stream ``source`` until it ends (or ``max_frames``); returns what happened. Closes the sinks."""
        stats = StreamStats()
        start = time.perf_counter()
        self._reset()
        reader = ThreadedReader(
            lambda: source, maxsize=1 if source.live else 4, drop_stale=source.live, on_stop=source.close, name="source"
        )
        infer = ThreadedReader(lambda: self._infer(reader, max_frames, stats), maxsize=4, name="inference")
        try:
            for result, _ in infer:
                self._draw_and_write(result, stats, inplace=source.fresh_images)
                if any(getattr(s, "stop_requested", False) for s in self.sinks):
                    break
        finally:
            reader.close()
            infer.close()
            stats.wall_s = time.perf_counter() - start
            stats.dropped = reader.dropped
            stats.reconnects = getattr(source, "reconnects", 0)
            stats.outputs = self._close_sinks()
        return stats

    def _reset(self) -> None:
        """A new run is a new sequence: forget tracks, trails and the FPS average."""
        for tracker in (self.tracker3d, self.tracker2d):
            if hasattr(tracker, "reset"):
                tracker.reset()
        self.trails3d.reset()
        self.trails2d.reset()
        self._fps_ema = self._last_written = None

    def _infer(self, reader: ThreadedReader, max_frames: int | None, stats: StreamStats) -> Iterator[Result]:
        """Runs on the inference thread: predict and track each frame, in order."""
        for n, (frame, captured_at) in enumerate(reader):
            if max_frames is not None and n >= max_frames:
                return
            t0 = time.perf_counter()
            boxes3d, boxes2d, latency = None, {}, {}
            if self.predictor is not None:
                pred = self.predictor.predict(frame)
                boxes3d, boxes2d, latency = pred.boxes3d, dict(pred.boxes2d), dict(pred.latency_ms)
            t1 = time.perf_counter()
            if self.tracker3d is not None and boxes3d is not None:
                boxes3d = self.tracker3d.update(boxes3d, ego_pose=frame.ego_pose, timestamp_s=frame.timestamp_s)
            camera = pick_camera(frame, self.camera)
            if self.tracker2d is not None and camera in boxes2d:
                boxes2d[camera] = self.tracker2d.update(boxes2d[camera])
            latency.update(predict=(t1 - t0) * 1e3, track=(time.perf_counter() - t1) * 1e3)
            stats.inference_ms.append(latency["predict"])
            yield Result(frame, boxes3d, boxes2d, latency, captured_at)

    def _draw_and_write(self, r: Result, stats: StreamStats, inplace: bool) -> None:
        """Draw the frame's view (on its own image when ``inplace``: inference is done with it) and write it."""
        names = self.class_names or r.frame.class_names
        camera = pick_camera(r.frame, self.camera)
        trails3d, trails2d = self._update_trails(r, camera)
        latency_ms = (time.perf_counter() - r.captured_at) * 1e3
        image = render_frame_view(
            r.frame, r.boxes3d, r.boxes2d, class_names=names, camera=camera, show_gt=self.show_gt,
            trails3d=trails3d, trails2d=trails2d, bev=self.bev, hud_lines=self._hud(r, latency_ms) if self.hud else None,
            inplace=inplace,
        )  # fmt: skip
        record = frame_record(r.frame, names, r.boxes3d, r.boxes2d, r.latency_ms)
        for sink in self.sinks:
            sink.write(image, record)
        stats.frames += 1
        stats.latency_ms.append(latency_ms)

    def _update_trails(self, r: Result, camera: str | None):
        """Trails of tracked boxes: 3D on the ground under each centre, 2D at each box's bottom centre."""
        trails3d = trails2d = None
        b3 = r.boxes3d
        if b3 is not None and b3.track_ids is not None:
            ground = b3.xyz.astype(np.float64) - np.outer(b3.lwh[:, 2] / 2, [0.0, 0.0, 1.0])
            self.trails3d.update(b3.track_ids, ground, r.frame.ego_pose)
            trails3d = self.trails3d.trails(r.frame.ego_pose)
        b2 = r.boxes2d.get(camera) if camera is not None else None
        if b2 is not None and b2.track_ids is not None:
            self.trails2d.update(b2.track_ids, np.stack([(b2.xyxy[:, 0] + b2.xyxy[:, 2]) / 2, b2.xyxy[:, 3]], axis=1))
            trails2d = self.trails2d.trails()
        return trails3d, trails2d

    def _hud(self, r: Result, latency_ms: float) -> list[str]:
        now = time.perf_counter()
        if self._last_written is not None:
            inst = 1.0 / max(now - self._last_written, 1e-6)
            self._fps_ema = inst if self._fps_ema is None else 0.9 * self._fps_ema + 0.1 * inst
        self._last_written = now
        fps = f"{self._fps_ema:5.1f} FPS" if self._fps_ema else "  --- FPS"
        tracks = {
            int(t)
            for b in [r.boxes3d, *r.boxes2d.values()]
            if b is not None and b.track_ids is not None
            for t in b.track_ids
        }
        model = f"model {r.latency_ms['predict']:.0f} ms  " if self.predictor is not None else ""
        line2 = f"{model}latency {latency_ms:.0f} ms"
        return [f"{fps}  frame {r.frame.index}", line2 + (f"  tracks {len(tracks)}" if tracks else "")]

    def _close_sinks(self) -> list[Path]:
        """Close every sink even if one fails (the first failure is raised after all are closed)."""
        outputs, first_error = [], None
        for sink in self.sinks:
            try:
                path = sink.close()
                if path is not None:
                    outputs.append(path)
            except Exception as e:  # noqa: BLE001 - re-raised below once all sinks are closed
                log.error("closing %s failed: %s", type(sink).__name__, e)
                first_error = first_error or e
        if first_error is not None:
            raise first_error
        return outputs
