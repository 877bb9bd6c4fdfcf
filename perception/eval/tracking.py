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
from dataclasses import dataclass
from pathlib import Path

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


def _match(sim: np.ndarray, thr: float) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching of gt rows to tracker columns, gated at IoU >= thr (devkit: cost 1 - IoU)."""
    if sim.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    cost = 1.0 - sim
    ok = cost <= 1.0 - thr
    if not ok.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    r, c = linear_sum_assignment(np.where(ok, cost, _NO_MATCH))
    m = ok[r, c]
    return r[m], c[m]


class _Sweep:
    """All frames of one class flattened, so that each run of the sweep is a few array operations.

    Only frames that lose tracker boxes to a score threshold are matched again; the others
    reuse the matching of the full run.
    """

    def __init__(self, frames: list[FrameData], thr: float):
        self.frames, self.thr = frames, thr
        self.g_start = np.cumsum([0] + [len(f.gt_ids) for f in frames])
        self.t_start = np.cumsum([0] + [len(f.trk_ids) for f in frames])
        cat = lambda xs, dt: np.concatenate(list(xs) + [np.zeros(0, dt)])
        self.gt_ids, self.gt_ign = cat((f.gt_ids for f in frames), np.int64), cat((f.gt_ignored for f in frames), bool)
        self.trk_ids, self.trk_ign = (
            cat((f.trk_ids for f in frames), np.int64),
            cat((f.trk_ignorable for f in frames), bool),
        )
        self.valid = np.zeros(len(self.trk_ids), bool)  # matched in any run so far (the devkit's sticky flag)
        self.full = self._matches(range(len(frames)), None)

    def _matches(self, frame_idx, kept: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat (gt index, tracker index, IoU) of the matches in the given frames."""
        gs, ts, ious = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
        for f in frame_idx:
            fr, t0 = self.frames[f], self.t_start[f]
            cols = np.arange(len(fr.trk_ids)) if kept is None else np.flatnonzero(kept[t0 : self.t_start[f + 1]])
            r, c = _match(fr.sim[:, cols], self.thr)
            gs.append(r + self.g_start[f])
            ts.append(cols[c] + t0)
            ious.append(fr.sim[r, cols[c]])
        return np.concatenate(gs), np.concatenate(ts), np.concatenate(ious)

    def run(self, keep_track: np.ndarray, track_score: np.ndarray) -> _Run:
        kept = keep_track[self.trk_ids]
        dropped = np.r_[0, np.cumsum(~kept)]
        changed = (dropped[self.t_start[1:]] - dropped[self.t_start[:-1]]) > 0
        fg, ft, fiou = self.full
        same = ~changed[np.searchsorted(self.t_start, ft, side="right") - 1]
        rg, rt, riou = self._matches(np.flatnonzero(changed), kept)
        mg, mt, miou = np.r_[fg[same], rg], np.r_[ft[same], rt], np.r_[fiou[same], riou]
        self.valid[mt] = True
        matched = np.zeros(len(kept), bool)
        matched[mt] = True
        ign_t = kept & ~matched & self.trk_ign & ~self.valid
        assigned = np.full(len(self.gt_ids), -1, np.int64)
        assigned[mg] = self.trk_ids[mt]
        on_ignored_gt = np.zeros(len(kept), bool)
        on_ignored_gt[mt[self.gt_ign[mg]]] = True
        return _Run(
            tp=len(mg), fp=int((kept & ~matched).sum() - ign_t.sum()), fn=int(((assigned < 0) & ~self.gt_ign).sum()),
            n_gt=int((~self.gt_ign).sum()), iou_sum=float(miou.sum()), tp_scores=track_score[self.trk_ids[mt]],
            assigned=assigned, counted_gt=~self.gt_ign, counted_trk=kept & ~ign_t & ~on_ignored_gt,
        )  # fmt: skip


@dataclass
class _Run:
    """Counts of one pass over all frames at one score threshold (flat arrays as in ``_Sweep``)."""

    tp: int
    fp: int
    fn: int
    n_gt: int
    iou_sum: float
    tp_scores: np.ndarray
    assigned: np.ndarray  # (all gt,) tracker id matched to each gt box, -1 none
    counted_gt: np.ndarray  # (all gt,) bool: counts for HOTA
    counted_trk: np.ndarray  # (all tracker boxes,) bool


