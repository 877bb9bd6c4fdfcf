"""Association: pairwise similarity between tracks and detections, then one-to-one matching.

Every similarity is "higher is better" so that one threshold rule serves them all: IoU and
GIoU as they are, distances negated. All functions take whole (N, ...) x (M, ...) sets and
return (N, M) matrices; nothing loops over pairs in Python.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception.core import bev_corners, bev_intersection, bev_iou, iou2d, iou3d
from perception.errors import ConfigError

_CHUNK_PAIRS = 20_000


def _hull_area(points: np.ndarray) -> np.ndarray:
    """Area of the convex hull of each of K small point sets: (K, P, 2) -> (K,).

    A directed edge i -> j lies on the counter-clockwise hull when no point is to its right;
    summing the shoelace terms of those edges gives the area whatever their order. Duplicate
    points and points on the open segment are excluded so no stretch of boundary counts twice.
    """
    pts = points - points.mean(axis=1, keepdims=True)
    d = pts[:, None, :, :] - pts[:, :, None, :]  # (K, i, j, 2): p_j - p_i
    e = d[:, :, None, :, :]  # (K, i, 1, k, 2): p_k - p_i
    d = d[:, :, :, None, :]  # (K, i, j, 1, 2)
    cross = d[..., 0] * e[..., 1] - d[..., 1] * e[..., 0]  # (K, i, j, k)
    dot = (d * e).sum(-1)
    length2 = (d**2).sum(-1)  # (K, i, j, 1)
    eps = 1e-9 * (1.0 + np.abs(pts).max()) ** 2
    inner = (np.abs(cross) <= eps) & (dot > eps) & (dot < length2 - eps)
    edge = (cross >= -eps).all(-1) & ~inner.any(-1) & (length2[..., 0] > eps)
    p = pts.shape[1]
    same = (((pts[:, :, None, :] - pts[:, None, :, :]) ** 2).sum(-1) <= eps) & np.tri(p, k=-1, dtype=bool)
    dup = same.any(-1)  # (K, P): a copy of an earlier point
    edge &= ~dup[:, :, None] & ~dup[:, None, :]
    shoelace = pts[:, :, None, 0] * pts[:, None, :, 1] - pts[:, None, :, 0] * pts[:, :, None, 1]
    return 0.5 * np.where(edge, shoelace, 0.0).sum(axis=(1, 2))


def giou3d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Generalised 3D IoU of upright boxes: (N, 7), (M, 7) -> (N, M) in [-1, 1].

    GIoU = IoU - (V_hull - V_union) / V_hull, the hull being the BEV convex hull of both boxes
    extruded over their joint height span (as AB3DMOT's ``giou_3d``).
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 7)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 7)
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return np.zeros((n, m))
    top = np.minimum((a[:, 2] + a[:, 5] / 2)[:, None], (b[:, 2] + b[:, 5] / 2)[None, :])
    bottom = np.maximum((a[:, 2] - a[:, 5] / 2)[:, None], (b[:, 2] - b[:, 5] / 2)[None, :])
    inter = bev_intersection(a, b) * np.clip(top - bottom, 0.0, None)
    union = a[:, 3:6].prod(1)[:, None] + b[:, 3:6].prod(1)[None, :] - inter
    span = np.maximum((a[:, 2] + a[:, 5] / 2)[:, None], (b[:, 2] + b[:, 5] / 2)[None, :]) - np.minimum(
        (a[:, 2] - a[:, 5] / 2)[:, None], (b[:, 2] - b[:, 5] / 2)[None, :]
    )
    ca, cb = bev_corners(a), bev_corners(b)
    ii, jj = np.meshgrid(np.arange(n), np.arange(m), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    hull = np.empty(n * m)
    for s in range(0, n * m, _CHUNK_PAIRS):
        i, j = ii[s : s + _CHUNK_PAIRS], jj[s : s + _CHUNK_PAIRS]
        hull[s : s + _CHUNK_PAIRS] = _hull_area(np.concatenate([ca[i], cb[j]], axis=1))
    hull_vol = np.maximum(hull.reshape(n, m) * span, 1e-9)
    return inter / np.maximum(union, 1e-9) - (hull_vol - union) / hull_vol


def centre_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, >=3), (M, >=3) -> (N, M) Euclidean distance of the first three columns (box centres)."""
    return np.sqrt(((np.asarray(a)[:, None, :3] - np.asarray(b)[None, :, :3]) ** 2).sum(-1))


