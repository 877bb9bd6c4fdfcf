"""The video of ``perception demo``: a dataset sequence through the trained detector and the
tracker, drawn with projected 3D boxes, track trails, ground truth and the BEV panel."""

from __future__ import annotations

from pathlib import Path

from perception.errors import PerceptionError
from perception.stream.pipeline import StreamPipeline, StreamStats
from perception.stream.sinks import VideoSink
from perception.stream.sources import DatasetSequenceSource


def render_demo_video(
    dataset,
    predictor,
    tracker,
    out_path: str | Path,
    *,
    sequence: str | None = None,
    max_frames: int | None = None,
    camera: str | None = None,
    show_gt: bool = True,
    fps: float = 10.0,
) -> tuple[Path, StreamStats]:
    """Stream one sequence of ``dataset`` into an MP4.

    Args:
        dataset: an open ``DriveDataset`` (or a dataset YAML path).
        predictor: ``predict(frame) -> Predictions`` (None: ground truth only).
        tracker: a ``Tracker3D`` (or None: untracked boxes, no trails).
        out_path: the MP4 to write (finalised even if a frame fails).
        sequence: which sequence (default the first).
        show_gt: draw ground truth thin and green under the predictions.

    Returns:
        The written path and the run's statistics (frames, FPS, latencies).
    """
    source = DatasetSequenceSource(dataset, sequence, fps=fps)
    pipeline = StreamPipeline(
        predictor, tracker3d=tracker, sinks=[VideoSink(out_path, fps, preset="veryfast")], camera=camera,
        class_names=None if predictor is not None else source.class_names, show_gt=show_gt,
    )  # fmt: skip
    stats = pipeline.run(source, max_frames=max_frames)
    if not stats.outputs:
        raise PerceptionError("no frames were rendered", path=out_path)
    return stats.outputs[0], stats
