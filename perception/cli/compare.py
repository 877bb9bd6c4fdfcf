"""``perception compare``: one table of several runs: the config keys that differ and the metrics.

perception compare runs/pp runs/pp_se runs/cp
"""

from __future__ import annotations

import argparse

HELP = "compare runs: differing config keys and their metrics in one table"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run folders (each with config.yaml and results.csv)")
    p.add_argument("--metric", default=None, help="metric column to rank by (default: the runs' own 'metric' key)")


def run(args: argparse.Namespace) -> int:
    from perception.models.yolo.compare import is_detect2d_run

    if all(is_detect2d_run(r) for r in args.runs):  # ultralytics runs keep their own columns
        from perception.models.yolo.compare import compare_runs as compare_2d
        from perception.models.yolo.compare import format_comparison

        print(format_comparison(compare_2d(args.runs)))
        return 0
    from perception.engine.compare import compare_runs, format_table

    print(format_table(compare_runs(args.runs, args.metric)))
    return 0
