"""Side-by-side table of finished detect2d training runs (``perception compare runs/detect2d/*``).

Reads what ultralytics leaves in each run folder: ``results.csv`` (one row per epoch), ``args.yaml``
and ``weights/best.pt``; the best epoch is the one ultralytics keeps (fitness = mAP50-95).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from perception.errors import DataError

_COLUMNS = {"mAP50": "metrics/mAP50(B)", "mAP50-95": "metrics/mAP50-95(B)", "precision": "metrics/precision(B)",
            "recall": "metrics/recall(B)"}  # fmt: skip


def is_detect2d_run(run: str | Path) -> bool:
    """True for a folder that ultralytics trained into."""
    run = Path(run)
    return (run / "results.csv").is_file() and (run / "args.yaml").is_file()


def compare_runs(runs: list[str | Path], imgsz: int = 640) -> list[dict[str, Any]]:
    """One row per run: model, epochs, train minutes, best-epoch metrics, parameters, GFLOPs at ``imgsz``."""
    from perception.config import load_yaml
    from perception.models.yolo.env import import_ultralytics
    from perception.models.yolo.model import load_yolo

    import_ultralytics()
    from ultralytics.utils.torch_utils import get_flops

    rows = []
    for run in map(Path, runs):
        if not is_detect2d_run(run):
            raise DataError("not a detect2d run folder (needs results.csv and args.yaml)", path=run)
        with open(run / "results.csv", newline="") as f:
            epochs = [{k.strip(): float(v) for k, v in r.items()} for r in csv.DictReader(f)]
        if not epochs:
            raise DataError("results.csv has no epochs yet", path=run / "results.csv")
        best = max(epochs, key=lambda r: r[_COLUMNS["mAP50-95"]])
        row = {"run": run.name, "model": Path(str(load_yaml(run / "args.yaml").get("model", "?"))).stem,
               "epochs": len(epochs), "minutes": epochs[-1]["time"] / 60}  # fmt: skip
        row.update({k: best[c] for k, c in _COLUMNS.items()})
        weights = run / "weights" / "best.pt"
        if weights.is_file():
            net = load_yolo(weights).model
            row["params_M"] = sum(p.numel() for p in net.parameters()) / 1e6
            row["GFLOPs"] = get_flops(net, imgsz)
        rows.append(row)
    return rows


def format_comparison(rows: list[dict[str, Any]]) -> str:
    """Fixed-width table of ``compare_runs`` rows."""
    keys = ("model", "epochs", "minutes", "mAP50", "mAP50-95", "precision", "recall", "params_M", "GFLOPs")
    lines = [f"{'run':<24}" + "".join(f"{k:>11}" for k in keys)]
    for r in rows:
        cells = [f"{r.get(k, float('nan')):11.3f}" if k not in ("model", "epochs") else f"{r[k]!s:>11}" for k in keys]
        lines.append(f"{r['run']:<24}" + "".join(cells))
    return "\n".join(lines)
