"""3D pillar detectors in plain torch, built from the ``model:`` section of a config."""

from perception.models.checkpoint import load_checkpoint, load_model, save_checkpoint
from perception.models.detector import MODEL_DEFAULTS, PillarDetector, build_model, build_model_from_config
from perception.models.postprocess import postprocess, rotated_nms

__all__ = [
    "MODEL_DEFAULTS", "PillarDetector", "build_model", "build_model_from_config", "load_checkpoint", "load_model",
    "postprocess", "rotated_nms", "save_checkpoint",
]  # fmt: skip
