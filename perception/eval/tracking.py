"""Tracking metrics: CLEAR MOT (MOTA, MOTP, IDS, FRAG, MT/ML), HOTA (DetA, AssA, LocA), and
AB3DMOT's sAMOTA / AMOTA / AMOTP, under the KITTI tracking protocol.

Exercised by ``perception track --eval`` and ``benchmarks/bench_tracking.py``.

KITTI protocol, as in AB3DMOT's ``scripts/KITTI/evaluate.py`` (a modified KITTI devkit),
reproduced quirk for quirk so numbers are comparable with published ones:
- Classes with neighbours: Car counts Van, Pedestrian counts Person_sitting; they and ground
  truth with truncation > 0 or occlusion > 2 are "ignored": neither a miss nor a hit.
- Per frame, Hungarian matching of ground truth to tracker boxes on 1 - IoU (3D IoU of
  upright boxes, or 2D IoU), gated at IoU >= threshold.
- Unmatched tracker boxes of a neighbour class, at most 25 px tall, or lying more than half
  inside a DontCare box are ignored, not false positives. A box once matched in an earlier
  run of the sweep stays "valid" and can no longer be ignored (the devkit keeps a flag on
  its objects between runs).
- Id switches and fragmentations are counted along each ground-truth trajectory; a
  switch right after a miss is only a fragmentation (devkit rule).
- Scores: every box of a track gets the track's mean score. The first run keeps everything;
  the scores of its true positives give 40 recall points; for each, tracks whose mean
  score is below the point's threshold are dropped and MOTA, MOTP and
  sMOTA = clip(1 - (FN + FP + IDS - (1 - r) n_gt) / (r n_gt), 0, 1) are computed.
  sAMOTA, AMOTA, AMOTP are their sums over the points divided by 40; MOTA, MOTP, IDS,
  FRAG, MT, ML and HOTA are reported at the threshold of the best MOTA.
HOTA follows Luiten et al. 2020 (TrackEval): 19 localisation thresholds 0.05..0.95, global
alignment score weighting the per-frame Hungarian matching; computed on the boxes the
KITTI protocol counts (ignored ground truth, ignored and ignored-matched tracker boxes removed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception.core import iou2d, iou3d
from perception.data.kitti_format import KittiObjects

N_RECALL_POINTS = 40  # AB3DMOT: num_sample_pts = 41 including recall 0
HOTA_ALPHAS = np.arange(0.05, 0.99, 0.05)
NEIGHBOURS = {"car": ("van",), "pedestrian": ("person_sitting",)}
_NO_MATCH = 1e9


@dataclass
class FrameData:
    """One frame of one class, ready for matching.

    Attributes:
        gt_ids: (G,) int64 ground-truth track ids, unique over all sequences.
        gt_ignored: (G,) bool: neither hit nor miss (neighbour class, truncated, occluded).
        trk_ids: (T,) int64 tracker track ids, unique over all sequences.
        trk_ignorable: (T,) bool: ignored if left unmatched (neighbour class, small, DontCare).
        sim: (G, T) float64 IoU.
    """

    gt_ids: np.ndarray
    gt_ignored: np.ndarray
    trk_ids: np.ndarray
    trk_ignorable: np.ndarray
    sim: np.ndarray
    valid: np.ndarray = field(init=False)  # tracker boxes matched in any run so far (devkit flag)

    def __post_init__(self) -> None:
        self.valid = np.zeros(len(self.trk_ids), bool)


@dataclass
class _Run:
    """Counts of one pass over all frames at one score threshold."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    n_gt: int = 0
    iou_sum: float = 0.0
    tp_scores: list = field(default_factory=list)
    trajectories: dict = field(default_factory=dict)  # gt id -> ([tracker id or -1], [ignored])
    counted: list = field(default_factory=list)  # per frame: (gt mask, tracker mask) that count for HOTA


