"""A live stream served by ffmpeg on 127.0.0.1 (HTTP / MPEG-TS) is stopped and restarted
mid-stream: the pipeline reconnects and goes on. Bounded in time by the source's timeouts."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time

import pytest

from perception.stream import StreamPipeline, open_source
from perception.stream.sinks import Sink

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg program (apt install ffmpeg)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int) -> subprocess.Popen:
    """ffmpeg as a one-client HTTP server of a live 25 FPS test pattern (real time, low latency)."""
    cmd = ["ffmpeg", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25",
           "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "10",
           "-f", "mpegts", "-listen", "1", f"http://127.0.0.1:{port}/live.ts"]  # fmt: skip
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class ServerKiller(Sink):
    """Counts frames; at ``kill_at`` stops the server and starts a new one ``pause_s`` later."""

    def __init__(self, port: int, kill_at: int, pause_s: float):
        self.port, self.kill_at, self.pause_s = port, kill_at, pause_s
        self.servers = [serve(port)]
        self.frames = 0
        self.arrivals: list[float] = []

    def write(self, image, record) -> None:
        self.frames += 1
        self.arrivals.append(time.monotonic())
        if self.frames == self.kill_at:
            self.servers[-1].kill()
            threading.Timer(self.pause_s, lambda: self.servers.append(serve(self.port))).start()

    def stop_all(self) -> None:
        for s in self.servers:
            s.kill()
            s.wait()


def test_pipeline_reconnects_after_server_restart():
    port = free_port()
    sink = ServerKiller(port, kill_at=15, pause_s=1.5)
    source = open_source(f"http://127.0.0.1:{port}/live.ts", open_timeout_s=10.0, reconnect_timeout_s=15.0)
    try:
        stats = StreamPipeline(sinks=[sink], hud=True).run(source, max_frames=40)
    finally:
        time.sleep(0.1)
        sink.stop_all()
    assert stats.frames == 40 and sink.frames == 40
    assert stats.reconnects >= 1
    assert len(sink.servers) == 2, "frames after the kill came from the restarted server"
    gaps = [b - a for a, b in zip(sink.arrivals, sink.arrivals[1:])]
    assert max(gaps) >= 1.0, "the outage is visible as a pause between frames"
