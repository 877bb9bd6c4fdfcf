"""perception stream end to end on small generated videos, and its bad-input behaviour."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from perception.cli import main
from perception.core import Boxes2D, Frame, Predictions
from perception.errors import ConfigError, CorruptFileError, DataError
from perception.stream import ImageFolderSink, JsonlSink, StreamPipeline, VideoSink, open_source
from perception.stream.reader import ThreadedReader
from perception.stream.sinks import Sink
from perception.stream.sources import VIDEO_CAMERA, Source, video_frame
from perception.viz.colors import class_color, track_color

W, H, N = 320, 240, 12
BOX = (100, 80, 220, 180)
CLASSES = ("car", "person")
KITTI = ("Car", "Pedestrian", "Cyclist")


class FakePredictor:
    """A 2D detector that always finds one car at ``BOX``; can fail at a given frame."""

    class_names = CLASSES

    def __init__(self, fail_at: int | None = None, error: type[BaseException] = RuntimeError):
        self.calls, self.fail_at, self.error = 0, fail_at, error

    def predict(self, frame: Frame) -> Predictions:
        if self.calls == self.fail_at:
            raise self.error("boom")
        self.calls += 1
        boxes = Boxes2D(np.array([BOX], np.float32), [0], scores=[0.9])
        return Predictions(boxes2d={VIDEO_CAMERA: boxes}, latency_ms={"inference": 1.0})


def write_video(path: Path, n: int = N, size: tuple[int, int] = (W, H)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    for i in range(n):
        img = np.full((size[1], size[0], 3), 128, np.uint8)
        cv2.circle(img, (20 + 20 * i, 40), 10, (255, 255, 255), -1)  # something that moves
        writer.write(img)
    writer.release()
    return path


def read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


@pytest.fixture
def video(tmp_path) -> Path:
    return write_video(tmp_path / "clip.mp4")


def test_stream_cli_writes_video_with_overlays(video, tmp_path, monkeypatch):
    import perception.deploy.predictor as predictor_module

    monkeypatch.setattr(predictor_module, "load_predictor", lambda weights, device="cpu": FakePredictor())
    out, jsonl = tmp_path / "out" / "drawn.mp4", tmp_path / "out" / "dets.jsonl"
    rc = main(
        ["stream", "--source", str(video), "--weights", "fake.pt", "--track", "--save", str(out), "--jsonl", str(jsonl)]
    )
    assert rc == 0
    frames = read_video(out)
    assert len(frames) == N and frames[0].shape == (H, W, 3)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(N))
    box = records[-1]["boxes2d"][VIDEO_CAMERA][0]
    assert box["label"] == "car" and box["xyxy"] == list(map(float, BOX)) and box["track_id"] >= 0
    colour = np.array(track_color(box["track_id"]), float)  # tracked boxes take their track's colour
    x1, y1, x2, y2 = BOX
    for img in frames[2:]:  # ByteTrack confirms a track after its first frames
        edge = img[y1 + 20 : y2 - 20, x1].astype(float)  # left edge of the drawn box
        assert np.abs(edge - colour).sum(axis=1).mean() < 90, "box outline in the class colour"
        inside = img[y1 + 30 : y2 - 30, x1 + 30 : x2 - 30].astype(float)
        assert np.abs(inside - 128).mean() < 12, "the inside of the box is the untouched picture"
    assert not list(out.parent.glob(".*tmp*")), "no temporary file left behind"


def test_error_mid_stream_still_finalises_the_mp4(video, tmp_path):
    out = tmp_path / "partial.mp4"
    pipeline = StreamPipeline(FakePredictor(fail_at=5), sinks=[VideoSink(out, 10), JsonlSink(tmp_path / "p.jsonl")])
    with pytest.raises(RuntimeError, match="boom"):
        pipeline.run(open_source(video))
    assert len(read_video(out)) == 5
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "p.jsonl", "partial.mp4"]


def test_ctrl_c_finalises_the_mp4(video, tmp_path):
    out = tmp_path / "interrupted.mp4"
    pipeline = StreamPipeline(FakePredictor(fail_at=4, error=KeyboardInterrupt), sinks=[VideoSink(out, 10)])
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(open_source(video))
    assert len(read_video(out)) == 4


def test_frame_of_another_size_is_letterboxed(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, (w, h) in enumerate([(W, H), (W, H), (2 * W, H), (W, H)]):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((h, w, 3), 200, np.uint8))
    (folder / "004.png").write_bytes(b"not a png")  # skipped with a warning
    out = tmp_path / "mixed.mp4"
    stats = StreamPipeline(sinks=[VideoSink(out, 5)], hud=False).run(open_source(folder))
    frames = read_video(out)
    assert stats.frames == 4 and len(frames) == 4
    assert all(f.shape == (H, W, 3) for f in frames)
    assert frames[2][5, W // 2].max() < 20 and frames[2][H // 2, W // 2].min() > 180, "black bars, picture centred"


def test_max_frames_stops_early(video, tmp_path):
    stats = StreamPipeline(FakePredictor(), sinks=[JsonlSink(tmp_path / "a.jsonl")]).run(
        open_source(video), max_frames=3
    )
    assert stats.frames == 3 and len((tmp_path / "a.jsonl").read_text().splitlines()) == 3


def test_bad_sources_give_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        open_source(tmp_path / "missing.mp4")
    bad = tmp_path / "fake.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(CorruptFileError, match="fake.mp4"):
        open_source(bad)
    with pytest.raises(DataError, match="no images"):
        open_source(tmp_path)


def test_unwritable_sink_fails_before_reading(video, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(["stream", "--source", str(video), "--save", str(blocker / "out.mp4")])
    assert rc == 2
    with pytest.raises(ConfigError, match="folder"):
        VideoSink(tmp_path, 10)


def test_url_that_never_answers_times_out(tmp_path):
    """A server that accepts the connection and then says nothing: a bounded wait, then DataError."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    source = open_source(f"http://127.0.0.1:{port}/live.ts", open_timeout_s=1.0, reconnect_timeout_s=1.0)
    start = time.monotonic()
    try:
        with pytest.raises(DataError, match="no frames within"):
            StreamPipeline().run(source)
    finally:
        stop.set()
        thread.join()
        for c in held:
            c.close()
        server.close()
    assert time.monotonic() - start < 20


