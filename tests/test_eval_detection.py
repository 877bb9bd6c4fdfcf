"""evaluate_detections: the dataset's own metric from frames and predictions."""

from __future__ import annotations

import numpy as np
import pytest

from perception.core import Boxes3D, Frame, Predictions
from perception.errors import ConfigError, ShapeError
from perception.eval.detection import evaluate_detections


def scene(dataset: str, names: tuple[str, ...], n: int = 60):
    frames, preds = [], []
    for i in range(n):
        rows = np.array([[10.0, 3.0 * (i % 5), 0.0, 4.0, 1.8, 1.5, 0.2]], np.float32)
        boxes = Boxes3D(rows, [0], attributes={"num_points": [30]})
        frames.append(Frame(dataset, "s", i, 0.1 * i, names, boxes3d=boxes))
        preds.append(Predictions(boxes3d=Boxes3D(rows, [0], scores=[0.8])))
    return frames, preds


@pytest.mark.parametrize(
    "dataset, names, key, value",
    [
        ("synthetic", ("Car",), "kitti/3d/Car/easy/R40", 100.0),
        ("nuscenes", ("car",), "nuscenes/mAP", 1.0),
        ("waymo", ("Vehicle",), "waymo/mAPH_L2", 1.0),
        ("argoverse2", ("REGULAR_VEHICLE",), "av2/CDS", 1.0),
    ],
)
def test_perfect_predictions_per_dataset(dataset, names, key, value):
    frames, preds = scene(dataset, names)
    report = evaluate_detections(frames, preds)
    assert report.summary[key] == pytest.approx(value)
    assert names[0] in report.table


def test_unknown_classes_and_lengths():
    frames, preds = scene("nuscenes", ("tram",), n=2)
    with pytest.raises(ConfigError, match="none of the classes"):
        evaluate_detections(frames, preds)
    with pytest.raises(ShapeError):
        evaluate_detections(frames, preds[:1])