def _trajectory_stats(gid: np.ndarray, ign: np.ndarray, g: np.ndarray) -> dict[str, float]:
    """IDS, FRAG, MT, ML along ground-truth trajectories, vectorised from the devkit's loop.

    Along one trajectory (its frames in order, ``g`` the matched tracker id or -1, ``ign`` the
    ignored flag), the devkit's ``last_id`` is the latest matched id since the last ignored
    frame (frame 0 always seeds it). Hence an id switch at f needs f and f-1 counted (f-1
    may be frame 0) and matched to different ids; a fragmentation at f < L-1 needs a
    change from f-1, f and f+1 matched, and some match earlier in f's stretch; the last
    frame is a fragmentation on any change into a match.
    """
    order = np.argsort(gid, kind="stable")
    gid, ign, g = gid[order], ign[order], g[order]
    n = len(g)
    if n == 0:
        return {"IDS": 0, "FRAG": 0, "MT": 0.0, "ML": 0.0, "PT": 0.0}
    first = np.r_[True, gid[1:] != gid[:-1]]
    last = np.r_[gid[1:] != gid[:-1], True]
    traj = np.cumsum(first) - 1
    pos = np.arange(n) - np.flatnonzero(first)[traj]
    prev_g, next_g = np.r_[-1, g[:-1]], np.r_[g[1:], -1]
    prev_ign = np.r_[False, ign[:-1]]
    cont = ~first & ~ign
    ids = cont & ((pos == 1) | ~prev_ign) & (prev_g >= 0) & (g >= 0) & (g != prev_g)
    # a match seen earlier in f's stretch; stretches restart at ignored frames after frame 0
    seeds = (g >= 0) & (~ign | (pos == 0))
    stretch = np.cumsum(first | (ign & (pos > 0)))  # 1, 2, ... one value per stretch
    stretch_start = np.flatnonzero(np.r_[True, stretch[1:] != stretch[:-1]])[stretch - 1]
    seeds_before = np.cumsum(seeds) - seeds
    seen_before = seeds_before - seeds_before[stretch_start] > 0
    frag_mid = cont & ~last & (prev_g != g) & seen_before & (g >= 0) & (next_g >= 0)
    frag_end = cont & last & (prev_g != g) & (g >= 0)
    n_traj = int(traj[-1]) + 1
    scored = np.bincount(traj, ~ign, n_traj) > 0  # trajectories not ignored in every frame
    tracked = np.bincount(traj, seeds, n_traj)
    ratio = tracked / np.maximum(np.bincount(traj, ~ign, n_traj), 1)
    k = int(scored.sum())
    if k == 0:
        return {"IDS": 0, "FRAG": 0, "MT": 0.0, "ML": 0.0, "PT": 0.0}
    return {
        "IDS": int(ids.sum()), "FRAG": int((frag_mid | frag_end).sum()),
        "MT": float((scored & (ratio > 0.8)).sum() / k), "ML": float((scored & (ratio < 0.2)).sum() / k),
        "PT": float((scored & (ratio >= 0.2) & (ratio <= 0.8)).sum() / k),
    }  # fmt: skip


def _clear(sweep: _Sweep, run: _Run, recall_point: float = 1.0) -> dict[str, float]:
    traj = _trajectory_stats(sweep.gt_ids, sweep.gt_ign, run.assigned)
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


def hota(frames: list[FrameData], counted: list[tuple[np.ndarray, np.ndarray]] | None = None) -> dict[str, float]:
    """HOTA, DetA, AssA, LocA averaged over ``HOTA_ALPHAS``.

    Args:
        frames: every frame of every sequence (ids unique across sequences).
        counted: per frame, (G,) and (T,) masks of the boxes that count (default: all).
    """
    if counted is None:
        counted = [(np.ones(len(f.gt_ids), bool), np.ones(len(f.trk_ids), bool)) for f in frames]
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
    sweep = _Sweep(frames, threshold)
    first = sweep.run(np.ones(len(track_score), bool), track_score)
    thresholds, recalls = recall_thresholds(first.tp_scores, first.tp + first.fn)
    s_mota = mota = motp = 0.0
    best_mota, best_thr = 0.0, -np.inf
    for thr_score, r in zip(thresholds, recalls):
        m = _clear(sweep, sweep.run(track_score >= thr_score, track_score), r)
        s_mota, mota, motp = s_mota + m["sMOTA"], mota + m["MOTA"], motp + m["MOTP"]
        if m["MOTA"] > best_mota:
            best_mota, best_thr = m["MOTA"], thr_score
    best = sweep.run(track_score >= best_thr, track_score)
    out = _clear(sweep, best)
    out.pop("sMOTA")
    gs, ts = sweep.g_start, sweep.t_start
    counted = [(best.counted_gt[gs[i] : gs[i + 1]], best.counted_trk[ts[i] : ts[i + 1]]) for i in range(len(frames))]
    out.update(hota(frames, counted))
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


