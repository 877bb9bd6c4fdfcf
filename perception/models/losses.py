"""Per-term loss functions selectable by name; each returns an element-wise loss tensor.

Terms and the names each accepts:
    cls (scores against targets in [0, 1], logits in): focal, bce_with_logits, bce, mse
    box (regression residuals): l1, smooth_l1, mse
    dir (2-way direction bins, logits in, int64 targets): cross_entropy, nll
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from perception.config import close_match_hint
from perception.errors import ConfigError

LossFn = Callable[..., torch.Tensor]


def focal(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """Penalty-reduced focal loss (CenterNet, Zhou et al. 2019); equals the plain sigmoid focal
    loss (alpha = 0.5 up to scale) when targets are binary. Targets of exactly 1 are positives."""
    logp = F.logsigmoid(logits)
    log1mp = F.logsigmoid(-logits)
    p = logp.exp()
    pos = target >= 1.0
    loss_pos = -((1 - p) ** gamma) * logp
    loss_neg = -((1 - target).clamp(min=0) ** beta) * (p**gamma) * log1mp
    return torch.where(pos, loss_pos, loss_neg)


def bce_with_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none")


def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # BCE on probabilities; clamp keeps log() finite (autocast refuses F.binary_cross_entropy)
    p = torch.sigmoid(logits.float()).clamp(1e-6, 1 - 1e-6)
    return -(target * torch.log(p) + (1 - target) * torch.log1p(-p))


def mse_prob(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (torch.sigmoid(logits) - target) ** 2


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(pred, target, reduction="none")


def smooth_l1(pred: torch.Tensor, target: torch.Tensor, beta: float = 1.0 / 9.0) -> torch.Tensor:
    return F.smooth_l1_loss(pred, target, reduction="none", beta=beta)


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred, target, reduction="none")


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    return F.cross_entropy(logits, target, reduction="none", label_smoothing=label_smoothing)


def nll(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    logp = F.log_softmax(logits, dim=-1)
    loss = F.nll_loss(logp, target, reduction="none")
    return (1 - label_smoothing) * loss - label_smoothing * logp.mean(dim=-1)


LOSSES: dict[str, dict[str, LossFn]] = {
    "cls": {"focal": focal, "bce_with_logits": bce_with_logits, "bce": bce, "mse": mse_prob},
    "box": {"l1": l1, "smooth_l1": smooth_l1, "mse": mse},
    "dir": {"cross_entropy": cross_entropy, "nll": nll},
}


def build_loss(term: str, name: str) -> LossFn:
    """The loss function ``name`` for head term ``term`` (cls, box, dir)."""
    choices = LOSSES[term]
    if name not in choices:
        raise ConfigError(f"unknown loss_{term} {name!r}{close_match_hint(str(name), choices)}")
    return choices[name]


def smooth_binary(target: torch.Tensor, eps: float) -> torch.Tensor:
    """Label smoothing for binary targets: 1 -> 1 - eps/2, 0 -> eps/2."""
    return target * (1 - eps) + 0.5 * eps if eps > 0 else target
