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


_KEEP_SHARED = np.array([True, False])[:, None, None, None]  # a shared side counts once: on a's edge, not b's


def paired_bev_corners(pairs: np.ndarray) -> np.ndarray:
    """BEV corners of paired boxes in the planar layout used by the tracker's pairwise maths.

    Args:
        pairs: (7, 2, K) fields ``x y z l w h yaw`` of box a and box b of K pairs.

    Returns:
        (2, 2, 4, K) float64: coordinate (x, y), box (a, b), corner (counter-clockwise), pair;
        relative to each pair's a centre, so that far-away pairs lose no precision. The pair
        axis is last and contiguous: every numpy call runs one long inner loop over the pairs
        instead of many loops of 2-4 elements, which is what small sets spend their time on.
    """
    cos, sin = np.cos(pairs[6]), np.sin(pairs[6])  # (2, K)
    half = 0.5 * pairs[3:5]  # (l/2, w/2): a corner is centre + R (+-l/2, +-w/2)
    (l_cos, w_cos), (l_sin, w_sin) = half * cos, half * sin
    corners = np.empty((2, 2, 4, len(cos[0])))
    x, y = corners[0], corners[1]  # (2, 4, K), corners counter-clockwise from front-left
    np.subtract(l_cos, w_sin, out=x[:, 0])
    np.add(l_cos, w_sin, out=x[:, 3])
    np.negative(x[:, 3], out=x[:, 1])
    np.negative(x[:, 0], out=x[:, 2])
    np.add(l_sin, w_cos, out=y[:, 0])
    np.subtract(l_sin, w_cos, out=y[:, 3])
    np.negative(y[:, 3], out=y[:, 1])
    np.negative(y[:, 0], out=y[:, 2])
    corners += (pairs[:2] - pairs[:2, :1])[:, :, None]  # a's centre is the origin
    return corners


def _halving(op: np.ufunc, x: np.ndarray) -> np.ndarray:
    """op over axis 2 (length 4) as two element-wise calls: a reduction over a middle axis costs more."""
    half = op(x[:, :, :2], x[:, :, 2:])
    return op(half[:, :, 0], half[:, :, 1])


def clipped_quad_intersection_area(quads: np.ndarray) -> np.ndarray:
    """Overlap area of the two CCW convex quads of each pair: (2, 2, 4, K) planar layout -> (K,) float64.

    Same result as ``quad_intersection_area`` with no sorting: the overlap's boundary is the
    part of a's edges inside b plus the part of b's edges inside a, and the shoelace sum over
    those pieces is twice its area whatever their order. Edge i of one quad is ``p_i + t r_i``,
    t in [0, 1]; side j of the other keeps ``cross(s_j, x - q_j) >= 0`` (CCW: the left). Each
    side bounds t from below or above (Cyrus-Beck) and the kept piece [t0, t1] adds
    ``(t1 - t0) cross(p_i, r_i)`` to twice the area. An edge lying on a side with the same
    direction is kept on a's side only (a shared boundary counts once); one with the opposite
    direction (boxes touching from outside) never. Both directions run in one pass.
    """
    p = quads
    r = np.concatenate((p[:, :, 1:], p[:, :, :1]), axis=2) - p  # edge vectors
    corner_edge = np.concatenate((p, r))  # (4, 2, 4, K): x, y, dx, dy of each quad's edges
    # Edge i (axis 2) of each quad against side j (axis 3) of the other, as whole arrays: on sets
    # this small a broadcasting call costs ~3x a plain element-wise one, so expand once.
    px, py, rx, ry = np.repeat(corner_edge[:, :, :, None], 4, axis=3)  # each (2, 4, 4, K)
    qx, qy, sx, sy = np.repeat(corner_edge[:, ::-1, None], 4, axis=2)
    c0 = sx * (py - qy) - sy * (px - qx)  # > 0: the edge's start is inside the side's line
    c1 = sx * ry - sy * rx  # its change along the edge
    tol = 1e-9 * (sx * sx + sy * sy) * (1.0 + np.abs(rx) + np.abs(ry))
    entering, leaving = c1 > tol, c1 < -tol
    parallel = ~(entering | leaving)
    unbounded = ~leaving  # sides that put no upper bound on t: 1 in the minimum below
    if parallel.any():  # rare in real data (edges parallel to rounding): such an edge is kept or dropped whole
        inside_line = (c0 > tol) | (_KEEP_SHARED & (np.abs(c0) <= tol) & (sx * rx + sy * ry > 0))
        unbounded &= inside_line | ~parallel  # an edge wholly outside a side gets an upper bound of 0
        c1 = np.where(parallel, 1.0, c1)
    t = -c0 / c1  # finite everywhere, so masks can multiply
    t0 = np.maximum(_halving(np.maximum, t * entering), 0.0)  # (2, 4, K)
    t1 = np.minimum(_halving(np.minimum, t * leaving + unbounded), 1.0)
    span = np.maximum(t1 - t0, 0.0)
    terms = (span * (p[0] * r[1] - p[1] * r[0])).sum(axis=1)  # (2, K): a's edges, b's edges
    return np.maximum(0.5 * (terms[0] + terms[1]), 0.0)