def test_refused_url_errors_quickly():
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = open_source(f"http://127.0.0.1:{port}/x.ts", open_timeout_s=0.5)
    with pytest.raises(DataError, match="127.0.0.1"):
        StreamPipeline().run(source)


def test_rtsp_auto_transport_alternates_after_failed_opens_and_leaves_no_env(monkeypatch):
    monkeypatch.delenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", raising=False)
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = open_source(f"rtsp://127.0.0.1:{port}/live", open_timeout_s=0.5)
    assert source.transport is None, "auto starts with FFmpeg's own choice (TCP preferred)"
    tried = [source.transport]
    for _ in range(3):
        source._open().release()
        tried.append(source.transport)
    assert tried == [None, "udp", "tcp", "udp"]
    assert "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ
    assert open_source(f"rtsp://127.0.0.1:{port}/live", rtsp_transport="tcp").transport == "tcp"
    assert open_source(f"http://127.0.0.1:{port}/x.ts", rtsp_transport="udp").transport is None
    with pytest.raises(ConfigError, match="rtsp_transport 'quic'"):
        open_source(f"rtsp://127.0.0.1:{port}/live", rtsp_transport="quic")


def test_reader_drops_stale_items_for_live_sources():
    def produce():
        yield from range(50)

    live = ThreadedReader(produce, maxsize=1, drop_stale=True)
    time.sleep(0.3)  # the consumer is slow: everything but the newest is dropped
    got = [item for item, _ in live]
    live.close()
    assert got[-1] == 49 and len(got) < 5 and live.dropped >= 45
    files = ThreadedReader(produce, maxsize=2)
    time.sleep(0.1)
    assert [item for item, _ in files] == list(range(50))
    files.close()


