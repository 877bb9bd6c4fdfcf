"""Which ``Predictor`` runs a weights file: perception 3D checkpoints and exports, or ultralytics
YOLO models, told apart by suffix and by what the file itself says (metadata, header, pickle).

    .pt      perception checkpoint -> TorchPredictor3D      ultralytics -> YoloPredictor
    .onnx    perception export     -> OnnxPredictor3D       ultralytics -> YoloPredictor
    .engine  perception engine     -> TensorRTPredictor3D   other       -> YoloPredictor
Called by ``perception.deploy.predictor.load_predictor``.
"""

from __future__ import annotations

from pathlib import Path

from perception.deploy.predictor import Predictor
from perception.errors import CheckpointError

SUFFIXES = (".pt", ".onnx", ".engine")


def is_yolo(path: Path) -> bool:
    """An ultralytics checkpoint or ONNX export (cheap: reads the pickle name table or metadata);
    False for unreadable files, which the 3D loaders then report."""
    if path.suffix not in (".pt", ".onnx") or not path.is_file():
        return False
    from perception.models.yolo.predictor import is_yolo_weights

    try:
        return is_yolo_weights(path)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError for a corrupt .onnx, among others
        return False


def load_backend(path: str | Path, device: str = "cpu") -> Predictor:
    """The predictor for ``path``; see the module docstring.

    Raises:
        CheckpointError: unknown suffix, missing file, or a file of the wrong kind.
    """
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise CheckpointError(
            f"unsupported weights format {path.suffix!r}; supported: {', '.join(SUFFIXES)}", path=path
        )
    if path.suffix == ".engine":
        from perception.deploy.engine_file import is_perception_engine

        if path.is_file() and not is_perception_engine(path):
            return _yolo(path, device)
        from perception.deploy.tensorrt_engine import TensorRTPredictor3D

        return TensorRTPredictor3D(path, device)
    if is_yolo(path):
        return _yolo(path, device)
    if path.suffix == ".onnx":
        from perception.deploy.onnx_runtime import OnnxPredictor3D

        return OnnxPredictor3D(path, device)
    from perception.deploy.predictor import TorchPredictor3D

    return TorchPredictor3D(path, device)


def _yolo(path: Path, device: str) -> Predictor:
    from perception.models.yolo.predictor import YoloPredictor

    return YoloPredictor(path, device)
