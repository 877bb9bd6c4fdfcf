"""``perception demo``: the main job end to end on synthetic data; everything lands in runs/demo/.

synthetic drives (KITTI layout) -> pictures -> train a pillar detector -> KITTI AP + plots ->
track the drives -> ONNX export + backend comparison -> demo.mp4 (detections, tracks, BEV) ->
pictures of the real dataset excerpts in ../shared/data when that folder exists.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

HELP = "run the end-to-end demo on synthetic data (outputs under runs/demo/)"
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-minutes", type=float, default=5.0, help="time budget of the 3D detector training")
    p.add_argument("--shared-data", default=str(SHARED_DATA), help="real dataset excerpts to draw, if present")


def _step(title: str) -> None:
    print(f"\n[demo] {title}", flush=True)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    metrics: dict[str, Any] = {}
    data_root = write_data(out, args.seed)
    save_frame_pictures(data_root, out)
    weights = train_detector(data_root, out, args.train_minutes)
    metrics["detection"] = evaluate_detector(weights, data_root, out)
    metrics["tracking"] = track_drives(weights, data_root)
    metrics["deploy"] = export_and_compare(weights, data_root, out)
    render_video(weights, data_root, out)
    render_real_data(Path(args.shared_data), out)
    from perception.files import atomic_write

    with atomic_write(out / "metrics.json") as f:
        json.dump(metrics, f, indent=1, default=float)
    print(f"\n[demo] done: pictures, demo.mp4 and metrics.json in {out}/")
    return 0


def write_data(out: Path, seed: int) -> Path:
    """Write synthetic drives in the KITTI object + tracking layouts and print what they hold."""
    from perception.data.inspect import dataset_info, format_info
    from perception.data.registry import load_dataset
    from perception.data.synthetic import write_synthetic_dataset

    _step("writing synthetic drives in KITTI object + tracking layouts")
    data_root = write_synthetic_dataset(out / "data", frames=50, sequences=4, seed=seed)
    print(format_info(dataset_info(load_dataset(data_root / "kitti_object.yaml"))))
    return data_root


def save_frame_pictures(data_root: Path, out: Path) -> None:
    """A BEV picture and a camera picture with projected 3D ground-truth boxes."""
    from perception.data.registry import load_dataset
    from perception.viz.bev import render_bev
    from perception.viz.overlay import draw_boxes3d
    from perception.viz.samples import write_png

    _step("drawing a frame: BEV and camera with projected 3D boxes")
    dataset = load_dataset(data_root / "kitti_object.yaml")
    frame = dataset[len(dataset) // 2]
    camera = draw_boxes3d(frame.images["image_2"], frame.boxes3d, frame.calibration, "image_2", frame.class_names)
    for path in (write_png(out / "frame_bev.png", render_bev(frame)), write_png(out / "frame_camera.png", camera)):
        print(f"  {path}")


def train_detector(data_root: Path, out: Path, minutes: float) -> Path:
    """Train the demo-size CenterPoint-pillar detector on the training drives; returns best.pt."""
    from perception.engine import train

    _step(f"training a pillar detector on the synthetic drives ({minutes:g} min budget)")
    config = Path(__file__).resolve().parents[2] / "configs" / "centerpoint_pillar_small.yaml"
    overrides = [f"data={data_root / 'kitti_object.yaml'}", f"project={out}", "name=detector3d",
                 "epochs=30", f"max_minutes={minutes}", "val_every=100", "tensorboard=false"]  # fmt: skip
    shutil.rmtree(out / "detector3d", ignore_errors=True)  # a fresh run folder, not detector3d2, 3...
    trainer = train(config, overrides)
    print(f"  run folder: {trainer.run_dir} (weights, results.csv, loss/lr/AP curves)")
    return trainer.run_dir / "weights" / "best.pt"


def evaluate_detector(weights: Path, data_root: Path, out: Path) -> dict[str, float]:
    """KITTI AP on the validation drive, PR curves, and a confusion matrix over matched boxes."""
    from perception.data.registry import load_dataset
    from perception.deploy.predictor import load_predictor
    from perception.eval.classification import classification_report, format_classification_table
    from perception.eval.detection import evaluate_detections
    from perception.eval.plots import plot_confusion_matrix, plot_detection_pr

    _step("evaluating on the validation drive (KITTI AP, precision / recall / F1, confusion matrix)")
    dataset = load_dataset(data_root / "kitti_object.yaml", split="val")
    predictor = load_predictor(weights)
    frames = [dataset.load_frame(i) for i in range(len(dataset))]
    predictions = [predictor.predict(f).boxes3d for f in frames]
    report = evaluate_detections(frames, predictions, dataset)
    print(report.table)
    plot_detection_pr(report.result, out / "plots")
    classes = classification_report([f.boxes3d for f in frames], predictions, dataset.class_names)
    print(format_classification_table(classes))
    plot_confusion_matrix(classes, out / "plots" / "confusion_matrix.png")
    return dict(report.summary)


def track_drives(weights: Path, data_root: Path) -> dict[str, dict[str, float]]:
    """Detect then track every drive (ego poses from the written oxts) and score the tracks."""
    from perception.data.registry import load_dataset
    from perception.deploy.predictor import load_predictor
    from perception.eval.tracking import format_table
    from perception.tracking.run import track_and_evaluate

    _step("tracking the drives with the detector (3D IoU 0.25)")
    predictor = load_predictor(weights)
    dataset = load_dataset(data_root / "kitti_tracking.yaml")
    metrics = track_and_evaluate(dataset, lambda f: predictor.predict(f).boxes3d, threshold=0.25, progress=True)
    print(format_table(metrics))
    return metrics


def export_and_compare(weights: Path, data_root: Path, out: Path) -> list[dict[str, Any]]:
    """One-graph ONNX export, then torch vs ONNX Runtime latency and agreement on the same frames."""
    from perception.data.registry import load_dataset
    from perception.deploy.benchmark import benchmark_backends, format_table
    from perception.deploy.export import export_model
    from perception.deploy.predictor import load_predictor

    _step("exporting to ONNX (one graph: points -> boxes) and comparing backends")
    onnx_path = export_model(weights, "onnx", out / "detector3d.onnx")
    print(f"  {onnx_path}")
    dataset = load_dataset(data_root / "kitti_object.yaml", split="val")
    frames = [dataset.load_frame(i, images=False) for i in range(0, len(dataset), max(1, len(dataset) // 10))]
    loaders = {"torch": ("cpu", lambda: load_predictor(weights)), "onnx": ("cpu", lambda: load_predictor(onnx_path))}
    rows = benchmark_backends(loaders, frames)
    print(format_table(rows))
    return rows


def render_video(weights: Path, data_root: Path, out: Path) -> None:
    """The validation drive with detections, tracks, projected 3D boxes and the BEV panel."""
    from perception.data.registry import load_dataset
    from perception.deploy.predictor import load_predictor
    from perception.stream.demo import render_demo_video
    from perception.tracking.presets import tracker_for_classes

    _step("rendering demo.mp4 (detections, tracks, projected 3D boxes, BEV)")
    dataset = load_dataset(data_root / "kitti_tracking.yaml")
    sequence = list(dataset.sequences())[-1]
    path, stats = render_demo_video(
        dataset, load_predictor(weights), tracker_for_classes(dataset.class_names), out / "demo.mp4", sequence=sequence
    )
    print(f"  {path}: {stats.summary()}")


def render_real_data(shared_data: Path, out: Path) -> None:
    """Ground truth of the real KITTI / nuScenes / Argoverse 2 / Waymo excerpts, when present."""
    from perception.viz.samples import render_real_samples

    if not shared_data.is_dir():
        print(f"\n[demo] real dataset excerpts not found at {shared_data}: skipping their pictures")
        return
    _step(f"drawing the real dataset excerpts in {shared_data}")
    for path in render_real_samples(shared_data, out / "real"):
        print(f"  {path}")
