"""Loader speed on the real excerpts in ../shared/data: frames/s of our loaders, and ours vs av2's
own loader on the same Argoverse 2 feather files.

    PYTHONPATH=/tmp/av2_bench .venv/bin/python benchmarks/bench_datasets.py

av2 is not a dependency: install it beside, e.g.
``pip install --no-deps --target /tmp/av2_bench av2 pandas numba llvmlite pyproj universal_pathlib pathlib_abc``
(its av2 rows are skipped when it cannot be imported). Prints median seconds over repeats.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "tests"))  # the nuScenes tables are rebuilt by the test helper

from perception.data.argoverse2 import read_sweep
from perception.data.registry import load_dataset


def median_s(fn, repeats: int = 15, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def paired_median_s(ours, ref, repeats: int = 21) -> tuple[float, float]:
    """Median seconds of two functions timed alternately, so a shared machine's load hits both alike."""
    ours(), ref()
    a, b = [], []
    for _ in range(repeats):
        for fn, times in ((ours, a), (ref, b)):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return statistics.median(a), statistics.median(b)


def frames_per_s(dataset, **kw) -> float:
    return len(dataset) / median_s(lambda: [dataset.load_frame(i, **kw) for i in range(len(dataset))], repeats=7)


def bench_av2_vs_reference() -> None:
    try:
        from av2.datasets.sensor.av2_sensor_dataloader import AV2SensorDataLoader
        from av2.utils.io import read_lidar_sweep
    except ImportError as e:
        print(f"av2 not importable ({e}); reference rows skipped")
        return
    log = SHARED / "argoverse2/sensor/val/7fab2350-7eaf-3b7e-a39d-6937a4c1bede"
    sweeps = sorted((log / "sensors/lidar").glob("*.feather"))
    stamps = [int(p.stem) for p in sweeps]
    ours, ref = paired_median_s(
        lambda: [read_sweep(p) for p in sweeps], lambda: [read_lidar_sweep(p, "xyz") for p in sweeps]
    )
    print(f"av2 sweep   ours {len(sweeps) / ours:7.1f} sweeps/s (xyz+intensity float32) | "
          f"av2 read_lidar_sweep {len(sweeps) / ref:7.1f} sweeps/s (xyz float64) | ratio {ref / ours:5.2f}x")  # fmt: skip
    loader = AV2SensorDataLoader(log.parent, log.parent)
    yaml_path = ROOT / "datasets/argoverse2.yaml"
    frames = [i for i in range(3) if load_dataset(yaml_path).frame_key(i)[0] == log.name]

    def ref_frames() -> None:  # sweep + that sweep's cuboids + ego pose, as av2's loader gives them
        for ts, p in zip(stamps, sweeps, strict=True):
            read_lidar_sweep(p, "xyz")
            loader.get_labels_at_lidar_timestamp(log.name, ts)
            loader.get_city_SE3_ego(log.name, ts)

    def ours_cold() -> None:  # a new loader per frame: no table cached, like av2's loader
        for i in frames:
            load_dataset(yaml_path).load_frame(i, images=False)

    ds = load_dataset(yaml_path)
    cold, ref = paired_median_s(ours_cold, ref_frames, repeats=9)
    warm, ref_w = paired_median_s(lambda: [ds.load_frame(i, images=False) for i in frames], ref_frames, repeats=9)
    print(f"av2 frame   ours cold {len(frames) / cold:6.1f} / warm {len(frames) / warm:6.1f} frames/s | "
          f"av2 sweep+labels+pose {len(frames) / ref:6.1f} frames/s | ratio cold {ref / cold:5.2f}x, warm {ref_w / warm:5.2f}x")  # fmt: skip


def bench_our_loaders() -> None:
    from test_nuscenes import NuScenesDataset, _spec, write_tables

    with tempfile.TemporaryDirectory() as tmp:
        write_tables(SHARED, Path(tmp))
        nusc = NuScenesDataset(_spec(Path(tmp)))
        rows = [
            ("nuscenes keyframe (lidar + 6 cams)", nusc, {}),
            ("nuscenes keyframe (lidar only)", nusc, {"images": False}),
            (
                "lyft tables (boxes, calib)",
                load_dataset(ROOT / "datasets/lyft.yaml"),
                {"points": False, "images": False},
            ),
            ("waymo v1 (5 JPEGs, labels)", load_dataset(ROOT / "datasets/waymo.yaml"), {}),
            ("waymo v1 (labels, no images)", load_dataset(ROOT / "datasets/waymo.yaml"), {"images": False}),
            ("waymo v2 vehicle_pose (199)", load_dataset(ROOT / "datasets/waymo_v2.yaml"), {}),
            ("argoverse2 (sweep, boxes, pose)", load_dataset(ROOT / "datasets/argoverse2.yaml"), {"images": False}),
        ]
        for name, ds, kw in rows:
            print(f"{name:36s} {frames_per_s(ds, **kw):8.1f} frames/s")


def bench_crc() -> None:
    from perception.data.tfrecord import _crc_raw_py, crc32c

    data = (SHARED / "waymo/v1_perception/pvps_data_one_frame.tfrecord").read_bytes()
    ours, ref = paired_median_s(lambda: crc32c(data), lambda: _crc_raw_py(0xFFFFFFFF, data), repeats=3)
    mb = len(data) / 1e6
    print(
        f"crc32c {mb:.1f} MB    ours {mb / ours:7.1f} MB/s | pure-Python table loop {mb / ref:5.1f} MB/s | ratio {ref / ours:5.1f}x"
    )


if __name__ == "__main__":
    if not SHARED.is_dir():
        sys.exit(f"real excerpts not found at {SHARED}")
    bench_av2_vs_reference()
    bench_our_loaders()
    bench_crc()
