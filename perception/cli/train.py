"""``perception train``: train a detector from a model config and a dataset YAML.

perception train --config configs/pointpillars.yaml --data datasets/synthetic.yaml epochs=20 optimizer=adamw
perception train --resume runs/exp/weights/last.pt
torchrun --nproc_per_node 2 .venv/bin/perception train --config ... --data ...
"""

from __future__ import annotations

import argparse

from perception.cli.detect2d import add_detect2d_arguments

HELP = "train a detector (key=value overrides any training or model.* key)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from perception.engine.run_config import DEFAULTS_PATH

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = "training keys (configs/train_default.yaml), override as key=value:\n" + "\n".join(
        line for line in DEFAULTS_PATH.read_text().splitlines() if line and not line.startswith("#")
    )
    p.add_argument("--task", default="detect3d", choices=["detect3d", "detect2d"], help="what to train")
    p.add_argument("--config", help="model YAML (configs/*.yaml)")
    p.add_argument("--data", help="dataset YAML (datasets/*.yaml)")
    p.add_argument("--resume", help="continue a run exactly from its last.pt")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. epochs=20 lr=1e-3 model.neck_se=true")
    add_detect2d_arguments(p)


def run(args: argparse.Namespace) -> int:
    from perception.cli import detect2d

    tasks = {"detect3d": train_detect3d, "detect2d": detect2d.train}  # one entry per task
    return tasks[args.task](args)


def train_detect3d(args: argparse.Namespace) -> int:
    from pathlib import Path

    from perception.engine import Trainer, resolve_config
    from perception.errors import ConfigError
    from perception.models.checkpoint import load_checkpoint

    overrides = list(args.overrides) + ([f"data={args.data}"] if args.data else [])
    if args.resume:
        if args.config:
            raise ConfigError("--resume continues a run with its own config; do not pass --config")
        ckpt = load_checkpoint(args.resume)
        cfg = resolve_config(ckpt["config"], overrides)
        trainer = Trainer(cfg, resume=ckpt, run_dir=Path(args.resume).resolve().parent.parent)
    else:
        if not args.config:
            raise ConfigError("pass --config configs/<model>.yaml (or --resume runs/<run>/weights/last.pt)")
        trainer = Trainer(resolve_config(args.config, overrides))
    print(f"run folder: {trainer.run_dir}")
    trainer.fit()
    print(f"done: {trainer.run_dir / 'weights'} (best.pt, last.pt), results.csv, *.png")
    return 0