def _match_frame(fr: FrameData, kept: np.ndarray, thr: float) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching of gt rows to kept tracker columns, gated at IoU >= thr (devkit: cost 1 - IoU)."""
    cols = np.flatnonzero(kept)
    if len(fr.gt_ids) == 0 or len(cols) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    cost = 1.0 - fr.sim[:, cols]
    ok = cost <= 1.0 - thr
    r, c = linear_sum_assignment(np.where(ok, cost, _NO_MATCH))
    m = ok[r, c]
    return r[m], cols[c[m]]


def _run(frames: list[FrameData], keep_track: np.ndarray, thr: float, track_score: np.ndarray) -> _Run:
    out = _Run()
    for fr in frames:
        kept = keep_track[fr.trk_ids]
        r, c = _match_frame(fr, kept, thr)
        fr.valid[c] = True
        matched_t = np.zeros(len(kept), bool)
        matched_t[c] = True
        ign_t = kept & ~matched_t & fr.trk_ignorable & ~fr.valid
        out.tp += len(r)
        out.iou_sum += float(fr.sim[r, c].sum())
        out.tp_scores.extend(track_score[fr.trk_ids[c]].tolist())
        out.fp += int((kept & ~matched_t).sum() - ign_t.sum())
        assigned = np.full(len(fr.gt_ids), -1, np.int64)
        assigned[r] = fr.trk_ids[c]
        out.fn += int(((assigned < 0) & ~fr.gt_ignored).sum())
        out.n_gt += int((~fr.gt_ignored).sum())
        for gid, a, ig in zip(fr.gt_ids.tolist(), assigned.tolist(), fr.gt_ignored.tolist()):
            traj = out.trajectories.setdefault(gid, ([], []))
            traj[0].append(a)
            traj[1].append(ig)
        on_ignored_gt = np.zeros(len(kept), bool)
        on_ignored_gt[c[fr.gt_ignored[r]]] = True
        out.counted.append((~fr.gt_ignored, kept & ~ign_t & ~on_ignored_gt))
    return out


def _trajectory_stats(trajectories: dict) -> dict[str, float]:
    """IDS, FRAG, MT, ML along ground-truth trajectories (devkit ``compute3rdPartyMetrics``)."""
    ids = frag = mt = ml = pt = n_ignored = 0
    for g, ign in trajectories.values():
        if all(ign):
            n_ignored += 1
            continue
        if all(x == -1 for x in g):
            ml += 1
            continue
        last_id, tracked = g[0], int(g[0] >= 0)
        f = 0
        for f in range(1, len(g)):
            if ign[f]:
                last_id = -1
                continue
            if last_id != g[f] and last_id != -1 and g[f] != -1 and g[f - 1] != -1:
                ids += 1
            if f < len(g) - 1 and g[f - 1] != g[f] and last_id != -1 and g[f] != -1 and g[f + 1] != -1:
                frag += 1
            if g[f] != -1:
                tracked += 1
                last_id = g[f]
        if len(g) > 1 and g[f - 1] != g[f] and last_id != -1 and g[f] != -1 and not ign[f]:
            frag += 1
        ratio = tracked / float(len(g) - sum(ign))
        mt, ml, pt = mt + (ratio > 0.8), ml + (ratio < 0.2), pt + (0.2 <= ratio <= 0.8)
    n = max(len(trajectories) - n_ignored, 1) if len(trajectories) > n_ignored else 0
    return {
        "IDS": ids,
        "FRAG": frag,
        "MT": mt / n if n else 0.0,
        "ML": ml / n if n else 0.0,
        "PT": pt / n if n else 0.0,
    }


def _clear(run: _Run, recall_point: float = 1.0) -> dict[str, float]:
    traj = _trajectory_stats(run.trajectories)
    n_gt = run.n_gt
    bad = run.fn + run.fp + traj["IDS"]
    mota = 1 - bad / n_gt if n_gt else -np.inf
    smota = min(1.0, max(0.0, 1 - (bad - (1 - recall_point) * n_gt) / (recall_point * n_gt))) if n_gt else -np.inf
    recall = run.tp / (run.tp + run.fn) if run.tp + run.fn else 0.0
    precision = run.tp / (run.tp + run.fp) if run.tp + run.fp else 0.0
    return {
        "MOTA": mota, "sMOTA": smota, "MODA": 1 - (run.fn + run.fp) / n_gt if n_gt else -np.inf,
        "MOTP": run.iou_sum / run.tp if run.tp else 0.0, "TP": run.tp, "FP": run.fp, "FN": run.fn,
        "recall": recall, "precision": precision, **traj,
    }  # fmt: skip


def recall_thresholds(tp_scores: list[float], num_gt: int, n_points: int = N_RECALL_POINTS) -> tuple[list, list]:
    """AB3DMOT ``getThresholds``: score thresholds at recall 1/n, 2/n, ... from true-positive scores."""
    scores = np.sort(np.asarray(tp_scores, dtype=np.float64))[::-1]
    current, thresholds, recalls = 0.0, [], []
    for i, s in enumerate(scores):
        left = (i + 1) / float(num_gt)
        right = (i + 2) / float(num_gt) if i < len(scores) - 1 else left
        if (right - current) < (current - left) and i < len(scores) - 1:
            continue
        thresholds.append(float(s))
        recalls.append(current)
        current += 1 / float(n_points)
    return thresholds[1:], recalls[1:]


def hota(frames: list[FrameData], counted: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """HOTA, DetA, AssA, LocA averaged over ``HOTA_ALPHAS`` on the counted boxes of each frame."""
    sub = [(fr.gt_ids[g], fr.trk_ids[t], fr.sim[np.ix_(g, t)]) for fr, (g, t) in zip(frames, counted)]
    gu = np.unique(np.concatenate([s[0] for s in sub] + [np.zeros(0, np.int64)]))
    tu = np.unique(np.concatenate([s[1] for s in sub] + [np.zeros(0, np.int64)]))
    sub = [(np.searchsorted(gu, g), np.searchsorted(tu, t), s) for g, t, s in sub]
    gcount, tcount, potential = np.zeros(len(gu)), np.zeros(len(tu)), np.zeros((len(gu), len(tu)))
    for g, t, s in sub:
        gcount[g] += 1
        tcount[t] += 1
        if s.size:
            denom = s.sum(0)[None, :] + s.sum(1)[:, None] - s
            potential[np.ix_(g, t)] += np.where(denom > 1e-10, s / np.maximum(denom, 1e-10), 0.0)
    align = potential / np.maximum(gcount[:, None] + tcount[None, :] - potential, 1e-10)
    a = len(HOTA_ALPHAS)
    tp, fn, fp, loc = np.zeros(a), np.zeros(a), np.zeros(a), np.zeros(a)
    matches = np.zeros((a, len(gu), len(tu)))
    for g, t, s in sub:
        if not s.size:
            fn += len(g)
            fp += len(t)
            continue
        r, c = linear_sum_assignment(-(align[np.ix_(g, t)] * s))
        ms = s[r, c]
        ok = ms[None, :] >= HOTA_ALPHAS[:, None] - 1e-10  # (A, K)
        n = ok.sum(1)
        tp, fn, fp = tp + n, fn + len(g) - n, fp + len(t) - n
        loc += (ok * ms[None, :]).sum(1)
        ai, ki = np.nonzero(ok)
        matches[ai, g[r[ki]], t[c[ki]]] += 1
    ass = matches / np.maximum(gcount[None, :, None] + tcount[None, None, :] - matches, 1)
    ass_a = (matches * ass).sum((1, 2)) / np.maximum(tp, 1)
    det_a = tp / np.maximum(tp + fn + fp, 1)
    loc_a = np.maximum(loc, 1e-10) / np.maximum(tp, 1e-10)
    return {
        "HOTA": float(np.sqrt(det_a * ass_a).mean()),
        "DetA": float(det_a.mean()),
        "AssA": float(ass_a.mean()),
        "LocA": float(loc_a.mean()),
    }


def evaluate_frames(frames: list[FrameData], track_score: np.ndarray, threshold: float) -> dict[str, float]:
    """Full protocol over prepared frames: sweep of score thresholds, then the best-MOTA point.

    Args:
        frames: every frame of every sequence, one class.
        track_score: (n_tracker_ids,) mean score of each tracker track.
        threshold: IoU a match needs.
    """
    for fr in frames:
        fr.valid[:] = False
    everything = np.ones(len(track_score), bool)
    first = _run(frames, everything, threshold, track_score)
    thresholds, recalls = recall_thresholds(first.tp_scores, first.tp + first.fn)
    s_mota = mota = motp = 0.0
    best_mota, best_thr = 0.0, -np.inf
    for thr_score, r in zip(thresholds, recalls):
        m = _clear(_run(frames, track_score >= thr_score, threshold, track_score), r)
        s_mota, mota, motp = s_mota + m["sMOTA"], mota + m["MOTA"], motp + m["MOTP"]
        if m["MOTA"] > best_mota:
            best_mota, best_thr = m["MOTA"], thr_score
    best = _run(frames, track_score >= best_thr, threshold, track_score)
    out = _clear(best)
    out.pop("sMOTA")
    out.update(hota(frames, best.counted))
    out.update({"sAMOTA": s_mota / N_RECALL_POINTS, "AMOTA": mota / N_RECALL_POINTS, "AMOTP": motp / N_RECALL_POINTS})
    out["score_threshold"] = best_thr
    return out


def _camera_boxes7(objs: KittiObjects) -> np.ndarray:
    """KITTI rows -> (N, 7) boxes in (x_cam, z_cam, up) axes for the core IoU; yaw = -rotation_y."""
    h, w, l = objs.dimensions_hwl.T
    x, y, z = objs.location.T
    return np.column_stack([x, z, -y + h / 2, l, w, h, -objs.rotation_y])


def _inside_fraction(boxes: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """(N, 4), (D, 4) xyxy -> (N,) largest intersection / own area (devkit ``boxoverlap(.., 'a')``)."""
    if len(boxes) == 0 or len(regions) == 0:
        return np.zeros(len(boxes))
    w = np.minimum(boxes[:, None, 2], regions[None, :, 2]) - np.maximum(boxes[:, None, 0], regions[None, :, 0])
    h = np.minimum(boxes[:, None, 3], regions[None, :, 3]) - np.maximum(boxes[:, None, 1], regions[None, :, 1])
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where((w > 0) & (h > 0), w * h / area, 0.0)
    return np.nan_to_num(frac).max(axis=1)


def _of_class(objs: KittiObjects, names: tuple[str, ...]) -> np.ndarray:
    """Row mask by the devkit's substring test on lower-cased type names."""
    low = np.char.lower(objs.type.astype(str))
    mask = np.zeros(len(objs), bool)
    for n in names:
        mask |= np.char.find(low, n) >= 0
    return mask


