"""``OnnxPredictor3D``: an exported 3D detector (``perception export --format onnx``) run in ONNX Runtime.

Everything the model needs (channels, classes, thresholds) comes from the file's metadata; NMS is
inside the graph, so post-processing is only cutting the fixed-size outputs to their count.
Exercised by ``perception stream / view / benchmark --weights model.onnx`` via ``load_predictor``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from perception.core import Boxes3D
from perception.deploy.metadata import from_strings
from perception.deploy.predictor import PointsPredictor
from perception.errors import CheckpointError, ConfigError, ShapeError

PROVIDERS = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}


def session_providers(device: str, available: list[str]) -> list[Any]:
    """ONNX Runtime providers for ``device``: ``cpu``, ``cuda[:i]`` or ``tensorrt[:i]`` (TensorRT
    execution provider, falling back to CUDA for parts it cannot run).

    Raises:
        ConfigError: unknown device, or a GPU device this onnxruntime build cannot use.
    """
    kind, _, index = device.partition(":")
    if kind not in PROVIDERS or (index and not index.isdigit()):
        raise ConfigError(f"device {device!r} for ONNX Runtime: use cpu, cuda[:i] or tensorrt[:i]")
    wanted = PROVIDERS[kind]
    if wanted[0] not in available:
        raise ConfigError(
            f"device {device!r} needs onnxruntime's {wanted[0]}, not in this build ({', '.join(available)}); "
            "pip install onnxruntime-gpu, or use device cpu"
        )
    options = {"device_id": int(index or 0)}
    return [(p, options) if p != "CPUExecutionProvider" else p for p in wanted if p in available]


def open_session(path: str | Path, device: str = "cpu", threads: int = 0):
    """An ``onnxruntime.InferenceSession``; a missing or corrupt file is a CheckpointError."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise CheckpointError("ONNX model not found", path=path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 8)
    options.log_severity_level = 3  # errors only: the messages below say what went wrong
    providers = session_providers(device, ort.get_available_providers())
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types for foreign bytes
        raise CheckpointError(f"not a loadable ONNX model ({type(e).__name__}: {e})", path=path) from None


class OnnxPredictor3D(PointsPredictor):
    """A perception ``.onnx`` export run in ONNX Runtime.

    Args:
        weights: the ``.onnx`` file.
        device: ``cpu``, ``cuda[:i]`` or ``tensorrt[:i]``.
        threads: intra-op threads (0: the CPU count, at most 8).
    """

    def __init__(self, weights: str | Path, device: str = "cpu", threads: int = 0):
        self.path = Path(weights)
        self.session = open_session(self.path, device, threads)
        self.meta = from_strings(self.session.get_modelmeta().custom_metadata_map, self.path)
        self.class_names = tuple(self.meta["classes"])
        self.channels = tuple(self.meta["point_channels"])
        self.device = device
        self.input_name = self.session.get_inputs()[0].name

    def predict_points(self, points: np.ndarray) -> tuple[Boxes3D, dict[str, float]]:
        """(N, C) float32 points in the model's channel order -> detections and per-stage ms.

        Raises:
            ShapeError: the points do not have the model's C channels.
        """
        points = check_points(points, self.channels, self.path)
        t0 = time.perf_counter()
        boxes, scores, labels, num = self.session.run(None, {self.input_name: points})
        t1 = time.perf_counter()
        dets = detections(boxes, scores, labels, num)
        t2 = time.perf_counter()
        return dets, {"inference": (t1 - t0) * 1e3, "postprocess": (t2 - t1) * 1e3}


def check_points(points: np.ndarray, channels: tuple[str, ...], path: Path) -> np.ndarray:
    """(N, C) float32 contiguous points, or a ShapeError naming the model and its channels."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != len(channels):
        raise ShapeError(
            f"points of shape {points.shape}; this model takes (N, {len(channels)}) points {list(channels)}",
            path=path,
        )
    return np.ascontiguousarray(points, dtype=np.float32)


def detections(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, num: np.ndarray) -> Boxes3D:
    """The first ``num`` rows of the graph's fixed-size outputs as ``Boxes3D`` (already NMS'd, best first)."""
    n = int(np.asarray(num).reshape(-1)[0])
    return Boxes3D(
        np.asarray(boxes[:n], np.float32).reshape(-1, 7),
        np.asarray(labels[:n], np.int64),
        scores=np.asarray(scores[:n], np.float32),
    )
