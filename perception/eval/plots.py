"""Metric plots as PNG files: PR curves, confusion matrix, training curves from a CSV.

matplotlib runs headless (Agg) and is imported inside each function, so importing this module is
cheap. Every file is written atomically. Exercised by ``perception val`` and by the trainer's CSV
logger (``plot_training_curves(run_dir / "metrics.csv", run_dir / "curves.png")``).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from perception.errors import CorruptFileError, DataError
from perception.eval.classification import ClassificationReport
from perception.files import atomic_path


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    _pyplot().close(fig)
    return path


def plot_pr_curves(
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], path: str | Path, title: str = ""
) -> Path:
    """One panel per group (e.g. class, 5 per row), one line per curve (e.g. difficulty).

    Args:
        curves: ``{panel: {line label: (recall (N,), precision (N,))}}``.
        path: output PNG.
    """
    plt = _pyplot()
    n = max(len(curves), 1)
    cols = min(n, 5)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(curves) :]:
        ax.set_visible(False)
    for ax, (panel, lines) in zip(axes.flat, curves.items()):
        for label, (recall, precision) in lines.items():
            ax.plot(recall, precision, label=label)
        ax.set(title=panel, xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    if title:
        fig.suptitle(title, y=1.02)
    return _save(fig, path)


def plot_kitti_pr(result: Any, out_dir: str | Path) -> list[Path]:
    """``<out_dir>/kitti_pr_<metric>.png`` per metric of a ``KittiResult`` (the devkit's plots:
    interpolated precision at the 41 recall samples, one line per difficulty)."""
    recall = np.linspace(0, 1, 41)
    paths = []
    for metric, per_class in result.precision.items():
        curves = {c: {d: (recall, p) for d, p in per_diff.items()} for c, per_diff in per_class.items()}
        paths.append(plot_pr_curves(curves, Path(out_dir) / f"kitti_pr_{metric}.png", title=f"KITTI {metric}"))
    return paths


def plot_detection_pr(result: Any, out_dir: str | Path) -> list[Path]:
    """PR curves of any detection result into ``out_dir``: KITTI (``kitti_pr_<metric>.png``),
    nuScenes (``nuscenes_pr.png``, a line per distance threshold), Waymo (``waymo_pr.png``, a line
    per difficulty level). Argoverse 2 results keep no curves: nothing is written."""
    if hasattr(result, "ap_r40"):
        return plot_kitti_pr(result, out_dir)
    if hasattr(result, "nds"):
        curves = {
            c: {f"{th} m": (md.recall, md.precision) for th, md in per.items()} for c, per in result.curves.items()
        }
        return [plot_pr_curves(curves, Path(out_dir) / "nuscenes_pr.png", title="nuScenes")]
    if hasattr(result, "maph"):
        curves = {
            c: {f"LEVEL_{lv}": (cv.recall, cv.precision) for lv, cv in per.items()} for c, per in result.curves.items()
        }
        return [plot_pr_curves(curves, Path(out_dir) / "waymo_pr.png", title="Waymo")]
    return []


def plot_confusion_matrix(report: ClassificationReport, path: str | Path, normalize: bool = True) -> Path:
    """Heat map of ``report.confusion`` (rows true, columns predicted), row-normalised by default,
    with the raw counts written in the cells."""
    plt = _pyplot()
    m = report.confusion.astype(np.float64)
    shown = m / np.maximum(m.sum(axis=1, keepdims=True), 1) if normalize else m
    n = len(report.labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * n, 0.8 + 0.6 * n))
    im = ax.imshow(shown, cmap="Blues", vmin=0)
    ax.set_xticks(range(n), report.labels, rotation=45, ha="right")
    ax.set_yticks(range(n), report.labels)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix" + (" (row-normalised)" if normalize else ""))
    top = shown.max() if shown.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                f"{int(m[i, j])}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if shown[i, j] > top / 2 else "black",
            )
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def read_metrics_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Numeric columns of a CSV with a header row; empty cells are NaN. Errors name file and line."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise CorruptFileError(f"cannot read: {e}", path=path) from None
    if len(rows) < 2:
        raise CorruptFileError("needs a header row and at least one data row", path=path)
    header, data = rows[0], rows[1:]
    cols: dict[str, list[float]] = {h: [] for h in header}
    for line, row in enumerate(data, start=2):
        if len(row) != len(header):
            raise CorruptFileError(f"{len(row)} fields, header has {len(header)}", path=path, line=line)
        for h, v in zip(header, row):
            try:
                cols[h].append(float(v) if v.strip() else math.nan)
            except ValueError:
                raise CorruptFileError(f"column {h!r}: {v!r} is not a number", path=path, line=line) from None
    return {h: np.array(v) for h, v in cols.items()}


def plot_training_curves(csv_path: str | Path, path: str | Path, x: str = "epoch") -> Path:
    """Training curves from a metrics CSV: losses, learning rate (log scale) and every other
    column (AP, ...) in three panels, against column ``x`` (row number when absent)."""
    plt = _pyplot()
    cols = read_metrics_csv(csv_path)
    xs = cols.pop(x, np.arange(1, len(next(iter(cols.values()))) + 1))
    groups = {
        "loss": [k for k in cols if "loss" in k.lower()],
        "learning rate": [k for k in cols if k.lower() in ("lr", "learning_rate") or k.lower().startswith("lr")],
    }
    groups["metrics"] = [k for k in cols if k not in groups["loss"] + groups["learning rate"]]
    groups = {k: v for k, v in groups.items() if v}
    fig, axes = plt.subplots(1, max(len(groups), 1), figsize=(4.5 * max(len(groups), 1), 3.4), squeeze=False)
    for ax, (name, keys) in zip(axes[0], groups.items()):
        for k in keys:
            ok = np.isfinite(cols[k])
            ax.plot(xs[ok], cols[k][ok], marker="." if ok.sum() < 30 else None, label=k)
        if name == "learning rate" and all((cols[k][np.isfinite(cols[k])] > 0).all() for k in keys):
            ax.set_yscale("log")
        ax.set(title=name, xlabel=x)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)
