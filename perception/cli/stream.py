"""``perception stream --source <file|url|index|folder|dataset yaml> --weights <.pt|.onnx|.engine>``:
run a detector (and tracker) on a stream and show / save it with overlays."""

from __future__ import annotations

import argparse

HELP = "run a detector (and tracker) on a video, URL, webcam, image folder or dataset sequence, with overlays"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--source",
        required=True,
        help="video file, rtsp:// or http:// URL, webcam index, image folder/glob, dataset YAML",
    )
    p.add_argument(
        "--weights",
        default=None,
        help=".pt / .onnx / .engine (omit to stream the frames, with --gt their ground truth)",
    )
    p.add_argument(
        "--track", action="store_true", help="track objects across frames (3D tracker for 3D boxes, ByteTrack for 2D)"
    )
    p.add_argument(
        "--show", action="store_true", help="open a window (skipped with a warning when there is no display)"
    )
    p.add_argument("--save", default=None, metavar="OUT.mp4", help="write the drawn frames to an MP4")
    p.add_argument(
        "--codec",
        default="auto",
        choices=["auto", "h264", "mp4v"],
        help="MP4 codec: h264 (via ffmpeg; plays everywhere) or mp4v (OpenCV; half the encoding CPU)",
    )
    p.add_argument("--save-dir", default=None, metavar="DIR", help="write the drawn frames as JPEGs")
    p.add_argument(
        "--jsonl", default=None, metavar="OUT.jsonl", help="write detections and tracks, one JSON line per frame"
    )
    p.add_argument("--camera", default=None, help="camera to draw (dataset sources; default the first calibrated)")
    p.add_argument("--sequence", default=None, help="sequence of a dataset source (default the first)")
    p.add_argument("--split", default=None, help="split of a dataset source")
    p.add_argument("--gt", action="store_true", help="also draw ground-truth boxes (dataset sources)")
    p.add_argument("--no-bev", action="store_true", help="no BEV panel beside the camera")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--fps", type=float, default=None, help="frame rate of the saved video (default: the source's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds a live source may take to answer at first")
    p.add_argument("--reconnect-timeout", type=float, default=30.0, help="seconds a dropped live source may stay away")
    p.add_argument(
        "--rtsp-transport",
        default="auto",
        choices=["auto", "tcp", "udp"],
        help="RTP transport of rtsp:// sources (auto: TCP, then UDP when the server refuses TCP)",
    )


def run(args: argparse.Namespace) -> int:
    import logging

    from perception.stream import StreamPipeline, open_source
    from perception.stream.sinks import build_sinks

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    source = open_source(
        args.source, sequence=args.sequence, split=args.split, fps=args.fps,
        open_timeout_s=args.timeout, reconnect_timeout_s=args.reconnect_timeout,
        rtsp_transport=args.rtsp_transport,
    )  # fmt: skip
    predictor = tracker3d = tracker2d = None
    if args.weights:
        from perception.deploy.predictor import load_predictor

        predictor = load_predictor(args.weights, device=args.device)
    if args.track:
        from perception.tracking import build_tracker

        tracker3d, tracker2d = build_tracker("3d"), build_tracker("2d")
    sinks = build_sinks(
        save=args.save, save_dir=args.save_dir, jsonl=args.jsonl, show=args.show, fps=args.fps or source.fps
    )
    pipeline = StreamPipeline(
        predictor, tracker3d=tracker3d, tracker2d=tracker2d, sinks=sinks, camera=args.camera,
        class_names=getattr(source, "class_names", None) if predictor is None else None,
        show_gt=args.gt, bev=not args.no_bev,
    )  # fmt: skip
    stats = pipeline.run(source, max_frames=args.max_frames)
    print(f"[stream] {source.name}: {stats.summary()}")
    for path in stats.outputs:
        print(f"[stream] wrote {path}")
    return 0
