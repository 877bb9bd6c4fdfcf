"""torch ``Dataset`` over any ``DriveDataset`` for 3D detection: points + boxes, augmentations,
ground-truth sampling, and the collate that concatenates clouds with a per-point sample index.

numpy until ``collate``; torch from there on. Exercised by ``perception train``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from perception.core import Boxes3D, Frame, bev_iou, points_in_boxes, wrap_angle
from perception.data.base import DriveDataset
from perception.errors import DataError


@dataclass
class AugmentConfig:
    """Global augmentations (applied to points and boxes together) and GT sampling.

    Attributes:
        rotation_rad: (lo, hi) uniform rotation about +z.
        scale: (lo, hi) uniform global scale.
        flip: mirror y -> -y with probability 0.5.
        gt_samples: objects pasted per frame from the ground-truth database (0: off).
    """

    rotation_rad: tuple[float, float] = (0.0, 0.0)
    scale: tuple[float, float] = (1.0, 1.0)
    flip: bool = False
    gt_samples: int = 0


def frame_points(frame: Frame, channels: list[str] | tuple[str, ...]) -> np.ndarray:
    """(N, len(channels)) float32 in the model's channel order (missing channels are zeros)."""
    from perception.deploy.predictor import model_inputs

    return model_inputs(frame, channels)


class GroundTruthDatabase:
    """Points inside every labelled box of a dataset, to paste into other frames (SECOND's GT sampling)."""

    def __init__(self, boxes: np.ndarray, labels: np.ndarray, points: list[np.ndarray]):
        self.boxes, self.labels, self.points = boxes, labels, points

    @classmethod
    def build(cls, dataset: DriveDataset, channels: list[str], min_points: int = 5) -> GroundTruthDatabase:
        boxes, labels, points = [], [], []
        for i in range(len(dataset)):
            frame = dataset.load_frame(i, images=False)
            if frame.boxes3d is None or frame.points is None or not len(frame.boxes3d):
                continue
            pts = frame_points(frame, channels)
            inside = points_in_boxes(pts[:, :3], frame.boxes3d.xyz_lwh_yaw)  # (N, M)
            for j in range(len(frame.boxes3d)):
                if inside[:, j].sum() >= min_points:
                    boxes.append(frame.boxes3d.xyz_lwh_yaw[j])
                    labels.append(frame.boxes3d.labels[j])
                    points.append(pts[inside[:, j]])
        return cls(np.asarray(boxes, np.float32).reshape(-1, 7), np.asarray(labels, np.int64), points)

    def paste(self, pts: np.ndarray, boxes: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator):
        """Add up to ``n`` database objects that overlap no existing box (BEV); points already
        inside a pasted box are removed so objects do not interpenetrate."""
        if n <= 0 or len(self.boxes) == 0:
            return pts, boxes, labels
        pick = rng.choice(len(self.boxes), size=min(n, len(self.boxes)), replace=False)
        cand = self.boxes[pick]
        free = bev_iou(cand, boxes).max(axis=1) <= 0 if len(boxes) else np.ones(len(cand), bool)
        cross = bev_iou(cand, cand) > 0
        keep: list[int] = []
        for i in range(len(cand)):  # greedy: each must be free and clear of those already kept
            if free[i] and not cross[i, keep].any():
                keep.append(i)
        if not keep:
            return pts, boxes, labels
        chosen = pick[keep]
        inside = points_in_boxes(pts[:, :3], self.boxes[chosen]).any(axis=1)
        pasted = [self.points[i] for i in chosen]
        pts = np.concatenate([pts[~inside], *pasted]).astype(np.float32)
        return pts, np.concatenate([boxes, self.boxes[chosen]]), np.concatenate([labels, self.labels[chosen]])


