"""Training engine for 3D detectors: Trainer, builders (optimizers, schedulers), callbacks, evaluation."""

from perception.engine.run_config import resolve_config
from perception.engine.trainer import Trainer, train

__all__ = ["Trainer", "resolve_config", "train"]
