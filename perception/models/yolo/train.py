"""Train or fine-tune a YOLO 2D detector through ultralytics, offline, with our option names.

``perception train --task detect2d --model configs/yolo11n.yaml --data datasets/kitti.yaml``.
Our options map onto ultralytics' arguments where it has them (``lr`` -> ``lr0``, ``scheduler:
cosine`` -> ``cos_lr``, ``freeze: backbone`` -> the backbone's layer count); label smoothing and
dropout, which ultralytics' detector lacks, are added here for the training model only (the saved
EMA weights and exports are unchanged). Any other ultralytics argument passes through ``extra``.
The resolved options go to ``<run>/config.yaml`` before training starts; ``resume`` reads them back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from perception.config import close_match_hint, load_yaml, save_config
from perception.errors import CheckpointError, ConfigError
from perception.models.yolo.data import resolve_data
from perception.models.yolo.model import load_yolo

SCHEDULERS = ("linear", "cosine")
# ultralytics arguments our options set: passing them through ``extra`` would be ambiguous
_MAPPED = {"epochs", "batch", "imgsz", "optimizer", "lr0", "lrf", "cos_lr", "warmup_epochs", "patience", "freeze",
           "device", "seed", "workers", "amp", "project", "name", "exist_ok", "data", "resume", "model"}  # fmt: skip


@dataclass
class TrainOptions:
    """Training options (names shared with the CLI and the 3D trainer where they mean the same)."""

    epochs: int = 100  # passes over the training set
    batch: int = 16  # images per step
    imgsz: int = 640  # training image size (long side, pixels; multiple of 32)
    optimizer: str = "auto"  # SGD, Adam, AdamW, ... or auto (ultralytics picks by run length)
    lr: float | None = None  # initial learning rate; None: the optimizer's default
    scheduler: str = "linear"  # LR decay: linear or cosine
    final_lr: float = 0.01  # final LR as a fraction of lr
    warmup_epochs: float = 3.0  # LR/momentum warm-up; mAP is ~0 during it by design
    patience: int = 100  # early stop after this many epochs without a better val fitness
    label_smoothing: float = 0.0  # class targets t -> t (1 - e) + e / 2 on anchors with an object
    dropout: float = 0.0  # spatial dropout on the features entering the detection head
    freeze: Any = None  # "backbone", N (first N layers) or a list of layer indices
    device: str = ""  # "" picks cuda:0 when available, else cpu
    seed: int = 0
    workers: int = 2  # data-loader processes (ultralytics forces 0 on CPU)


def options_from_dict(values: dict[str, Any]) -> TrainOptions:
    """``TrainOptions`` from a mapping; an unknown key is a ConfigError with a close match."""
    known = {f.name for f in fields(TrainOptions)}
    for key in values:
        if key not in known:
            raise ConfigError(f"unknown detect2d option {key!r}{close_match_hint(key, known)}")
    return TrainOptions(**values)


def ultralytics_args(opts: TrainOptions, model: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``YOLO.train`` keyword arguments for our options (and validated passthrough ``extra``)."""
    from ultralytics.cfg import DEFAULT_CFG_DICT

    if opts.scheduler not in SCHEDULERS:
        raise ConfigError(f"scheduler {opts.scheduler!r}: choose from {SCHEDULERS}")
    device = opts.device or ("0" if torch.cuda.is_available() else "cpu")
    args = {
        "epochs": opts.epochs, "batch": opts.batch, "imgsz": opts.imgsz, "optimizer": opts.optimizer,
        "lrf": opts.final_lr, "cos_lr": opts.scheduler == "cosine", "warmup_epochs": opts.warmup_epochs,
        "patience": opts.patience, "freeze": freeze_layers(opts.freeze, model), "device": device,
        "seed": opts.seed, "workers": opts.workers,
        # bf16 skips ultralytics' AMP self-test, which downloads a reference model (CUDA only)
        "amp": "bf16" if device != "cpu" else False,
    }  # fmt: skip
    if opts.lr is not None:
        args["lr0"] = opts.lr
    for key, value in (extra or {}).items():
        if key in _MAPPED:
            raise ConfigError(f"{key!r} is set through a perception option or flag, not as an ultralytics argument")
        if key not in DEFAULT_CFG_DICT:
            raise ConfigError(f"unknown ultralytics argument {key!r}{close_match_hint(key, DEFAULT_CFG_DICT)}")
        args[key] = value
    return args


