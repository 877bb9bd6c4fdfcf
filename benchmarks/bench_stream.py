"""Streaming speed: ``perception stream``'s pipeline against the bare model on the same frames, and
against ultralytics' own ``predict`` on the same video and model.

    .venv/bin/python benchmarks/bench_stream.py [--frames 100] [--imgsz 640] [--threads 2]

The model is a random-init YOLO11n (no weights exist here; speed does not depend on them), saved
once as a checkpoint that both sides load. The video is a 1242x375 (KITTI-sized) H.264 test pattern.
Rows:
  bare model        YoloPredictor.predict on frames already decoded in memory (the ceiling)
  stream            decode | predict + ByteTrack | draw boxes, trails, HUD (no output)
  stream + MP4      the same, also encoding an MP4 of the drawn frames (H.264 by ffmpeg, or mp4v as ultralytics)
  ultralytics       YOLO.predict(source=video, stream=True), and with save=True (its annotated video)
Each figure is the median of ``--repeats`` runs after a warm-up, the variants interleaved; CPU ms/frame
counts every thread of the process and the ffmpeg encoder (steadier than FPS on a shared machine).
``--stages`` first prints the CPU each pipeline stage costs per frame, each run alone, and the
model's median time per frame inside the pipeline against the bare loop.
"""

from __future__ import annotations

import os

# Same OpenMP wait policy for every variant, set before torch loads: with the default (spinning)
# policy on an oversubscribed machine, torch called from the main thread burnt up to 10x the CPU
# it burnt from a worker thread (measured here), which would favour our threaded pipeline.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import dataclasses
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch


def make_video(path: Path, frames: int, size: tuple[int, int] = (1242, 375)) -> Path:
    """A moving test pattern with coloured blocks, H.264 (or MPEG-4 when ffmpeg is absent)."""
    if shutil.which("ffmpeg"):
        w, h = size
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=10",
                        "-frames:v", str(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True)  # fmt: skip
        return path
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    for i in range(frames):
        img = np.full((size[1], size[0], 3), 60, np.uint8)
        cv2.rectangle(img, (40 + 8 * i, 120), (240 + 8 * i, 300), (0, 140, 255), -1)
        writer.write(img)
    writer.release()
    return path


def random_yolo(path: Path) -> Path:
    """Save a random-init YOLO11n detector as a checkpoint (nothing downloaded)."""
    from perception.models.yolo.env import import_ultralytics

    ultralytics = import_ultralytics()
    cfg = Path(ultralytics.__file__).parent / "cfg/models/11/yolo11n.yaml"
    model = ultralytics.YOLO(str(cfg), task="detect", verbose=False)
    model.save(str(path))
    return path


def cpu_s() -> float:
    """CPU seconds used so far by this process (all threads) and its finished children (ffmpeg)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(variants: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """Name -> (median wall s, median CPU s) of each variant, run interleaved round-robin so that a
    change in the (shared) machine's load hits every variant alike."""
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            w0, c0 = time.perf_counter(), cpu_s()
            fn()
            runs[name].append((time.perf_counter() - w0, cpu_s() - c0))
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}


ROWS = (
    ("stream (no output) vs bare model", "ours", "bare"),
    ("stream + MP4 vs bare model", "ours_mp4", "bare"),
    ("stream (no output) vs ultralytics predict", "ours", "ultra"),
    ("stream + MP4 (H.264) vs ultralytics save=True", "ours_mp4", "ultra_mp4"),
    ("stream + MP4 (mp4v) vs ultralytics save=True", "ours_mp4v", "ultra_mp4"),
)


def print_table(m: dict[str, tuple[float, float]], n: int) -> None:
    """ours / reference / ratio per row of ``ROWS``, in FPS, plus CPU ms per frame."""
    fps = {k: n / wall for k, (wall, _) in m.items()}
    cpu_ms = {k: cpu / n * 1e3 for k, (_, cpu) in m.items()}
    print(f"{'comparison':46s} {'ours FPS':>8s} {'ref FPS':>8s} {'ratio':>6s}   CPU ms/frame ours / ref")
    for name, a, b in ROWS:
        print(f"{name:46s} {fps[a]:8.1f} {fps[b]:8.1f} {fps[a] / fps[b]:6.2f}   {cpu_ms[a]:6.1f} / {cpu_ms[b]:6.1f}")


