"""The in-graph post-processing (torch eager, no export): rotated IoU, stable order, greedy NMS and
the whole DetectorGraph against the numpy post-processing every backend is compared with."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from perception.core import bev_iou
from perception.deploy.graph import DetectorGraph, descending_order, greedy_nms_keep
from perception.models.rotated_iou import aligned_bev_iou, pairwise_bev_iou
from perception.models import build_model, postprocess, rotated_nms
from perception.models.detector import model_settings

torch.set_num_threads(1)

TINY = {
    "point_range": [0.0, -8.0, -3.0, 16.0, 8.0, 1.0], "voxel_size": [1.0, 1.0], "encoder_channels": [8],
    "backbone_channels": [8, 8, 8], "backbone_layers": [0, 0, 0], "neck_channels": [8, 8, 8], "max_detections": 30,
}  # fmt: skip


def _boxes(rng: np.random.Generator, k: int, spread: float = 3.0, far: float = 0.0) -> np.ndarray:
    b = np.zeros((k, 7), np.float32)
    b[:, :2] = rng.uniform(-spread, spread, (k, 2)) + far
    b[:, 3:5] = rng.uniform(0.3, 5.0, (k, 2))
    b[:, 5] = 1.5
    b[:, 6] = rng.uniform(-4, 4, k)
    return b


box_lists = st.lists(
    st.tuples(st.floats(-4, 4), st.floats(-4, 4), st.floats(0.2, 6), st.floats(0.2, 6), st.floats(-math.pi, math.pi)),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(rows=box_lists, far=st.floats(-70, 70))
def test_rotated_iou_equals_core_bev_iou(rows, far):
    b = np.array([[x + far, y, 0, l, w, 1, yaw] for x, y, l, w, yaw in rows], np.float32)
    ours = pairwise_bev_iou(torch.from_numpy(b)).numpy()
    assert np.allclose(ours, bev_iou(b, b), atol=2e-5)  # float32 far from the origin vs float64


def test_rotated_iou_identical_flush_and_touching_boxes():
    b = np.array(
        [[0, 0, 0, 4, 2, 1, 0], [0, 0, 0, 4, 2, 1, 0], [4, 0, 0, 4, 2, 1, 0], [0, 0, 0, 4, 2, 1, math.pi]], np.float32
    )
    iou = pairwise_bev_iou(torch.from_numpy(b)).numpy()
    assert iou[0, 1] == 1.0 and abs(iou[0, 3] - 1.0) < 1e-6  # identical and flipped-by-pi: one overlap, counted once
    assert iou[0, 2] == 0.0 and iou[2, 0] == 0.0  # sharing an edge from outside: no overlap
    assert np.allclose(pairwise_bev_iou(torch.from_numpy(_boxes(np.random.default_rng(1), 30, far=60))).numpy(),
                       bev_iou(*[_boxes(np.random.default_rng(1), 30, far=60)] * 2), atol=2e-5)  # fmt: skip


def test_aligned_rotated_iou_is_the_diagonal_of_core_bev_iou():
    rng = np.random.default_rng(2)
    a, b = _boxes(rng, 40, far=30), _boxes(rng, 40, far=30)
    b[::2] = a[::2] + np.array([0.3, -0.2, 0, 0.1, 0, 0, 0.2], np.float32)  # half of them overlapping
    ours = aligned_bev_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    ref = np.diag(bev_iou(a, b))
    assert np.allclose(ours, ref, atol=2e-5) and (ref[::2] > 0).all()


def test_descending_order_is_stable():
    scores = torch.tensor([0.2, 0.9, 0.2, 0.5, 0.9, 0.0])
    assert descending_order(scores).tolist() == [1, 4, 3, 0, 2, 5]
    assert descending_order(scores).tolist() == np.argsort(-scores.numpy(), kind="stable").tolist()


def test_greedy_nms_keep_equals_rotated_nms_per_class():
    rng = np.random.default_rng(0)
    for _ in range(20):
        b = _boxes(rng, 25, spread=2.0)
        scores = np.sort(rng.uniform(0, 1, 25))[::-1].astype(np.float32)
        labels = rng.integers(0, 2, 25)
        valid = scores > 0.2
        keep = greedy_nms_keep(pairwise_bev_iou(torch.from_numpy(b)), torch.from_numpy(labels),
                               torch.from_numpy(valid), 0.1).numpy().astype(bool)  # fmt: skip
        expected = np.zeros(25, bool)
        for c in (0, 1):
            idx = np.flatnonzero(valid & (labels == c))
            expected[idx[rotated_nms(b[idx], scores[idx], 0.1)]] = True
        assert (keep == expected).all()
        assert 0 < keep.sum() < valid.sum()  # NMS had something to do


def test_detector_graph_equals_postprocess_fixed_size_outputs():
    cfg = {**TINY, "score_thresholds": [0.0, 0.0, 0.0], "nms_iou": 0.02, "max_detections": 100}
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    graph = DetectorGraph(model, model_settings({"model": cfg})).eval()
    pts = torch.from_numpy(np.random.default_rng(0).uniform(-2, 18, (3000, 4)).astype(np.float32))
    with torch.no_grad():
        boxes, scores, labels, num = graph(pts)
        ref = postprocess(*[t.numpy() for t in model(pts)], [0.0, 0.0, 0.0], 0.02)
    n = int(num)
    assert boxes.shape == (100, 7) and scores.shape == (100,) and labels.shape == (100,) and num.dtype == torch.int64
    assert 0 < n == len(ref) < 100  # some candidates were suppressed
    assert np.array_equal(boxes[:n].numpy(), ref.xyz_lwh_yaw) and np.array_equal(labels[:n].numpy(), ref.labels)
    assert np.array_equal(scores[:n].numpy(), ref.scores) and (scores[n:] == 0).all()
