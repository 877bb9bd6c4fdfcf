"""Small callback objects the trainer calls on events (``on_epoch_end``, ``on_fit_end``).

Order matters and is fixed by ``default_callbacks``: the metric tracker decides "improved" and
"stop" before the checkpoint saver and the loggers read them. Only rank 0 gets writers.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perception.files import atomic_path, atomic_write

if TYPE_CHECKING:
    from perception.engine.trainer import Trainer


class Callback:
    def on_epoch_end(self, trainer: Trainer) -> None: ...

    def on_fit_end(self, trainer: Trainer) -> None: ...


class MetricTracker(Callback):
    """Tracks the best validation value of ``metric`` (higher is better; names ending in ``loss``
    are lower-is-better) and asks the trainer to stop after ``patience`` validations without an
    improvement larger than ``min_delta``."""

    def __init__(self, metric: str, patience: int, min_delta: float):
        self.key = metric if metric.startswith(("val/", "train/")) else f"val/{metric}"
        self.patience, self.min_delta = patience, min_delta
        self.best: float | None = None
        self.bad = 0

    def on_epoch_end(self, trainer: Trainer) -> None:
        metrics = trainer.history[-1]
        trainer.improved = False
        if self.key not in metrics:
            trainer.improved = not trainer.has_validation  # no validation: best follows last
            return
        value = float(metrics[self.key])
        sign = -1.0 if self.key.endswith("loss") else 1.0
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.bad, trainer.improved = value, 0, True
        else:
            self.bad += 1
            if self.patience and self.bad >= self.patience:
                trainer.stop = True
                trainer.log(
                    f"early stopping: {self.key} did not improve for {self.bad} validations (best {self.best:.4f})"
                )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad = state["best"], state["bad"]


class CheckpointSaver(Callback):
    """``last.pt`` after every epoch and ``best.pt`` whenever the tracked metric improved."""

    def on_epoch_end(self, trainer: Trainer) -> None:
        from perception.models.checkpoint import save_checkpoint

        state = trainer.checkpoint_state()
        save_checkpoint(trainer.run_dir / "weights" / "last.pt", state)
        if trainer.improved:
            save_checkpoint(trainer.run_dir / "weights" / "best.pt", state)


class CSVLogger(Callback):
    """``results.csv``: one row per epoch, one column per metric (rewritten atomically)."""

    def on_epoch_end(self, trainer: Trainer) -> None:
        write_csv(trainer.run_dir / "results.csv", trainer.history)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_write(path, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


class TensorBoardLogger(Callback):
    """Scalars of every epoch under the run folder (``tensorboard --logdir runs``)."""

    def __init__(self, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def on_epoch_end(self, trainer: Trainer) -> None:
        row = trainer.history[-1]
        for k, v in row.items():
            if k != "epoch" and isinstance(v, (int, float)) and math.isfinite(v):
                self.writer.add_scalar(k, v, row["epoch"])
        self.writer.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        self.writer.close()


class PlotCurves(Callback):
    """``loss.png``, ``lr.png`` and ``ap.png`` (validation AP, when there is any) in the run folder."""

    def on_epoch_end(self, trainer: Trainer) -> None:
        plot_history(trainer.history, trainer.run_dir)


def plot_history(history: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {
        "loss": [k for k in history[-1] if k.startswith("train/")],
        "lr": ["lr"],
        "ap": [k for k in history[-1] if k.startswith("val/") and k.endswith("/moderate/R40") and "/aos/" not in k],
    }
    written = []
    for name, keys in groups.items():
        if not keys:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for k in keys:
            pts = [(r["epoch"], r[k]) for r in history if k in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=k)
        ax.set_xlabel("epoch")
        ax.set_ylabel({"loss": "loss", "lr": "learning rate", "ap": "AP (%)"}[name])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        with atomic_path(out_dir / f"{name}.png") as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)
        written.append(out_dir / f"{name}.png")
    return written


def default_callbacks(cfg: dict[str, Any], run_dir: Path, is_main: bool) -> list[Callback]:
    """Tracker on every rank (stop decisions); writers on rank 0 only."""
    callbacks: list[Callback] = [MetricTracker(cfg["metric"], cfg["patience"], cfg["min_delta"])]
    if is_main:
        callbacks += [CheckpointSaver(), CSVLogger()]
        if cfg["tensorboard"]:
            callbacks.append(TensorBoardLogger(run_dir))
        if cfg["plots"]:
            callbacks.append(PlotCurves())
    return callbacks