def augment(pts: np.ndarray, boxes: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator):
    """Global flip, rotation and scale of (N, C) points and (M, 7) boxes together."""
    pts, boxes = pts.copy(), boxes.copy()
    if cfg.flip and rng.random() < 0.5:
        pts[:, 1] = -pts[:, 1]
        boxes[:, 1] = -boxes[:, 1]
        boxes[:, 6] = -boxes[:, 6]
    angle = rng.uniform(*cfg.rotation_rad)
    if angle:
        c, s = np.cos(angle), np.sin(angle)
        R = np.array([[c, -s], [s, c]], np.float32)
        pts[:, :2] = pts[:, :2] @ R.T
        boxes[:, :2] = boxes[:, :2] @ R.T
        boxes[:, 6] = boxes[:, 6] + angle
    scale = rng.uniform(*cfg.scale)
    pts[:, :3] *= scale
    boxes[:, :6] *= scale
    boxes[:, 6] = wrap_angle(boxes[:, 6])
    return pts, boxes


class DetectionDataset(torch.utils.data.Dataset):
    """Samples ``{"points": (N, C), "boxes": (M, 7), "labels": (M,), "index": i}`` (numpy).

    Points outside ``point_range`` and boxes whose centre is outside it are dropped. With
    ``augment`` set, each call draws its own random numbers from ``seed``, the epoch and the
    index, so runs (and resumed runs) are reproducible whatever the worker layout.
    """

    def __init__(
        self, dataset: DriveDataset, channels: list[str], point_range: list[float],
        augment_cfg: AugmentConfig | None = None, seed: int = 0,
    ):  # fmt: skip
        if len(dataset) == 0:
            raise DataError(f"dataset is empty (split {dataset.split!r})", path=dataset.spec.source)
        self.dataset, self.channels, self.range = dataset, list(channels), np.asarray(point_range, np.float32)
        self.augment_cfg, self.seed, self.epoch = augment_cfg, seed, 0
        self.database = None
        if augment_cfg is not None and augment_cfg.gt_samples > 0:
            self.database = GroundTruthDatabase.build(dataset, self.channels)

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict:
        frame = self.dataset.load_frame(i, images=False)
        pts = frame_points(frame, self.channels)
        gt = frame.boxes3d if frame.boxes3d is not None else Boxes3D.empty()
        boxes, labels = gt.xyz_lwh_yaw.astype(np.float32), gt.labels
        if self.augment_cfg is not None:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            if self.database is not None:
                pts, boxes, labels = self.database.paste(pts, boxes, labels, self.augment_cfg.gt_samples, rng)
            pts, boxes = augment(pts, boxes, self.augment_cfg, rng)
        x0, y0, z0, x1, y1, z1 = self.range
        keep_p = (
            (pts[:, 0] >= x0)
            & (pts[:, 0] < x1)
            & (pts[:, 1] >= y0)
            & (pts[:, 1] < y1)
            & (pts[:, 2] >= z0)
            & (pts[:, 2] < z1)
        )
        keep_b = (boxes[:, 0] >= x0) & (boxes[:, 0] < x1) & (boxes[:, 1] >= y0) & (boxes[:, 1] < y1)
        return {"points": pts[keep_p], "boxes": boxes[keep_b], "labels": labels[keep_b], "index": i}


def collate(samples: list[dict]) -> dict:
    """Concatenate clouds: ``points`` (sum N, C), ``batch_idx`` (sum N,) int64, ``batch_size``,
    per-sample ``gt_boxes`` (M_b, 7) / ``gt_labels`` (M_b,) tensors and dataset ``indices``."""
    points = torch.from_numpy(np.concatenate([s["points"] for s in samples]))
    batch_idx = torch.cat([torch.full((len(s["points"]),), b, dtype=torch.long) for b, s in enumerate(samples)])
    return {
        "points": points,
        "batch_idx": batch_idx,
        "batch_size": len(samples),
        "gt_boxes": [torch.from_numpy(np.ascontiguousarray(s["boxes"], np.float32)) for s in samples],
        "gt_labels": [torch.from_numpy(np.asarray(s["labels"], np.int64)) for s in samples],
        "indices": [s["index"] for s in samples],
    }
