"""``YoloPredictor``: a YOLO 2D detector behind the common ``Predictor`` interface.

Used by ``perception predict --task detect2d``, ``perception val --task detect2d``, the stream
runner and the demo through ``load_predictor``. It runs ultralytics' own pre-processing (letterbox)
and model backend (``.pt``, ``.onnx``, ``.engine``), then its NMS, without the per-call source
and result-object set-up of ``YOLO.predict``: same boxes, no added cost.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from perception.core import Boxes2D, Frame, Predictions
from perception.deploy.predictor import Predictor
from perception.errors import DataError
from perception.models.yolo.model import class_names, load_yolo


def is_yolo_weights(path: str | Path) -> bool:
    """True for an ultralytics checkpoint (``.pt`` whose pickle names ultralytics classes) or an
    ultralytics ONNX export (its metadata says so); reads a few bytes, imports nothing heavy."""
    path = Path(path)
    try:
        if path.suffix == ".pt":
            with zipfile.ZipFile(path) as z:
                pickle_name = next(n for n in z.namelist() if n.endswith("data.pkl"))
                return b"ultralytics" in z.read(pickle_name)
        if path.suffix == ".onnx":
            import onnx

            meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
            return "ultralytics" in meta.get("author", "").lower() and meta.get("task") == "detect"
    except (OSError, StopIteration, zipfile.BadZipFile, ValueError):
        return False
    return False


class YoloPredictor(Predictor):
    """2D boxes for every camera image of a frame (or the ``cameras`` chosen).

    Args:
        weights: YOLO ``.pt`` checkpoint, or its ``.onnx`` / ``.engine`` export.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:0"`` ...
        conf: minimum score kept; iou: NMS IoU; max_det: boxes per image.
        imgsz: inference size (int or (h, w)); None: the size the model was trained at.
        cameras: cameras to run on; None: every image in the frame.
    """

    def __init__(self, weights: str | Path, device: str = "cpu", *, conf: float = 0.25, iou: float = 0.7,
                 max_det: int = 300, imgsz: int | tuple[int, int] | None = None,
                 cameras: tuple[str, ...] | None = None):  # fmt: skip
        self.yolo = load_yolo(weights, exported=True)
        self.class_names = class_names(self.yolo)
        self.cameras = cameras
        self.conf, self.iou, self.max_det = conf, iou, max_det
        trained = getattr(self.yolo, "overrides", {}).get("imgsz")
        self.imgsz = imgsz or trained or 640
        device = "0" if device == "cuda" else device.removeprefix("cuda:")
        # One call through ultralytics sets up its predictor (backend, device, stride, letterbox size).
        self.yolo.predict(np.zeros((64, 64, 3), np.uint8), imgsz=self.imgsz, device=device, conf=conf, iou=iou,
                          max_det=max_det, verbose=False)  # fmt: skip
        self._predictor = self.yolo.predictor

    @torch.inference_mode()
    def predict_images(self, images: list[np.ndarray]) -> tuple[list[Boxes2D], dict[str, float]]:
        """Detect in BGR uint8 images (H, W, 3), batched.

        Returns:
            One ``Boxes2D`` per image (xyxy pixels of that image, labels, scores) and the
            per-stage latency in ms for the whole batch.
        """
        from ultralytics.utils import nms, ops

        p = self._predictor
        t0 = time.perf_counter()
        x = p.preprocess(images)
        t1 = time.perf_counter()
        raw = p.inference(x)
        if p.device.type == "cuda":
            torch.cuda.synchronize(p.device)
        t2 = time.perf_counter()
        dets = nms.non_max_suppression(raw, self.conf, self.iou, max_det=self.max_det,
                                       end2end=getattr(p.model, "end2end", False))  # fmt: skip
        out = []
        for d, image in zip(dets, images):
            xyxy = ops.scale_boxes(x.shape[2:], d[:, :4].clone(), image.shape)
            d = d.cpu().numpy()
            out.append(Boxes2D(xyxy.cpu().numpy(), d[:, 5].astype(np.int64), scores=d[:, 4]))
        t3 = time.perf_counter()
        return out, {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3}

    def predict(self, frame: Frame) -> Predictions:
        """2D boxes by camera; the frame's class names are not used (the model's own are)."""
        cameras = [c for c in frame.images if self.cameras is None or c in self.cameras]
        if not cameras:
            raise DataError(f"frame {frame.name} has no image for cameras {self.cameras or 'any'}")
        boxes, ms = self.predict_images([frame.images[c] for c in cameras])
        return Predictions(boxes2d=dict(zip(cameras, boxes)), latency_ms=ms)
