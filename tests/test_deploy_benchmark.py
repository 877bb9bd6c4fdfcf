"""``perception benchmark``: percentiles, stage split, accuracy against torch, table and CSV, a backend
that cannot run here reported as skipped; argument errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from perception.cli import main
from perception.core import Boxes3D, Frame, PointCloud, Predictions
from perception.deploy.benchmark import (
    COLUMNS,
    benchmark_backends,
    format_table,
    latency_summary,
    match_detections,
    write_csv,
)
from perception.deploy.predictor import Predictor, load_predictor
from perception.errors import ConfigError, MissingExtraError
from perception.models import build_model, save_checkpoint

torch.set_num_threads(1)

TINY = {
    "point_range": [0.0, -8.0, -3.0, 16.0, 8.0, 1.0], "voxel_size": [1.0, 1.0], "encoder_channels": [8],
    "backbone_channels": [8, 8, 8], "backbone_layers": [0, 0, 0], "neck_channels": [8, 8, 8], "max_detections": 20,
    "score_thresholds": [0.0, 0.0, 0.0],
}  # fmt: skip


def _frames(n: int) -> list[Frame]:
    rng = np.random.default_rng(0)
    return [
        Frame("t", "", i, 0.0, ("Car", "Pedestrian", "Cyclist"),
              points=PointCloud(rng.uniform(-1, 17, (500, 3)).astype(np.float32), ("x", "y", "z")))
        for i in range(n)
    ]  # fmt: skip


class Shifted(Predictor):
    """Another backend's stand-in: the reference's detections moved by ``dx`` metres, one dropped."""

    def __init__(self, ref: Predictor, dx: float):
        self.ref, self.dx = ref, dx

    def predict(self, frame: Frame) -> Predictions:
        b = self.ref.predict(frame).boxes3d
        boxes = b.xyz_lwh_yaw[1:].copy()
        boxes[:, 0] += self.dx
        return Predictions(Boxes3D(boxes, b.labels[1:], scores=b.scores[1:] - 0.001), latency_ms={"inference": 1.0})


class Unavailable(Predictor):
    def __init__(self):
        raise MissingExtraError("tensorrt", "trt")

    def predict(self, frame: Frame) -> Predictions: ...


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bench") / "tiny.pt"
    return save_checkpoint(path, {"model": build_model(TINY).state_dict(), "config": {"model": TINY}})


def test_match_detections_counts_and_differences():
    ref = Boxes3D(np.array([[0, 0, 0, 4, 2, 1, 0], [10, 0, 0, 4, 2, 1, 0]], np.float32), np.array([0, 0]),
                  scores=np.array([0.9, 0.8], np.float32))  # fmt: skip
    moved = Boxes3D(ref.xyz_lwh_yaw + np.float32([0.1, 0, 0, 0, 0, 0, 0]), np.array([0, 1]),
                    scores=np.array([0.85, 0.8], np.float32))  # fmt: skip
    n, box_diff, score_diff = match_detections(ref, moved)
    assert n == 1 and np.isclose(box_diff, 0.1) and np.isclose(score_diff, 0.05)  # the second has another class
    assert match_detections(ref, Boxes3D.empty()) == (0, 0.0, 0.0)


def test_latency_summary_percentiles():
    s = latency_summary(list(range(1, 101)), {"preprocess": [1.0, 3.0], "inference": [10.0]})
    assert (s["p50_ms"], s["p90_ms"], s["p99_ms"]) == (50.5, 90.1, 99.01) and s["fps"] == round(1e3 / 50.5, 2)
    assert s["pre_ms"] == 2.0 and s["net_ms"] == 10.0 and s["post_ms"] == 0.0


def test_benchmark_rows_accuracy_and_skipped_backend(checkpoint, tmp_path):
    ref = load_predictor(checkpoint)
    loaders = {"torch": ("cpu", lambda: ref), "moved": ("cpu", lambda: Shifted(ref, 0.02)),
               "engine": ("cuda", Unavailable)}  # fmt: skip
    frames = _frames(2)
    rows = benchmark_backends(loaders, frames, warmup=1, repeats=2)
    torch_row, moved, engine = rows
    counts = [len(ref.predict(f).boxes3d) for f in frames]
    assert torch_row["match_pct"] == 100.0 and torch_row["max_box_diff"] == 0.0 and torch_row["frames"] == 2
    assert torch_row["p50_ms"] <= torch_row["p90_ms"] <= torch_row["p99_ms"] and torch_row["net_ms"] > 0
    assert min(counts) > 2 and moved["match_pct"] == round(100 * (sum(counts) - 2) / sum(counts), 2)
    assert moved["max_box_diff"] == pytest.approx(0.02, abs=1e-6)
    assert moved["max_score_diff"] == pytest.approx(0.001, abs=1e-6)
    assert engine["note"].startswith("skipped: tensorrt is not installed") and "p50_ms" not in engine
    table = format_table(rows)
    assert table.splitlines()[0].split() == list(COLUMNS) and "skipped" in table.splitlines()[3]
    with open(write_csv(rows, tmp_path / "b.csv")) as f:
        back = list(csv.DictReader(f))
    assert [r["backend"] for r in back] == ["torch", "moved", "engine"] and float(back[1]["match_pct"]) == moved[
        "match_pct"
    ]


def test_cli_table_and_csv(checkpoint, tmp_path, capsys):
    data = tmp_path / "syn.yaml"
    data.write_text("format: synthetic\nroot: .\nclasses: [Car, Pedestrian, Cyclist]\n"
                    "options: {sequences: 1, frames: 2, rings: 8, azimuth_steps: 128}\n")  # fmt: skip
    argv = ["benchmark", "--weights", str(checkpoint), "--data", str(data), "--frames", "2", "--repeats", "1",
            "--warmup", "1", "--formats", "torch,engine", "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "torch" in printed and "skipped:" in printed and (tmp_path / "out" / "benchmark.csv").is_file()


def test_cli_argument_errors(checkpoint, tmp_path, capsys):
    from perception.cli.benchmark import parse_formats

    with pytest.raises(ConfigError, match="unknown benchmark format 'onx'"):
        parse_formats("torch,onx", ".pt")
    with pytest.raises(ConfigError, match="format torch needs the .pt checkpoint"):
        parse_formats("torch,onnx", ".onnx")
    assert main(["benchmark", "--weights", str(tmp_path / "m.h5")]) == 2
    assert "unsupported weights format '.h5'" in capsys.readouterr().err