def print_stage_costs(predictor, frames: list, video: Path) -> None:
    """CPU ms per frame of each stage run alone (all threads of the process), then the median
    ``predict`` time per frame inside the pipeline and in the bare loop: their difference is what
    the other stages running at the same time cost the model."""
    from ultralytics.utils import nms

    from perception.stream import StreamPipeline
    from perception.stream.pipeline import Result
    from perception.stream.records import frame_record
    from perception.stream.sources import VIDEO_CAMERA, VideoFileSource
    from perception.tracking import Tracker2D
    from perception.viz.frame_view import render_frame_view

    p, n = predictor._predictor, len(frames)
    images = [[f.images[VIDEO_CAMERA]] for f in frames]
    x = p.preprocess(images[0])
    with torch.inference_mode():
        raw = p.inference(x)
    preds = [predictor.predict(f) for f in frames]
    tracker = Tracker2D()
    tracked = [{VIDEO_CAMERA: tracker.update(q.boxes2d[VIDEO_CAMERA])} for q in preds]
    pipeline = StreamPipeline(predictor, tracker2d=Tracker2D())
    results = [Result(f, None, b, dict(q.latency_ms, predict=80.0), 0.0) for f, b, q in zip(frames, tracked, preds)]
    copies = [dataclasses.replace(f, images={VIDEO_CAMERA: f.images[VIDEO_CAMERA].copy()}) for f in frames]
    hud = ["12.3 FPS  frame 42", "model 80 ms  latency 160 ms  tracks 3"]

    def infer() -> None:
        with torch.inference_mode():
            for _ in range(n):
                p.inference(x)

    def track() -> None:
        tracker = Tracker2D()
        for q in preds:
            tracker.update(q.boxes2d[VIDEO_CAMERA])

    stages = {
        "decode (FFmpeg + BGR conversion)": lambda: sum(1 for _ in VideoFileSource(video)),
        "preprocess (letterbox, to tensor)": lambda: [p.preprocess(i) for i in images],
        "inference (forward pass)": infer,
        "NMS": lambda: [nms.non_max_suppression(raw, predictor.conf, predictor.iou) for _ in range(n)],
        "tracker (ByteTrack 2D)": track,
        "frame copy (not done for fresh frames)": lambda: [f.images[VIDEO_CAMERA].copy() for f in frames],
        "draw boxes + HUD in place": lambda: [
            render_frame_view(f, None, b, class_names=predictor.class_names, hud_lines=hud, inplace=True)
            for f, b in zip(copies, tracked)
        ],
        "trails + HUD text + record": lambda: [
            (pipeline._update_trails(r, VIDEO_CAMERA), pipeline._hud(r, 0.0), frame_record(r.frame, (), None, r.boxes2d, {}))
            for r in results
        ],
    }  # fmt: skip
    boxes = np.mean([len(b[VIDEO_CAMERA]) for b in tracked])
    print(f"CPU ms per frame, each stage alone ({boxes:.1f} boxes per frame):")
    for name, fn in stages.items():
        c0 = cpu_s()
        fn()
        print(f"  {name:40s} {(cpu_s() - c0) / n * 1e3:7.2f}")
    stats = StreamPipeline(predictor, tracker2d=Tracker2D()).run(VideoFileSource(video))
    bare_ms = []
    for f in frames:
        t0 = time.perf_counter()
        predictor.predict(f)
        bare_ms.append((time.perf_counter() - t0) * 1e3)
    inside, alone = statistics.median(stats.inference_ms), statistics.median(bare_ms)
    print(f"predict per frame (median): in the pipeline {inside:.1f} ms, bare {alone:.1f} ms ({inside / alone:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stages", action="store_true", help="also print the CPU cost of each pipeline stage")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from perception.models.yolo.predictor import YoloPredictor
    from perception.stream import StreamPipeline, VideoSink
    from perception.stream.sources import VideoFileSource
    from perception.tracking import Tracker2D

    tmp = Path(tempfile.mkdtemp(prefix="bench_stream_"))
    video = make_video(tmp / "clip.mp4", args.frames)
    weights = random_yolo(tmp / "yolo11n_random.pt")
    predictor = YoloPredictor(weights, imgsz=args.imgsz)
    source = VideoFileSource(video)
    frames = list(source)
    n = len(frames)
    for f in frames[:5]:  # warm-up
        predictor.predict(f)
    if args.stages:
        print_stage_costs(predictor, frames, video)

    def bare() -> None:
        for f in frames:
            predictor.predict(f)

    def stream(save: bool, codec: str = "auto") -> None:
        sinks = [VideoSink(tmp / "ours.mp4", 10, codec=codec)] if save else []
        stats = StreamPipeline(predictor, tracker2d=Tracker2D(), sinks=sinks).run(VideoFileSource(video))
        assert stats.frames == n, (stats.frames, n)

    def ultralytics(save: bool) -> None:
        results = predictor.yolo.predict(source=str(video), stream=True, imgsz=args.imgsz, conf=predictor.conf,
                                         verbose=False, save=save, project=str(tmp / "ultra"), name="run", exist_ok=True)  # fmt: skip
        count = sum(1 for _ in results)
        assert count == n, (count, n)

    m = measure(
        {"bare": bare, "ours": lambda: stream(False), "ours_mp4": lambda: stream(True),
         "ours_mp4v": lambda: stream(True, "mp4v"),
         "ultra": lambda: ultralytics(False), "ultra_mp4": lambda: ultralytics(True)},
        args.repeats,
    )  # fmt: skip
    print(
        f"YOLO11n random init, imgsz {args.imgsz}, {n} frames 1242x375, torch {torch.__version__}, {args.threads} threads"
    )
    print_table(m, n)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
