"""One prediction interface over every backend: ``load_predictor(weights).predict(frame)``.

``.pt`` checkpoints run in torch (``TorchPredictor3D``); ``.onnx`` / ``.engine`` exports in ONNX Runtime /
TensorRT (``perception.deploy.backends``). Exercised by ``perception predict`` and ``perception val``.
"""

from __future__ import annotations

import abc
import time
from pathlib import Path

import numpy as np
import torch

from perception.core import Boxes3D, Frame, Predictions
from perception.errors import DataError


class Predictor(abc.ABC):
    """Frame in, ``Predictions`` out (3D boxes in the frame's ego frame, with scores)."""

    class_names: tuple[str, ...] = ()

    @abc.abstractmethod
    def predict(self, frame: Frame) -> Predictions: ...


class PointsPredictor(Predictor):
    """A 3D backend that runs on raw (N, C) points: ``predict`` adds the frame -> points step."""

    channels: tuple[str, ...] = ()

    @abc.abstractmethod
    def predict_points(self, points: np.ndarray) -> tuple[Boxes3D, dict[str, float]]:
        """Boxes for one cloud and the milliseconds of ``inference`` and ``postprocess``."""

    def predict(self, frame: Frame) -> Predictions:
        t0 = time.perf_counter()
        points = model_inputs(frame, self.channels)
        t1 = time.perf_counter()
        dets, ms = self.predict_points(points)
        return Predictions(boxes3d=dets, latency_ms={"preprocess": (t1 - t0) * 1e3, **ms})


def model_inputs(frame: Frame, channels: list[str] | tuple[str, ...]) -> np.ndarray:
    """(N, len(channels)) float32 points of ``frame`` in the model's channel order; channels the
    cloud lacks (e.g. intensity) are zeros. NaN / inf points are dropped."""
    if frame.points is None:
        raise DataError(f"frame {frame.name} has no lidar points; a 3D detector needs them")
    cloud = frame.points
    cols = [cloud.channel(c) if c in cloud.channels else np.zeros(len(cloud), np.float32) for c in channels]
    pts = np.stack(cols, axis=1).astype(np.float32) if cols else np.zeros((len(cloud), 0), np.float32)
    return pts[np.isfinite(pts).all(axis=1)]


class TorchPredictor3D(Predictor):
    """A perception ``.pt`` checkpoint run in torch on ``device``."""

    def __init__(self, weights: str | Path, device: str = "cpu"):
        from perception.models import load_model
        from perception.models.detector import model_settings

        self.model, self.config = load_model(weights, device)
        self.settings = model_settings(self.config)
        self.class_names = tuple(self.settings["classes"])
        self.device = device

    @torch.no_grad()
    def predict(self, frame: Frame) -> Predictions:
        from perception.models.postprocess import postprocess

        t0 = time.perf_counter()
        points = torch.from_numpy(model_inputs(frame, self.settings["point_channels"])).to(self.device)
        t1 = time.perf_counter()
        boxes, scores, labels = self.model(points)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        s = self.settings
        dets = postprocess(
            boxes.cpu().numpy(), scores.cpu().numpy(), labels.cpu().numpy(), s["score_thresholds"], s["nms_iou"]
        )
        t3 = time.perf_counter()
        ms = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3}
        return Predictions(boxes3d=dets, latency_ms=ms)


def load_predictor(weights: str | Path, device: str = "cpu") -> Predictor:
    """The predictor for a weights file: ``.pt`` (torch), ``.onnx`` (ONNX Runtime) or ``.engine``
    (TensorRT), 3D perception models or YOLO; see ``perception.deploy.backends``."""
    from perception.deploy.backends import load_backend

    return load_backend(weights, device)
