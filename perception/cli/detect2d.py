"""The ``--task detect2d`` branches of ``perception train | val | predict`` (YOLO through ultralytics).

    perception train --task detect2d --model configs/yolo11n.yaml --data datasets/kitti.yaml epochs=50 imgsz=640
    perception train --task detect2d --model runs/detect2d/yolo11n/weights/best.pt --data datasets/kitti.yaml freeze=backbone
    perception train --task detect2d --resume runs/detect2d/yolo11n
    perception val --task detect2d --weights runs/detect2d/yolo11n/weights/best.pt --data datasets/kitti.yaml
    perception predict --task detect2d --weights best.pt --source video.mp4

``key=value`` words set our training options (``TrainOptions``: epochs, batch, imgsz, optimizer,
lr, scheduler, final_lr, warmup_epochs, patience, label_smoothing, dropout, freeze, device, seed,
workers); any other key is passed to ultralytics (e.g. ``mosaic=0.5``) and checked against its
argument list. ultralytics is imported only here, behind ``perception[yolo]``.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

from perception.config import parse_overrides
from perception.errors import ConfigError

TASK = "detect2d"


def _add(parser: argparse.ArgumentParser, flag: str, **kwargs: Any) -> None:
    """Add ``flag`` unless the command's own parser already has it (the 3D branch shares flags)."""
    if flag not in parser._option_string_actions:  # argparse has no public "has option" query
        parser.add_argument(flag, **kwargs)


def add_detect2d_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags the detect2d branch reads; those the command already defines are left alone."""
    _add(parser, "--task", default="detect3d", help="detect3d (lidar) or detect2d (camera, YOLO)")
    _add(parser, "--model", help="detect2d: model YAML (configs/yolo11n*.yaml) or YOLO .pt checkpoint")
    _add(parser, "--data", help="dataset YAML (datasets/*.yaml) or YOLO data YAML")
    _add(parser, "--weights", help="checkpoint (.pt) or export (.onnx / .engine) to evaluate or run")
    _add(parser, "--source", help="detect2d predict: image, folder of images, or video")
    _add(parser, "--out", help="run folder (default runs/detect2d/<name>)")
    _add(parser, "--resume", help="run folder (or last.pt) to continue")
    _add(parser, "--split", help="split to evaluate (default val)")
    _add(parser, "--device", help="cpu, 0, cuda:0 ... (default: cuda:0 when available)")
    if not any(a.dest == "overrides" for a in parser._actions):
        parser.add_argument("overrides", nargs="*", default=[], help="key=value options")


def _key_values(args: argparse.Namespace) -> dict[str, Any]:
    """Every ``key=value`` word of the command line, wherever the command's parser put it."""
    words: list[str] = []
    for name in ("overrides", "opts"):
        value = getattr(args, name, None)
        words += [value] if isinstance(value, str) else list(value or [])
    stray = [w for w in words if "=" not in w]
    if stray:
        raise ConfigError(f"detect2d takes --model/--data/--weights and key=value options; unexpected {stray}")
    return parse_overrides(words)


