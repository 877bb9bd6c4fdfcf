"""Association: pairwise similarity between tracks and detections, then one-to-one matching.

Every similarity is "higher is better" so that one threshold rule serves them all: IoU and
GIoU as they are, distances negated. All functions take whole (N, ...) x (M, ...) sets and
return (N, M) matrices; nothing loops over pairs in Python.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception.core import bev_corners, iou2d
from perception.core.iou import clipped_quad_intersection_area
from perception.errors import ConfigError

_CHUNK_PAIRS = 20_000


# Fixed sub-micrometre offsets put the points of a hull in general position (no duplicates, no
# three collinear), so a plain strict side test finds each hull edge exactly once; the area
# moves by less than 1e-6 m^2.
_JITTER = np.random.default_rng(7).uniform(-1e-7, 1e-7, (16, 2))


def _hull_area(points: np.ndarray) -> np.ndarray:
    """Area of the convex hull of each of K sets of P <= 16 points: (K, P, 2) -> (K,).

    A directed edge i -> j lies on the counter-clockwise hull when every other point is
    strictly to its left; the shoelace terms of those edges sum to the area, whatever their
    order. With C[a, b] = cross(p_a, p_b), the side test cross(p_j - p_i, p_k - p_i) is
    C[j, k] - C[j, i] - C[i, k], so one (K, 8, 8) table serves every triple. C is exactly
    antisymmetric in floating point, so the test is exactly 0 for k = i and k = j (a point is on
    its own edge) and, in general position, nowhere else: ``>= 0`` is the strict test on the others.
    """
    p = points.shape[1]
    pts = points - points[:, :1] + _JITTER[:p]  # relative to one of the points: small coordinates
    C = pts[:, :, None, 0] * pts[:, None, :, 1] - pts[:, :, None, 1] * pts[:, None, :, 0]  # (K, a, b)
    side = C[:, None, :, :] - C.transpose(0, 2, 1)[:, :, :, None] - C[:, :, None, :]  # (K, i, j, k)
    edge = (side >= 0).all(-1) & ~np.eye(p, dtype=bool)
    return 0.5 * (edge * C).sum(axis=(1, 2))


def _height_overlap(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paired (K, 7) boxes -> (K,) shared height and (K,) joint height span."""
    top_a, top_b, bot_a, bot_b = (
        a[:, 2] + a[:, 5] / 2,
        b[:, 2] + b[:, 5] / 2,
        a[:, 2] - a[:, 5] / 2,
        b[:, 2] - b[:, 5] / 2,
    )
    shared = np.clip(np.minimum(top_a, top_b) - np.maximum(bot_a, bot_b), 0.0, None)
    return shared, np.maximum(top_a, top_b) - np.minimum(bot_a, bot_b)


def _paired_iou_giou(a: np.ndarray, b: np.ndarray, generalised: bool) -> np.ndarray:
    corners = bev_corners(np.concatenate((a, b)))  # one call for both sets
    ca, cb = corners[: len(a)], corners[len(a) :]
    shared, span = _height_overlap(a, b)
    inter = clipped_quad_intersection_area(ca, cb) * shared
    union = np.maximum(a[:, 3:6].prod(1) + b[:, 3:6].prod(1) - inter, 1e-9)
    if not generalised:
        return inter / union
    hull = np.maximum(_hull_area(np.concatenate([ca, cb], axis=1)) * span, 1e-9)
    return inter / union - (hull - union) / hull


def paired_giou3d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Generalised 3D IoU of paired upright boxes (K, 7), (K, 7) -> (K,) in [-1, 1].

    GIoU = IoU - (V_hull - V_union) / V_hull, the hull being the BEV convex hull of both boxes
    extruded over their joint height span (as AB3DMOT's ``giou_3d``).
    """
    return _paired_iou_giou(a, b, True)


def paired_iou3d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3D IoU of paired upright boxes (K, 7), (K, 7) -> (K,)."""
    return _paired_iou_giou(a, b, False)


def paired_iou_bev(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter = clipped_quad_intersection_area(bev_corners(a), bev_corners(b))
    return inter / np.maximum(a[:, 3] * a[:, 4] + b[:, 3] * b[:, 4] - inter, 1e-9)


# name -> function of paired tracks (K, 7) and detections (K, 7) -> (K,) similarity, higher is better
SIMILARITIES_3D: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "iou_3d": paired_iou3d,
    "giou_3d": paired_giou3d,
    "iou_bev": paired_iou_bev,
    "dist_3d": lambda a, b: -np.sqrt(((a[:, :3] - b[:, :3]) ** 2).sum(-1)),
    "dist_bev": lambda a, b: -np.sqrt(((a[:, :2] - b[:, :2]) ** 2).sum(-1)),
}


def similarity_3d(name: str, tracks: np.ndarray, dets: np.ndarray, gate_m: float = np.inf) -> np.ndarray:
    """(N, 7) tracks x (M, 7) detections -> (N, M) similarity; pairs whose BEV centres are more
    than ``gate_m`` apart are -inf (never matched) and cost nothing to evaluate."""
    sim = np.full((len(tracks), len(dets)), -np.inf)
    if sim.size == 0:
        return sim
    d2 = ((tracks[:, None, :2] - dets[None, :, :2]) ** 2).sum(-1)
    ii, jj = np.nonzero(d2 <= gate_m * gate_m)
    if len(ii):
        sim[ii, jj] = SIMILARITIES_3D[name](tracks[ii], dets[jj])
    return sim


def giou3d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Generalised 3D IoU of every pair: (N, 7), (M, 7) -> (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 7)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 7)
    out = np.zeros((len(a), len(b)))
    ii, jj = np.nonzero(np.ones(out.shape, bool))
    for s in range(0, len(ii), _CHUNK_PAIRS):
        i, j = ii[s : s + _CHUNK_PAIRS], jj[s : s + _CHUNK_PAIRS]
        out[i, j] = paired_giou3d(a[i], b[j])
    return out


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