def _by_frame(objs: KittiObjects) -> KittiObjects:
    return objs[np.argsort(objs.frame, kind="stable")]


def kitti_frames(
    gt: KittiObjects,
    trk: KittiObjects,
    n_frames: int,
    cls: str,
    *,
    iou: str = "3d",
    min_height: float = 25.0,
    max_truncation: int = 0,
    max_occlusion: int = 2,
    id_offsets: tuple[int, int] = (0, 0),
) -> tuple[list[FrameData], np.ndarray, np.ndarray]:
    """One sequence of one class -> frames, tracker track ids (offset) and their mean scores.

    Args:
        gt: label_02 rows (DontCare included). trk: result rows with scores.
        cls: ``car``, ``pedestrian`` or ``cyclist`` (lower case, as the devkit).
        iou: ``3d`` (upright 3D IoU) or ``2d`` (image boxes).
        id_offsets: added to ground-truth and tracker ids so that sequences do not share ids.
    """  # fmt: skip
    cls = cls.lower()
    neighbours = NEIGHBOURS.get(cls, ())
    names = (cls, *neighbours)
    gt = _by_frame(gt)
    dc_all = gt[np.flatnonzero(np.char.lower(gt.type.astype(str)) == "dontcare")]
    gt = gt[np.flatnonzero(_of_class(gt, names) & (gt.track_id != -1))]
    trk = _by_frame(trk[np.flatnonzero(_of_class(trk, names))])
    scores = trk.score if trk.score is not None else -np.ones(len(trk))
    uid, tinv = np.unique(trk.track_id, return_inverse=True)
    mean_score = np.bincount(tinv, scores, len(uid)) / np.maximum(np.bincount(tinv, minlength=len(uid)), 1)
    gt_ign = (
        (gt.occluded > max_occlusion)
        | (gt.truncated > max_truncation)
        | np.isin(np.char.lower(gt.type.astype(str)), neighbours)
    )
    trk_small = np.abs(trk.bbox[:, 1] - trk.bbox[:, 3]) <= min_height
    trk_ign = trk_small | np.isin(np.char.lower(trk.type.astype(str)), neighbours)
    g_start = np.searchsorted(gt.frame, np.arange(n_frames + 1))
    t_start = np.searchsorted(trk.frame, np.arange(n_frames + 1))
    d_start = np.searchsorted(dc_all.frame, np.arange(n_frames + 1))
    g_boxes = _camera_boxes7(gt) if iou == "3d" else gt.bbox
    t_boxes = _camera_boxes7(trk) if iou == "3d" else trk.bbox
    sim_fn = iou3d if iou == "3d" else iou2d
    frames = []
    for f in range(n_frames):
        gs, ts = slice(g_start[f], g_start[f + 1]), slice(t_start[f], t_start[f + 1])
        dc = dc_all.bbox[d_start[f] : d_start[f + 1]]
        ignorable = trk_ign[ts] | (_inside_fraction(trk.bbox[ts], dc) > 0.5)
        frames.append(
            FrameData(
                gt.track_id[gs] + id_offsets[0],
                gt_ign[gs],
                tinv[ts] + id_offsets[1],
                ignorable,
                sim_fn(g_boxes[gs], t_boxes[ts]),
            )
        )
    return frames, uid, mean_score


