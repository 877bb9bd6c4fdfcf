"""Detection metrics: ours vs the official / reference implementations, on random scenes.

Prints per metric: frames, our time, the reference's time, ratio, and the largest difference
between the two results. References are optional and are NOT project dependencies; install them
into throw-away folders and pass those folders with ``--refs``::

    pip install --no-deps --target /tmp/ref_nus nuscenes-devkit pyquaternion
    pip install --no-deps --target /tmp/ref_kitti mmdet3d numba llvmlite      # KITTI numba port
    pip install --no-deps --target /tmp/ref_av2 av2 pandas polars joblib cloudpickle \\
        python-dateutil pytz tzdata six universal-pathlib pathlib-abc fsspec
    python benchmarks/bench_eval.py --refs /tmp/ref_nus:/tmp/ref_kitti:/tmp/ref_av2

The KITTI port's rotated IoU needs CUDA (numba.cuda); it is replaced by our exact IoU, so the
comparison checks the devkit logic (thresholds, ignore rules, DontCare, AOS) on equal overlaps.
Waymo's official metrics need TensorFlow and Bazel: only our time is printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import types
from pathlib import Path

import numpy as np

from perception.core import Boxes3D, bev_iou, iou3d
from perception.data.kitti_format import KittiObjects
from perception.eval.argoverse2 import evaluate_av2
from perception.eval.kitti import DIFFICULTIES, evaluate_kitti
from perception.eval.nuscenes import NUSCENES_CLASSES, TP_METRICS, evaluate_nuscenes
from perception.eval.waymo import evaluate_waymo

KITTI_TYPES = ["Car", "Car", "Car", "Van", "Pedestrian", "Pedestrian", "Person_sitting", "Cyclist", "DontCare", "Misc"]


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def report(name: str, frames: int, ours_s: float, ref_s: float | None, diff: float | None) -> None:
    ref = (
        f"{ref_s:8.2f} s  ratio {ref_s / ours_s:6.1f}x  max |diff| {diff:.1e}"
        if ref_s is not None
        else "(no reference)"
    )
    print(f"{name:<10} {frames:6d} frames  ours {ours_s:8.2f} s  reference {ref}")


def kitti_scenes(rng, n_frames):
    """Label rows like KITTI val (about 8 per frame) and detections near them plus false positives."""
    gt, dt = [], []
    for _ in range(n_frames):
        n = rng.integers(2, 14)
        t = np.array([KITTI_TYPES[i] for i in rng.integers(0, len(KITTI_TYPES), n)], dtype="<U16")
        x1, y1 = rng.uniform(0, 1100, n), rng.uniform(120, 250, n)
        bbox = np.column_stack([x1, y1, x1 + rng.uniform(20, 200, n), y1 + rng.uniform(15, 150, n)])
        dims = np.column_stack([rng.uniform(1.4, 1.8, n), rng.uniform(0.6, 1.9, n), rng.uniform(0.8, 4.5, n)])
        loc = np.column_stack([rng.uniform(-20, 20, n), rng.uniform(1.4, 1.8, n), rng.uniform(5, 60, n)])
        g = KittiObjects(
            t,
            rng.choice([0.0, 0.2, 0.4], n),
            rng.integers(0, 3, n),
            rng.uniform(-3, 3, n),
            bbox,
            dims,
            loc,
            rng.uniform(-3, 3, n),
        )
        keep = (rng.random(n) < 0.85) & (t != "DontCare")
        m, k = int(keep.sum()), int(rng.integers(0, 10))
        d = KittiObjects(
            np.concatenate([t[keep], np.array(["Car", "Pedestrian", "Cyclist"])[rng.integers(0, 3, k)]]), np.zeros(m + k),
            np.zeros(m + k, np.int64), np.concatenate([g.alpha[keep] + rng.normal(0, 0.2, m), rng.uniform(-3, 3, k)]),
            np.concatenate([bbox[keep] + rng.normal(0, 3, (m, 4)), bbox[rng.integers(0, n, k)] + rng.normal(0, 60, (k, 4))]),
            np.concatenate([dims[keep] * rng.uniform(0.97, 1.03, (m, 3)), rng.uniform(0.6, 4, (k, 3))]),
            np.concatenate([loc[keep] + rng.normal(0, 0.05, (m, 3)), loc[rng.integers(0, n, k)] + rng.normal(0, 3, (k, 3))]),
            np.concatenate([g.rotation_y[keep] + rng.normal(0, 0.1, m), rng.uniform(-3, 3, k)]), score=rng.random(m + k),
        )  # fmt: skip
        gt.append(g)
        dt.append(d)
    return gt, dt


def kitti_reference(gt, dt):
    """mmdet3d's numba port of the devkit with our exact IoU in place of its CUDA kernel."""
    path = next(
        Path(p) / "mmdet3d/evaluation/functional/kitti_utils/eval.py"
        for p in sys.path
        if (Path(p) / "mmdet3d").is_dir()
    )
    spec = importlib.util.spec_from_file_location("kitti_port", path)
    port = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(port)
    port.bev_box_overlap = lambda a, b, c=-1: bev_iou(
        *(np.column_stack([x[:, 0], x[:, 1], 0 * x[:, 0], x[:, 2], x[:, 3], 1 + 0 * x[:, 0], -x[:, 4]]) for x in (a, b))
    )
    port.d3_box_overlap = lambda a, b, c=-1: iou3d(
        *(
            np.column_stack([x[:, 0], x[:, 2], -x[:, 1] + x[:, 4] / 2, x[:, 3], x[:, 5], x[:, 4], -x[:, 6]])
            for x in (a, b)
        )
    )

    def anno(o):
        return {"name": o.type.astype(str), "truncated": o.truncated, "occluded": o.occluded, "alpha": o.alpha, "bbox": o.bbox,
                "dimensions": o.dimensions_hwl[:, [2, 0, 1]], "location": o.location, "rotation_y": o.rotation_y,
                "score": o.score if o.score is not None else np.zeros(len(o))}  # fmt: skip

    overlaps = np.full((1, 3, 3), 0.5)
    overlaps[0, :, 0] = 0.7
    return port.do_eval([anno(g) for g in gt], [anno(d) for d in dt], [0, 1, 2], overlaps, ["bbox", "bev", "3d", "aos"])


