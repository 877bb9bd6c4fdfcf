"""Single-graph ONNX export of tiny 3D detectors (anchor and centre heads): one standard-op graph
with metadata, ONNX Runtime == torch after NMS at several point counts, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from perception.cli import main
from perception.core import Frame, PointCloud
from perception.deploy.export import ExportOptions, export_model
from perception.deploy.onnx_runtime import OnnxPredictor3D
from perception.deploy.predictor import TorchPredictor3D, load_predictor
from perception.errors import CheckpointError, ConfigError, MissingExtraError, ShapeError
from perception.models import build_model, save_checkpoint

torch.set_num_threads(1)

TINY = {
    "point_range": [0.0, -8.0, -3.0, 16.0, 8.0, 1.0], "voxel_size": [1.0, 1.0], "encoder_channels": [8],
    "backbone_channels": [8, 8, 8], "backbone_layers": [0, 0, 0], "neck_channels": [8, 8, 8], "max_detections": 40,
    "max_points_per_pillar": 8,
}  # fmt: skip
CHANNELS = ("x", "y", "z", "intensity")
COUNTS = (200, 2000, 20000)  # from sparse (empty pillars) to dense (pillars past their point limit)


def cloud(n: int, seed: int = 0) -> np.ndarray:
    """(n, 4) points over and a little beyond the tiny grid (some fall in the trash cell)."""
    rng = np.random.default_rng(seed)
    return (rng.uniform([-1, -9, -3.5, 0], [17, 9, 1.5, 1], (n, 4))).astype(np.float32)


def frame(points: np.ndarray) -> Frame:
    return Frame("t", "", 0, 0.0, ("Car", "Pedestrian", "Cyclist"), points=PointCloud(points, CHANNELS))


def spread_scores(model: torch.nn.Module, points: np.ndarray, std: float = 2.0) -> None:
    """Random init gives near-equal scores (1e-8 apart, below float noise); rescale the class
    logits to a standard deviation of ``std`` and no bias so that detections have distinct scores
    (big grids have more candidates, so their top scores are further out: use a smaller std)."""
    conv = model.head.cls if hasattr(model.head, "cls") else model.head.heat
    seen = []
    handle = conv.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        model(torch.from_numpy(points))
        handle.remove()
        conv.weight.mul_(std / (seen[0] - conv.bias[None, :, None, None]).std())
        conv.bias.zero_()
        if hasattr(model.head, "iou"):  # predicted IoUs near 0.95, still varying: scores keep their spread
            model.head.iou.bias.fill_(3.0)


def decided_threshold(model: torch.nn.Module, clouds: list[np.ndarray], gap: float = 1e-4) -> float:
    """A score threshold above every candidate whose rank is decided by a tie or a logit gap < ``gap``
    (float noise is ~1e-6): ONNX Runtime and torch may order those differently, both correctly."""
    worst = 0.0
    with torch.no_grad():
        for pts in clouds:
            scores = np.sort(model(torch.from_numpy(pts))[1].numpy().astype(np.float64))
            scores = scores[(scores > 0) & (scores < 1)]  # centre-head non-peaks are 0: never detections
            close = np.flatnonzero(np.diff(np.log(scores / (1 - scores))) < gap)
            if len(close):
                worst = max(worst, float(scores[close[-1] + 1]))
    return worst + 1e-6


def make_checkpoint(folder: Path, head: str) -> Path:
    torch.manual_seed(0)
    cfg = {**TINY, "head": head}
    model = build_model(cfg).eval()
    spread_scores(model, cloud(2000))
    thr = decided_threshold(model, [cloud(n, seed=n) for n in COUNTS])
    cfg["score_thresholds"], cfg["nms_iou"] = [thr] * 3, 0.05
    return save_checkpoint(folder / f"{head}.pt", {"model": model.state_dict(), "config": {"model": cfg}})


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """head -> (checkpoint, ONNX export); the anchor model goes through the CLI."""
    folder = tmp_path_factory.mktemp("export")
    out = {}
    for head in ("anchor", "center"):
        pt = make_checkpoint(folder, head)
        if head == "anchor":
            assert main(["export", "--weights", str(pt), "--format", "onnx"]) == 0
            out[head] = (pt, pt.with_suffix(".onnx"))
        else:
            out[head] = (pt, export_model(pt, "onnx", folder / "center_graph.onnx"))
    return out


@pytest.mark.parametrize("head", ["anchor", "center"])
def test_graph_is_standard_ops_with_metadata(exported, head):
    proto = onnx.load(str(exported[head][1]))
    onnx.checker.check_model(proto, full_check=True)
    assert {n.domain for n in proto.graph.node} <= {"", "ai.onnx"} and not proto.functions
    assert {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")} == {18}
    ops = {n.op_type for n in proto.graph.node}
    assert {"ScatterElements", "TopK", "Conv"} <= ops  # pillarization, ranking and network in one graph
    points = proto.graph.input[0].type.tensor_type.shape.dim
    assert len(points) == 2 and points[0].dim_param and points[1].dim_value == 4  # any N, 4 channels
    meta = OnnxPredictor3D(exported[head][1]).meta
    assert meta["classes"] == ["Car", "Pedestrian", "Cyclist"] and meta["point_channels"] == list(CHANNELS)
    assert meta["point_range"] == TINY["point_range"] and meta["model"]["head"] == head and meta["opset"] == 18


@pytest.mark.parametrize("head", ["anchor", "center"])
def test_onnx_runtime_equals_torch_after_nms(exported, head):
    pt, onnx_path = exported[head]
    ours, ref = load_predictor(onnx_path), load_predictor(pt)
    assert isinstance(ours, OnnxPredictor3D) and isinstance(ref, TorchPredictor3D)
    for n in COUNTS:
        a, b = ref.predict(frame(cloud(n, seed=n))).boxes3d, ours.predict(frame(cloud(n, seed=n))).boxes3d
        assert len(a) >= 3, "the parity check needs detections"
        assert len(a) == len(b) and np.array_equal(a.labels, b.labels)
        np.testing.assert_allclose(b.xyz_lwh_yaw, a.xyz_lwh_yaw, atol=1e-3, rtol=0)
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-4, rtol=0)


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single_point_clouds(exported, n):
    pred = OnnxPredictor3D(exported["anchor"][1]).predict(frame(cloud(n)))
    assert pred.boxes3d.xyz_lwh_yaw.shape[1] == 7 and set(pred.latency_ms) == {"preprocess", "inference", "postprocess"}


def test_wrong_point_channels_is_one_error(exported):
    predictor = OnnxPredictor3D(exported["anchor"][1])
    with pytest.raises(ShapeError, match=r"anchor.onnx: points of shape \(10, 3\); this model takes \(N, 4\)"):
        predictor.predict_points(np.zeros((10, 3), np.float32))


def reuse_graph(monkeypatch, onnx_path: Path) -> None:
    """Skip the (slow) tracing in tests of what export_onnx does after it: reuse a traced graph."""
    from perception.deploy import export_onnx

    monkeypatch.setattr(export_onnx, "export_graph", lambda *a, **k: onnx.load(str(onnx_path)))


def test_simplified_graph_keeps_parity(exported, tmp_path, monkeypatch):
    pytest.importorskip("onnxslim")
    pt, onnx_path = exported["anchor"]
    reuse_graph(monkeypatch, onnx_path)
    slim = export_model(pt, "onnx", tmp_path / "slim.onnx", ExportOptions(simplify=True))
    pts = cloud(2000, seed=2000)
    a, b = OnnxPredictor3D(onnx_path).predict_points(pts)[0], OnnxPredictor3D(slim).predict_points(pts)[0]
    assert len(a) > 0 and np.allclose(a.xyz_lwh_yaw, b.xyz_lwh_yaw, atol=1e-5) and np.array_equal(a.labels, b.labels)


def test_bad_exports_are_one_error_and_leave_no_file(exported, tmp_path, capsys):
    pt = exported["anchor"][0]
    with pytest.raises(ConfigError, match="unknown export format 'onx'.*onnx"):
        export_model(pt, "onx", tmp_path / "a.onnx")
    with pytest.raises(ConfigError, match="opset 17 cannot express .* needs opset 18"):
        export_model(pt, "onnx", tmp_path / "a.onnx", ExportOptions(opset=17))
    no_config = tmp_path / "no_config.pt"
    torch.save({"model": torch.load(pt, weights_only=False)["model"]}, no_config)
    with pytest.raises(CheckpointError, match="no_config.pt: not a perception checkpoint"):
        export_model(no_config, "onnx")
    with pytest.raises(MissingExtraError, match="tensorrt"):  # checked before the slow ONNX export
        export_model(pt, "engine", tmp_path / "a.engine")
    assert main(["export", "--weights", str(pt), "--format", "tflite", "--out", str(tmp_path / "a.tflite")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no_config.pt"]


def test_interrupted_write_leaves_no_partial_file(exported, tmp_path, monkeypatch):
    def half_written(proto, path):
        Path(path).write_bytes(b"\x08\x07")
        raise OSError("disk full")

    reuse_graph(monkeypatch, exported["anchor"][1])
    monkeypatch.setattr(onnx, "save", half_written)
    with pytest.raises(OSError, match="disk full"):
        export_model(exported["anchor"][0], "onnx", tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_corrupt_or_foreign_onnx_is_one_error(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="bad.onnx: not a loadable ONNX model"):
        load_predictor(tmp_path / "bad.onnx")
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [x],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])])  # fmt: skip
    model = onnx.helper.make_model(graph, ir_version=10, opset_imports=[onnx.helper.make_opsetid("", 18)])
    onnx.save(model, str(tmp_path / "plain.onnx"))
    with pytest.raises(CheckpointError, match="plain.onnx: no perception metadata"):
        load_predictor(tmp_path / "plain.onnx")
    with pytest.raises(CheckpointError, match="missing.onnx: ONNX model not found"):
        load_predictor(tmp_path / "missing.onnx")
