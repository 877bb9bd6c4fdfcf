"""2D detection benchmarks: our ``YoloPredictor`` against ultralytics' own ``predict``, and the
timed from-scratch training run on synthetic camera images.

    python benchmarks/bench_detect2d.py [--threads 1] speed [--weights best.pt] [--imgsz 640] [--runs 30]
    python benchmarks/bench_detect2d.py [--threads 1] train --minutes 10 [--cpu-clock] [--model configs/yolo11n.yaml] [--imgsz 640]

``speed`` times both on the same model and the same real KITTI images (../shared/data), batch 1,
after a warm-up, and prints images/s for each and the ratio (goal: ours >= 0.95x theirs). Without
``--weights`` it uses a random-init yolo11n saved to a temporary checkpoint.
``train`` converts the synthetic dataset (10 drives x 30 frames: 240 train / 60 val images, 1242x375;
boxes under 25 px tall left out, as KITTI's 2D evaluation ignores them), trains from scratch for
the given time (wall-clock, or CPU time with --cpu-clock) with rectangular 640x224 batches (a KITTI-shaped image letterboxed to a
640 square would be 70 % padding) and prints the validation numbers and the run folder.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import torch

ROOT = Path(__file__).resolve().parents[1]
KITTI_IMAGES = ROOT.parent / "shared" / "data" / "kitti" / "object" / "training" / "image_2"
SYNTHETIC_YAML = """format: synthetic
root: .
classes: [Car, Pedestrian, Cyclist]
options: {sequences: 10, frames: 30, seed: 0, val_sequences: 2, min_height_px: 25}
"""


def _median_ms(fn, images, runs: int, warmup: int = 3) -> float:
    for image in images[:warmup]:
        fn(image)
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        fn(images[i % len(images)])
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def speed(args: argparse.Namespace) -> None:
    from perception.models.yolo.model import load_yolo
    from perception.models.yolo.predictor import YoloPredictor

    images = [cv2.imread(str(p)) for p in sorted(KITTI_IMAGES.glob("*.png"))]
    if not images:
        raise SystemExit(f"no KITTI images at {KITTI_IMAGES}")
    weights = args.weights
    if weights is None:
        weights = Path(tempfile.mkdtemp()) / "yolo11n-random.pt"
        load_yolo(ROOT / "configs" / "yolo11n.yaml").save(weights)
    ours = YoloPredictor(weights, "cpu", imgsz=args.imgsz)
    theirs = load_yolo(weights)
    kwargs = {"imgsz": args.imgsz, "device": "cpu", "verbose": False}
    # interleave the two, several rounds, so load from other processes hits both alike
    ours_ms, theirs_ms = [], []
    for _ in range(args.rounds):
        ours_ms.append(_median_ms(lambda im: ours.predict_images([im]), images, args.runs))
        theirs_ms.append(_median_ms(lambda im: theirs.predict(im, **kwargs), images, args.runs))
    a, b = statistics.median(ours_ms), statistics.median(theirs_ms)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, imgsz {args.imgsz}, {len(images)} KITTI images, batch 1"
    )
    print(f"{'':<28}{'ms/image':>10}{'images/s':>10}")
    print(f"{'ours (YoloPredictor)':<28}{a:10.1f}{1e3 / a:10.2f}")
    print(f"{'ultralytics YOLO.predict':<28}{b:10.1f}{1e3 / b:10.2f}")
    print(f"ratio ours/ultralytics (images/s): {b / a:.3f}")


class _CpuClock:
    """``time.time`` stand-in for ultralytics' trainer: process CPU seconds / cores.

    Its ``time=`` budget then means "this long on the 2-core machine if the run had it alone";
    on a machine shared with other jobs, wall-clock time would measure the other jobs instead.
    """

    def __init__(self, cores: int):
        self.cores = cores

    def time(self) -> float:
        return time.process_time() / self.cores


def train(args: argparse.Namespace) -> None:
    from perception.cli.detect2d import format_metrics
    from perception.models.yolo.env import import_ultralytics
    from perception.models.yolo.evaluate import validate_yolo
    from perception.models.yolo.train import TrainOptions, train_yolo

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "synthetic_camera.yaml"
    data.write_text(SYNTHETIC_YAML)
    opts = TrainOptions(epochs=args.epochs, batch=args.batch, imgsz=args.imgsz, warmup_epochs=1, patience=1000)
    extra = {"time": args.minutes / 60, "plots": True, "rect": True, "cache": "ram"}
    if args.cpu_clock:
        import_ultralytics()  # our offline set-up first, then ultralytics' trainer module
        import ultralytics.engine.trainer

        ultralytics.engine.trainer.time = _CpuClock(torch.get_num_threads())
    t0, c0 = time.perf_counter(), time.process_time()
    best = train_yolo(args.model, data, out / "train", opts, extra)
    minutes, cpu_minutes = (time.perf_counter() - t0) / 60, (time.process_time() - c0) / 60
    result = validate_yolo(best, data, out / "val", imgsz=args.imgsz, batch=args.batch)
    print(f"conversion + training: {minutes:.1f} min wall, {cpu_minutes:.1f} CPU-min -> {best}")
    print(format_metrics(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--weights", type=Path)
    s.add_argument("--imgsz", type=int, default=640)
    s.add_argument("--runs", type=int, default=20)
    s.add_argument("--rounds", type=int, default=3)
    t = sub.add_parser("train")
    t.add_argument("--minutes", type=float, default=10.0)
    t.add_argument("--model", default=str(ROOT / "configs" / "yolo11n.yaml"))
    t.add_argument("--imgsz", type=int, default=640)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--epochs", type=int, default=100)
    t.add_argument("--out", default="runs/bench_detect2d")
    t.add_argument("--cpu-clock", action="store_true", help="budget --minutes as CPU time / threads (shared machine)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a machine shared with other jobs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    speed(args) if args.mode == "speed" else train(args)


if __name__ == "__main__":
    main()