def test_reader_reraises_producer_errors():
    def produce():
        yield 1
        raise DataError("broken file")

    reader = ThreadedReader(produce)
    with pytest.raises(DataError, match="broken file"):
        list(reader)
    reader.close()


class ListSource(Source):
    """Frames from memory; ``fresh_images`` as the test says."""

    def __init__(self, frames: list[Frame], fresh_images: bool):
        super().__init__()
        self.frames, self.fresh_images = frames, fresh_images

    def __iter__(self):
        return iter(self.frames)


class KeepImages(Sink):
    def __init__(self):
        self.images = []

    def write(self, image, record):
        self.images.append(image)


@pytest.mark.parametrize("fresh_images", [False, True])
def test_pipeline_draws_on_the_source_images_only_when_they_are_fresh(fresh_images):
    frames = [video_frame(np.full((H, W, 3), 128, np.uint8), "mem", i, 0.1 * i) for i in range(3)]
    sink = KeepImages()
    StreamPipeline(FakePredictor(), sinks=[sink]).run(ListSource(frames, fresh_images))
    x1, y1, _, y2 = BOX
    for frame, drawn in zip(frames, sink.images, strict=True):
        assert tuple(drawn[(y1 + y2) // 2, x1]) == class_color(0, CLASSES), "box outline drawn"
        assert (drawn is frame.images[VIDEO_CAMERA]) == fresh_images
        assert (frame.images[VIDEO_CAMERA] == 128).all() != fresh_images, "borrowed images stay as they were"


def test_kitti_sequence_with_ground_truth_and_bev(shared_data, tmp_path):
    out = tmp_path / "kitti.mp4"
    root = Path(__file__).resolve().parents[1]
    assert main(["stream", "--source", str(root / "datasets/kitti.yaml"), "--gt", "--save", str(out)]) == 0
    frames = read_video(out)
    assert len(frames) == 3
    first = cv2.imread(str(shared_data / "kitti/object/training/image_2/000000.png"))
    h, w = first.shape[:2]
    assert frames[0].shape[:2] == (h, w + 2 + h), "camera | separator | square BEV panel"
    bev = frames[0][:, w + 2 :].astype(int)
    assert (bev.max(axis=2) - bev.min(axis=2) > 60).mean() > 0.005, "coloured lidar points in the BEV panel"
    pedestrian = np.abs(frames[0][:, :w].astype(int) - class_color(1, KITTI)).sum(axis=2) < 80  # 000000: one pedestrian
    assert pedestrian.sum() > 50, "ground-truth boxes drawn in class colours on the camera"


@pytest.mark.parametrize("codec", ["mp4v", "h264"])
def test_video_sink_codecs_and_image_folder(video, tmp_path, codec):
    if codec == "h264" and shutil.which("ffmpeg") is None:
        pytest.skip("needs the ffmpeg program for H.264")
    out, folder = tmp_path / f"{codec}.mp4", tmp_path / "frames"
    stats = StreamPipeline(sinks=[VideoSink(out, 10, codec=codec), ImageFolderSink(folder)]).run(open_source(video))
    assert stats.outputs == [out, folder]
    assert len(read_video(out)) == N
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:06d}.jpg" for i in range(N)]


def test_empty_run_writes_nothing(tmp_path):
    sink = VideoSink(tmp_path / "never.mp4", 10)
    assert sink.close() is None and not list(tmp_path.iterdir())


def test_glob_source_reads_matching_images_in_name_order(tmp_path):
    for name in ["b.png", "a.png", "c.jpg", "notes.txt"]:
        (tmp_path / name).write_bytes(
            cv2.imencode(Path(name).suffix or ".png", np.zeros((8, 8, 3), np.uint8))[1] if name != "notes.txt" else b"x"
        )
    source = open_source(str(tmp_path / "*.png"))
    assert [p.name for p in source.files] == ["a.png", "b.png"]
    assert [f.index for f in source] == [0, 1]