def mahalanobis(z_pred: np.ndarray, S: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Mahalanobis distance of measurements z (M, m) to predictions z_pred (N, m) with covariance S (N, m, m)."""
    diff = z[None, :, :] - z_pred[:, None, :]  # (N, M, m)
    if diff.shape[-1] == 7:  # 3D boxes: compare headings modulo pi (a detector may flip them)
        diff[..., 6] = (diff[..., 6] + np.pi / 2) % np.pi - np.pi / 2
    sol = np.linalg.solve(S[:, None, :, :], diff[..., None])[..., 0] if len(S) else diff
    return np.sqrt(np.maximum((diff * sol).sum(-1), 0.0))


# name -> function (tracks (N, 7), detections (M, 7)) -> (N, M) similarity, higher is better
SIMILARITIES_3D: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "iou_3d": iou3d,
    "giou_3d": giou3d,
    "iou_bev": bev_iou,
    "dist_3d": lambda a, b: -centre_distance(a, b),
    "dist_bev": lambda a, b: -centre_distance(a[:, :2], b[:, :2]),
}
SIMILARITIES_2D: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {"iou_2d": iou2d}


def check_similarity(name: str, table: dict) -> None:
    if name not in table and name != "mahalanobis":
        raise ConfigError(f"similarity {name!r}: choose from {sorted([*table, 'mahalanobis'])}")


def match(similarity: np.ndarray, threshold: float, method: str = "hungarian") -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matches with similarity >= threshold.

    Args:
        similarity: (N, M) higher is better; -inf forbids a pair (other class, gated out).
        threshold: the smallest similarity a match may have.
        method: ``hungarian`` (maximum total similarity) or ``greedy`` (best pair first).

    Returns:
        (K,) row indices and (K,) column indices of the matches.
    """
    n, m = similarity.shape
    empty = np.zeros(0, np.int64)
    if n == 0 or m == 0:
        return empty, empty
    ok = similarity >= threshold
    if not ok.any():
        return empty, empty
    if method == "hungarian":
        # gated pairs get a cost below any valid one, so they are only used when nothing else fits
        span = float(np.abs(np.where(ok, similarity, 0.0)).max()) + 1.0
        cost = np.where(ok, similarity, -span * (n + m + 1))
        rows, cols = linear_sum_assignment(cost, maximize=True)
        keep = ok[rows, cols]
        return rows[keep].astype(np.int64), cols[keep].astype(np.int64)
    if method == "greedy":
        return _greedy(np.where(ok, similarity, -np.inf))
    raise ConfigError(f"matcher {method!r}: choose from ['greedy', 'hungarian']")


def _greedy(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Take the best remaining pair until none is valid: loops over matches, never over pairs."""
    order = np.argsort(-sim, axis=None, kind="stable")
    valid = np.isfinite(sim.ravel()[order])
    rows, cols = np.unravel_index(order[valid], sim.shape)
    used_r, used_c = np.zeros(sim.shape[0], bool), np.zeros(sim.shape[1], bool)
    out_r, out_c = [], []
    for r, c in zip(rows.tolist(), cols.tolist()):
        if not used_r[r] and not used_c[c]:
            used_r[r] = used_c[c] = True
            out_r.append(r)
            out_c.append(c)
    return np.array(out_r, np.int64), np.array(out_c, np.int64)
