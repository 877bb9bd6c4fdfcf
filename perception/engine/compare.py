"""Compare finished (or running) training runs: which config keys differ, and how they scored.

Reads ``config.yaml`` and ``results.csv`` of each run folder; used by ``perception compare``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from perception.config import load_yaml
from perception.engine.run_config import diff_configs
from perception.errors import DataError


def read_results(path: Path) -> list[dict[str, Any]]:
    """Rows of a results.csv with numbers parsed (empty cells dropped)."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})
    return rows


def compare_runs(run_dirs: list[str | Path], metric: str | None = None) -> dict[str, Any]:
    """Per run: the differing config values and summary metrics (epochs, final loss, best metric)."""
    configs, results = [], []
    for d in map(Path, run_dirs):
        if not (d / "config.yaml").is_file():
            raise DataError("not a run folder (no config.yaml)", path=d)
        configs.append(load_yaml(d / "config.yaml"))
        results.append(read_results(d / "results.csv") if (d / "results.csv").is_file() else [])
    keys = diff_configs(configs)
    table = []
    for d, cfg, rows in zip(run_dirs, configs, results):
        key = metric or cfg.get("metric", "")
        key = key if key.startswith(("val/", "train/")) else f"val/{key}"
        scored = [r for r in rows if key in r]
        best = max(scored, key=lambda r: r[key]) if scored else None
        flat = {**cfg, **{f"model.{k}": v for k, v in (cfg.get("model") or {}).items()}}
        table.append({
            "run": str(d),
            "config": {k: flat.get(k) for k in keys},
            "epochs": int(rows[-1]["epoch"]) if rows else 0,
            "final train/loss": rows[-1].get("train/loss") if rows else None,
            f"best {key}": best[key] if best else None,
            "best epoch": int(best["epoch"]) if best else None,
            "time_s": sum(r.get("time_s", 0.0) for r in rows),
        })  # fmt: skip
    return {"keys": keys, "runs": table}


def format_table(comparison: dict[str, Any]) -> str:
    """A markdown table: run, the differing config keys, then the metric columns."""
    runs = comparison["runs"]
    if not runs:
        return "(no runs)"
    metric_cols = [k for k in runs[0] if k not in ("run", "config")]
    header = ["run", *comparison["keys"], *metric_cols]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in runs:
        cells = [r["run"], *(_fmt(r["config"][k]) for k in comparison["keys"]), *(_fmt(r.get(k)) for k in metric_cols)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
