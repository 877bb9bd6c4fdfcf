"""The ultralytics wrapper: offline by construction (a training run with the network blocked),
option mapping, model loading errors, the predictor against ultralytics' own predict, val and
predict outputs, and every modified architecture building, training and exporting."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("ultralytics", reason="ultralytics is the optional perception[yolo] extra")

from perception.errors import CheckpointError, ConfigError, MissingExtraError
from perception.models.yolo import env
from perception.models.yolo.model import load_yolo
from perception.models.yolo.train import (
    SmoothBCEWithLogits,
    TrainOptions,
    freeze_layers,
    options_from_dict,
    train_yolo,
    ultralytics_args,
)

ROOT = Path(__file__).resolve().parents[1]
MODIFIED = ["yolo11n-p2", "yolo11n-wide", "yolo11n-attn"]
TINY = {"epochs": 1, "batch": 4, "imgsz": 64, "warmup_epochs": 0, "workers": 0}
TINY_EXTRA = {"plots": False, "mosaic": 0.0, "val": True}


def _tiny_yolo_data(root: Path, n: int = 4) -> Path:
    """``n`` 96x64 images with one bright box each, labelled as class 0 or 1."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            image = np.full((64, 96, 3), 40, np.uint8)
            x, y, w, h = int(rng.integers(5, 50)), int(rng.integers(5, 30)), 30, 20
            image[y : y + h, x : x + w] = (0, 0, 255) if i % 2 else (255, 0, 0)
            cv2.imwrite(str(root / "images" / split / f"{i}.png"), image)
            label = f"{i % 2} {(x + w / 2) / 96:.6f} {(y + h / 2) / 64:.6f} {w / 96:.6f} {h / 64:.6f}\n"
            (root / "labels" / split / f"{i}.txt").write_text(label)
    path = root / "data.yaml"
    path.write_text(
        yaml.safe_dump(
            {"path": str(root), "train": "images/train", "val": "images/val", "names": ["Car", "Pedestrian"]}
        )
    )
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """One tiny training run with every socket operation blocked and recorded."""
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("yolo")
    data = _tiny_yolo_data(root / "data")
    attempts: list[str] = []

    def refuse(name):
        def blocked(*args, **kwargs):
            attempts.append(f"{name}{args[1:2] if name.startswith('socket.') else args[:1]}")
            raise OSError(f"network blocked in test ({name})")

        return blocked

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse("socket.connect"))
        mp.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
        mp.setattr(socket, "create_connection", refuse("create_connection"))
        mp.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
        opts = options_from_dict({**TINY, "label_smoothing": 0.1, "dropout": 0.1})
        best = train_yolo(ROOT / "configs" / "yolo11n.yaml", data, root / "runs" / "tiny", opts, TINY_EXTRA)
    return {"best": best, "attempts": attempts, "data": data, "root": root}


def test_training_never_touches_the_network(trained):
    assert trained["attempts"] == []
    assert trained["best"].is_file()
    saved = yaml.safe_load((trained["best"].parents[1] / "config.yaml").read_text())
    assert saved["options"]["label_smoothing"] == 0.1 and saved["ultralytics"]["mosaic"] == 0.0


def test_predictor_matches_ultralytics_predict(trained):
    from perception.core import Frame
    from perception.models.yolo.predictor import YoloPredictor, is_yolo_weights

    predictor = YoloPredictor(trained["best"], conf=0.001, imgsz=64)
    image = cv2.imread(str(next((trained["data"].parent / "images" / "val").glob("*.png"))))
    ours = predictor.predict(Frame("t", "", 0, 0.0, ("Car", "Pedestrian"), images={"cam": image})).boxes2d["cam"]
    theirs = predictor.yolo.predict(image, conf=0.001, imgsz=64, verbose=False)[0].boxes
    assert len(ours) == len(theirs) > 0
    np.testing.assert_allclose(ours.xyxy, theirs.xyxy.numpy(), atol=1e-3)
    np.testing.assert_allclose(ours.scores, theirs.conf.numpy(), atol=1e-5)
    assert ours.labels.tolist() == theirs.cls.numpy().astype(int).tolist()
    assert is_yolo_weights(trained["best"])
    assert predictor.class_names == ("Car", "Pedestrian")


