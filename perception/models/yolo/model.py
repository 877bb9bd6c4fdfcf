"""Open a YOLO model: a model YAML (from scratch) or a checkpoint the user gives, never a download.

ultralytics treats a bare name such as ``yolo11n.pt`` that is not a file as an asset to fetch from
the internet; :func:`load_yolo` accepts only files that exist, so that can never happen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perception.errors import CheckpointError, ConfigError
from perception.models.yolo.env import import_ultralytics

MODEL_SUFFIXES = (".yaml", ".yml", ".pt")
EXPORTED_SUFFIXES = (".onnx", ".engine", ".torchscript")


def load_yolo(path: str | Path, *, exported: bool = False) -> Any:
    """An ``ultralytics.YOLO`` detection model.

    Args:
        path: model YAML (random init), ``.pt`` checkpoint, or with ``exported=True`` also an
            ``.onnx`` / ``.engine`` file (inference only).

    Raises:
        ConfigError: missing or invalid model YAML.
        CheckpointError: missing file, or a file that is not a YOLO detection model.
    """
    import_ultralytics()
    from ultralytics import YOLO

    path = Path(path)
    suffixes = MODEL_SUFFIXES + (EXPORTED_SUFFIXES if exported else ())
    if path.suffix not in suffixes:
        raise CheckpointError(f"expected a {' / '.join(suffixes)} YOLO model", path=path)
    is_yaml = path.suffix in (".yaml", ".yml")
    if not path.is_file():
        raise (ConfigError if is_yaml else CheckpointError)("file not found", path=path)
    try:
        model = YOLO(str(path), task="detect", verbose=False)
    except Exception as e:  # noqa: BLE001 - ultralytics raises many types for a foreign file; all mean "not a YOLO model"
        kind = "not a valid YOLO model YAML" if is_yaml else "not an ultralytics YOLO checkpoint"
        raise (ConfigError if is_yaml else CheckpointError)(f"{kind}: {_first_line(e)}", path=path) from None
    if path.suffix == ".pt" and getattr(model, "task", None) != "detect":
        raise CheckpointError(f"a YOLO {model.task!r} model, not a detector", path=path)
    return model


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def class_names(model: Any) -> tuple[str, ...]:
    """The model's class names in id order."""
    names = model.names
    return tuple(names[k] for k in sorted(names)) if isinstance(names, dict) else tuple(names)
