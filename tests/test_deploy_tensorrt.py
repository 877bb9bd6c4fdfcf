"""TensorRT paths: the engine file and its version / GPU check, clear errors without tensorrt or a
GPU, the INT8 calibration batches with a fake tensorrt; real engine builds run only where a CUDA
GPU and tensorrt exist (marked ``gpu``)."""

from __future__ import annotations

import importlib.util
import types

import numpy as np
import pytest
import torch

from perception.cli import main
from perception.deploy import tensorrt_engine
from perception.deploy.engine_file import (
    MAGIC,
    check_compatible,
    is_perception_engine,
    read_engine_file,
    write_engine_file,
)
from perception.deploy.export_tensorrt import CalibrationBatches, check_build_options, make_calibrator
from perception.deploy.metadata import FORMAT
from perception.deploy.predictor import load_predictor
from perception.errors import CheckpointError, ConfigError, MissingExtraError

META = {"format": FORMAT, "classes": ["Car"], "point_channels": ["x", "y", "z", "intensity"], "max_detections": 5,
        "point_range": [0, -40, -3, 70, 40, 1], "tensorrt": "10.3.0", "gpu": "Orin", "compute_capability": "8.7",
        "profile": {"min_points": 1, "opt_points": 8, "max_points": 16}}  # fmt: skip
HAS_GPU_TRT = importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()


def test_engine_file_round_trip_and_foreign_files(tmp_path):
    path = write_engine_file(tmp_path / "m.engine", META, b"SERIALIZED")
    assert is_perception_engine(path) and read_engine_file(path) == (META, b"SERIALIZED")
    ultra = tmp_path / "yolo.engine"  # ultralytics' layout: int32 length, JSON, engine
    ultra.write_bytes((7).to_bytes(4, "little") + b'{"a":1}' + b"ENGINE")
    assert not is_perception_engine(ultra) and not is_perception_engine(tmp_path / "missing.engine")
    with pytest.raises(CheckpointError, match="yolo.engine: not a perception TensorRT engine"):
        read_engine_file(ultra)
    data = path.read_bytes()
    (tmp_path / "cut.engine").write_bytes(data[:30])
    with pytest.raises(CheckpointError, match="cut.engine: corrupt engine header"):
        read_engine_file(tmp_path / "cut.engine")
    (tmp_path / "empty.engine").write_bytes(data[: -len(b"SERIALIZED")])
    with pytest.raises(CheckpointError, match="metadata but no engine"):
        read_engine_file(tmp_path / "empty.engine")
    with pytest.raises(CheckpointError, match="nothing.engine: TensorRT engine not found"):
        read_engine_file(tmp_path / "nothing.engine")
    assert data.startswith(MAGIC) and not list(tmp_path.glob(".*tmp"))


def test_engine_for_another_tensorrt_or_gpu_is_refused():
    check_compatible(META, {"tensorrt": "10.3.0", "gpu": "Jetson AGX Orin", "compute_capability": "8.7"}, "m.engine")
    for here in ({"tensorrt": "10.7.0", "gpu": "Orin", "compute_capability": "8.7"},
                 {"tensorrt": "10.3.0", "gpu": "RTX 4090", "compute_capability": "8.9"}):  # fmt: skip
        with pytest.raises(
            CheckpointError, match=r"m.engine: engine built with TensorRT 10.3.0 for Orin \(sm 8.7\).*rebuild"
        ):
            check_compatible(META, here, "m.engine")


def test_missing_tensorrt_or_gpu_is_one_clear_error(tmp_path, monkeypatch):
    path = write_engine_file(tmp_path / "m.engine", META, b"SERIALIZED")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorrt" else real_find_spec(name, *a)
    )
    with pytest.raises(MissingExtraError, match=r"tensorrt is not installed: pip install 'perception\[trt\]'"):
        load_predictor(path, "cuda")
    with pytest.raises(ConfigError, match="TensorRT runs on a CUDA GPU: use device cuda"):
        tensorrt_engine.cuda_device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="needs an NVIDIA GPU"):
        tensorrt_engine.cuda_device("cuda:0")


