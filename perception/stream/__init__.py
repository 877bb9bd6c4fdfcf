"""Real-time streaming with overlays: sources (file, URL, webcam, folder, dataset sequence), a
threaded pipeline (decode | predict + track | draw + write) and sinks (window, MP4, images, JSON
lines). Exercised by ``perception stream``."""

from perception.stream.pipeline import StreamPipeline, StreamStats
from perception.stream.sinks import ImageFolderSink, JsonlSink, VideoSink, WindowSink
from perception.stream.sources import open_source

__all__ = ["ImageFolderSink", "JsonlSink", "StreamPipeline", "StreamStats", "VideoSink", "WindowSink", "open_source"]
