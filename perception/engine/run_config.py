"""The resolved run config: ``configs/train_default.yaml`` <- model YAML <- ``key=value`` overrides.

Every top-level key must exist in the defaults (the model YAML adds only ``model:``), so a typo
fails before anything is written, naming the valid keys and the closest match.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perception.config import apply_overrides, check_keys, load_config, load_yaml, merge, parse_overrides
from perception.models.detector import MODEL_DEFAULTS

DEFAULTS_PATH = Path(__file__).resolve().parents[2] / "configs" / "train_default.yaml"


def train_defaults() -> dict[str, Any]:
    """The flat training defaults (with an empty ``model:`` section whose keys are the model defaults)."""
    return {**load_yaml(DEFAULTS_PATH), "model": dict(MODEL_DEFAULTS)}


def resolve_config(
    config: str | Path | dict[str, Any] | None, overrides: list[str] | dict[str, Any] = ()
) -> dict[str, Any]:
    """Merge defaults, a model YAML (path or dict) and overrides into one checked config."""
    reference = train_defaults()
    cfg = load_config(config) if isinstance(config, (str, Path)) else dict(config or {})
    where = str(config) if isinstance(config, (str, Path)) else "config"
    check_keys(cfg, reference, where=where)
    cfg = merge({k: v for k, v in reference.items() if k != "model"}, cfg)
    cfg["model"] = {**MODEL_DEFAULTS, **(cfg.get("model") or {})}  # resolved: every model key spelled out
    over = parse_overrides(overrides) if isinstance(overrides, (list, tuple)) else dict(overrides)
    check_keys(over, reference, where="override")
    return apply_overrides(cfg, over, where="override") if over else cfg


def diff_configs(configs: list[dict[str, Any]]) -> list[str]:
    """Flat ``section.key`` names whose values differ between the given configs."""
    flat = [_flatten(c) for c in configs]
    keys = sorted(set().union(*flat)) if flat else []
    return [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1]


def _flatten(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        if isinstance(v, dict) and k == "model":
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
