"""``perception benchmark``: latency, per-stage breakdown, memory and accuracy against torch of the
same 3D detector on several backends (torch, ONNX Runtime, TensorRT), on the same frames.

Every backend runs every frame ``repeats`` times after ``warmup`` runs; latency is the wall time of
``Predictor.predict`` (points of a loaded frame in, detections out). Accuracy compares each
backend's detections with torch's on the same frame: the share of torch detections that the
backend reproduces (same class, BEV IoU >= 0.5), and the largest box / score difference among them.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from perception.core import Boxes3D, Frame, bev_iou
from perception.deploy.predictor import Predictor
from perception.files import atomic_write

COLUMNS = ("backend", "device", "frames", "p50_ms", "p90_ms", "p99_ms", "fps", "pre_ms", "net_ms", "post_ms",
           "memory_mb", "match_pct", "max_box_diff", "max_score_diff", "note")  # fmt: skip


def resident_mb() -> float:
    """This process's resident memory (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


def gpu_used_mb() -> float:
    """Device-wide used GPU memory (0 without CUDA): engines allocate outside torch's allocator."""
    import torch

    if not torch.cuda.is_available():
        return 0.0
    free, total = torch.cuda.mem_get_info()
    return (total - free) / 1e6


def match_detections(ref: Boxes3D, other: Boxes3D, min_iou: float = 0.5) -> tuple[int, float, float]:
    """Greedy one-to-one matching of ``other`` to ``ref`` (same label, best BEV IoU >= min_iou).

    Returns:
        (matched count, largest |box parameter difference|, largest |score difference|) over the matches.
    """
    if len(ref) == 0 or len(other) == 0:
        return 0, 0.0, 0.0
    iou = bev_iou(ref.xyz_lwh_yaw, other.xyz_lwh_yaw) * (ref.labels[:, None] == other.labels[None, :])
    taken = np.zeros(len(other), bool)
    n, box_diff, score_diff = 0, 0.0, 0.0
    for i in np.argsort(-ref.scores, kind="stable"):
        cand = np.where(taken, -1.0, iou[i])
        j = int(np.argmax(cand))
        if cand[j] < min_iou:
            continue
        taken[j], n = True, n + 1
        box_diff = max(box_diff, float(np.abs(ref.xyz_lwh_yaw[i] - other.xyz_lwh_yaw[j]).max()))
        score_diff = max(score_diff, abs(float(ref.scores[i]) - float(other.scores[j])))
    return n, box_diff, score_diff


def time_backend(predictor: Predictor, frames: list[Frame], warmup: int, repeats: int):
    """Run every frame; returns (total ms per run, stage ms lists, detections of each frame's last run)."""
    for i in range(warmup):
        predictor.predict(frames[i % len(frames)])
    total: list[float] = []
    stages: dict[str, list[float]] = {}
    dets: list[Boxes3D] = []
    for frame in frames:
        for _ in range(repeats):
            t0 = time.perf_counter()
            pred = predictor.predict(frame)
            total.append((time.perf_counter() - t0) * 1e3)
            for k, v in pred.latency_ms.items():
                stages.setdefault(k, []).append(v)
        dets.append(pred.boxes3d)
    return total, stages, dets


def benchmark_backends(
    loaders: dict[str, tuple[str, Callable[[], Predictor]]], frames: list[Frame], warmup: int = 3, repeats: int = 3
) -> list[dict[str, Any]]:
    """One result row per backend (``COLUMNS``).

    Args:
        loaders: backend name -> (device, function opening its predictor); ``"torch"``, when
            present and first, is the accuracy reference.

    A loader that fails with a PerceptionError (no GPU, no tensorrt...) gives a row with its reason
    in ``note`` instead of stopping the other backends.
    """
    from perception.errors import PerceptionError

    rows, reference = [], None
    for name, (device, load) in loaders.items():
        row: dict[str, Any] = {"backend": name, "device": device, "frames": len(frames)}
        mem0, gpu0 = resident_mb(), gpu_used_mb()
        try:
            predictor = load()
            total, stages, dets = time_backend(predictor, frames, warmup, repeats)
        except PerceptionError as e:
            rows.append({**row, "note": f"skipped: {e}"})
            continue
        row["memory_mb"] = round(max(resident_mb() - mem0, gpu_used_mb() - gpu0), 1)
        row.update(latency_summary(total, stages))
        if name == "torch":
            reference = dets
        if reference is not None:
            row.update(accuracy_summary(reference, dets))
        rows.append(row)
        del predictor
    return rows


def latency_summary(total: list[float], stages: dict[str, list[float]]) -> dict[str, float]:
    p50, p90, p99 = np.percentile(total, [50, 90, 99])
    med = {k: float(np.median(v)) for k, v in stages.items()}
    return {"p50_ms": round(p50, 2), "p90_ms": round(p90, 2), "p99_ms": round(p99, 2),
            "fps": round(1e3 / p50, 2), "pre_ms": round(med.get("preprocess", 0.0), 2),
            "net_ms": round(med.get("inference", 0.0), 2), "post_ms": round(med.get("postprocess", 0.0), 2)}  # fmt: skip


def accuracy_summary(reference: list[Boxes3D], dets: list[Boxes3D]) -> dict[str, Any]:
    matched = [match_detections(r, d) for r, d in zip(reference, dets)]
    n_ref = sum(len(r) for r in reference)
    n_match = sum(m[0] for m in matched)
    return {
        "match_pct": round(100.0 * n_match / n_ref, 2) if n_ref else 100.0,
        "max_box_diff": float(f"{max((m[1] for m in matched), default=0.0):.3g}"),
        "max_score_diff": float(f"{max((m[2] for m in matched), default=0.0):.3g}"),
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows as an aligned text table (empty cells for missing values)."""
    cells = [list(COLUMNS)] + [[str(r.get(c, "")) for c in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells)


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> Path:
    with atomic_write(path, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)
