"""YOLO through ``perception export`` (ultralytics' exporter, offline) and ``load_predictor``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception.cli import main
from perception.core import Frame
from perception.deploy.predictor import load_predictor

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_yolo_checkpoint_exports_and_both_files_load_as_yolo(tmp_path):
    pytest.importorskip("ultralytics")
    from perception.models.yolo.model import load_yolo
    from perception.models.yolo.predictor import YoloPredictor

    pt = tmp_path / "yolo11n.pt"
    load_yolo(ROOT / "configs" / "yolo11n.yaml").save(pt)
    out = tmp_path / "exported" / "y.onnx"
    assert main(["export", "--weights", str(pt), "--format", "onnx", "--imgsz", "64", "--out", str(out)]) == 0
    assert out.is_file() and sorted(p.name for p in out.parent.iterdir()) == ["y.onnx"]  # no scratch left
    image = np.zeros((64, 96, 3), np.uint8)
    frame = Frame("t", "", 0, 0.0, ("Car",), images={"image_2": image})
    names = []
    for path in (pt, out):
        predictor = load_predictor(path)
        assert isinstance(predictor, YoloPredictor) and set(predictor.predict(frame).boxes2d) == {"image_2"}
        names.append(predictor.class_names)
    assert names[0] == names[1] and len(names[0]) == 3  # configs/yolo11n.yaml: nc 3, carried by the export
