"""``perception data info|check|synth|convert``: inspect, validate, generate and convert datasets."""

from __future__ import annotations

import argparse

HELP = "inspect, check, generate (synthetic) or convert datasets"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="action", required=True)
    info = sub.add_parser("info", help="frames, classes, boxes per class, points per frame, image sizes")
    info.add_argument("data", help="dataset YAML")
    info.add_argument("--split", default=None)
    check = sub.add_parser("check", help="read every file and report every problem (exit 1 if any)")
    check.add_argument("data", help="dataset YAML")
    check.add_argument("--split", default=None)
    synth = sub.add_parser("synth", help="write the synthetic driving dataset in KITTI object + tracking layouts")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--frames", type=int, default=50, help="frames per sequence")
    synth.add_argument("--sequences", type=int, default=4)
    synth.add_argument("--seed", type=int, default=0)
    conv = sub.add_parser("convert", help="convert any dataset to KITTI layout or YOLO labels")
    conv.add_argument("--from", dest="source", required=True, help="dataset YAML")
    conv.add_argument("--to", required=True, choices=["kitti", "yolo"])
    conv.add_argument("--out", required=True)
    conv.add_argument("--split", default=None)
    conv.add_argument("--min-points", type=int, default=0, help="drop boxes with fewer lidar points")
    conv.add_argument("--min-visibility", type=float, default=0.0, help="drop 2D boxes with a smaller visible fraction")


def run(args: argparse.Namespace) -> int:
    if args.data_command == "info":
        from perception.data.inspect import dataset_info, format_info
        from perception.data.registry import load_dataset

        print(format_info(dataset_info(load_dataset(args.data, split=args.split))))
        return 0
    if args.data_command == "check":
        from perception.data.inspect import check_dataset

        return 1 if check_dataset(args.data, split=args.split) else 0
    if args.data_command == "synth":
        from perception.data.synthetic import write_synthetic_dataset

        out = write_synthetic_dataset(args.out, frames=args.frames, sequences=args.sequences, seed=args.seed)
        print(f"synthetic dataset written to {out}")
        return 0
    if args.data_command == "convert":
        from perception.data.registry import load_dataset

        dataset = load_dataset(args.source, split=args.split)
        if args.to == "kitti":
            from perception.data.convert_kitti import convert_to_kitti as convert
        else:
            from perception.data.convert_yolo import convert_to_yolo as convert
        out = convert(dataset, args.out, min_points=args.min_points, min_visibility=args.min_visibility)
        print(f"{args.to} layout written to {out}")
        return 0
    raise AssertionError(args.data_command)