def freeze_layers(freeze: Any, model: Any) -> int | list[int] | None:
    """``"backbone"`` -> the number of backbone layers of the model's YAML; ints and lists unchanged."""
    if freeze in (None, "", 0, "none"):
        return None
    if freeze == "backbone":
        return len(model.model.yaml["backbone"])
    if isinstance(freeze, int) or (isinstance(freeze, list) and all(isinstance(v, int) for v in freeze)):
        return freeze
    raise ConfigError(f"freeze={freeze!r}: use 'backbone', a layer count or a list of layer indices")


def train_yolo(model: str | Path, data: str | Path, out: str | Path, opts: TrainOptions | None = None,
               extra: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """Train from a model YAML or fine-tune from a ``.pt`` checkpoint.

    Args:
        model: ``configs/yolo11n.yaml`` style YAML (random init) or a YOLO ``.pt`` checkpoint.
        data: a dataset YAML of ours (converted to YOLO layout, cached under ``out``'s parent
            in ``yolo_data/``) or a YOLO data YAML.
        out: run folder; receives ``config.yaml``, ``weights/{best,last}.pt``, curves and plots.
        opts: training options; ``extra``: other ultralytics arguments (e.g. ``{"mosaic": 0.5}``).

    Returns:
        Path of the best checkpoint (``out/weights/best.pt``).
    """
    opts = opts or TrainOptions()
    out = Path(out).resolve()
    yolo = load_yolo(model)
    data_yaml = resolve_data(data, out.parent / "yolo_data")
    args = ultralytics_args(opts, yolo, extra)
    save_config({"task": "detect2d", "model": str(model), "data": str(data), "yolo_data": str(data_yaml),
                 "options": asdict(opts), "ultralytics": args}, out / "config.yaml")  # fmt: skip
    _add_regularisers(yolo, opts)
    yolo.train(data=str(data_yaml), project=str(out.parent), name=out.name, exist_ok=True, **args)
    return out / "weights" / "best.pt"


def resume_yolo(run: str | Path) -> Path:
    """Continue an interrupted run from ``<run>/weights/last.pt`` with the options it was started with."""
    run = Path(run)
    last = run / "weights" / "last.pt" if run.is_dir() else run
    if not last.is_file():
        raise CheckpointError("no last.pt to resume from", path=last)
    run_dir = last.parent.parent
    saved = load_yaml(run_dir / "config.yaml") if (run_dir / "config.yaml").is_file() else {}
    opts = options_from_dict(saved.get("options", {}))
    yolo = load_yolo(last)
    _add_regularisers(yolo, opts)
    yolo.train(resume=True)
    return run_dir / "weights" / "best.pt"


class SmoothBCEWithLogits(nn.Module):
    """BCE-with-logits whose targets are smoothed on anchors that have an object, as YOLOv5 did.

    On those anchors every class target t becomes ``t (1 - eps) + eps / 2``; background anchors keep
    target 0 (smoothing them too would add a large constant to the loss of every image).
    Shapes: logits and targets (B, A, C); returns the per-element loss (B, A, C).
    """

    def __init__(self, eps: float):
        super().__init__()
        self.eps = eps

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        foreground = targets.sum(-1, keepdim=True) > 0
        smoothed = torch.where(foreground, targets * (1 - self.eps) + self.eps / 2, targets)
        return F.binary_cross_entropy_with_logits(logits, smoothed, reduction="none")


def _add_regularisers(yolo: Any, opts: TrainOptions) -> None:
    """Hook label smoothing and head-input dropout into the model being trained.

    Added at ``on_train_start``, after ultralytics copied the model into its EMA: the EMA (what
    is validated, saved and exported) never carries them.
    """
    if not 0 <= opts.label_smoothing < 1 or not 0 <= opts.dropout < 1:
        raise ConfigError(f"label_smoothing={opts.label_smoothing}, dropout={opts.dropout}: each must be in [0, 1)")
    if opts.label_smoothing == 0 and opts.dropout == 0:
        return

    def on_train_start(trainer: Any) -> None:
        from ultralytics.utils.torch_utils import unwrap_model

        net = unwrap_model(trainer.model)
        if opts.label_smoothing > 0:
            net.criterion = net.init_criterion()
            net.criterion.bce = SmoothBCEWithLogits(opts.label_smoothing)
        if opts.dropout > 0:
            p = opts.dropout
            net.model[-1].register_forward_pre_hook(
                lambda m, inputs: ([F.dropout2d(x, p, m.training) for x in inputs[0]],)
            )

    yolo.add_callback("on_train_start", on_train_start)
