"""Exact IoU of oriented boxes: BEV (rotated rectangles) and 3D (BEV overlap x height overlap).

The overlap of two convex quadrilaterals is the convex polygon whose vertices are: the corners
of each box lying inside the other, and the crossings of their edges. We gather those (at most
4 + 4 + 16) candidates for every pair at once, order them by angle about their mean and take the
shoelace area. Pairs whose bounding circles cannot touch are skipped, and the rest are processed
in chunks, so 1000 x 1000 boxes need little memory.
"""

from __future__ import annotations

import numpy as np

from perception.core.geometry import bev_corners

_EPS = 1e-9
_CHUNK_PAIRS = 50_000


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a[..., 0] - o[..., 0]) * (b[..., 1] - o[..., 1]) - (a[..., 1] - o[..., 1]) * (b[..., 0] - o[..., 0])


def _inside(points: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """(K, P, 2) points, (K, 4, 2) CCW quads -> (K, P) bool, boundary included."""
    nxt = np.roll(quads, -1, axis=1)
    side = _cross(quads[:, None, :, :], nxt[:, None, :, :], points[:, :, None, :])  # (K, P, 4)
    scale = np.abs(quads).max() + 1.0
    return (side >= -_EPS * scale * scale).all(axis=2)


def _edge_crossings(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crossings of every edge of quad a with every edge of quad b: (K, 16, 2) points, (K, 16) valid."""
    p, r = a[:, :, None, :], (np.roll(a, -1, axis=1) - a)[:, :, None, :]  # edges of a
    q, s = b[:, None, :, :], (np.roll(b, -1, axis=1) - b)[:, None, :, :]  # edges of b
    denom = r[..., 0] * s[..., 1] - r[..., 1] * s[..., 0]
    qp = q - p
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (qp[..., 0] * s[..., 1] - qp[..., 1] * s[..., 0]) / denom
        u = (qp[..., 0] * r[..., 1] - qp[..., 1] * r[..., 0]) / denom
    valid = (np.abs(denom) > _EPS) & (t >= -_EPS) & (t <= 1 + _EPS) & (u >= -_EPS) & (u <= 1 + _EPS)
    pts = p + np.where(valid, t, 0.0)[..., None] * r
    k = len(a)
    return pts.reshape(k, 16, 2), valid.reshape(k, 16)


def quad_intersection_area(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Overlap area of paired CCW convex quads: (K, 4, 2), (K, 4, 2) -> (K,) float64."""
    if len(a) == 0:
        return np.zeros(0)
    cross_pts, cross_ok = _edge_crossings(a, b)
    pts = np.concatenate([a, b, cross_pts], axis=1)  # (K, 24, 2)
    ok = np.concatenate([_inside(a, b), _inside(b, a), cross_ok], axis=1)
    count = ok.sum(axis=1)
    centre = (pts * ok[..., None]).sum(axis=1) / np.maximum(count, 1)[:, None]
    d = pts - centre[:, None, :]
    angle = np.where(ok, np.arctan2(d[..., 1], d[..., 0]), np.inf)
    order = np.argsort(angle, axis=1)
    pts = np.take_along_axis(pts, order[..., None], axis=1)
    ok = np.take_along_axis(ok, order, axis=1)
    pts = np.where(ok[..., None], pts, pts[:, :1])  # pad with the first vertex: adds zero area
    nxt = np.roll(pts, -1, axis=1)
    area = 0.5 * (pts[..., 0] * nxt[..., 1] - pts[..., 1] * nxt[..., 0]).sum(axis=1)
    return np.where(count >= 3, np.abs(area), 0.0)


def _candidate_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) whose BEV bounding circles overlap: no other pair can intersect."""
    ra = np.hypot(a[:, 3], a[:, 4]) / 2
    rb = np.hypot(b[:, 3], b[:, 4]) / 2
    dx = a[:, None, 0] - b[None, :, 0]
    dy = a[:, None, 1] - b[None, :, 1]
    return np.nonzero(dx * dx + dy * dy <= (ra[:, None] + rb[None, :] + 1e-6) ** 2)


def bev_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 7), (M, 7) boxes -> (N, M) float64 BEV overlap areas (m^2)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 7)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 7)
    out = np.zeros((len(a), len(b)))
    if len(a) == 0 or len(b) == 0:
        return out
    ii, jj = _candidate_pairs(a, b)
    ca, cb = bev_corners(a), bev_corners(b)
    for s in range(0, len(ii), _CHUNK_PAIRS):
        i, j = ii[s : s + _CHUNK_PAIRS], jj[s : s + _CHUNK_PAIRS]
        out[i, j] = quad_intersection_area(ca[i], cb[j])
    return out


def bev_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 7), (M, 7) boxes (x, y, z, l, w, h, yaw) -> (N, M) rotated BEV IoU."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 7)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 7)
    inter = bev_intersection(a, b)
    union = (a[:, 3] * a[:, 4])[:, None] + (b[:, 3] * b[:, 4])[None, :] - inter
    return inter / np.maximum(union, _EPS)


def iou3d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 7), (M, 7) upright boxes -> (N, M) 3D IoU (z is the geometric centre)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 7)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 7)
    inter_bev = bev_intersection(a, b)
    top = np.minimum((a[:, 2] + a[:, 5] / 2)[:, None], (b[:, 2] + b[:, 5] / 2)[None, :])
    bottom = np.maximum((a[:, 2] - a[:, 5] / 2)[:, None], (b[:, 2] - b[:, 5] / 2)[None, :])
    inter = inter_bev * np.clip(top - bottom, 0.0, None)
    vol_a, vol_b = a[:, 3:6].prod(axis=1), b[:, 3:6].prod(axis=1)
    return inter / np.maximum(vol_a[:, None] + vol_b[None, :] - inter, _EPS)


def iou2d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4), (M, 4) axis-aligned xyxy boxes -> (N, M) IoU."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, _EPS)


def _next_corner(q: np.ndarray) -> np.ndarray:
    """(K, 4, 2) -> the same corners shifted by one (corner i+1 at i), by slicing (cheaper than np.roll)."""
    return np.concatenate((q[:, 1:], q[:, :1]), axis=1)


def _reduce4(op: np.ufunc, x: np.ndarray) -> np.ndarray:
    """op over a last axis of length 4 as three element-wise calls (a reduction costs more for tiny arrays)."""
    return op(op(x[..., 0], x[..., 1]), op(x[..., 2], x[..., 3]))


def _clipped_edge_terms(p: np.ndarray, q: np.ndarray, keep_shared: np.ndarray) -> np.ndarray:
    """Shoelace terms of the parts of quad p's edges inside quad q: (K, 4, 2), (K, 4, 2) -> (K,).

    Edge i of p is ``p_i + t r_i``, t in [0, 1]; q's side j keeps ``cross(s_j, x - q_j) >= 0``
    (CCW: the left). Each side bounds t from below or above (Cyrus-Beck), and the kept piece
    [t0, t1] adds ``(t1 - t0) cross(p_i, r_i)`` to twice the area. An edge lying on a side of q
    with the same direction is kept only where ``keep_shared`` (K, 1, 1) (shared boundary counts once);
    one with the opposite direction (boxes touching from outside) never.
    """
    r, s = _next_corner(p) - p, _next_corner(q) - q
    sx, sy = s[:, None, :, 0], s[:, None, :, 1]  # (K, 1, 4): sides of q
    rx, ry = r[:, :, None, 0], r[:, :, None, 1]  # (K, 4, 1): edges of p
    c0 = sx * (p[:, :, None, 1] - q[:, None, :, 1]) - sy * (p[:, :, None, 0] - q[:, None, :, 0])  # (K, 4, 4)
    c1 = sx * ry - sy * rx
    tol = 1e-9 * (sx * sx + sy * sy) * (1.0 + np.abs(rx) + np.abs(ry))
    parallel = np.abs(c1) <= tol
    inside_line = (c0 > tol) | (keep_shared & (np.abs(c0) <= tol) & (sx * rx + sy * ry > 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -c0 / c1
    t0 = np.maximum(_reduce4(np.maximum, np.where(~parallel & (c1 > 0), t, 0.0)), 0.0)
    t1 = np.minimum(_reduce4(np.minimum, np.where(~parallel & (c1 < 0), t, 1.0)), 1.0)
    blocked = _reduce4(np.logical_or, parallel & ~inside_line)
    span = np.where(blocked, 0.0, np.maximum(t1 - t0, 0.0))
    return (span * (p[..., 0] * r[..., 1] - p[..., 1] * r[..., 0])).sum(-1)


def clipped_quad_intersection_area(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Overlap area of paired CCW convex quads, (K, 4, 2), (K, 4, 2) -> (K,) float64.

    Same result as ``quad_intersection_area`` with no sorting: the overlap's boundary is the
    part of a's edges inside b plus the part of b's edges inside a, and the shoelace sum over
    those pieces is twice its area whatever their order. About half the numpy calls, for the
    small sets a tracker scores every frame. Coordinates are taken relative to a's first
    corner so that far-away boxes lose no precision.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) == 0:
        return np.zeros(0)
    k, origin = len(a), a[:, :1]
    a, b = a - origin, b - origin
    keep_shared = (np.arange(2 * k) < k)[:, None, None]  # a's edges keep a shared side, b's do not
    terms = _clipped_edge_terms(np.concatenate((a, b)), np.concatenate((b, a)), keep_shared)
    return np.maximum(0.5 * (terms[:k] + terms[k:]), 0.0)
