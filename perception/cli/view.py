"""``perception view --data <dataset yaml> --index N``: look at a frame in 3D (points, ground truth,
predictions, track ids) in an open3d window, or off screen to a PNG / a sequence to an MP4."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "view a dataset frame in 3D (open3d window, or off-screen PNG / PLY / sequence MP4)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset YAML")
    p.add_argument("--index", type=int, default=0, help="frame index in the split")
    p.add_argument("--split", default=None)
    p.add_argument("--weights", default=None, help="also draw this detector's predictions (.pt / .onnx / .engine)")
    p.add_argument("--out", default=None, help="render off screen to this PNG (default when there is no display)")
    p.add_argument("--ply", default=None, help="also write the points (and <stem>_boxes.ply) for other viewers")
    p.add_argument("--video", default=None, metavar="OUT.mp4", help="render the frame's whole sequence to an MP4")
    p.add_argument("--track", action="store_true", help="with --video and --weights: track and show track ids")
    p.add_argument("--max-frames", type=int, default=None, help="with --video: at most this many frames")
    p.add_argument("--size", default="1280x720", help="off-screen image size, WxH")
    p.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    from perception.data.registry import load_dataset
    from perception.errors import ConfigError
    from perception.stream.sinks import check_writable, display_available
    from perception.viz import open3d_view

    dataset = load_dataset(args.data, split=args.split)
    if not 0 <= args.index < len(dataset):
        raise ConfigError(f"--index {args.index} out of range: the split has {len(dataset)} frames", path=args.data)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {args.size!r}: expected WxH, e.g. 1280x720") from None
    for path, kind in ((args.out, "image"), (args.ply, "point cloud"), (args.video, "video")):
        if path:
            check_writable(Path(path), kind)
    predictor = None
    if args.weights:
        from perception.deploy.predictor import load_predictor

        predictor = load_predictor(args.weights, device=args.device)
    if args.video:
        out = open3d_view.render_sequence_video(
            _sequence(dataset, args.index, predictor, args.track, args.max_frames),
            args.video,
            width=width,
            height=height,
        )
        print(f"[view] wrote {out}")
        return 0
    frame = dataset.load_frame(args.index)
    boxes = predictor.predict(frame).boxes3d if predictor is not None else None
    if args.ply:
        for path in open3d_view.save_ply(frame, args.ply, boxes):
            print(f"[view] wrote {path}")
    if args.out or not display_available():
        out = Path(args.out or Path("runs/view") / f"{frame.name.replace('/', '_')}.png")
        _write_png(out, open3d_view.render_frame_3d(frame, boxes, view=open3d_view.OffscreenView(width, height)))
        print(f"[view] wrote {out}" + ("" if args.out else " (no display: rendered off screen)"))
    else:
        open3d_view.show_window(frame, boxes)
    return 0


def _sequence(dataset, index: int, predictor, track: bool, max_frames: int | None):
    """(frame, boxes) of the sequence holding frame ``index``, from that frame on, in time order."""
    seq = next(ids for ids in dataset.sequences().values() if index in ids)
    ids = seq[seq.index(index) :][:max_frames]
    tracker = None
    if track and predictor is not None:
        from perception.tracking import build_tracker

        tracker = build_tracker("3d")
    for i in ids:
        frame = dataset.load_frame(i)
        boxes = predictor.predict(frame).boxes3d if predictor is not None else None
        if tracker is not None and boxes is not None:
            boxes = tracker.update(boxes, ego_pose=frame.ego_pose, timestamp_s=frame.timestamp_s)
        yield frame, boxes


def _write_png(path: Path, image) -> None:
    import cv2

    from perception.errors import PerceptionError
    from perception.files import atomic_path

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise PerceptionError("cannot write the PNG", path=path)
