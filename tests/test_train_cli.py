"""``perception train / val / predict / compare`` end to end on a tiny synthetic dataset, bad input
through the CLI, and DDP through torchrun on CPU (gloo)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from perception.cli import main
from perception.data.kitti_format import read_label_file

torch.set_num_threads(1)  # the CPU is shared; one thread is fastest under load

TINY_MODEL = {
    "point_range": [0.0, -16.0, -3.0, 32.0, 16.0, 1.0], "voxel_size": [1.0, 1.0], "encoder_channels": [8],
    "backbone_channels": [8, 8, 8], "backbone_layers": [0, 0, 0], "neck_channels": [8, 8, 8], "max_detections": 20,
    "score_thresholds": [0.0, 0.0, 0.0],
}  # fmt: skip
COMMON = ["progress=false", "tensorboard=false", "batch_size=2", "val_max_frames=2"]


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    data = tmp_path / "syn.yaml"
    data.write_text(
        "format: synthetic\nroot: .\nclasses: [Car, Pedestrian, Cyclist]\n"
        "options: {sequences: 2, frames: 3, val_sequences: 1, rings: 8, azimuth_steps: 256}\n"
    )
    model = tmp_path / "tiny.yaml"
    model.write_text(yaml.safe_dump({"model": TINY_MODEL}))
    return {"data": data, "model": model, "runs": tmp_path / "runs"}


def _train(files: dict[str, Path], *extra: str) -> int:
    return main(
        [
            "train",
            "--config",
            str(files["model"]),
            "--data",
            str(files["data"]),
            f"project={files['runs']}",
            *COMMON,
            *extra,
        ]
    )


def test_train_val_predict_compare_and_resume(files, tmp_path, capsys):
    assert _train(files, "epochs=1", "name=a") == 0
    assert _train(files, "epochs=1", "name=b", "lr=0.01", "optimizer=sgd") == 0
    run_a = files["runs"] / "a"
    assert "run folder:" in capsys.readouterr().out
    assert (
        main(["val", "--weights", str(run_a / "weights" / "best.pt"), "--data", str(files["data"]), "--split", "val"])
        == 0
    )
    out = capsys.readouterr().out
    assert "Car" in out and "R40" in out and "counted ground truth" in out
    pred = tmp_path / "pred"
    assert (
        main(
            [
                "predict",
                "--weights",
                str(run_a / "weights" / "last.pt"),
                "--data",
                str(files["data"]),
                "--split",
                "val",
                "--out",
                str(pred),
            ]
        )
        == 0
    )
    labels = sorted(pred.rglob("*.txt"))
    assert len(labels) == 3
    objs = read_label_file(labels[0])
    assert objs.score is not None and len(objs) > 0  # threshold 0: the top boxes survive NMS
    assert main(["compare", str(run_a), str(files["runs"] / "b")]) == 0
    table = capsys.readouterr().out
    assert "| lr | optimizer |" in table.replace("name | ", "") and "adamw" in table and "sgd" in table
    assert main(["train", "--resume", str(run_a / "weights" / "last.pt"), "epochs=2"]) == 0
    assert torch.load(run_a / "weights" / "last.pt", weights_only=False)["epoch"] == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["epoch=3"], "unknown key override.epoch (did you mean 'epochs'?)"),
        (["optimizer=adamm"], "unknown optimizer 'adamm'"),
        (["scheduler=cosine_annealing"], "unknown scheduler 'cosine_annealing'"),
        (["loss_cls=focal_loss"], "unknown loss_cls 'focal_loss'"),
        (["model.head=centre"], "unknown model.head 'centre'"),
        (["train_split=nope"], "split"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(files, capsys, extra, message):
    assert _train(files, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and len(err.splitlines()) == 1
    assert not files["runs"].exists() or not any(files["runs"].rglob("*.pt"))


def test_val_rejects_a_dataset_with_other_classes(files, tmp_path, capsys):
    assert _train(files, "epochs=1", "val_split=", "name=a") == 0
    other = tmp_path / "two.yaml"
    other.write_text(files["data"].read_text().replace("[Car, Pedestrian, Cyclist]", "[Car, Pedestrian]"))
    assert main(["val", "--weights", str(files["runs"] / "a" / "weights" / "last.pt"), "--data", str(other)]) == 2
    assert "do not match the model's" in capsys.readouterr().err


DDP_SCRIPT = """
import json, sys, torch
from perception.engine import Trainer, resolve_config
cfg = resolve_config(json.loads(sys.argv[1]))
trainer = Trainer(cfg, run_dir=sys.argv[2])
trainer.fit()
torch.save(trainer.model.state_dict(), f"{sys.argv[2]}/rank{trainer.dist.rank}.pt")
print("world", trainer.dist.world_size, "steps", trainer.global_step)
"""


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_end_with_identical_weights(files, tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    cfg = {"data": str(files["data"]), "epochs": 1, "batch_size": 1, "val_split": "", "progress": False, "tensorboard": False,
           "plots": False, "model": TINY_MODEL, "threads": 1}  # fmt: skip
    run = tmp_path / "run"
    run.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        str(script),
        json.dumps(cfg),
        str(run),
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("2 steps 2") == 2  # 3 frames padded to 4 over 2 ranks, batch 1: 2 steps each
    s0, s1 = torch.load(run / "rank0.pt"), torch.load(run / "rank1.pt")
    fresh = [k for k in s0 if "num_batches_tracked" not in k]
    assert all(torch.equal(s0[k], s1[k]) for k in fresh if "running_" not in k)
    assert (run / "weights" / "last.pt").is_file() and (run / "config.yaml").is_file()
