"""Run a detector over a dataset split and score it with the KITTI metric (``perception.eval.kitti``).

Used by the trainer's validation and by ``perception val``; any dataset works (frames without a
KITTI camera get a virtual one, so BEV and 3D AP are meaningful everywhere).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from tqdm import tqdm

from perception.core import Boxes3D, Frame
from perception.data.base import DriveDataset
from perception.deploy.predictor import model_inputs
from perception.errors import DataError
from perception.models.postprocess import postprocess


@torch.no_grad()
def predict_dataset(
    model: torch.nn.Module, dataset: DriveDataset, settings: dict[str, Any], device: str = "cpu",
    max_frames: int = 0, progress: bool = False,
) -> Iterator[tuple[int, Frame, Boxes3D]]:  # fmt: skip
    """Yield ``(index, frame, detections)`` for every frame (the first ``max_frames`` when > 0)."""
    n = len(dataset) if max_frames <= 0 else min(max_frames, len(dataset))
    if n == 0:
        raise DataError(f"no frames to evaluate (split {dataset.split!r})", path=dataset.spec.source)
    was_training = model.training
    model.eval()
    try:
        for i in tqdm(range(n), desc="predict", disable=not progress, leave=False):
            frame = dataset.load_frame(i, images=False)
            points = torch.from_numpy(model_inputs(frame, settings["point_channels"])).to(device)
            boxes, scores, labels = model(points)
            dets = postprocess(
                boxes.cpu().numpy(),
                scores.cpu().numpy(),
                labels.cpu().numpy(),
                settings["score_thresholds"],
                settings["nms_iou"],
            )
            yield i, frame, dets
    finally:
        model.train(was_training)


def evaluate_model(
    model: torch.nn.Module, dataset: DriveDataset, settings: dict[str, Any], device: str = "cpu",
    max_frames: int = 0, progress: bool = False,
):  # fmt: skip
    """KITTI AP of ``model`` on ``dataset``.

    Returns:
        (KittiResult, flat metrics ``{"val/bev/Car/moderate/R40": 87.1, ...}`` in percent).
    """
    from perception.eval.kitti import boxes_to_kitti, evaluate_kitti, frame_to_kitti_gt

    gt, dt = [], []
    for i, frame, dets in predict_dataset(model, dataset, settings, device, max_frames, progress):
        gt.append(frame_to_kitti_gt(frame, dataset, i))
        dt.append(boxes_to_kitti(dets, frame))
    result = evaluate_kitti(gt, dt, classes=tuple(settings["classes"]))
    return result, result.summary(prefix="val")
