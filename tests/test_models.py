"""Pillar detector parts on tiny hand-made inputs: pillarization, coders, heads, NMS, checkpoints, Predictor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from perception.core import Boxes3D, Frame, PointCloud
from perception.deploy.predictor import load_predictor
from perception.errors import CheckpointError, ConfigError
from perception.models import (
    box_coder,
    build_model,
    load_checkpoint,
    load_model,
    postprocess,
    rotated_nms,
    save_checkpoint,
)
from perception.models.center_head import gaussian_radius
from perception.models.pillars import PillarFeatureNet, PillarGrid, assign_pillars

torch.set_num_threads(1)  # the CPU is shared; one thread is fastest under load

TINY = {
    "point_range": [0.0, -8.0, -3.0, 16.0, 8.0, 1.0], "voxel_size": [1.0, 1.0], "encoder_channels": [8],
    "backbone_channels": [8, 8, 8], "backbone_layers": [0, 0, 0], "neck_channels": [8, 8, 8], "max_detections": 20,
}  # fmt: skip


def test_assign_pillars_cells_trash_and_point_limit():
    grid = PillarGrid([0, 0, -1, 4, 2, 1], [1.0, 1.0])  # 4 columns x 2 rows
    xyz = torch.tensor([[0.5, 0.5, 0], [3.5, 1.5, 0], [3.6, 1.2, 0], [3.7, 1.9, 0], [9.0, 0.5, 0], [0.5, 0.5, 5.0]])
    cell = assign_pillars(xyz, torch.zeros(6, dtype=torch.long), grid, 1, max_points=0).cell
    assert cell.tolist() == [0, 7, 7, 7, 8, 8]  # row 1 col 3 = 7; out of range x and z -> trash 8
    limited = assign_pillars(xyz, torch.zeros(6, dtype=torch.long), grid, 1, max_points=2).cell
    assert limited.tolist() == [0, 7, 7, 8, 8, 8]  # the third point of cell 7 goes to the trash
    second = assign_pillars(xyz, torch.ones(6, dtype=torch.long), grid, 2, max_points=0).cell
    assert second.tolist() == [8, 15, 15, 15, 16, 16]  # sample 1 starts after 8 cells; trash = 16


def test_pillar_feature_net_fills_only_occupied_cells():
    grid = PillarGrid([0, 0, -1, 4, 2, 1], [1.0, 1.0])
    net = PillarFeatureNet(grid, 4, [6], max_points=32, decorations=["mean_offset", "centre_offset", "distance"]).eval()
    pts = torch.tensor([[0.5, 0.5, 0, 1.0], [3.5, 1.5, 0.2, 0.5], [30.0, 0.0, 0.0, 1.0]])
    bev = net(pts, torch.tensor([0, 1, 1]), 2)
    assert bev.shape == (2, 6, 2, 4)
    occupied = bev.abs().sum(dim=1) > 0
    expected = torch.zeros(2, 2, 4, dtype=torch.bool)
    expected[0, 0, 0] = expected[1, 1, 3] = True
    assert torch.equal(occupied & ~expected, torch.zeros_like(occupied))  # nothing outside the occupied cells


def test_box_coder_round_trip_and_direction():
    anchors = torch.tensor([[10.0, 2.0, -1.0, 3.9, 1.6, 1.56, 0.0], [5.0, -3.0, -0.6, 0.8, 0.6, 1.73, math.pi / 2]])
    boxes = torch.tensor([[10.5, 1.5, -0.8, 4.2, 1.7, 1.5, 0.3], [5.2, -2.9, -0.5, 0.9, 0.7, 1.8, 2.0]])
    res = box_coder.encode(boxes, anchors)
    assert torch.allclose(res[0, 0], torch.tensor(0.5 / math.hypot(3.9, 1.6)))
    assert torch.allclose(box_coder.decode(res, anchors), boxes, atol=1e-5)
    assert box_coder.direction_bin(torch.tensor([0.0, math.pi, -math.pi / 2]), math.pi / 4).tolist() == [1, 0, 1]


def test_center_head_decodes_its_own_targets_with_class_priors():
    """Targets written into perfect outputs decode to the boxes again: offsets, the priors added
    back per class (height, log size), yaw from (sin, cos) of twice the angle plus the direction bin."""
    model = build_model({**TINY, "head": "center", "anchor_sizes": [[4.0, 1.7, 1.5], [0.8, 0.6, 1.7], [1.8, 0.6, 1.7]],
                         "anchor_z": [-1.0, -0.6, -0.7], "iou_power": 0.5})  # fmt: skip
    head = model.head
    boxes = torch.tensor([[5.3, 2.7, -0.9, 4.4, 1.8, 1.4, 0.3], [9.6, -4.2, -0.5, 0.7, 0.5, 1.9, 2.8]])
    labels = torch.tensor([0, 1])
    heat, reg, cell, valid, backwards, owner = head.targets(boxes, labels)
    assert valid.all() and len(cell) == 2 * 9 and (reg[:, 2:6].abs() < 0.3).all()  # residuals to the priors are small
    assert torch.allclose(reg[4, :2], torch.tensor([0.65, 0.35])) and torch.allclose(reg[0, :2], torch.tensor([1.65, 1.35]))
    g = head.fgrid
    out = {"heat": torch.where(heat >= 1, 9.0, -9.0)[None], "reg": torch.zeros(1, 8, g.H * g.W),
           "dir": torch.zeros(1, 2, g.H * g.W), "iou": torch.full((1, 1, g.H * g.W), 20.0)}  # fmt: skip
    out["reg"][0][:, cell] = reg.T  # every site (centre cell and neighbours) regresses its object
    out["dir"][0, 1, cell] = torch.where(backwards == 1, 5.0, -5.0)
    out["iou"][0, 0, cell[owner == 1]] = math.log(0.25 / 0.75)  # predicted IoU 0.25 for the pedestrian
    out = {k: v.reshape(1, -1, g.H, g.W) for k, v in out.items()}
    decoded, scores, dec_labels = head.decode(out)
    top = scores > 0.3
    order = torch.argsort(decoded[top][:, 0])
    assert dec_labels[top][order].tolist() == [0, 1]
    assert torch.allclose(decoded[top][order], boxes, atol=1e-4)
    heat_score = torch.sigmoid(torch.tensor(9.0))
    expected = heat_score**0.5 * torch.tensor([1.0, 0.25**0.5])  # heat ** (1 - a) * iou ** a, a = 0.5
    assert torch.allclose(scores[top][order], expected, atol=1e-5)


def test_center_head_votes_over_the_sites_of_one_object():
    """The decoded box is the IoU^2-weighted mean of the boxes regressed around the peak; a site whose
    box lies beyond ``vote_gate`` (another object's) gets no vote, and yaw stays the peak's."""
    model = build_model({**TINY, "head": "center", "vote_gate": 1.0})  # 2 m cells
    head, g = model.head, model.head.fgrid
    box = torch.tensor([[5.3, 2.7, -0.9, 4.0, 1.6, 1.5, 0.3]])
    heat, reg, cell, valid, backwards, owner = head.targets(box, torch.tensor([0]))
    out = {"heat": torch.where(heat >= 1, 9.0, -9.0)[None], "reg": torch.zeros(1, 8, g.H * g.W),
           "dir": torch.zeros(1, 2, g.H * g.W), "iou": torch.full((1, 1, g.H * g.W), -20.0)}  # fmt: skip
    out["reg"][0][:, cell] = reg.T
    centre, left, far = cell[4], cell[3], cell[5]  # the peak and two of its neighbours
    out["reg"][0][0, left] += 0.3  # this site's box sits 0.3 cells (0.6 m) further along x
    out["reg"][0][4, left] += 0.2  # and is e^0.2 times wider
    out["reg"][0][6:, left] = torch.tensor([0.0, 1.0])  # with yaw 0 (the peak's stays 0.3)
    out["reg"][0][0, far] += 2.0  # this one regresses a box 4 m away
    out["iou"][0, 0, [centre, left, far]] = torch.tensor([math.log(3.0), 0.0, 5.0])  # IoU 0.75, 0.5, ~1
    out = {k: v.reshape(1, -1, g.H, g.W) for k, v in out.items()}
    decoded, scores, _ = head.decode(out)
    w_left = 0.5**2 / (0.5**2 + 0.75**2)
    expected = box[0].clone()
    expected[0] += w_left * 0.3 * g.cell_x
    expected[4] *= math.exp(w_left * 0.2)
    assert torch.allclose(decoded[scores.argmax()], expected, atol=1e-4)
    head.vote_gate = 0.0  # peak only
    assert torch.allclose(head.decode(out)[0][scores.argmax()], box[0], atol=1e-4)


def test_aligned_iou_and_nearest_bev():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [5.0, 5.0, 6.0, 6.0]])
    assert torch.allclose(box_coder.aligned_iou(a, b), torch.tensor([[1 / 7, 0.0]]))
    rotated = torch.tensor([[0.0, 0.0, 0.0, 4.0, 2.0, 1.0, math.pi / 2]])  # long side along y
    assert torch.allclose(box_coder.nearest_bev_xyxy(rotated), torch.tensor([[-1.0, -2.0, 1.0, 2.0]]))


def test_gaussian_radius_grows_with_size():
    r = gaussian_radius(torch.tensor([4.0, 20.0]), torch.tensor([2.0, 10.0]), 0.1)
    assert r[0] < r[1] and r[0] >= 0


def test_rotated_nms_and_per_class_thresholds():
    boxes = np.array([[0, 0, 0, 4, 2, 1.5, 0], [0.2, 0, 0, 4, 2, 1.5, 0.1], [10, 0, 0, 4, 2, 1.5, 0]], np.float32)
    assert rotated_nms(boxes, np.array([0.9, 0.8, 0.7]), 0.1).tolist() == [0, 2]
    dets = postprocess(boxes, np.array([0.9, 0.8, 0.35]), np.array([0, 0, 1]), [0.5, 0.4], 0.1)
    assert len(dets) == 1 and dets.scores.tolist() == pytest.approx([0.9])  # class 1 box is under its 0.4 threshold
    dets = postprocess(boxes, np.array([0.9, 0.8, 0.45]), np.array([0, 1, 1]), [0.5, 0.4], 0.1)
    assert sorted(dets.labels.tolist()) == [0, 1, 1]  # NMS is per class: overlapping boxes of different classes stay


@pytest.mark.parametrize("head", ["anchor", "center"])
def test_model_inference_is_fixed_size_even_for_empty_clouds(head):
    torch.manual_seed(0)
    model = build_model({**TINY, "head": head}).eval()
    for n, offset in ((500, 0.0), (0, 0.0), (1, 0.0), (50, 100.0)):
        pts = torch.rand(n, 4) * torch.tensor([16.0, 16.0, 2.0, 1.0]) - torch.tensor([0.0, 8.0, 2.0, 0.0]) + offset
        with torch.no_grad():
            boxes, scores, labels = model(pts)
        assert boxes.shape == (20, 7) and scores.shape == (20,) and labels.shape == (20,)
        assert torch.isfinite(boxes).all() and ((labels >= 0) & (labels < 3)).all()


@pytest.mark.parametrize("head", ["anchor", "center"])
def test_training_forward_loss_decreases_on_one_frame(head):
    torch.manual_seed(0)
    model = build_model({**TINY, "head": head})
    gen = torch.Generator().manual_seed(1)
    box = torch.tensor([[8.0, 1.0, -1.0, 3.9, 1.6, 1.5, 0.4]])
    local = (torch.rand(400, 3, generator=gen) - 0.5) * torch.tensor([3.8, 1.5, 1.4])
    c, s = math.cos(0.4), math.sin(0.4)
    pts = torch.stack(
        [8 + c * local[:, 0] - s * local[:, 1], 1 + s * local[:, 0] + c * local[:, 1], -1 + local[:, 2]], 1
    )
    pts = torch.cat([pts, torch.ones(400, 1)], 1)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(15):
        terms = model(pts, torch.zeros(400, dtype=torch.long), 1, [box], [torch.tensor([0])])
        loss = sum(terms.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_build_model_bad_config_names_the_problem():
    with pytest.raises(ConfigError, match="did you mean 'center'"):
        build_model({**TINY, "head": "centre"})
    with pytest.raises(ConfigError, match="anchor_sizes has 1 entries for 3 classes"):
        build_model({**TINY, "anchor_sizes": [[3.9, 1.6, 1.5]]})
    with pytest.raises(ConfigError, match="unknown key model.voxel"):
        build_model({**TINY, "voxel": [1, 1]})
    with pytest.raises(ConfigError, match="not divisible"):
        build_model({**TINY, "voxel_size": [0.7, 0.7]})


def _saved(tmp_path, model_cfg):
    model = build_model(model_cfg)
    path = save_checkpoint(tmp_path / "m.pt", {"model": model.state_dict(), "config": {"model": model_cfg}})
    return model, path


def test_checkpoint_round_trip_and_foreign_architecture(tmp_path):
    model, path = _saved(tmp_path, TINY)
    loaded, cfg = load_model(path)
    assert cfg["model"] == TINY and "versions" in load_checkpoint(path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    other = {**TINY, "encoder_channels": [16]}
    ckpt = load_checkpoint(path)
    save_checkpoint(tmp_path / "other.pt", {**ckpt, "config": {"model": other}})
    with pytest.raises(CheckpointError, match="do not fit this architecture"):
        load_model(tmp_path / "other.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt: unreadable"):
        load_checkpoint(tmp_path / "bad.pt")
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes left no temporary files


def test_predictor_returns_boxes_in_ego_frame(tmp_path):
    _, path = _saved(tmp_path, {**TINY, "score_thresholds": [0.0, 0.0, 0.0]})
    predictor = load_predictor(path)
    assert predictor.class_names == ("Car", "Pedestrian", "Cyclist")
    cloud = PointCloud(np.random.default_rng(0).uniform(-5, 15, (300, 3)).astype(np.float32), ("x", "y", "z"))
    pred = predictor.predict(Frame("t", "", 0, 0.0, predictor.class_names, points=cloud))
    assert isinstance(pred.boxes3d, Boxes3D) and len(pred.boxes3d) > 0  # threshold 0 keeps NMS survivors
    assert set(pred.latency_ms) == {"preprocess", "inference", "postprocess"}
    with pytest.raises(CheckpointError, match="unsupported weights format"):
        load_predictor(tmp_path / "m.h5")


def test_assign_pillars_point_limit_matches_a_python_count():
    """The shifted-run comparison keeps exactly the first max_points points of every cell, in input order."""
    grid = PillarGrid([0, 0, -1, 3, 2, 1], [1.0, 1.0])
    g = torch.Generator().manual_seed(0)
    xyz = torch.rand(400, 3, generator=g) * torch.tensor([3.6, 2.4, 2.4]) - torch.tensor([0.3, 0.2, 1.2])
    batch_idx = torch.randint(0, 2, (400,), generator=g)
    full = assign_pillars(xyz, batch_idx, grid, 2, max_points=0).cell
    for k in (1, 5, 40):
        limited = assign_pillars(xyz, batch_idx, grid, 2, max_points=k).cell
        seen: dict[int, int] = {}
        expected = []
        for c in full.tolist():
            seen[c] = seen.get(c, 0) + 1
            expected.append(c if c != 2 * grid.cells and seen[c] <= k else 2 * grid.cells)
        assert limited.tolist() == expected