def evaluate_kitti_tracking(
    gt: Mapping[str, KittiObjects],
    results: Mapping[str, KittiObjects],
    n_frames: Mapping[str, int],
    classes: tuple[str, ...] = ("car", "pedestrian", "cyclist"),
    iou: str = "3d",
    threshold: float = 0.25,
) -> dict[str, dict[str, float]]:
    """Evaluate result rows against label_02 rows per sequence; classes without tracker rows are skipped.

    Returns:
        class -> metrics (sAMOTA, AMOTA, AMOTP, MOTA, MOTP, MODA, IDS, FRAG, MT, ML, PT, TP, FP,
        FN, recall, precision, HOTA, DetA, AssA, LocA, score_threshold), fractions in [0, 1].
    """
    out = {}
    for cls in classes:
        frames, scores, g_off, t_off = [], [], 0, 0
        for seq, n in n_frames.items():
            fr, uid, mean = kitti_frames(gt[seq], results[seq], n, cls, iou=iou, id_offsets=(g_off, t_off))
            frames += fr
            scores.append(mean)
            g_off += int(gt[seq].track_id.max(initial=0)) + 2
            t_off += len(uid)
        if t_off == 0:
            continue
        out[cls] = evaluate_frames(frames, np.concatenate(scores), threshold)
    return out


_TABLE = [("sAMOTA", 100), ("AMOTA", 100), ("AMOTP", 100), ("MOTA", 100), ("MOTP", 100), ("IDS", 1), ("FRAG", 1),
          ("MT", 100), ("ML", 100), ("HOTA", 100), ("DetA", 100), ("AssA", 100), ("TP", 1), ("FP", 1), ("FN", 1)]  # fmt: skip


def format_table(metrics: Mapping[str, Mapping[str, float]]) -> str:
    """One row per class; percentages for the fractions."""
    lines = ["class      " + " ".join(f"{k:>7}" for k, _ in _TABLE)]
    for cls, m in metrics.items():
        cells = [f"{m[k] * s:7.2f}" if s != 1 else f"{int(m[k]):7d}" for k, s in _TABLE]
        lines.append(f"{cls:<10} " + " ".join(cells))
    return "\n".join(lines)
