"""nuScenes tracking metrics: AMOTA, AMOTP and MOTAR over recall thresholds (``tracking_nips_2019``).

Follows the official ``nuscenes-devkit`` tracking evaluation (``nuscenes/eval/tracking``):

* classes car, truck, bus, trailer, pedestrian, motorcycle, bicycle; boxes farther (BEV) from the
  ego vehicle than the class range (vehicles 50 m, the rest 40 m) are dropped, and so is ground
  truth without lidar/radar points (``attributes["num_points"] == 0``); the bike-rack filter needs
  map annotations and is not applied;
* every predicted box gets its track's mean score (per scene, after filtering), then gaps inside
  each track (ground truth and predicted) are filled by linear interpolation of the centre;
* per frame, the CLEAR-MOT accumulator of py-motmetrics: a ground-truth object keeps last frame's
  hypothesis when still closer than 2 m (BEV centre distance), the rest are assigned by Hungarian
  matching on distance (pairs at >= 2 m never match); a new hypothesis for an object that had
  another one is an id switch;
* the scores of the matches (not switches) of a run without threshold give recall levels; 40
  score thresholds are interpolated at recall 0.1 ... 1 (unreached recalls get none); at each,
  MOTAR = max(0, 1 - (FN + IDS + FP - (1 - r) P) / (r P)) with r = matches / P, and MOTP = mean
  distance of matches and switches;
* AMOTA = mean MOTAR over the 40 thresholds, AMOTP = mean MOTP, a missing threshold counting as
  the worst value (MOTAR 0, MOTP 2 m); MOTA, MOTP, recall, IDS, FP, FN are reported at the
  threshold of the best MOTA (the highest recall among ties); classes without ground truth are NaN
  and skipped in the means.

Inputs are per scene lists of ``Boxes3D`` (one per frame, with ``track_ids``; predictions with
``scores``) in one fixed frame per scene (the devkit uses the global frame), plus the ego position
in that frame for the range filter. ``write_tracking_submission`` / ``read_tracking_submission`` handle the challenge's JSON. Exercised
by ``tests/test_eval_nuscenes_tracking.py``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception.core import Boxes3D
from perception.errors import CorruptFileError, DataError, UnknownClassError
from perception.eval.nuscenes import CLASS_RANGE_M
from perception.eval.nuscenes_submission import read_submission_json
from perception.files import atomic_write

TRACKING_CLASSES = ("car", "truck", "bus", "trailer", "pedestrian", "motorcycle", "bicycle")
DIST_TH_M = 2.0
N_THRESHOLDS = 40
MIN_RECALL = 0.1
WORST = {"motar": 0.0, "motp": 2.0}


@dataclass
class _Frame:
    """One frame of one class: ids (K,) int64, BEV centres (K, 2) float64, scores (K,) (predictions)."""

    ids: np.ndarray
    xy: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class NuScenesTrackingResult:
    """``amota`` / ``amotp`` class means; ``per_class[name]`` holds amota, amotp and, at the best-MOTA
    threshold, motar, mota, motp, recall, ids, fp, fn, tp, gt; ``motar_curve[name]`` the 40 MOTAR values."""

    amota: float
    amotp: float
    per_class: dict[str, dict[str, float]]
    motar_curve: dict[str, np.ndarray]

    def summary(self, prefix: str = "nuscenes_tracking") -> dict[str, float]:
        out = {f"{prefix}/amota": self.amota, f"{prefix}/amotp": self.amotp}
        for name, m in self.per_class.items():
            out |= {f"{prefix}/{name}/{k}": v for k, v in m.items()}
        return out


def _select(boxes: Boxes3D, label: int, ego_xy: np.ndarray, max_dist: float, gt: bool) -> _Frame:
    """Boxes of one class nearer than ``max_dist`` to the ego (and, for ground truth, with points)."""
    keep = (boxes.labels == label) & (np.hypot(*(boxes.xyz_lwh_yaw[:, :2] - ego_xy).T) < max_dist)
    if gt and "num_points" in boxes.attributes:
        keep &= np.asarray(boxes.attributes["num_points"]) != 0
    if boxes.track_ids is None:
        raise DataError("tracking evaluation needs track_ids on every box set")
    scores = boxes.scores[keep] if boxes.scores is not None else np.ones(int(keep.sum()))
    return _Frame(boxes.track_ids[keep].astype(np.int64), boxes.xyz_lwh_yaw[keep, :2].astype(np.float64), scores)


def _average_scores(frames: list[_Frame]) -> None:
    """Devkit ``create_tracks``: each box's score becomes its track's mean score over the scene."""
    ids = np.concatenate([f.ids for f in frames])
    if not len(ids):
        return
    uniq, inv = np.unique(ids, return_inverse=True)
    mean = np.bincount(inv, np.concatenate([f.scores for f in frames])) / np.bincount(inv)
    for f in frames:
        f.scores = mean[np.searchsorted(uniq, f.ids)]


def _interpolate(frames: list[_Frame], times: np.ndarray) -> None:
    """Devkit ``interpolate_tracks``: a track absent from frames between its first and last one gets
    a box there, its centre (and score) linear in time between the neighbouring boxes."""
    seen: dict[int, list[tuple[int, np.ndarray, float]]] = {}
    for t, f in enumerate(frames):
        for i, tid in enumerate(f.ids.tolist()):
            seen.setdefault(tid, []).append((t, f.xy[i], float(f.scores[i])))
    for tid, obs in seen.items():
        for (t0, xy0, s0), (t1, xy1, s1) in itertools.pairwise(obs):
            for t in range(t0 + 1, t1):
                w = (times[t1] - times[t]) / (times[t1] - times[t0])  # weight of the earlier box
                f = frames[t]
                f.ids = np.append(f.ids, tid)
                f.xy = np.concatenate([f.xy, (w * xy0 + (1 - w) * xy1)[None]])
                f.scores = np.append(f.scores, w * s0 + (1 - w) * s1)


def _match_frame(gt: _Frame, pr: _Frame, last: dict[int, int]) -> tuple[list[tuple[int, int]], list[bool], float]:
    """py-motmetrics ``MOTAccumulator.update``: returns the matched (gt row, pred row) pairs, whether
    each is an id switch, and their summed distance. ``last`` (gt id -> pred id) is updated."""
    d = np.sqrt(((gt.xy[:, None, :] - pr.xy[None, :, :]) ** 2).sum(-1))
    valid = d < DIST_TH_M
    pairs, switch = [], []
    free_g, free_p = np.ones(len(gt.ids), bool), np.ones(len(pr.ids), bool)
    pr_row = {h: j for j, h in enumerate(pr.ids.tolist())}
    for i, o in enumerate(gt.ids.tolist()):  # keep last frame's correspondences
        j = pr_row.get(last.get(o, -1))
        if j is not None and valid[i, j] and free_p[j]:
            pairs.append((i, j))
            switch.append(False)
            free_g[i] = free_p[j] = False
    gi, pj = np.flatnonzero(free_g), np.flatnonzero(free_p)
    sub = valid[np.ix_(gi, pj)]
    if sub.any():
        big = 2.0 * d[np.ix_(gi, pj)][sub].sum() + 1.0  # never worth a valid match
        rows, cols = linear_sum_assignment(np.where(sub, d[np.ix_(gi, pj)], big))
        for r, c in zip(rows.tolist(), cols.tolist()):
            if sub[r, c]:
                i, j = int(gi[r]), int(pj[c])
                o, h = int(gt.ids[i]), int(pr.ids[j])
                switch.append(o in last and last[o] != h)
                last[o] = h
                pairs.append((i, j))
    return pairs, switch, float(sum(d[i, j] for i, j in pairs))


def _run(scenes: list[tuple[list[_Frame], list[_Frame]]], threshold: float | None) -> tuple[dict, list[float]]:
    """Accumulate one class over all scenes at a score threshold (None: keep all predictions).

    Returns counts (matches, switches, fp, fn, gt, dist) and the scores of plain matches."""
    c = dict.fromkeys(("matches", "switches", "fp", "fn", "gt", "dist"), 0.0)
    match_scores: list[float] = []
    for gts, preds in scenes:
        last: dict[int, int] = {}
        for gt, pr in zip(gts, preds):
            if threshold is not None:
                keep = pr.scores >= threshold
                pr = _Frame(pr.ids[keep], pr.xy[keep], pr.scores[keep])
            pairs, switch, dist = _match_frame(gt, pr, last)
            switches = sum(switch)
            c["matches"] += len(pairs) - switches
            c["switches"] += switches
            c["fp"] += len(pr.ids) - len(pairs)
            c["fn"] += len(gt.ids) - len(pairs)
            c["gt"] += len(gt.ids)
            c["dist"] += dist
            if threshold is None:
                match_scores += [float(pr.scores[j]) for (_, j), sw in zip(pairs, switch) if not sw]
    return c, match_scores


def _metrics(c: dict) -> dict[str, float]:
    """MOTAR, MOTA, MOTP, recall and counts of one accumulator (NaN where undefined, as the devkit)."""
    n, tp = c["gt"], c["matches"] + c["switches"]
    r = c["matches"] / n if n else 0.0
    motar = max(0.0, 1 - (c["fn"] + c["switches"] + c["fp"] - (1 - r) * n) / (r * n)) if r * n else np.nan
    return {
        "motar": motar, "mota": 1 - (c["fn"] + c["switches"] + c["fp"]) / n if n else np.nan,
        "motp": c["dist"] / tp if tp else np.nan, "recall": tp / n if n else np.nan,
        "ids": c["switches"], "fp": c["fp"], "fn": c["fn"], "tp": tp, "gt": n,
    }  # fmt: skip


def score_thresholds(match_scores: list[float], n_gt: int) -> np.ndarray:
    """Devkit ``compute_thresholds``: (40,) score thresholds reaching recall 0.1 ... 1 (in that
    order), NaN where the recall is never reached."""
    if not match_scores or not n_gt:
        return np.full(N_THRESHOLDS, np.nan)
    scores = np.sort(np.asarray(match_scores))[::-1]
    recall = np.arange(1, len(scores) + 1) / n_gt
    targets = np.linspace(MIN_RECALL, 1.0, N_THRESHOLDS).round(12)
    thresholds = np.interp(targets, recall, scores, right=0)
    thresholds[targets > recall[-1]] = np.nan
    return thresholds


def _evaluate_class(scenes: list[tuple[list[_Frame], list[_Frame]]]) -> tuple[dict[str, float], np.ndarray]:
    base, match_scores = _run(scenes, None)
    if not base["gt"]:
        return {"amota": np.nan, "amotp": np.nan}, np.full(N_THRESHOLDS, np.nan)
    thresholds = score_thresholds(match_scores, int(base["gt"]))
    cache: dict[float, dict[str, float]] = {}
    per = [cache.setdefault(t, _metrics(_run(scenes, t)[0])) if not np.isnan(t) else None for t in thresholds]
    motar = np.array([m["motar"] if m else np.nan for m in per])
    motp = np.array([m["motp"] if m else np.nan for m in per])
    out = {
        "amota": float(np.where(np.isnan(motar), WORST["motar"], motar).mean()),
        "amotp": float(np.where(np.isnan(motp), WORST["motp"], motp).mean()),
    }
    mota = np.array([m["mota"] if m else np.nan for m in per])
    if not np.isnan(mota).all():  # ties go to the highest recall, i.e. the lowest threshold
        best = max(reversed(range(N_THRESHOLDS)), key=lambda k: -np.inf if np.isnan(mota[k]) else mota[k])
        out |= {k: float(v) for k, v in per[best].items()}
    return out, motar


def _prepare(
    gt: Sequence[Boxes3D], pred: Sequence[Boxes3D], label: int, max_dist: float, ego_xy: np.ndarray, times: np.ndarray
) -> tuple[list[_Frame], list[_Frame]]:
    gts = [_select(b, label, ego_xy[t], max_dist, True) for t, b in enumerate(gt)]
    preds = [_select(b, label, ego_xy[t], max_dist, False) for t, b in enumerate(pred)]
    _average_scores(preds)
    _interpolate(gts, times)
    _interpolate(preds, times)
    return gts, preds


def evaluate_nuscenes_tracking(
    gt: Mapping[str, Sequence[Boxes3D]],
    pred: Mapping[str, Sequence[Boxes3D]],
    class_names: Sequence[str],
    ego_xy: Mapping[str, np.ndarray] | None = None,
    timestamps_s: Mapping[str, np.ndarray] | None = None,
    classes: Sequence[str] = TRACKING_CLASSES,
) -> NuScenesTrackingResult:
    """AMOTA / AMOTP of tracks against ground truth, scene by scene.

    Args:
        gt: scene -> per-frame ground truth with ``track_ids`` (``attributes["num_points"]`` optional).
        pred: scene -> per-frame tracks with ``track_ids`` and ``scores``; same frames as ``gt``.
        class_names: names of the labels of both (matched to ``classes`` case-insensitively).
        ego_xy: scene -> (F, 2) ego position in the boxes' frame (None: boxes are ego-frame, ego at 0).
        timestamps_s: scene -> (F,) frame times for the interpolation (None: evenly spaced frames).
        classes: the classes to evaluate (default: the 7 nuScenes tracking classes).
    """
    missing = sorted(set(gt) ^ set(pred))
    if missing:
        raise DataError(f"scenes {missing[:5]} are in only one of ground truth and predictions")
    index = {n.lower(): i for i, n in enumerate(class_names)}
    unknown = sorted(c for c in classes if c.lower() not in index)
    if unknown:
        raise UnknownClassError(f"tracking classes {unknown} not in class_names {list(class_names)}")
    for scene in gt:
        if len(gt[scene]) != len(pred[scene]):
            raise DataError(f"scene {scene}: {len(gt[scene])} ground-truth frames vs {len(pred[scene])} predicted")
    per_class, curves = {}, {}
    for name in classes:
        scenes = []
        for scene, frames in gt.items():
            n = len(frames)
            ego = np.zeros((n, 2)) if ego_xy is None else np.asarray(ego_xy[scene], np.float64).reshape(n, 2)
            times = np.arange(n, dtype=np.float64) if timestamps_s is None else np.asarray(timestamps_s[scene], float)
            scenes.append(_prepare(frames, pred[scene], index[name.lower()], CLASS_RANGE_M[name.lower()], ego, times))
        per_class[name], curves[name] = _evaluate_class(scenes)
    return NuScenesTrackingResult(
        amota=_nanmean([m["amota"] for m in per_class.values()]),
        amotp=_nanmean([m["amotp"] for m in per_class.values()]),
        per_class=per_class,
        motar_curve=curves,
    )


def _nanmean(values: list[float]) -> float:
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def write_tracking_submission(
    path: str | Path, tracks: Mapping[str, Boxes3D], class_names: Sequence[str], meta: Mapping[str, bool] | None = None
) -> None:
    """Write ``sample_token -> tracks`` (global frame, with ``track_ids`` and ``scores``) as the
    nuScenes tracking submission JSON, atomically. Sizes are written w, l, h; yaw as a quaternion."""
    results = {}
    for token, boxes in tracks.items():
        if boxes.track_ids is None or boxes.scores is None:
            raise DataError(f"tracks of sample {token} need track_ids and scores", path=Path(path))
        vel = boxes.velocity_xy if boxes.velocity_xy is not None else np.zeros((len(boxes), 2))
        results[token] = [
            {
                "sample_token": token, "translation": [float(v) for v in b[:3]], "size": [float(b[4]), float(b[3]), float(b[5])],
                "rotation": [float(np.cos(b[6] / 2)), 0.0, 0.0, float(np.sin(b[6] / 2))],
                "velocity": [float(v) for v in vel[i]], "tracking_id": str(int(boxes.track_ids[i])),
                "tracking_name": class_names[int(boxes.labels[i])], "tracking_score": float(boxes.scores[i]),
            }
            for i, b in enumerate(boxes.xyz_lwh_yaw.astype(np.float64))
        ]  # fmt: skip
    full_meta = {"use_camera": False, "use_lidar": True, "use_radar": False, "use_map": False, "use_external": False}
    with atomic_write(path) as f:
        json.dump({"meta": full_meta | dict(meta or {}), "results": results}, f)


def read_tracking_submission(path: str | Path, class_names: Sequence[str]) -> tuple[dict, dict[str, Boxes3D]]:
    """Read a tracking submission: ``(meta, sample_token -> Boxes3D with track_ids, scores, velocity)``.

    String ``tracking_id``s become int64 ids (numbered in order of first appearance)."""
    path = Path(path)
    data = read_submission_json(path)
    index, ids, out = {c: i for i, c in enumerate(class_names)}, {}, {}
    for token, rows in data["results"].items():
        try:
            boxes = [[*r["translation"], r["size"][1], r["size"][0], r["size"][2], _yaw(r["rotation"])] for r in rows]
            labels = [index[r["tracking_name"]] for r in rows]
            track = [ids.setdefault(str(r["tracking_id"]), len(ids) + 1) for r in rows]
            scores, vel = [float(r["tracking_score"]) for r in rows], [r.get("velocity", [0.0, 0.0])[:2] for r in rows]
        except KeyError as e:
            name = e.args[0]
            if name in {r.get("tracking_name") for r in rows}:
                raise UnknownClassError(
                    f"sample {token}: unknown tracking_name {name!r}; known: {list(class_names)}", path=path
                ) from None
            raise CorruptFileError(f"sample {token}: box without {name!r}", path=path) from None
        except (TypeError, ValueError, IndexError) as e:
            raise CorruptFileError(f"sample {token}: bad box values ({e})", path=path) from None
        n = len(rows)
        out[token] = Boxes3D(
            np.array(boxes, np.float32).reshape(n, 7), np.array(labels, np.int64), scores=np.array(scores, np.float32),
            track_ids=np.array(track, np.int64), velocity_xy=np.array(vel, np.float32).reshape(n, 2),
        )  # fmt: skip
    return data.get("meta", {}), out


def _yaw(q: Sequence[float]) -> float:
    """Heading about +z of a (w, x, y, z) quaternion."""
    w, x, y, z = (float(v) for v in q)
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))
