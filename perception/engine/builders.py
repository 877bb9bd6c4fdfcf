"""Optimizers, learning-rate schedulers and parameter groups, built by name from the run config.

Schedulers are stepped once per iteration; epoch-based settings (``step_epochs``, ``gamma`` per
epoch, ``warmup_epochs``) are converted with the number of steps per epoch.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from perception.config import close_match_hint
from perception.errors import ConfigError


def _sgd(params, c):
    return torch.optim.SGD(params, lr=c["lr"], weight_decay=c["weight_decay"])


def _momentum(params, c):
    return torch.optim.SGD(params, lr=c["lr"], momentum=c["momentum"], weight_decay=c["weight_decay"])


def _nesterov(params, c):
    return torch.optim.SGD(params, lr=c["lr"], momentum=c["momentum"], nesterov=True, weight_decay=c["weight_decay"])


def _adam(params, c):
    return torch.optim.Adam(params, lr=c["lr"], betas=tuple(c["betas"]), weight_decay=c["weight_decay"])


def _adamw(params, c):
    return torch.optim.AdamW(params, lr=c["lr"], betas=tuple(c["betas"]), weight_decay=c["weight_decay"])


def _adagrad(params, c):
    return torch.optim.Adagrad(params, lr=c["lr"], weight_decay=c["weight_decay"])


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": _sgd, "momentum": _momentum, "nesterov": _nesterov, "adam": _adam, "adamw": _adamw, "adagrad": _adagrad,
}  # fmt: skip


def choose(kind: str, name: str, table: dict[str, Any]) -> Any:
    if name not in table:
        raise ConfigError(f"unknown {kind} {name!r}{close_match_hint(str(name), table)}")
    return table[name]


def freeze(model: nn.Module, patterns: list[str]) -> list[str]:
    """Stop gradients of parameters whose name matches a pattern; returns the frozen names."""
    frozen = [n for n, p in model.named_parameters() if any(fnmatch.fnmatch(n, pat) for pat in patterns)]
    if patterns and not frozen:
        raise ConfigError(
            f"freeze patterns {patterns} match no parameter (names look like 'backbone.blocks.0.0.0.weight')"
        )
    for n, p in model.named_parameters():
        if n in frozen:
            p.requires_grad_(False)
    return frozen


def param_groups(model: nn.Module, lr: float, lr_mult: dict[str, float]) -> list[dict[str, Any]]:
    """Trainable parameters grouped by the first ``lr_mult`` pattern their name matches."""
    groups: dict[str, list[nn.Parameter]] = {}
    for n, p in model.named_parameters():
        if p.requires_grad:
            key = next((pat for pat in lr_mult if fnmatch.fnmatch(n, pat)), "")
            groups.setdefault(key, []).append(p)
    unused = set(lr_mult) - set(groups)
    if unused:
        raise ConfigError(f"lr_mult patterns {sorted(unused)} match no trainable parameter")
    return [
        {"params": ps, "lr": lr * float(lr_mult.get(key, 1.0)), "name": key or "default"} for key, ps in groups.items()
    ]


def build_optimizer(model: nn.Module, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    make = choose("optimizer", cfg["optimizer"], OPTIMIZERS)
    return make(param_groups(model, cfg["lr"], dict(cfg.get("lr_mult") or {})), cfg)


def _poly(t: float, m: float) -> float:
    return m + (1 - m) * (1 - t) ** 0.9


def _linear(t: float, m: float) -> float:
    return 1 - (1 - m) * t


def _inverse_sqrt(t: float, m: float) -> float:
    return max(m, 1 / math.sqrt(1 + 100 * t))


# progress t in [0, 1] -> lr factor; m = min_lr_ratio
LAMBDA_RULES: dict[str, Callable[[float, float], float]] = {
    "poly": _poly,
    "linear": _linear,
    "inverse_sqrt": _inverse_sqrt,
}


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float) -> float:
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: dict[str, Any], steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The scheduler ``cfg["scheduler"]`` for ``cfg["epochs"] * steps_per_epoch`` iterations."""
    S = max(1, steps_per_epoch)
    total = max(1, cfg["epochs"] * S)
    warmup = round(cfg["warmup_epochs"] * S)
    m, gamma = cfg["min_lr_ratio"], cfg["gamma"]
    sched = torch.optim.lr_scheduler
    name = cfg["scheduler"]
    makers: dict[str, Callable[[], sched.LRScheduler]] = {
        "step": lambda: sched.StepLR(optimizer, step_size=max(1, cfg["step_epochs"] * S), gamma=gamma),
        "lambda": lambda: sched.LambdaLR(optimizer, LambdaRule(cfg["lambda_rule"], total, m)),
        "constant": lambda: sched.ConstantLR(optimizer, factor=cfg["start_factor"], total_iters=max(1, warmup)),
        "linear": lambda: sched.LinearLR(
            optimizer, start_factor=cfg["start_factor"], total_iters=max(1, warmup or total)
        ),
        "exponential": lambda: sched.ExponentialLR(optimizer, gamma=gamma ** (1 / S)),
        "multiplicative": lambda: sched.MultiplicativeLR(optimizer, ConstantFactor(gamma ** (1 / S))),
        "cosine": lambda: sched.LambdaLR(optimizer, WarmupCosine(warmup, total, m)),
        "onecycle": lambda: _one_cycle(optimizer, total, warmup, m),
    }
    return choose("scheduler", name, makers)()


def _one_cycle(
    optimizer: torch.optim.Optimizer, total: int, warmup: int, m: float
) -> torch.optim.lr_scheduler.OneCycleLR:
    """OneCycleLR from lr/25 up to lr over the warm-up, then cosine down to ``m * lr``. torch needs
    at least 2 steps and a warm-up fraction strictly inside (1/T, 1): clamp, do not fail, on tiny runs."""
    T = max(total, 2)
    pct = min(max(warmup / T, 1.5 / T), 1 - 0.5 / T)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=T, pct_start=pct,
        cycle_momentum=False, final_div_factor=1 / max(m, 1e-6) / 25,
    )  # fmt: skip


class LambdaRule:
    """Named rule of ``LAMBDA_RULES`` over ``total`` steps (plain attributes: scheduler state pickles)."""

    def __init__(self, rule: str, total: int, min_ratio: float):
        choose("lambda_rule", rule, LAMBDA_RULES)
        self.rule, self.total, self.min_ratio = rule, total, min_ratio

    def __call__(self, step: int) -> float:
        return LAMBDA_RULES[self.rule](min(step / self.total, 1.0), self.min_ratio)


class ConstantFactor:
    """MultiplicativeLR factor applied at every step."""

    def __init__(self, factor: float):
        self.factor = factor

    def __call__(self, step: int) -> float:
        return self.factor


class WarmupCosine:
    """Linear warm-up then cosine decay to ``min_ratio``."""

    def __init__(self, warmup: int, total: int, min_ratio: float):
        self.warmup, self.total, self.min_ratio = warmup, total, min_ratio

    def __call__(self, step: int) -> float:
        return warmup_cosine(step, self.warmup, self.total, self.min_ratio)
