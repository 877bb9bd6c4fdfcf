"""Exact rotated BEV IoU of K boxes against each other in plain tensor ops (no sort, no data-dependent
shape), so that it lives inside an exported ONNX / TensorRT graph. Used by ``perception.deploy.graph``
(NMS) and by the centre head (IoU targets of its predicted boxes).

The overlap of two convex quadrilaterals is bounded by the parts of each one's edges that lie
inside the other. By Green's theorem its area is the sum, over those clipped edge pieces, of
``0.5 * cross(start, end)``; clipping a segment to a convex quad is four half-plane tests
(Cyrus-Beck). An edge of A lying exactly on an edge of B with the same orientation (identical or
flush boxes) is counted once: as part of A, never as part of B. Coordinates are taken relative to
each pair's first box so that float32 keeps about 1e-6 m^2 of precision far from the origin.
"""

from __future__ import annotations

import torch

_PARALLEL_TOL = 1e-5  # |cos| between an edge and a clip side below which they count as parallel
_FLUSH_TOL_M = 1e-5  # distance below which a parallel edge lies on the clip side (float32 at ~100 m)
_UNIT_CORNERS = ((0.5, -0.5), (0.5, 0.5), (-0.5, 0.5), (-0.5, -0.5))  # counter-clockwise, x fwd / y left


def local_corners(boxes: torch.Tensor) -> torch.Tensor:
    """(K, 7) boxes (x, y, z, l, w, h, yaw) -> (K, 4, 2) BEV corners about each box centre, CCW."""
    unit = torch.tensor(_UNIT_CORNERS, dtype=boxes.dtype, device=boxes.device)  # (4, 2)
    half = unit[None] * boxes[:, None, 3:5]  # (K, 4, 2)
    c, s = torch.cos(boxes[:, 6])[:, None], torch.sin(boxes[:, 6])[:, None]
    return torch.stack([half[..., 0] * c - half[..., 1] * s, half[..., 0] * s + half[..., 1] * c], dim=-1)


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _clipped_edge_area(poly: torch.Tensor, clip: torch.Tensor, keep_flush: bool) -> torch.Tensor:
    """Sum over the edges of ``poly`` of ``0.5 * cross(start, end)`` for the part inside ``clip``.

    Args:
        poly, clip: (..., 4, 2) CCW quads in the same (pair-local) coordinates.
        keep_flush: whether an edge lying on a same-oriented edge of ``clip`` counts as inside.

    Returns:
        (...) float: this polygon's share of the overlap area (m^2).
    """
    p = poly[..., :, None, :]  # edge starts (..., 4 edges, 1, 2)
    d = (torch.roll(poly, -1, dims=-2) - poly)[..., :, None, :]  # edge vectors
    side = torch.roll(clip, -1, dims=-2) - clip  # clip edges (..., 4, 2)
    length = torch.sqrt((side * side).sum(-1, keepdim=True)).clamp(min=1e-12)
    normal = (torch.stack([side[..., 1], -side[..., 0]], dim=-1) / length)[..., None, :, :]  # unit, outward
    num = (normal * (p - clip[..., None, :, :])).sum(-1)  # signed distance (m), <= 0 inside
    den = (normal * d).sum(-1)
    # Rounding makes flush edges (same yaw, shared side) only nearly parallel and nearly on the
    # boundary, so both tests need a tolerance or the shared side is counted twice or not at all.
    d_len = torch.sqrt((d * d).sum(-1))
    parallel = den.abs() <= _PARALLEL_TOL * d_len
    on_line = num.abs() <= _FLUSH_TOL_M
    t = -num / torch.where(parallel, torch.ones_like(den), den)
    big = torch.ones_like(t)
    t0 = torch.maximum(torch.where((den < 0) & ~parallel, t, -big).amax(-1), torch.zeros_like(t[..., 0]))
    t1 = torch.minimum(torch.where((den > 0) & ~parallel, t, 2 * big).amin(-1), torch.ones_like(t[..., 0]))
    if keep_flush:
        same_way = (normal * torch.stack([d[..., 1], -d[..., 0]], dim=-1)).sum(-1) > 0
        out = parallel & ((~on_line & (num > 0)) | (on_line & ~same_way))
    else:
        out = parallel & (on_line | (num > 0))
    span = (t1 - t0).clamp(min=0) * (~out.any(-1)).to(t.dtype)
    return 0.5 * (span * _cross(p[..., 0, :], d[..., 0, :])).sum(-1)


def _iou_local(a: torch.Tensor, b: torch.Tensor, area_a: torch.Tensor, area_b: torch.Tensor) -> torch.Tensor:
    """IoU of (..., 4, 2) quads given in each pair's shared local coordinates."""
    inter = _clipped_edge_area(a, b, keep_flush=True) + _clipped_edge_area(b, a, keep_flush=False)
    return inter / (area_a + area_b - inter).clamp(min=1e-9)


def pairwise_bev_iou(boxes: torch.Tensor) -> torch.Tensor:
    """(K, 7) boxes -> (K, K) exact rotated BEV IoU (equal to ``perception.core.bev_iou`` to ~1e-6)."""
    corners = local_corners(boxes)  # (K, 4, 2)
    offset = boxes[None, :, :2] - boxes[:, None, :2]  # (K, K, 2): centre j seen from centre i
    a = corners[:, None].expand(-1, boxes.shape[0], -1, -1)
    b = corners[None] + offset[:, :, None, :]
    area = boxes[:, 3] * boxes[:, 4]
    return _iou_local(a, b, area[:, None], area[None, :])


def aligned_bev_iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """(M, 7), (M, 7) -> (M,) exact rotated BEV IoU of each row of ``boxes_a`` with the same row of ``boxes_b``."""
    offset = boxes_b[:, :2] - boxes_a[:, :2]
    b = local_corners(boxes_b) + offset[:, None, :]
    return _iou_local(local_corners(boxes_a), b, boxes_a[:, 3] * boxes_a[:, 4], boxes_b[:, 3] * boxes_b[:, 4])
