"""``perception export --format engine [--half | --int8 --calib-data <dataset yaml>]``: an exported
ONNX graph -> a TensorRT engine for this machine's GPU (desktop or Jetson), with the tensorrt API.

The point count is dynamic: one optimisation profile from 1 to ``max_points`` points, tuned for
``opt_points``. INT8 uses an entropy calibrator over real frames, each padded (with points below
the range, which the graph discards) or subsampled to ``opt_points``; its cache is saved beside
the engine and reused by the next build. The engine is written with its metadata
(``perception.deploy.engine_file``), through a temporary file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from perception.deploy.engine_file import write_engine_file
from perception.errors import ConfigError, DataError
from perception.files import atomic_write


class CalibrationBatches:
    """Fixed-size point batches for INT8 calibration.

    Args:
        clouds: (N_i, C) float32 point clouds in the model's channel order.
        n_points: rows of every batch (the profile's optimum).
        point_range: the model's (x0, y0, z0, x1, y1, z1); padding rows sit 1 km below x0.
        max_batches: stop after this many (0: every cloud).
        seed: for the subsampling of clouds larger than ``n_points``.
    """

    def __init__(self, clouds: Iterable[np.ndarray], n_points: int, point_range: list[float], max_batches: int = 0,
                 seed: int = 0):  # fmt: skip
        self.clouds: Iterator[np.ndarray] = iter(clouds)
        self.n_points, self.max_batches = n_points, max_batches
        self.pad_x = float(point_range[0]) - 1000.0
        self.rng = np.random.default_rng(seed)
        self.served = 0

    def next_batch(self) -> np.ndarray | None:
        """The next (n_points, C) float32 batch, or None when done."""
        if self.max_batches and self.served >= self.max_batches:
            return None
        cloud = next(self.clouds, None)
        if cloud is None:
            return None
        cloud = np.asarray(cloud, np.float32)
        if len(cloud) > self.n_points:  # keep input order: the graph caps points per pillar in that order
            cloud = cloud[np.sort(self.rng.choice(len(cloud), self.n_points, replace=False))]
        batch = np.zeros((self.n_points, cloud.shape[1]), np.float32)
        batch[: len(cloud)] = cloud
        batch[len(cloud) :, 0] = self.pad_x
        self.served += 1
        return batch


def make_calibrator(trt: ModuleType, batches: CalibrationBatches, cache: Path, upload: Callable[[np.ndarray], Any]):
    """A ``trt.IInt8EntropyCalibrator2`` over ``batches``; ``upload`` puts a batch on the GPU and
    returns an object with ``data_ptr()`` (kept alive until the next batch)."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.current = None

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = batches.next_batch()
            if batch is None:
                return None
            self.current = upload(batch)
            return [int(self.current.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data) -> None:
            with atomic_write(cache, "wb") as f:
                f.write(bytes(data))

    return EntropyCalibrator()


def network_from_onnx(trt: ModuleType, builder, onnx_path: Path, logger):
    """Parse the ONNX file into a TensorRT network; parser errors become one ConfigError."""
    flags = (
        0 if int(trt.__version__.split(".")[0]) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    )
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ConfigError(f"TensorRT {trt.__version__} cannot parse this graph: {errors}", path=onnx_path)
    return network


def build_engine(
    onnx_path: str | Path, out: str | Path, *, half: bool = False, int8: bool = False,
    calibration: CalibrationBatches | None = None, max_points: int = 300_000, opt_points: int = 120_000,
    workspace_gb: float = 4.0, device: str = "cuda",
) -> Path:  # fmt: skip
    """Build and write a TensorRT engine for ``device`` from a perception ``.onnx`` export.

    Raises:
        MissingExtraError: tensorrt is not installed. ConfigError: no GPU, bad options, or a
        graph TensorRT cannot parse / build. CheckpointError: not a perception ONNX export.
    """
    import torch

    from perception.deploy.export_onnx import read_onnx
    from perception.deploy.metadata import from_strings
    from perception.deploy.tensorrt_engine import cuda_device, import_tensorrt, runtime_info

    onnx_path, out = Path(onnx_path), Path(out)
    check_build_options(half, int8, calibration, max_points, opt_points)
    meta = from_strings({p.key: p.value for p in read_onnx(onnx_path).metadata_props}, onnx_path)
    trt = import_tensorrt()
    dev = cuda_device(device)
    logger = trt.Logger(trt.Logger.WARNING)
    with torch.cuda.device(dev):
        builder = trt.Builder(logger)
        network = network_from_onnx(trt, builder, onnx_path, logger)
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
        profile = builder.create_optimization_profile()
        channels = len(meta["point_channels"])
        profile.set_shape("points", (1, channels), (opt_points, channels), (max_points, channels))
        config.add_optimization_profile(profile)
        if half or int8:
            config.set_flag(trt.BuilderFlag.FP16)
        if int8:
            config.set_flag(trt.BuilderFlag.INT8)
            config.set_calibration_profile(profile)
            cache = out.with_suffix(".calib")
            upload = lambda b: torch.from_numpy(b).to(dev)
            config.int8_calibrator = make_calibrator(trt, calibration, cache, upload)
        serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ConfigError(f"TensorRT {trt.__version__} could not build an engine from this graph (see its log above)",
                          path=onnx_path)  # fmt: skip
    precision = "int8" if int8 else "fp16" if half else "fp32"
    profile_meta = {"min_points": 1, "opt_points": opt_points, "max_points": max_points}
    info = {**meta, **runtime_info(trt, dev), "precision": precision, "profile": profile_meta, "onnx": onnx_path.name}
    return write_engine_file(out, info, bytes(serialized))


def check_build_options(half: bool, int8: bool, calibration: Any, max_points: int, opt_points: int) -> None:
    """Option errors found before any GPU work."""
    if int8 and calibration is None:
        raise ConfigError("--int8 needs calibration frames: --calib-data <dataset yaml>")
    if not 1 <= opt_points <= max_points:
        raise ConfigError(f"need 1 <= opt_points ({opt_points}) <= max_points ({max_points})")


def calibration_clouds(
    data_yaml: str | Path, channels: list[str], split: str | None, frames: int
) -> Iterator[np.ndarray]:
    """Point clouds of the first ``frames`` frames (0: all) of a dataset, in the model's channel order.

    The dataset is opened here, so a bad YAML fails before the build, not inside TensorRT's callback."""
    from perception.data.registry import load_dataset
    from perception.deploy.predictor import model_inputs

    dataset = load_dataset(data_yaml, split=split)
    n = min(frames, len(dataset)) if frames > 0 else len(dataset)
    if n == 0:
        raise DataError("no frames to calibrate on", path=data_yaml)
    return (model_inputs(dataset.load_frame(i, images=False), channels) for i in range(n))
