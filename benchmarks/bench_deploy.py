"""CPU latency of the exported models against torch eager, on the same real KITTI frame, in one run.

3D: ``TorchPredictor3D`` (torch eager + numpy NMS) vs ``OnnxPredictor3D`` (the single exported graph,
NMS inside) for each 3D config, random weights (latency does not depend on their values).
YOLO: ``YoloPredictor`` on a random-init yolo11n (torch) vs its ultralytics ONNX export.
Runs are interleaved (torch, onnx, torch, ...) so load from other processes hits both alike.

    .venv/bin/python benchmarks/bench_deploy.py [--threads 2] [--runs 7] [--configs pointpillars,...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
KITTI = ROOT.parent / "shared" / "data" / "kitti" / "object" / "training"


def interleaved(fns: dict, runs: int, warmup: int = 2) -> dict[str, float]:
    """Median wall ms of each function, calls interleaved."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def kitti_frame():
    from perception.data.registry import load_dataset

    return load_dataset(ROOT / "datasets" / "kitti.yaml").load_frame(0)


def bench_3d(config: str, frame, runs: int, threads: int, folder: Path) -> None:
    from perception.config import load_config
    from perception.deploy.export import export_model
    from perception.deploy.onnx_runtime import OnnxPredictor3D
    from perception.deploy.predictor import TorchPredictor3D
    from perception.models import build_model, save_checkpoint

    cfg = load_config(ROOT / "configs" / f"{config}.yaml")
    torch.manual_seed(0)
    pt = save_checkpoint(folder / f"{config}.pt", {"model": build_model(cfg["model"]).state_dict(), "config": cfg})
    t0 = time.perf_counter()
    onnx_path = export_model(pt, "onnx")
    export_s = time.perf_counter() - t0
    ours, ref = OnnxPredictor3D(onnx_path, threads=threads), TorchPredictor3D(pt)
    med = interleaved({"torch": lambda: ref.predict(frame), "onnx": lambda: ours.predict(frame)}, runs)
    net = {k: p.predict(frame).latency_ms["inference"] for k, p in (("torch", ref), ("onnx", ours))}
    print(f"3D {config:<20} {len(frame.points):>7} pts  torch {med['torch']:8.1f} ms  onnxruntime {med['onnx']:8.1f} ms"
          f"  ratio {med['onnx'] / med['torch']:.2f}  (network alone: {net['torch']:.0f} / {net['onnx']:.0f} ms;"
          f" export {export_s:.0f} s, {onnx_path.stat().st_size / 1e6:.1f} MB)")  # fmt: skip


def bench_yolo(frame, runs: int, folder: Path, imgsz: tuple[int, int] = (224, 640)) -> None:
    from perception.deploy.export import ExportOptions, export_model
    from perception.models.yolo.model import load_yolo
    from perception.models.yolo.predictor import YoloPredictor

    pt = folder / "yolo11n.pt"
    load_yolo(ROOT / "configs" / "yolo11n.yaml").save(pt)
    onnx_path = export_model(pt, "onnx", folder / "yolo11n.onnx", ExportOptions(imgsz=list(imgsz)))
    ref, ours = YoloPredictor(pt, imgsz=imgsz), YoloPredictor(onnx_path, imgsz=imgsz)
    med = interleaved({"torch": lambda: ref.predict(frame), "onnx": lambda: ours.predict(frame)}, runs)
    print(
        f"2D yolo11n {imgsz[0]}x{imgsz[1]}       1 image  torch {med['torch']:8.1f} ms  onnxruntime "
        f"{med['onnx']:8.1f} ms  ratio {med['onnx'] / med['torch']:.2f}"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--configs", default="pointpillars_small,pointpillars,centerpoint_pillar")
    p.add_argument("--no-yolo", action="store_true")
    args = p.parse_args()
    if not KITTI.is_dir():
        print(f"skipped: real KITTI excerpt not found at {KITTI}")
        return 0
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    frame = kitti_frame()
    print(f"torch {torch.__version__}, onnxruntime {__import__('onnxruntime').__version__}, {args.threads} threads, "
          f"{os.cpu_count()} CPUs, KITTI 000000, median of {args.runs} interleaved runs")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs.split(","):
            bench_3d(config, frame, args.runs, args.threads, Path(tmp))
        if not args.no_yolo:
            bench_yolo(frame, args.runs, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
