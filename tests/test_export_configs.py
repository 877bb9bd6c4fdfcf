"""Every 3D config in configs/ at full size: the exported graph in ONNX Runtime equals torch after
NMS on real KITTI frames (../shared/data) and on a synthetic frame, at several point counts.

Slow: one full-size export per config, 1-2 minutes each on a shared 2-core machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_export_onnx import decided_threshold, spread_scores

from perception.config import load_config
from perception.data.kitti_format import read_points_bin
from perception.deploy.export import export_model
from perception.deploy.onnx_runtime import OnnxPredictor3D
from perception.models import build_model, postprocess, save_checkpoint
from perception.models.detector import model_settings

torch.set_num_threads(2)
ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml") if isinstance(load_config(p).get("model"), dict))


def test_configs_are_found():
    assert {"pointpillars", "centerpoint_pillar", "pointpillars_small"} <= set(CONFIGS)


@pytest.fixture(scope="module")
def clouds(shared_data) -> dict[str, np.ndarray]:
    """Real KITTI clouds (whole and subsampled) and one synthetic sweep, (N, 4) x y z intensity."""
    from perception.data.registry import load_dataset

    velodyne = shared_data / "kitti" / "object" / "training" / "velodyne"
    full = read_points_bin(velodyne / "000000.bin")
    syn_yaml = ROOT / "datasets" / "synthetic.yaml"
    syn = load_dataset(syn_yaml, options={"sequences": 1, "frames": 1}).load_frame(0, images=False).points
    return {
        "kitti_000000": full,
        "kitti_000001_5k": read_points_bin(velodyne / "000001.bin")[::24][:5000],
        "synthetic": np.stack([syn.channel(c) for c in ("x", "y", "z", "intensity")], 1).astype(np.float32),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_onnx_equals_torch(name, clouds, tmp_path):
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    torch.manual_seed(0)
    model = build_model(cfg["model"]).eval()
    spread_scores(model, clouds["kitti_000000"], std=0.5)  # the densest cloud has the largest logits
    inputs = list(clouds.values())
    thr = decided_threshold(model, inputs, gap=2e-5)  # 1.3M anchors on the full grid: dense top scores
    cfg["model"] = {**cfg["model"], "score_thresholds": [max(thr, 0.5)] * len(cfg["model"]["classes"])}
    pt = save_checkpoint(tmp_path / f"{name}.pt", {"model": model.state_dict(), "config": cfg})
    predictor = OnnxPredictor3D(export_model(pt, "onnx"))
    s = model_settings(cfg)
    for key, pts in clouds.items():
        with torch.no_grad():
            ref = postprocess(*[t.numpy() for t in model(torch.from_numpy(pts))], s["score_thresholds"], s["nms_iou"])
        got = predictor.predict_points(pts)[0]
        assert len(ref) >= 3, f"{key}: the parity check needs detections"
        assert len(got) == len(ref) and np.array_equal(got.labels, ref.labels), key
        np.testing.assert_allclose(got.xyz_lwh_yaw, ref.xyz_lwh_yaw, atol=1e-3, rtol=0, err_msg=key)
        np.testing.assert_allclose(got.scores, ref.scores, atol=1e-4, rtol=0, err_msg=key)
