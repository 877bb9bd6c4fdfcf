"""KITTI tracking benchmark against AB3DMOT on its own input (PointRCNN detections, val split).

    .venv/bin/python benchmarks/bench_tracking.py [--repeats 3] [--classes Car Pedestrian]

Runs ``perception``'s 3D tracker with the ``kitti`` preset (one parameter set per class, no
per-sequence tuning) over the 11 validation sequences, evaluates with the AB3DMOT protocol at
3D IoU 0.25 and 0.5, and prints our numbers next to AB3DMOT's published ones. Frame rate is
the tracker's ``update`` time only (as AB3DMOT reports it), median of ``--repeats`` passes,
both wall clock and process CPU time (the latter is less disturbed on a shared machine).
Needs ../shared/data/kitti/tracking; exits with a message when it is absent.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from perception.data.kitti_format import read_tracking_label_file
from perception.eval.tracking import evaluate_kitti_tracking
from perception.tracking.kitti_io import read_seqmap
from perception.tracking.presets import tracker_for_classes
from perception.tracking.run import KITTI_TRACK_CLASSES, load_sequence, tracks_to_objects

ROOT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "kitti" / "tracking"
# AB3DMOT (Weng et al.), KITTI val, PointRCNN input: sAMOTA, MOTA (percent) per IoU threshold; FPS on a desktop CPU
AB3DMOT = {
    "Car": {0.25: (93.34, 86.47), 0.5: (92.57, 84.81), "fps": 108.0, "IDS@0.25": 0},
    "Pedestrian": {0.25: (82.73, 73.86), 0.5: (77.68, 68.19), "fps": 119.0},
}
COLUMNS = ("sAMOTA", "AMOTA", "AMOTP", "MOTA", "MOTP", "IDS", "FRAG", "HOTA", "DetA", "AssA")


def timed_pass(cls: str, seqs: dict) -> tuple[dict, float, float]:
    """Track every sequence once; returns results per sequence and the wall / CPU seconds inside ``update``."""
    tracker = tracker_for_classes(KITTI_TRACK_CLASSES)
    results, wall, cpu = {}, 0.0, 0.0
    for name, seq in seqs.items():
        tracker.reset()
        tracks = []
        for boxes in seq.frames:
            w0, c0 = time.perf_counter(), time.process_time()
            tracks.append(tracker.update(boxes))
            wall += time.perf_counter() - w0
            cpu += time.process_time() - c0
        results[name] = tracks_to_objects(tracks, seq.calib)
    return results, wall, cpu


def compare_hota_with_trackeval(folder: str, sequences: int = 30) -> None:
    """Our HOTA vs TrackEval's (``pip install --target FOLDER --no-deps sn-trackeval``) on random sequences."""
    import numpy as np

    sys.path.insert(0, folder)
    from trackeval.metrics.hota import HOTA

    from perception.eval.tracking import FrameData, hota

    worst = 0.0
    for seed in range(sequences):
        rng = np.random.default_rng(seed)
        steps, n_gt, n_trk = int(rng.integers(5, 30)), int(rng.integers(1, 6)), int(rng.integers(1, 7))
        data = {"gt_ids": [], "tracker_ids": [], "similarity_scores": []}
        frames = []
        for _ in range(steps):
            g, k = np.flatnonzero(rng.random(n_gt) < 0.7), np.flatnonzero(rng.random(n_trk) < 0.6)
            sim = rng.random((len(g), len(k))) * (rng.random((len(g), len(k))) < 0.5)
            for key, v in zip(("gt_ids", "tracker_ids", "similarity_scores"), (g, k, sim)):
                data[key].append(v)
            frames.append(FrameData(g, np.zeros(len(g), bool), k, np.zeros(len(k), bool), sim))
        data.update(num_gt_ids=n_gt, num_tracker_ids=n_trk, num_timesteps=steps,
                    num_gt_dets=sum(map(len, data["gt_ids"])), num_tracker_dets=sum(map(len, data["tracker_ids"])))  # fmt: skip
        ref, ours = HOTA().eval_sequence(data), hota(frames)
        worst = max(worst, *(abs(float(np.mean(ref[k])) - ours[k]) for k in ("HOTA", "DetA", "AssA", "LocA")))
    print(f"HOTA / DetA / AssA / LocA vs TrackEval on {sequences} random sequences: max abs difference {worst:.2e}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--classes", nargs="+", default=["Car", "Pedestrian"])
    ap.add_argument("--trackeval", default=None, help="folder holding TrackEval (sn-trackeval) to check HOTA against")
    args = ap.parse_args()
    if args.trackeval:
        compare_hota_with_trackeval(args.trackeval)
    if not ROOT.exists():
        print(f"skipped: {ROOT} (real KITTI tracking data) is absent")
        return 0
    seqmap = read_seqmap(ROOT / "evaluate_tracking.seqmap.val")
    n_frames = {s: last - first + 1 for s, first, last in seqmap}
    gt = {s: read_tracking_label_file(ROOT / "training" / "label_02" / f"{s}.txt") for s in n_frames}
    for cls in args.classes:
        det_dir = ROOT / "detections" / f"pointrcnn_{cls}_val"
        if not det_dir.exists():
            print(f"{cls}: no detections in {det_dir}")
            continue
        seqs = {
            s: load_sequence(det_dir / f"{s}.txt", ROOT / "training" / "calib" / f"{s}.txt", n)
            for s, n in n_frames.items()
        }
        frames = sum(len(s.frames) for s in seqs.values())
        timed_pass(cls, {k: seqs[k] for k in list(seqs)[:1]})  # warm up
        passes = [timed_pass(cls, seqs) for _ in range(args.repeats)]
        results = passes[0][0]
        fps_wall = frames / statistics.median(p[1] for p in passes)
        fps_cpu = frames / statistics.median(p[2] for p in passes)
        print(f"\n== {cls}: {len(seqs)} sequences, {frames} frames ==")
        print("IoU   " + " ".join(f"{c:>7}" for c in COLUMNS) + "   AB3DMOT sAMOTA / MOTA   ratio sAMOTA / MOTA")
        for thr in (0.25, 0.5):
            m = evaluate_kitti_tracking(gt, results, n_frames, classes=(cls.lower(),), threshold=thr)[cls.lower()]
            cells = " ".join(f"{m[c] * 100:7.2f}" if c not in ("IDS", "FRAG") else f"{m[c]:7d}" for c in COLUMNS)
            ref = AB3DMOT.get(cls, {}).get(thr)
            tail = (
                f"   {ref[0]:6.2f} / {ref[1]:6.2f}     {m['sAMOTA'] * 100 / ref[0]:.3f} / {m['MOTA'] * 100 / ref[1]:.3f}"
                if ref
                else ""
            )
            print(f"{thr:<5} {cells}{tail}")
        ref_fps = AB3DMOT.get(cls, {}).get("fps")
        ratio = f"   ratio {fps_wall / ref_fps:.1f}x (wall) {fps_cpu / ref_fps:.1f}x (cpu)" if ref_fps else ""
        print(
            f"FPS   ours {fps_wall:.0f} (wall) / {fps_cpu:.0f} (cpu), median of {args.repeats}   AB3DMOT {ref_fps} (published){ratio}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