def bench_kitti(rng, n_frames, with_ref):
    gt, dt = kitti_scenes(rng, n_frames)
    ours, t_ours = timed(evaluate_kitti, gt, dt)
    if not with_ref:
        return report("KITTI", n_frames, t_ours, None, None)
    kitti_reference(gt, dt)  # numba compiles on first use: the first run is not timed
    ref, t_ref = timed(kitti_reference, gt, dt)
    diffs = [abs(mine[m][c][d] - theirs[mi][ci, di, 0])
             for mine, theirs in ((ours.ap_r11, ref[:4]), (ours.ap_r40, ref[4:]))
             for mi, m in enumerate(("bbox", "bev", "3d", "aos"))
             for ci, c in enumerate(("Car", "Pedestrian", "Cyclist"))
             for di, d in enumerate(DIFFICULTIES)]  # fmt: skip
    report("KITTI", n_frames, t_ours, t_ref, max(diffs))
    print(
        f"{'':<10} Car 3D moderate AP R40 ours {ours.ap_r40['3d']['Car']['moderate']:.4f} reference {ref[6][0, 1, 0]:.4f}"
    )


def ego_scenes(rng, n_frames, n_classes, reach_m, attrs=None):
    """Ego-frame boxes per frame (labels < n_classes), detections = noisy copies + false positives."""
    gt, dt = [], []
    for _ in range(n_frames):
        n = int(rng.integers(0, 30))
        lab = rng.integers(0, n_classes, n)
        xyz = np.column_stack([rng.uniform(-reach_m, reach_m, (n, 2)), rng.uniform(-1, 1, n)])
        box = np.column_stack([xyz, rng.uniform(0.5, 5, (n, 3)), rng.uniform(-np.pi, np.pi, n)])
        keep = rng.random(n) < 0.8
        m, k = int(keep.sum()), int(rng.integers(0, 10))
        noise = np.column_stack([rng.normal(0, 0.5, (m, 3)), 0 * box[keep, 3:6], rng.normal(0, 0.3, m)])
        far = np.column_stack(
            [rng.uniform(-reach_m, reach_m, (k, 2)), np.zeros(k), rng.uniform(0.5, 5, (k, 3)), np.zeros(k)]
        )
        vel = rng.normal(0, 3, (n, 2))
        a_gt = {"num_points": rng.integers(0, 20, n)}
        a_dt = {}
        if attrs:
            a_gt["attribute_name"] = np.array([attrs[i % len(attrs)] for i in lab])
            a_dt["attribute_name"] = np.concatenate([a_gt["attribute_name"][keep], np.full(k, attrs[0])])
        gt.append(Boxes3D(box, lab, velocity_xy=vel, attributes=a_gt))
        dt.append(Boxes3D(np.concatenate([box[keep] + noise, far]), np.concatenate([lab[keep], rng.integers(0, n_classes, k)]),
                          scores=rng.random(m + k), velocity_xy=np.concatenate([vel[keep] + rng.normal(0, 1, (m, 2)), rng.normal(0, 3, (k, 2))]),
                          attributes=a_dt))  # fmt: skip
    return gt, dt


