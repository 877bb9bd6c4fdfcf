"""``TensorRTPredictor3D``: a perception ``.engine`` (``perception export --format engine``) run with
the TensorRT Python API, device buffers held by torch (no pycuda needed).

TensorRT is imported only here and only when an engine is opened; without it, or without a CUDA
GPU, the error says what to install. Exercised by ``perception stream / benchmark --weights x.engine``.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from perception.core import Boxes3D
from perception.deploy.engine_file import check_compatible, read_engine_file
from perception.deploy.onnx_runtime import check_points, detections
from perception.deploy.predictor import PointsPredictor
from perception.errors import CheckpointError, ConfigError, MissingExtraError, ShapeError


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module, or MissingExtraError naming the ``trt`` extra."""
    if importlib.util.find_spec("tensorrt") is None:
        raise MissingExtraError("tensorrt", "trt")
    import tensorrt

    return tensorrt


def cuda_device(device: str) -> torch.device:
    """``cuda`` / ``cuda:i`` as a torch device; a CPU-only machine or another device is a ConfigError."""
    if not device.startswith("cuda"):
        raise ConfigError(f"TensorRT runs on a CUDA GPU: use device cuda or cuda:<i>, not {device!r}")
    if not torch.cuda.is_available():
        raise ConfigError("TensorRT needs an NVIDIA GPU with a working CUDA driver; torch sees none on this machine")
    return torch.device(device)


def runtime_info(trt: ModuleType, device: torch.device) -> dict[str, str]:
    """TensorRT version, GPU name and compute capability of ``device`` (what an engine is tied to)."""
    major, minor = torch.cuda.get_device_capability(device)
    return {
        "tensorrt": trt.__version__,
        "gpu": torch.cuda.get_device_name(device),
        "compute_capability": f"{major}.{minor}",
    }


def _torch_dtype(trt: ModuleType, dtype) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32, trt.bool: torch.bool}
    if hasattr(trt, "int64"):
        table[trt.int64] = torch.int64
    return table[dtype]


class TensorRTPredictor3D(PointsPredictor):
    """A perception TensorRT engine on one GPU.

    Args:
        weights: the ``.engine`` file.
        device: ``cuda`` or ``cuda:<i>``.
    """

    def __init__(self, weights: str | Path, device: str = "cuda"):
        self.path = Path(weights)
        self.meta, blob = read_engine_file(self.path)
        trt = import_tensorrt()
        self.device = cuda_device(device)
        check_compatible(self.meta, runtime_info(trt, self.device), self.path)
        self.logger = trt.Logger(trt.Logger.ERROR)
        with torch.cuda.device(self.device):
            self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(blob)
            if self.engine is None:
                raise CheckpointError("TensorRT could not deserialize this engine (corrupt file?)", path=self.path)
            self.context = self.engine.create_execution_context()
        self.class_names = tuple(self.meta["classes"])
        self.channels = tuple(self.meta["point_channels"])
        self.max_points = int(self.meta["profile"]["max_points"])
        k = int(self.meta["max_detections"])
        shapes = {"boxes": (k, 7), "scores": (k,), "labels": (k,), "num_detections": ()}
        self.outputs = {
            name: torch.empty(shape, dtype=_torch_dtype(trt, self.engine.get_tensor_dtype(name)), device=self.device)
            for name, shape in shapes.items()
        }
        self.stream = torch.cuda.Stream(self.device)
        # An empty cloud runs as one point below the range: the graph sends it to the trash cell.
        self.empty = np.zeros((1, len(self.channels)), np.float32)
        self.empty[0, 0] = float(self.meta["point_range"][0]) - 1000.0

    def predict_points(self, points: np.ndarray) -> tuple[Boxes3D, dict[str, float]]:
        """(N, C) float32 points -> detections and per-stage ms (``inference`` includes the copies)."""
        points = check_points(points, self.channels, self.path)
        if len(points) > self.max_points:
            raise ShapeError(
                f"{len(points)} points; this engine was built for at most {self.max_points} "
                "(rebuild with a larger --max-points)",
                path=self.path,
            )
        t0 = time.perf_counter()
        with torch.cuda.stream(self.stream):
            inp = torch.from_numpy(points if len(points) else self.empty).to(self.device, non_blocking=False)
            self.context.set_input_shape("points", tuple(inp.shape))
            self.context.set_tensor_address("points", inp.data_ptr())
            for name, buf in self.outputs.items():
                self.context.set_tensor_address(name, buf.data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"TensorRT execution failed for {self.path}")
            host = {name: buf.cpu() for name, buf in self.outputs.items()}
        self.stream.synchronize()
        t1 = time.perf_counter()
        dets = detections(*(host[n].numpy() for n in ("boxes", "scores", "labels", "num_detections")))
        t2 = time.perf_counter()
        return dets, {"inference": (t1 - t0) * 1e3, "postprocess": (t2 - t1) * 1e3}
