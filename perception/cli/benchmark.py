"""``perception benchmark``: one 3D detector on torch / ONNX Runtime / TensorRT, same frames, one table.

    perception benchmark --weights runs/exp/weights/best.pt --data datasets/kitti.yaml
    perception benchmark --weights runs/exp/weights/best.pt --formats torch,onnx,engine --device cuda --frames 50

Latency p50/p90/p99 and FPS, the pre-processing / network / post-processing split, memory and
accuracy against torch (``perception.deploy.benchmark``); the table is printed and saved as CSV.
A ``.pt`` is exported to ONNX / built into an engine under ``--out`` when those formats are asked.
"""

from __future__ import annotations

import argparse

HELP = "latency, memory and accuracy of a 3D detector per backend (torch, onnx, engine)"
FORMATS = ("torch", "onnx", "engine")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help="checkpoint (.pt), or an export (.onnx / .engine)")
    p.add_argument("--formats", default=None, help="comma list of torch, onnx, engine (default: all this machine runs)")
    p.add_argument("--data", default="datasets/synthetic.yaml", help="dataset YAML whose frames are timed")
    p.add_argument("--split", default=None)
    p.add_argument("--frames", type=int, default=10, help="frames timed (the first N of the split)")
    p.add_argument("--repeats", type=int, default=3, help="runs per frame")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 (engines always run on a GPU)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch and ONNX Runtime (0 = default)")
    p.add_argument("--out", default=None, help="folder for exports and the CSV (default runs/benchmark/<weights name>)")


def default_formats(weights_suffix: str) -> list[str]:
    """Every backend this machine can run for these weights."""
    import importlib.util

    import torch

    formats = {".pt": ["torch", "onnx"], ".onnx": ["onnx"], ".engine": []}[weights_suffix]
    if importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available():
        formats.append("engine")
    return formats


def parse_formats(text: str | None, weights_suffix: str) -> list[str]:
    from perception.config import close_match_hint
    from perception.errors import ConfigError

    if not text:
        return default_formats(weights_suffix)
    formats = [f.strip() for f in text.split(",") if f.strip()]
    for f in formats:
        if f not in FORMATS:
            raise ConfigError(f"unknown benchmark format {f!r}{close_match_hint(f, FORMATS)}")
    if "torch" in formats and weights_suffix != ".pt":
        raise ConfigError("format torch needs the .pt checkpoint as --weights")
    return formats


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from perception.data.registry import load_dataset
    from perception.deploy.benchmark import benchmark_backends, format_table, write_csv
    from perception.errors import CheckpointError, DataError

    weights = Path(args.weights)
    if weights.suffix not in (".pt", ".onnx", ".engine"):
        raise CheckpointError(f"unsupported weights format {weights.suffix!r}; use .pt, .onnx or .engine", path=weights)
    if not weights.is_file():
        raise CheckpointError("weights not found", path=weights)
    formats = parse_formats(args.formats, weights.suffix)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out or Path("runs") / "benchmark" / weights.stem)
    dataset = load_dataset(args.data, split=args.split)
    n = min(args.frames, len(dataset))
    if n <= 0:
        raise DataError("no frames to time", path=args.data)
    frames = [dataset.load_frame(i, images=False) for i in range(n)]
    loaders = {f: _loader(f, weights, out, args) for f in formats}
    rows = benchmark_backends(loaders, frames, args.warmup, args.repeats)
    print(format_table(rows))
    print(f"saved {write_csv(rows, out / 'benchmark.csv')}")
    return 0


def _loader(fmt: str, weights, out, args: argparse.Namespace):
    """(device, a function that prepares (exports / builds if needed) and opens one backend)."""
    from perception.deploy.export import ExportOptions, export_model

    def torch_backend():
        from perception.deploy.predictor import TorchPredictor3D

        return TorchPredictor3D(weights, args.device)

    def onnx_backend():
        from perception.deploy.onnx_runtime import OnnxPredictor3D

        path = weights if weights.suffix == ".onnx" else _cached(weights, out / f"{weights.stem}.onnx", "onnx")
        return OnnxPredictor3D(path, args.device, threads=args.threads)

    gpu = args.device if args.device.startswith("cuda") else "cuda"

    def engine_backend():
        from perception.deploy.tensorrt_engine import TensorRTPredictor3D

        path = weights
        if weights.suffix != ".engine":
            path = export_model(weights, "engine", out / f"{weights.stem}.engine", ExportOptions(device=gpu))
        return TensorRTPredictor3D(path, gpu)

    def _cached(src, dst, fmt_):
        if dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime:
            return dst
        return export_model(src, fmt_, dst)

    return {
        "torch": (args.device, torch_backend),
        "onnx": (args.device, onnx_backend),
        "engine": (gpu, engine_backend),
    }[fmt]
