"""A real RTSP stream on 127.0.0.1: ffmpeg publishes a live test pattern to Debian's RTSP relay
(``rtsp-server-perl``), the pipeline reads ``rtsp://127.0.0.1:<port>/live``; mid-stream the
server side is stopped and restarted, and the pipeline reconnects and goes on.

The relay sends RTP over UDP only (it answers a TCP SETUP with 400), so the source's
``rtsp_transport="auto"`` must switch to UDP by itself. Two ways the stream goes away:
``publisher``: the encoder stops (ffmpeg sends TEARDOWN, the relay unmounts) and starts again;
``relay``: the relay and the encoder both die and come back. (A publisher killed with SIGKILL
leaves the relay's mount stale and its restart is refused with 403: a relay limitation.)
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from perception.stream import StreamPipeline, open_source
from perception.stream.sinks import Sink

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("rtsp-server-perl") is None,
    reason="needs the ffmpeg and rtsp-server-perl programs (apt install ffmpeg rtsp-server-perl)",
)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """The relay and one publisher on 127.0.0.1 high ports; every process started is kept to be reaped."""

    def __init__(self):
        self.client_port, self.source_port = free_port(), free_port()
        self.rtp_port = free_port(socket.SOCK_DGRAM)  # the relay takes 2 UDP ports per SETUP from here
        self.processes: list[subprocess.Popen] = []
        self.relay = self.publisher = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.client_port}/live"

    def _spawn(self, cmd: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(proc)
        return proc

    def start_relay(self) -> None:
        self.relay = self._spawn(
            ["rtsp-server-perl", "--clientport", str(self.client_port), "--serverport", str(self.source_port),
             "--client_listen_address", "127.0.0.1", "--source_listen_address", "127.0.0.1",
             "--rtp_start_port", str(self.rtp_port), "--loglevel", "0"]
        )  # fmt: skip
        wait_listening(self.source_port)

    def start_publisher(self) -> None:
        """A live 25 FPS 160x120 H.264 test pattern, in real time (``-re``), published over RTP/UDP."""
        self.publisher = self._spawn(
            ["ffmpeg", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25",
             "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "10",
             "-f", "rtsp", f"rtsp://127.0.0.1:{self.source_port}/live"]
        )  # fmt: skip

    def stop_publisher(self) -> None:
        """Stop the encoder as an operator would: SIGTERM, on which ffmpeg sends TEARDOWN."""
        self.publisher.send_signal(signal.SIGTERM)
        self.publisher.wait(timeout=5)

    def close(self) -> None:
        for proc in self.processes:
            proc.kill()
            proc.wait()


def wait_listening(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


class Outage(Sink):
    """Counts frames; at frame ``at`` takes the server side down and brings it back ``pause_s`` later."""

    def __init__(self, server: RtspServer, what: str, at: int, pause_s: float):
        self.server, self.what, self.at, self.pause_s = server, what, at, pause_s
        self.frames = 0
        self.arrivals: list[float] = []
        self.restarted_at: float | None = None

    def write(self, image, record) -> None:
        self.frames += 1
        self.arrivals.append(time.monotonic())
        if self.frames == self.at:
            self.server.stop_publisher()
            if self.what == "relay":
                self.server.relay.kill()
            threading.Timer(self.pause_s, self._restart).start()

    def _restart(self) -> None:
        if self.what == "relay":
            self.server.start_relay()
        self.server.start_publisher()
        self.restarted_at = time.monotonic()


@pytest.mark.parametrize("what", ["publisher", "relay"])
def test_pipeline_reconnects_to_restarted_rtsp_server(what):
    server = RtspServer()
    server.start_relay()
    server.start_publisher()
    sink = Outage(server, what, at=10, pause_s=1.0)
    # the read timeout (= open timeout) is how long a silent UDP stream takes to count as dropped
    source = open_source(server.url, open_timeout_s=5.0, reconnect_timeout_s=15.0)
    try:
        stats = StreamPipeline(sinks=[sink]).run(source, max_frames=30)
    finally:
        server.close()
    assert stats.frames == 30 and sink.frames == 30
    assert source.transport == "udp", "the relay refuses RTP over TCP: auto must have switched to UDP"
    assert stats.reconnects >= 2, "one switch to UDP at the start, then at least one after the outage"
    assert sink.restarted_at is not None
    after = [t for t in sink.arrivals if t > sink.restarted_at]
    assert len(after) >= 10, "frames after the restart came from the new server"
    gaps = [b - a for a, b in zip(sink.arrivals, sink.arrivals[1:])]
    assert max(gaps) >= sink.pause_s, "the outage is visible as a pause between frames"