def test_val_reports_every_metric_and_plots(trained, tmp_path):
    from perception.models.yolo.evaluate import validate_yolo

    result = validate_yolo(trained["best"], trained["data"], tmp_path / "val", imgsz=64, batch=4)
    for key in ("mAP50", "mAP50-95", "precision", "recall", "F1"):
        assert 0.0 <= result[key] <= 1.0
    assert np.array(result["confusion_matrix"]).shape == (3, 3)
    assert np.array(result["confusion_matrix"])[:, :2].sum() == 4  # every val box lands in a column
    assert set(result["kitti_2d"]["R40"]) == {"Car", "Pedestrian"}
    assert json.loads((tmp_path / "val" / "metrics.json").read_text())["mAP50"] == result["mAP50"]
    assert (tmp_path / "val" / "confusion_matrix.png").is_file()


def test_predict_writes_annotated_images_and_kitti_labels(trained, tmp_path):
    from perception.data.kitti_format import read_label_file
    from perception.models.yolo.predict import predict_yolo
    from perception.models.yolo.predictor import YoloPredictor

    predictor = YoloPredictor(trained["best"], conf=0.001, max_det=5, imgsz=64)
    counts = predict_yolo(predictor, trained["data"].parent / "images" / "val", tmp_path)
    assert counts["images"] == 4 and len(list((tmp_path / "images").glob("*.png"))) == 4
    rows = read_label_file(tmp_path / "labels" / "0.txt")
    assert len(rows) <= 5 and rows.score is not None and set(rows.type) <= {"Car", "Pedestrian"}
    assert (rows.bbox[:, 2] <= 96).all() and (rows.bbox[:, 3] <= 64).all()


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setattr(env.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingExtraError, match=r"perception\[yolo\]"):
        env.import_ultralytics()


def test_offline_environment_is_private():
    env.import_ultralytics()
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR

    assert (Path(USER_CONFIG_DIR) / "Arial.ttf").is_file()
    assert SETTINGS["sync"] is False
    assert env.os.environ["YOLO_OFFLINE"] == "1"


