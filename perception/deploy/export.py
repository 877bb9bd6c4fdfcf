"""``export_model``: any model the project trains -> ONNX or a TensorRT engine, by format name.

3D detector checkpoints go through ``export_onnx`` (one graph) and, for engines, ``build_engine``;
YOLO checkpoints through ultralytics' exporter, in a scratch folder so that a failed export leaves
no file and an existing one is replaced only by a complete export. Called by ``perception export``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from perception.config import close_match_hint
from perception.errors import CheckpointError, ConfigError

FORMATS = ("onnx", "engine")


@dataclass
class ExportOptions:
    """Every knob of ``perception export`` (CLI flags of the same names)."""

    opset: int = 18
    simplify: bool = False
    dynamic: bool = False  # YOLO: dynamic batch and image size (a 3D graph always takes any point count)
    half: bool = False  # engine: FP16
    int8: bool = False  # engine: INT8 (+ FP16), calibrated on calib_data
    calib_data: str | None = None  # dataset YAML (3D) or YOLO data YAML (2D)
    calib_split: str | None = None
    calib_frames: int = 64
    max_points: int = 300_000  # engine profile (3D)
    opt_points: int = 120_000
    workspace_gb: float = 4.0
    imgsz: int | list[int] | None = None  # YOLO input size, or [h, w] (None: the trained size)
    device: str = "cuda"  # engines are built on this GPU


def export_model(
    weights: str | Path, fmt: str, out: str | Path | None = None, options: ExportOptions | None = None
) -> Path:
    """Export ``weights`` (.pt checkpoint, or .onnx for an engine) to ``fmt``; returns the written path.

    Raises:
        ConfigError: unknown format or options that do not apply. CheckpointError: bad weights.
        MissingExtraError: tensorrt / ultralytics missing for a format that needs them.
    """
    from perception.deploy.backends import is_yolo

    o = options or ExportOptions()
    weights = Path(weights)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}{close_match_hint(fmt, FORMATS)}")
    if (o.half or o.int8) and fmt != "engine":
        raise ConfigError("--half / --int8 apply to --format engine (TensorRT precision)")
    if not weights.is_file():
        raise CheckpointError("weights not found", path=weights)
    out = Path(out) if out else weights.with_suffix(f".{fmt}")
    if is_yolo(weights):
        return export_yolo(weights, fmt, out, o)
    if fmt == "onnx":
        from perception.deploy.export_onnx import export_onnx

        return export_onnx(weights, out, opset=o.opset, simplify_graph=o.simplify)
    return export_engine(weights, out, o)


def export_engine(weights: Path, out: Path, o: ExportOptions) -> Path:
    """3D detector -> engine: from a perception ``.onnx``, or a ``.pt`` exported to ONNX beside ``out`` first."""
    from perception.deploy.export_onnx import export_onnx
    from perception.deploy.export_tensorrt import (
        CalibrationBatches,
        build_engine,
        calibration_clouds,
        check_build_options,
    )
    from perception.deploy.metadata import from_strings
    from perception.deploy.tensorrt_engine import cuda_device, import_tensorrt

    check_build_options(o.half, o.int8, o.calib_data or None, o.max_points, o.opt_points)
    import_tensorrt()  # fail before the (slow) ONNX export when the engine cannot be built here
    cuda_device(o.device)
    if weights.suffix == ".pt":
        onnx_path = export_onnx(weights, out.with_suffix(".onnx"), opset=o.opset, simplify_graph=o.simplify)
    elif weights.suffix == ".onnx":
        onnx_path = weights
    else:
        raise CheckpointError("an engine is built from a .pt checkpoint or its .onnx export", path=weights)
    calibration = None
    if o.int8:
        from perception.deploy.export_onnx import read_onnx

        meta = from_strings({p.key: p.value for p in read_onnx(onnx_path).metadata_props}, onnx_path)
        clouds = calibration_clouds(o.calib_data, meta["point_channels"], o.calib_split, o.calib_frames)
        calibration = CalibrationBatches(clouds, o.opt_points, meta["point_range"])
    return build_engine(
        onnx_path, out, half=o.half, int8=o.int8, calibration=calibration, max_points=o.max_points,
        opt_points=o.opt_points, workspace_gb=o.workspace_gb, device=o.device,
    )  # fmt: skip


def export_yolo(weights: Path, fmt: str, out: Path, o: ExportOptions) -> Path:
    """A YOLO ``.pt`` through ultralytics' exporter (offline), moved to ``out`` only when complete."""
    from perception.models.yolo.model import load_yolo

    if weights.suffix != ".pt":
        raise CheckpointError("YOLO exports start from its .pt checkpoint", path=weights)
    kwargs = {"format": fmt, "opset": o.opset, "simplify": o.simplify, "dynamic": o.dynamic, "verbose": False}
    kwargs.update({k: True for k in ("half", "int8") if getattr(o, k)})  # ultralytics warns on int8=False
    if o.imgsz:
        kwargs["imgsz"] = o.imgsz
    if fmt == "engine":
        kwargs.update(device=o.device.removeprefix("cuda:").replace("cuda", "0"), workspace=o.workspace_gb)
        if o.int8:
            kwargs["data"] = o.calib_data
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out.parent) as scratch:
        copy = Path(scratch) / weights.name
        shutil.copyfile(weights, copy)
        written = Path(load_yolo(copy).export(**kwargs))
        os.replace(written, out)
    return out
