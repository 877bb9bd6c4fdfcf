"""Checkpoints: one ``torch.save`` dict written atomically, enough to rebuild, predict and resume.

Keys: ``model`` (state dict), ``optimizer``, ``scheduler``, ``scaler``, ``epoch``, ``step``,
``rng`` (python / numpy / torch states), ``config`` (the resolved run config: model section,
training keys, dataset class names), ``metrics``, ``versions``.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch

from perception.errors import CheckpointError
from perception.files import atomic_path

REQUIRED_KEYS = ("model", "config")


def versions() -> dict[str, str]:
    import numpy

    from perception import __version__

    return {
        "perception": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus versions) to ``path`` via a temporary file and rename."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({**state, "versions": versions()}, tmp)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint on the CPU; a missing, unreadable or config-less file is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint not found", path=path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - torch raises many types for corrupt files
        raise CheckpointError(f"unreadable checkpoint ({type(e).__name__}: {e})", path=path) from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        raise CheckpointError(f"not a perception checkpoint (needs keys {list(REQUIRED_KEYS)})", path=path)
    return ckpt


def load_model(path: str | Path, device: str = "cpu"):
    """Rebuild the model of a checkpoint from its saved config and load its weights (eval mode).

    Returns:
        (model, config) where config is the resolved run config saved at training time.
    """
    from perception.models.detector import build_model_from_config

    ckpt = load_checkpoint(path)
    model = build_model_from_config(ckpt["config"])
    load_state_strict(model, ckpt["model"], path)
    return model.to(device).eval(), ckpt["config"]


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Load weights that must match exactly; a mismatch means another architecture."""
    mine = model.state_dict()
    missing = sorted(set(mine) - set(state))
    unexpected = sorted(set(state) - set(mine))
    shapes = sorted(k for k in set(mine) & set(state) if mine[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        detail = "; ".join(
            f"{name}: {keys[:3]}{' ...' if len(keys) > 3 else ''}"
            for name, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes))
            if keys
        )
        raise CheckpointError(f"weights do not fit this architecture ({detail})", path=path)
    model.load_state_dict(state)