def nuscenes_reference(gt, dt):
    """nuscenes-devkit's accumulate / calc_ap / calc_tp / DetectionMetrics on the same boxes."""
    root = next(Path(p) / "nuscenes" for p in sys.path if (Path(p) / "nuscenes").is_dir())
    stub = types.ModuleType("nuscenes")  # skip the package __init__, which needs the full devkit deps
    stub.__path__, stub.NuScenes = [str(root)], object
    sys.modules["nuscenes"] = stub
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.common.loaders import filter_eval_boxes
    from nuscenes.eval.detection.algo import accumulate, calc_ap, calc_tp
    from nuscenes.eval.detection.data_classes import DetectionBox, DetectionConfig, DetectionMetrics
    from pyquaternion import Quaternion

    from perception.eval.nuscenes import CLASS_RANGE_M

    def boxes(frames, is_gt):
        out = EvalBoxes()
        for f, b in enumerate(frames):
            x = b.xyz_lwh_yaw.astype(float)
            out.add_boxes(f"s{f}", [DetectionBox(
                sample_token=f"s{f}", translation=tuple(x[i, :3]), size=(x[i, 4], x[i, 3], x[i, 5]),
                rotation=tuple(Quaternion(axis=[0, 0, 1], angle=x[i, 6]).elements), velocity=tuple(b.velocity_xy[i].astype(float)),
                ego_translation=tuple(x[i, :3]), num_pts=int(b.attributes["num_points"][i]) if is_gt else -1,
                detection_name=NUSCENES_CLASSES[b.labels[i]], detection_score=-1.0 if is_gt else float(b.scores[i]),
                attribute_name=str(b.attributes["attribute_name"][i])) for i in range(len(b))])  # fmt: skip
        return out

    class NoMap:
        def get(self, table, token):
            return {"anns": []}

    cfg = DetectionConfig(dict(CLASS_RANGE_M), "center_distance", [0.5, 1.0, 2.0, 4.0], 2.0, 0.1, 0.1, 500, 5)
    g, d = boxes(gt, True), boxes(dt, False)
    t0 = time.perf_counter()
    g, d = filter_eval_boxes(NoMap(), g, cfg.class_range), filter_eval_boxes(NoMap(), d, cfg.class_range)
    metrics = DetectionMetrics(cfg)
    for c in cfg.class_names:
        mds = {th: accumulate(g, d, c, cfg.dist_fcn_callable, th) for th in cfg.dist_ths}
        for th, md in mds.items():
            metrics.add_label_ap(c, th, calc_ap(md, cfg.min_recall, cfg.min_precision))
        for m in TP_METRICS:
            skip = (c == "traffic_cone" and m in ("attr_err", "vel_err", "orient_err")) or (
                c == "barrier" and m in ("attr_err", "vel_err")
            )
            metrics.add_label_tp(c, m, np.nan if skip else calc_tp(mds[2.0], cfg.min_recall, m))
    return metrics, time.perf_counter() - t0


def bench_nuscenes(rng, n_frames, with_ref):
    gt, dt = ego_scenes(
        rng, n_frames, len(NUSCENES_CLASSES), 55, attrs=["vehicle.moving", "vehicle.parked", "", "pedestrian.moving"]
    )
    ours, t_ours = timed(evaluate_nuscenes, gt, dt, NUSCENES_CLASSES)
    if not with_ref:
        return report("nuScenes", n_frames, t_ours, None, None)
    ref, t_ref = nuscenes_reference(gt, dt)
    diffs = [abs(ours.mean_ap - ref.mean_ap), abs(ours.nds - ref.nd_score)]
    diffs += [abs(ours.ap[c][th] - ref._label_aps[c][th]) for c in NUSCENES_CLASSES for th in (0.5, 1.0, 2.0, 4.0)]
    diffs += [
        abs(np.nan_to_num(ours.tp_errors[c][m] - ref._label_tp_errors[c][m]))
        for c in NUSCENES_CLASSES
        for m in TP_METRICS
    ]
    report("nuScenes", n_frames, t_ours, t_ref, max(diffs))
    print(
        f"{'':<10} NDS ours {ours.nds:.4f} reference {ref.nd_score:.4f}, mAP ours {ours.mean_ap:.4f} reference {ref.mean_ap:.4f}"
    )