def test_build_options_are_checked_first(tmp_path, capsys):
    with pytest.raises(ConfigError, match="--int8 needs calibration frames: --calib-data"):
        check_build_options(False, True, None, 1000, 100)
    with pytest.raises(ConfigError, match="opt_points"):
        check_build_options(True, False, None, 100, 1000)
    weights = tmp_path / "m.onnx"
    weights.write_bytes(b"x")
    assert main(["export", "--weights", str(weights), "--format", "engine", "--int8"]) == 2
    assert "--calib-data" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


class _Device:
    """Stands in for a GPU tensor: remembers the batch and hands out a fake pointer."""

    def __init__(self, batch: np.ndarray, log: list):
        self.batch = batch
        log.append(batch)

    def data_ptr(self) -> int:
        return 1000 + id(self.batch) % 1000


def test_calibrator_batches_pad_subsample_and_cache(tmp_path):
    rng = np.random.default_rng(0)
    clouds = [rng.uniform(0, 10, (n, 4)).astype(np.float32) for n in (3, 20, 8)]
    fake_trt = types.SimpleNamespace(IInt8EntropyCalibrator2=object)
    uploaded: list[np.ndarray] = []
    batches = CalibrationBatches(clouds, n_points=8, point_range=META["point_range"], max_batches=0)
    cal = make_calibrator(fake_trt, batches, tmp_path / "m.calib", lambda b: _Device(b, uploaded))
    assert cal.get_batch_size() == 1 and cal.read_calibration_cache() is None
    pointers = [cal.get_batch(["points"]) for _ in range(4)]
    assert [p is None for p in pointers] == [False, False, False, True] and all(len(p) == 1 for p in pointers[:3])
    assert [b.shape for b in uploaded] == [(8, 4)] * 3
    assert np.array_equal(uploaded[0][:3], clouds[0]) and (uploaded[0][3:, 0] == -1000).all()  # padded below x0
    rows = [int(np.flatnonzero((clouds[1] == r).all(1))[0]) for r in uploaded[1]]
    assert rows == sorted(rows) and len(set(rows)) == 8  # a subsample, in input order
    assert np.array_equal(uploaded[2], clouds[2])
    cal.write_calibration_cache(b"cache-bytes")
    assert cal.read_calibration_cache() == b"cache-bytes" and not list(tmp_path.glob(".*tmp"))
    limited = CalibrationBatches(clouds, 8, META["point_range"], max_batches=2)
    assert [limited.next_batch() is None for _ in range(3)] == [False, False, True]


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU_TRT, reason="needs tensorrt and a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_matches_onnx_runtime(tmp_path, precision):
    from test_export_onnx import COUNTS, cloud, make_checkpoint

    from perception.deploy.benchmark import match_detections
    from perception.deploy.export import ExportOptions, export_model
    from perception.deploy.onnx_runtime import OnnxPredictor3D
    from perception.deploy.tensorrt_engine import TensorRTPredictor3D

    pt = make_checkpoint(tmp_path, "anchor")
    onnx_path = export_model(pt, "onnx")
    calib = tmp_path / "calib.yaml"
    calib.write_text(
        "format: synthetic\nroot: .\nclasses: [Car, Pedestrian, Cyclist]\noptions: {sequences: 1, frames: 4}\n"
    )
    options = ExportOptions(half=precision == "fp16", int8=precision == "int8", calib_data=str(calib),
                            max_points=50_000, opt_points=5_000)  # fmt: skip
    engine = export_model(onnx_path, "engine", tmp_path / f"{precision}.engine", options)
    trt_pred, ort_pred = TensorRTPredictor3D(engine, "cuda"), OnnxPredictor3D(onnx_path)
    for n in (0, *COUNTS):
        a, b = ort_pred.predict_points(cloud(n, seed=n))[0], trt_pred.predict_points(cloud(n, seed=n))[0]
        matched, box_diff, score_diff = match_detections(a, b)
        if precision == "fp32":
            assert matched == len(a) == len(b) and box_diff < 1e-3 and score_diff < 1e-4
        else:
            assert matched >= 0.8 * len(a)
    if precision == "int8":
        assert engine.with_suffix(".calib").is_file()