def _split_options(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(our TrainOptions keys, ultralytics passthrough)."""
    from perception.models.yolo.train import TrainOptions

    ours = {f.name for f in fields(TrainOptions)}
    return {k: v for k, v in values.items() if k in ours}, {k: v for k, v in values.items() if k not in ours}


def _run_dir(args: argparse.Namespace, kind: str, name: str) -> Path:
    """``--out`` or a fresh ``runs/detect2d/<kind>-<name>[-N]``."""
    if getattr(args, "out", None):
        return Path(args.out)
    base = Path("runs") / TASK / f"{kind}-{name}"
    run, n = base, 2
    while run.exists():
        run, n = base.with_name(f"{base.name}-{n}"), n + 1
    return run


def _device(args: argparse.Namespace) -> str:
    """The command's ``--device`` ("" lets ultralytics pick cuda:0 when there is one)."""
    return str(getattr(args, "device", None) or "")


def require_options(args: argparse.Namespace, *names: str) -> None:
    """Options the chosen ``--task`` needs although the shared parser marks them optional."""
    missing = [n for n in names if not getattr(args, n, None)]
    if missing:
        raise ConfigError(f"--task {args.task} needs {' '.join('--' + n for n in missing)}")


def train(args: argparse.Namespace) -> int:
    """``perception train --task detect2d``: train from a YAML, fine-tune a checkpoint, or resume."""
    from perception.models.yolo.train import options_from_dict, resume_yolo, train_yolo

    if getattr(args, "resume", None):
        best = resume_yolo(args.resume)
        print(f"run dir: {best.parent.parent}\nbest checkpoint: {best}")
        return 0
    model = getattr(args, "model", None) or getattr(args, "config", None)  # --config: the 3D command's name
    if not model:
        raise ConfigError("detect2d needs --model configs/yolo11n.yaml (or a YOLO .pt checkpoint)")
    require_options(args, "data")
    ours, extra = _split_options(_key_values(args))
    run = _run_dir(args, "train", Path(model).stem)
    print(f"run dir: {run}")
    best = train_yolo(model, args.data, run, options_from_dict(ours), extra)
    print(f"best checkpoint: {best}")
    return 0


def val(args: argparse.Namespace) -> int:
    """``perception val --task detect2d``: COCO-style mAP, P/R/F1, confusion matrix, KITTI 2D AP, plots."""
    from perception.models.yolo.evaluate import validate_yolo

    weights = getattr(args, "weights", None) or getattr(args, "model", None)
    if not weights:
        raise ConfigError("detect2d val needs --weights")
    require_options(args, "data")
    values = _key_values(args)
    unknown = set(values) - {"imgsz", "batch", "device"}
    if unknown:
        raise ConfigError(f"detect2d val takes imgsz=, batch=, device=; unknown {sorted(unknown)}")
    values.setdefault("device", _device(args))
    run = _run_dir(args, "val", Path(weights).parent.parent.name or Path(weights).stem)
    print(f"run dir: {run}")
    result = validate_yolo(weights, args.data, run, split=getattr(args, "split", None) or "val", **values)
    print(format_metrics(result))
    return 0


def format_metrics(result: dict[str, Any]) -> str:
    """A fixed-width table of the numbers ``validate_yolo`` returns."""
    keys = ("mAP50", "mAP50-95", "precision", "recall", "F1")
    lines = [f"{'class':<14}" + "".join(f"{k:>10}" for k in keys)]
    for name, row in [("all", result), *result["per_class"].items()]:
        lines.append(f"{name:<14}" + "".join(f"{row[k]:10.3f}" for k in keys))
    kitti = result.get("kitti_2d")
    if kitti:
        lines.append(f"\nKITTI 2D AP (R40, %){'':<4}{'easy':>10}{'moderate':>10}{'hard':>10}")
        for cls, ap in kitti["R40"].items():
            lines.append(f"{cls:<24}" + "".join(f"{ap[d]:10.2f}" for d in ("easy", "moderate", "hard")))
    return "\n".join(lines)


def predict(args: argparse.Namespace) -> int:
    """``perception predict --task detect2d --weights W --source S``: annotated media + KITTI 2D labels."""
    from perception.models.yolo.predict import predict_yolo
    from perception.models.yolo.predictor import YoloPredictor

    weights = getattr(args, "weights", None) or getattr(args, "model", None)
    if not weights:
        raise ConfigError("detect2d predict needs --weights")
    require_options(args, "source")
    values = _key_values(args)
    unknown = set(values) - {"conf", "iou", "imgsz", "device", "max_det"}
    if unknown:
        raise ConfigError(f"detect2d predict takes conf=, iou=, imgsz=, device=, max_det=; unknown {sorted(unknown)}")
    run = _run_dir(args, "predict", Path(args.source).stem)
    predictor = YoloPredictor(weights, values.pop("device", None) or _device(args) or "cpu", **values)
    counts = predict_yolo(predictor, args.source, run)
    print(f"{counts['boxes']} boxes in {counts['images']} images written to {run}")
    return 0