def av2_reference(gt, dt, classes):
    """av2's accumulate per (frame, class) and summarize_metrics, timed without our data conversion."""
    import pandas as pd
    from av2.evaluation.detection.constants import TruePositiveErrorNames
    from av2.evaluation.detection.eval import summarize_metrics
    from av2.evaluation.detection.utils import DetectionCfg, accumulate

    cfg = DetectionCfg(categories=classes, eval_only_roi_instances=False)
    tables, names = (
        {"gt": [], "dt": []},
        list(cfg.affinity_thresholds_m) + [x.value for x in TruePositiveErrorNames] + ["is_evaluated"],
    )
    work = []
    for f, (g, d) in enumerate(zip(gt, dt)):
        for c in range(len(classes)):
            arrays = []
            for b, last in ((d, d.scores), (g, g.attributes["num_points"])):
                sel = b.labels == c
                x = b.xyz_lwh_yaw[sel].astype(float)
                q = np.column_stack([np.cos(x[:, 6] / 2), 0 * x[:, :2], np.sin(x[:, 6] / 2)])
                arrays.append(np.column_stack([x[:, :6], q, np.asarray(last)[sel].astype(float)]))
            work.append((f, classes[c], *arrays))
    t0 = time.perf_counter()
    outputs = [accumulate(a_dt, a_gt, cfg) for _, _, a_dt, a_gt in work]
    t_accumulate = time.perf_counter() - t0
    for (_, c, a_dt, a_gt), (out_dt, out_gt) in zip(work, outputs):  # table building is not timed
        for key, arr, out in (("dt", a_dt, out_dt), ("gt", a_gt, out_gt)):
            frame = pd.DataFrame(np.column_stack([arr, out]), columns=[f"c{i}" for i in range(11)] + names)
            frame["category"] = c
            frame["score" if key == "dt" else "num_interior_pts"] = arr[:, -1]
            tables[key].append(frame)
    dts, gts = pd.concat(tables["dt"], ignore_index=True), pd.concat(tables["gt"], ignore_index=True)
    t0 = time.perf_counter()
    metrics = summarize_metrics(dts, gts, cfg)
    return metrics, t_accumulate + time.perf_counter() - t0


def bench_av2(rng, n_frames, with_ref):
    classes = ("REGULAR_VEHICLE", "PEDESTRIAN", "BICYCLIST", "BOLLARD", "CONSTRUCTION_CONE", "BUS")
    gt, dt = ego_scenes(rng, n_frames, len(classes), 160)
    ours, t_ours = timed(evaluate_av2, gt, dt, classes, classes=classes)
    if not with_ref:
        return report("AV2", n_frames, t_ours, None, None)
    ref, t_ref = av2_reference(gt, dt, classes)
    keys = ("AP", "ATE", "ASE", "AOE", "CDS")
    diff = max(abs(ref.loc[c].to_numpy() - np.array([ours.metrics[c][k] for k in keys])).max() for c in classes)
    report("AV2", n_frames, t_ours, t_ref, diff)
    print(f"{'':<10} mean CDS ours {ours.mean['CDS']:.4f} reference {ref.mean()['CDS']:.4f}")


def bench_waymo(rng, n_frames):
    gt, dt = ego_scenes(rng, n_frames, 3, 75)
    _, t_ours = timed(evaluate_waymo, gt, dt, ("Vehicle", "Pedestrian", "Cyclist"))
    report("Waymo", n_frames, t_ours, None, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", default="", help="':'-separated folders holding the reference packages")
    parser.add_argument("--frames", type=int, default=1000)
    args = parser.parse_args()
    sys.path[:0] = [p for p in args.refs.split(":") if p]
    rng = np.random.default_rng(0)
    have = {
        name: importlib.util.find_spec(mod) is not None
        for name, mod in (("kitti", "numba"), ("nus", "pyquaternion"), ("av2", "av2"))
    }
    have["kitti"] &= any((Path(p) / "mmdet3d").is_dir() for p in sys.path)
    bench_kitti(rng, args.frames, have["kitti"])
    bench_nuscenes(rng, args.frames, have["nus"])
    bench_av2(rng, args.frames // 4, have["av2"])
    bench_waymo(rng, args.frames)


if __name__ == "__main__":
    main()
