"""``perception export``: a trained model -> one ONNX graph or a TensorRT engine.

    perception export --weights runs/exp/weights/best.pt --format onnx
    perception export --weights runs/exp/weights/best.pt --format engine --half
    perception export --weights runs/exp/weights/best.onnx --format engine --int8 --calib-data datasets/kitti.yaml
    perception export --weights runs/detect2d/yolo11n/weights/best.pt --format onnx --imgsz 640 --dynamic

3D detectors export as one graph from raw points to NMS'd boxes (``perception.deploy.export_onnx``);
YOLO models through ultralytics. The written file runs with ``--weights`` in predict / stream / benchmark.
"""

from __future__ import annotations

import argparse

HELP = "export a model to ONNX (one graph) or a TensorRT engine"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help="checkpoint (.pt); for --format engine also a perception .onnx")
    p.add_argument("--format", default="onnx", help="onnx | engine (default onnx)")
    p.add_argument("--out", default=None, help="output file (default: the weights path with the format's suffix)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 18 for 3D detectors; default 18)")
    p.add_argument("--simplify", action="store_true", help="simplify the ONNX graph with onnxslim")
    p.add_argument(
        "--dynamic", action="store_true", help="YOLO: dynamic batch / image size (3D: always any point count)"
    )
    p.add_argument("--imgsz", type=int, default=None, help="YOLO input size (default: the trained size)")
    p.add_argument("--half", action="store_true", help="engine: FP16")
    p.add_argument("--int8", action="store_true", help="engine: INT8 with entropy calibration (needs --calib-data)")
    p.add_argument("--calib-data", default=None, help="dataset YAML whose frames calibrate INT8 (YOLO: its data YAML)")
    p.add_argument("--calib-split", default=None, help="split of --calib-data (default: all frames)")
    p.add_argument("--calib-frames", type=int, default=64, help="frames used for INT8 calibration (0 = all)")
    p.add_argument("--max-points", type=int, default=300_000, help="engine: most points per cloud (3D)")
    p.add_argument("--opt-points", type=int, default=120_000, help="engine: point count TensorRT tunes for (3D)")
    p.add_argument("--workspace", type=float, default=4.0, help="engine: TensorRT workspace, GiB")
    p.add_argument("--device", default="cuda", help="engine: GPU to build on (cuda, cuda:1)")


def run(args: argparse.Namespace) -> int:
    import time

    from perception.deploy.export import ExportOptions, export_model

    options = ExportOptions(
        opset=args.opset, simplify=args.simplify, dynamic=args.dynamic, half=args.half, int8=args.int8,
        calib_data=args.calib_data, calib_split=args.calib_split, calib_frames=args.calib_frames,
        max_points=args.max_points, opt_points=args.opt_points, workspace_gb=args.workspace, imgsz=args.imgsz,
        device=args.device,
    )  # fmt: skip
    t0 = time.perf_counter()
    out = export_model(args.weights, args.format, args.out, options)
    size_mb = out.stat().st_size / 1e6
    print(f"exported {args.weights} -> {out} ({size_mb:.1f} MB, {time.perf_counter() - t0:.0f} s)")
    return 0