def evaluate_kitti_tracking_dir(
    label_dir: Path,
    results_dir: Path,
    sequences: Mapping[str, int],
    classes=("car", "pedestrian", "cyclist"),
    iou="3d",
    threshold=0.25,
) -> dict[str, dict[str, float]]:
    """Read ``label_dir/<seq>.txt`` and ``results_dir/<seq>.txt`` for every sequence and evaluate."""
    from perception.data.kitti_format import read_tracking_label_file
    from perception.tracking.kitti_io import read_results

    gt = {s: read_tracking_label_file(Path(label_dir) / f"{s}.txt") for s in sequences}
    res = {s: read_results(Path(results_dir) / f"{s}.txt", n) for s, n in sequences.items()}
    return evaluate_kitti_tracking(gt, res, sequences, classes, iou, threshold)


def run_track_eval(data_yaml, results_dir, split: str | None = "val", iou: str = "3d", thresholds=(0.25,)) -> int:
    """``perception val --task track`` / ``perception track --eval``: print the metric table per class.

    Args:
        data_yaml: KITTI tracking dataset YAML (ground truth in ``root/training/label_02``).
        results_dir: one KITTI tracking result file per sequence of the split.
        thresholds: IoU thresholds; one table each.

    Returns:
        0 (the exit status).
    """
    from perception.data.registry import load_dataset
    from perception.tracking.run import sequence_lengths

    dataset = load_dataset(data_yaml, split=split)
    sequences = dict(sequence_lengths(dataset))
    label_dir = dataset.spec.root / "training" / "label_02"
    for thr in thresholds:
        metrics = evaluate_kitti_tracking_dir(label_dir, Path(results_dir), sequences, iou=iou, threshold=thr)
        print(
            f"KITTI tracking ({iou.upper()} IoU >= {thr}, AB3DMOT protocol), {len(sequences)} sequences, results {results_dir}"
        )
        print(format_table(metrics) if metrics else "no tracks of car, pedestrian or cyclist in the results")
    return 0


def evaluate_sequences(
    gt: Mapping[str, list],
    pred: Mapping[str, list],
    class_names: tuple[str, ...],
    threshold: float = 0.25,
    similarity: str = "iou_3d",
) -> dict[str, dict[str, float]]:
    """Evaluate tracks of any dataset: per sequence, per frame ``Boxes3D`` (or ``Boxes2D``) with ``track_ids``.

    Same protocol as the KITTI one without its ignore rules (every ground-truth box counts,
    every predicted box is a hit or a false positive). Ground truth must carry ``track_ids``;
    predictions ``track_ids`` and ``scores`` (missing scores count as 1).

    Args:
        similarity: ``iou_3d``, ``iou_bev`` (Boxes3D) or ``iou_2d`` (Boxes2D).

    Returns:
        class name -> metrics (as ``evaluate_kitti_tracking``), for classes with predictions.
    """
    from perception.core import bev_iou

    sim_fn = {"iou_3d": iou3d, "iou_bev": bev_iou, "iou_2d": iou2d}[similarity]
    coords = (lambda b: b.xyxy) if similarity == "iou_2d" else (lambda b: b.xyz_lwh_yaw)
    out = {}
    for label, name in enumerate(class_names):
        frames, scores, g_off, t_off = [], [], 0, 0
        for seq in gt:
            seq_gt = [b[np.flatnonzero(b.labels == label)] for b in gt[seq]]
            seq_pr = [b[np.flatnonzero(b.labels == label)] for b in pred[seq]]
            all_t = np.concatenate([b.track_ids for b in seq_pr] + [np.zeros(0, np.int64)])
            uid, inv = np.unique(all_t, return_inverse=True)
            sc = np.concatenate([b.scores if b.scores is not None else np.ones(len(b)) for b in seq_pr] + [np.zeros(0)])
            mean = np.bincount(inv, sc, len(uid)) / np.maximum(np.bincount(inv, minlength=len(uid)), 1)
            starts = np.cumsum([0] + [len(b) for b in seq_pr])
            for f, (g, p) in enumerate(zip(seq_gt, seq_pr)):
                t_ids = inv[starts[f] : starts[f + 1]] + t_off
                frames.append(
                    FrameData(
                        g.track_ids + g_off,
                        np.zeros(len(g), bool),
                        t_ids,
                        np.zeros(len(p), bool),
                        sim_fn(coords(g), coords(p)),
                    )
                )
            g_off += int(max((b.track_ids.max(initial=0) for b in seq_gt), default=0)) + 2
            scores.append(mean)
            t_off += len(uid)
        track_score = np.concatenate(scores + [np.zeros(0)])
        if len(track_score):
            out[name] = evaluate_frames(frames, track_score, threshold)
    return out
