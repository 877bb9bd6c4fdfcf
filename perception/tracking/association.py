"""Association: pairwise similarity between tracks and detections, then one-to-one matching.

Every similarity is "higher is better" so that one threshold rule serves them all: IoU and
GIoU as they are, distances negated. All functions take whole (N, ...) x (M, ...) sets and
return (N, M) matrices; nothing loops over pairs in Python.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception.core import iou2d
from perception.core.iou import clipped_quad_intersection_area, paired_bev_corners
from perception.errors import ConfigError

_CHUNK_PAIRS = 20_000


# Fixed sub-micrometre offsets put the points of a hull in general position (no duplicates, no
# three collinear), so a plain strict side test finds each hull edge exactly once; the area
# moves by less than 1e-6 m^2.
_JITTER = np.random.default_rng(7).uniform(-1e-7, 1e-7, (16, 2)).T[:, :, None]  # (2, 16, 1)


def _hull_area(points: np.ndarray) -> np.ndarray:
    """Area of the convex hull of each of K sets of P <= 16 points: (2, P, K) planar layout -> (K,).

    A directed edge i -> j lies on the counter-clockwise hull when every other point k is
    strictly to its left; the shoelace terms of those edges sum to the area, whatever their
    order. With C[a, b] = cross(p_a, p_b), exactly antisymmetric in floating point, k is left of
    i -> j when C[k, i] - C[k, j] > C[j, i], so one (P, P, K) table serves every triple; k = i and
    k = j give exactly C[j, i] (a point is on its own edge) and, in general position, no other k
    comes close: ``min_k (C[k, i] - C[k, j]) >= C[j, i]`` is the strict test on the others (and
    i = j adds C[i, i] = 0).
    """
    n = points.shape[1]
    pts = points - points[:, :1] + _JITTER[:, :n]  # relative to one of the points: small coordinates
    x, y = pts[0], pts[1]
    C = x[:, None] * y[None] - y[:, None] * x[None]  # (a, b, K)
    rise = C[:, :, None] - C[:, None, :]  # (k, i, j, K): C[k, i] - C[k, j]
    while len(rise) > 1:  # min over k by halving the leading axis (whole blocks, no strided loops)
        half = (len(rise) + 1) // 2
        rise = np.minimum(rise[:half], rise[-half:])  # overlapping halves when odd: same min
    edge = rise[0] >= C.transpose(1, 0, 2)
    return 0.5 * (C * edge).sum(axis=(0, 1))


def _paired_iou_giou(pairs: np.ndarray, generalised: bool) -> np.ndarray:
    quads = paired_bev_corners(pairs)
    half_h = pairs[5] / 2
    top, bottom = pairs[2] + half_h, pairs[2] - half_h  # (2, K)
    shared = np.maximum(np.minimum(top[0], top[1]) - np.maximum(bottom[0], bottom[1]), 0.0)
    inter = clipped_quad_intersection_area(quads) * shared
    volume = pairs[3] * pairs[4] * pairs[5]
    union = np.maximum(volume[0] + volume[1] - inter, 1e-9)
    if not generalised:
        return inter / union
    span = np.maximum(top[0], top[1]) - np.minimum(bottom[0], bottom[1])
    hull = np.maximum(_hull_area(quads.reshape(2, 8, -1)) * span, 1e-9)
    return inter / union - (hull - union) / hull


def paired_giou3d(pairs: np.ndarray) -> np.ndarray:
    """Generalised 3D IoU of paired upright boxes, (7, 2, K) -> (K,) in [-1, 1] (layout: ``pair_fields``).

    GIoU = IoU - (V_hull - V_union) / V_hull, the hull being the BEV convex hull of both boxes
    extruded over their joint height span (as AB3DMOT's ``giou_3d``).
    """
    return _paired_iou_giou(pairs, True)


def paired_iou3d(pairs: np.ndarray) -> np.ndarray:
    """3D IoU of paired upright boxes, (7, 2, K) -> (K,)."""
    return _paired_iou_giou(pairs, False)


def paired_iou_bev(pairs: np.ndarray) -> np.ndarray:
    """BEV IoU of paired boxes, (7, 2, K) -> (K,)."""
    inter = clipped_quad_intersection_area(paired_bev_corners(pairs))
    area = pairs[3] * pairs[4]
    return inter / np.maximum(area[0] + area[1] - inter, 1e-9)


def pair_fields(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Paired boxes (K, 7), (K, 7) -> (7, 2, K): field, box (a, b), pair; the layout of ``SIMILARITIES_3D``."""
    pairs = np.empty((7, 2, len(a)))
    pairs[:, 0], pairs[:, 1] = a.T, b.T
    return pairs


# name -> function of paired tracks and detections (7, 2, K) -> (K,) similarity, higher is better
SIMILARITIES_3D: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "iou_3d": paired_iou3d,
    "giou_3d": paired_giou3d,
    "iou_bev": paired_iou_bev,
    "dist_3d": lambda pairs: -np.sqrt(((pairs[:3, 0] - pairs[:3, 1]) ** 2).sum(0)),
    "dist_bev": lambda pairs: -np.sqrt(((pairs[:2, 0] - pairs[:2, 1]) ** 2).sum(0)),
}


def similarity_3d(name: str, tracks: np.ndarray, dets: np.ndarray, gate_m: float = np.inf) -> np.ndarray:
    """(N, 7) tracks x (M, 7) detections -> (N, M) similarity; pairs whose BEV centres are more
    than ``gate_m`` apart are -inf (never matched) and cost nothing to evaluate."""
    sim = np.full((len(tracks), len(dets)), -np.inf)
    if sim.size == 0:
        return sim
    dx, dy = tracks[:, None, 0] - dets[None, :, 0], tracks[:, None, 1] - dets[None, :, 1]
    ii, jj = np.nonzero(dx * dx + dy * dy <= gate_m * gate_m)
    if len(ii):
        sim[ii, jj] = SIMILARITIES_3D[name](pair_fields(tracks[ii], dets[jj]))
    return sim


def giou3d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Generalised 3D IoU of every pair: (N, 7), (M, 7) -> (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 7)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 7)
    out = np.zeros((len(a), len(b)))
    ii, jj = np.nonzero(np.ones(out.shape, bool))
    for s in range(0, len(ii), _CHUNK_PAIRS):
        i, j = ii[s : s + _CHUNK_PAIRS], jj[s : s + _CHUNK_PAIRS]
        out[i, j] = paired_giou3d(pair_fields(a[i], b[j]))
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
        rows, cols = np.nonzero(ok)
        if len(set(rows.tolist())) == len(rows) == len(set(cols.tolist())):
            return rows, cols  # no two valid pairs compete: the optimum takes them all (scipy costs ~20 us)
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