def test_bad_models_are_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="file not found"):
        load_yolo("yolo11n.pt")  # a bare asset name: ultralytics would download it
    torch.save({"model": "not a yolo"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt: not an ultralytics YOLO checkpoint"):
        load_yolo(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_yolo(tmp_path / "junk.pt")
    (tmp_path / "bad.yaml").write_text("backbone: [[-1, 1, NoSuchLayer, [8]]]\nhead: []\n")
    with pytest.raises(ConfigError, match="bad.yaml: not a valid YOLO model YAML"):
        load_yolo(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="file not found"):
        load_yolo(tmp_path / "missing.yaml")


def test_option_mapping():
    model = load_yolo(ROOT / "configs" / "yolo11n.yaml")
    args = ultralytics_args(
        TrainOptions(lr=0.002, scheduler="cosine", freeze="backbone", device="cpu"), model, {"mosaic": 0.5}
    )
    assert args["lr0"] == 0.002 and args["cos_lr"] is True and args["freeze"] == 11 and args["mosaic"] == 0.5
    assert args["amp"] is False  # CPU: no AMP, so no AMP self-test download either
    assert freeze_layers([0, 1], model) == [0, 1] and freeze_layers(None, model) is None
    with pytest.raises(ConfigError, match="did you mean 'mosaic'"):
        ultralytics_args(TrainOptions(), model, {"mosiac": 0.5})
    with pytest.raises(ConfigError, match="perception option"):
        ultralytics_args(TrainOptions(), model, {"lr0": 0.1})
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        options_from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="scheduler"):
        ultralytics_args(TrainOptions(scheduler="step"), model)


def test_label_smoothing_only_on_object_anchors():
    logits = torch.tensor([[[2.0, -1.0], [-3.0, 0.5]]])
    targets = torch.tensor([[[0.8, 0.0], [0.0, 0.0]]])
    loss = SmoothBCEWithLogits(0.2)(logits, targets)
    # object anchor: targets 0.8 * 0.8 + 0.1 = 0.74 and 0 * 0.8 + 0.1 = 0.1; the background anchor keeps 0
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, torch.tensor([[[0.74, 0.1], [0.0, 0.0]]]), reduction="none"
    )
    torch.testing.assert_close(loss, expected)
    assert not torch.equal(
        loss, torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    )


def _check_onnx(weights: Path, strides: list[float]) -> None:
    import onnxruntime as ort

    onnx_path = Path(load_yolo(weights).export(format="onnx", imgsz=64, simplify=False, verbose=False))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 64, 64), np.float32)})
    anchors = sum((64 // int(s)) ** 2 for s in strides)
    assert out.shape == (1, 4 + 2, anchors)  # xywh + 2 classes per anchor point


def test_baseline_exports_to_onnx(trained):
    _check_onnx(trained["best"], [8.0, 16.0, 32.0])


@pytest.mark.slow
@pytest.mark.parametrize("name", MODIFIED)
def test_modified_architectures_build_train_and_export(name, trained, tmp_path):
    torch.set_num_threads(2)
    model = load_yolo(ROOT / "configs" / f"{name}.yaml")
    strides = model.model.stride.tolist()
    assert strides == ([4.0, 8.0, 16.0, 32.0] if name.endswith("p2") else [8.0, 16.0, 32.0])
    best = train_yolo(ROOT / "configs" / f"{name}.yaml", trained["data"], tmp_path / name, options_from_dict(TINY),
                      {**TINY_EXTRA, "val": False})  # fmt: skip
    _check_onnx(best, strides)


def test_predict_video_writes_mp4_and_labels_per_frame(trained, tmp_path):
    from perception.models.yolo.predict import predict_yolo
    from perception.models.yolo.predictor import YoloPredictor

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (96, 64))
    for image in sorted((trained["data"].parent / "images" / "val").glob("*.png")):
        writer.write(cv2.imread(str(image)))
    writer.release()
    counts = predict_yolo(YoloPredictor(trained["best"], imgsz=64), video, tmp_path / "out")
    assert counts["images"] == 4
    assert sorted(p.name for p in (tmp_path / "out" / "labels").iterdir()) == [f"clip_{i:06d}.txt" for i in range(4)]
    assert cv2.VideoCapture(str(tmp_path / "out" / "clip.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 4


def _cli(argv: list[str]):
    import argparse

    from perception.cli import detect2d

    parser = argparse.ArgumentParser()
    detect2d.add_detect2d_arguments(parser)
    return detect2d, parser.parse_args(argv)


def test_cli_val_and_predict(trained, tmp_path, capsys):
    detect2d, args = _cli(["--weights", str(trained["best"]), "--data", str(trained["data"]), "--out", str(tmp_path / "v"),
                           "imgsz=64", "batch=4"])  # fmt: skip
    assert detect2d.val(args) == 0
    assert "mAP50" in capsys.readouterr().out and (tmp_path / "v" / "metrics.json").is_file()
    source = trained["data"].parent / "images" / "val"
    detect2d, args = _cli(
        ["--weights", str(trained["best"]), "--source", str(source), "--out", str(tmp_path / "p"), "imgsz=64"]
    )
    assert detect2d.predict(args) == 0
    assert len(list((tmp_path / "p" / "labels").glob("*.txt"))) == 4


def test_cli_errors_are_config_errors(trained):
    detect2d, args = _cli(["--data", "d.yaml"])
    with pytest.raises(ConfigError, match="--model"):
        detect2d.train(args)
    detect2d, args = _cli(["--model", "m.yaml", "--data", "d.yaml", "oops"])
    with pytest.raises(ConfigError, match="unexpected"):
        detect2d.train(args)
    detect2d, args = _cli(["--weights", str(trained["best"]), "--source", "x", "confidence=0.5"])
    with pytest.raises(ConfigError, match="conf="):
        detect2d.predict(args)


def test_cli_does_not_redefine_the_commands_flags():
    import argparse

    from perception.cli import detect2d

    parser = argparse.ArgumentParser()
    parser.add_argument("--data", help="the 3D command's own flag")
    parser.add_argument("overrides", nargs="*")
    detect2d.add_detect2d_arguments(parser)  # would raise on a duplicate option
    args = parser.parse_args(["--task", "detect2d", "--data", "d.yaml", "epochs=3"])
    assert args.task == "detect2d" and detect2d._key_values(args) == {"epochs": 3}


def test_compare_runs_reads_the_training_run(trained):
    from perception.models.yolo.compare import compare_runs, format_comparison

    (row,) = compare_runs([trained["best"].parents[1]], imgsz=64)
    assert row["model"] == "yolo11n" and row["epochs"] == 1 and 2.5 < row["params_M"] < 2.7
    assert "yolo11n" in format_comparison([row])


def test_ultralytics_keeps_our_thread_count():
    from ultralytics.utils.torch_utils import select_device

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        env.import_ultralytics()
        select_device("cpu", verbose=False)  # ultralytics alone would set cores - 1 (1 here)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
