"""Training engine: every optimizer / scheduler / loss name takes a real step; the Trainer on a tiny
synthetic dataset writes its outputs, resumes exactly, fine-tunes, stops early and rejects bad input."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from perception.engine import Trainer, resolve_config
from perception.engine.builders import OPTIMIZERS, build_optimizer, build_scheduler
from perception.engine.callbacks import Callback, default_callbacks
from perception.errors import CheckpointError, ConfigError, DataError
from perception.models import build_model, load_checkpoint
from perception.models.heads import LossTerms
from perception.models.losses import LOSSES

torch.set_num_threads(1)  # the CPU is shared; one thread is fastest under load

TINY_MODEL = {
    "point_range": [0.0, -16.0, -3.0, 32.0, 16.0, 1.0], "voxel_size": [1.0, 1.0], "encoder_channels": [8],
    "backbone_channels": [8, 8, 8], "backbone_layers": [0, 0, 0], "neck_channels": [8, 8, 8], "max_detections": 20,
}  # fmt: skip
SCHEDULERS = ("step", "lambda", "constant", "linear", "exponential", "multiplicative", "cosine", "onecycle")


def tiny_data(
    tmp_path: Path, sequences: int = 2, val_sequences: int = 1, classes: str = "[Car, Pedestrian, Cyclist]"
) -> Path:
    path = tmp_path / "syn.yaml"
    path.write_text(
        f"format: synthetic\nroot: .\nclasses: {classes}\n"
        f"options: {{sequences: {sequences}, frames: 3, val_sequences: {val_sequences}, rings: 8, azimuth_steps: 256}}\n"
    )
    return path


def tiny_cfg(tmp_path: Path, **over) -> dict:
    base = {"data": str(over.pop("data", None) or tiny_data(tmp_path)), "project": str(tmp_path / "runs"), "epochs": 2, "batch_size": 2, "progress": False,
            "tensorboard": False, "plots": False, "val_split": "", "model": dict(TINY_MODEL)}  # fmt: skip
    return resolve_config({**base, **over})


def _linear_step(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> None:
    loss = model(torch.ones(4, 3)).pow(2).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_takes_a_real_step(name):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in model.parameters()]
    cfg = resolve_config({"optimizer": name, "lr": 0.1})
    opt = build_optimizer(model, cfg)
    _linear_step(opt, model)
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert type(opt).__name__ == {"adam": "Adam", "adamw": "AdamW", "adagrad": "Adagrad"}.get(name, "SGD")
    assert opt.param_groups[0].get("nesterov", False) == (name == "nesterov")


@pytest.mark.parametrize("name", SCHEDULERS)
def test_every_scheduler_steps_the_learning_rate(name):
    model = torch.nn.Linear(3, 2)
    cfg = resolve_config(
        {
            "scheduler": name,
            "lr": 1.0,
            "epochs": 4,
            "warmup_epochs": 1,
            "step_epochs": 2,
            "gamma": 0.5,
            "start_factor": 0.1,
        }
    )
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch=2)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(8):
        _linear_step(opt, model)
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    expected_at = {
        "step": {3: 1.0, 4: 0.5, 8: 0.25}, "constant": {0: 0.1, 2: 1.0}, "linear": {0: 0.1, 2: 1.0},
        "exponential": {2: 0.5, 4: 0.25}, "multiplicative": {2: 0.5, 4: 0.25}, "cosine": {0: 0.5, 1: 1.0},
    }.get(name, {})  # fmt: skip
    for step, lr in expected_at.items():
        assert lrs[step] == pytest.approx(lr), (name, lrs)
    assert len({round(v, 9) for v in lrs}) > 1, (name, lrs)
    if name in ("onecycle", "cosine", "lambda"):
        assert lrs[-1] < max(lrs)  # decays towards the end


def test_unknown_names_list_the_valid_ones():
    model = torch.nn.Linear(3, 2)
    with pytest.raises(
        ConfigError, match=r"optimizer 'adamx' \(did you mean 'adam.?'\?\); valid: adagrad, adam, adamw"
    ):
        build_optimizer(model, resolve_config({"optimizer": "adamx"}))
    opt = build_optimizer(model, resolve_config({}))
    with pytest.raises(ConfigError, match="scheduler 'cosin' .*valid: constant, cosine"):
        build_scheduler(opt, resolve_config({"scheduler": "cosin"}), 1)
    with pytest.raises(ConfigError, match="lambda_rule 'square'; valid: inverse_sqrt, linear, poly"):
        build_scheduler(opt, resolve_config({"scheduler": "lambda", "lambda_rule": "square"}), 1)
    with pytest.raises(ConfigError, match="loss_box 'huber'; valid: l1, mse, smooth_l1"):
        LossTerms(box="huber")
    with pytest.raises(ConfigError, match=r"unknown key override.epoch \(did you mean 'epochs'\?\)"):
        resolve_config({}, ["epoch=3"])


LOSS_CASES = [(term, name, head) for term, names in LOSSES.items() for name in names for head in ("anchor", "center")]


@pytest.mark.parametrize(("term", "name", "head"), LOSS_CASES)
def test_every_loss_name_trains_a_detector_step(term, name, head):
    torch.manual_seed(0)
    losses = LossTerms(**{term: name}, label_smoothing=0.1)
    model = build_model({**TINY_MODEL, "head": head}, losses)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    pts = torch.rand(300, 4) * torch.tensor([32.0, 32.0, 3.0, 1.0]) - torch.tensor([0.0, 16.0, 2.5, 0.0])
    box = [torch.tensor([[10.0, 2.0, -1.0, 3.9, 1.6, 1.5, 0.3]])]
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    terms = model(pts, torch.zeros(300, dtype=torch.long), 1, box, [torch.tensor([0])])
    loss = sum(terms.values())
    assert torch.isfinite(loss) and terms[term].item() > 0
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert not torch.equal(
        before["head.cls.weight" if head == "anchor" else "head.heat.weight"],
        model.state_dict()["head.cls.weight" if head == "anchor" else "head.heat.weight"],
    )


def test_fit_writes_checkpoints_csv_plots_and_config(tmp_path):
    cfg = tiny_cfg(
        tmp_path, val_split="val", val_max_frames=1, plots=True, tensorboard=True, metric="bev/Car/moderate/R40"
    )
    trainer = Trainer(cfg)
    history = trainer.fit()
    run = trainer.run_dir
    assert [r["epoch"] for r in history] == [1, 2] and "val/bev/Car/moderate/R40" in history[-1]
    for name in ("weights/last.pt", "weights/best.pt", "results.csv", "loss.png", "lr.png", "ap.png", "config.yaml"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").iterdir())
    ckpt = load_checkpoint(run / "weights" / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["step"] == 2 and ckpt["config"] == cfg
    assert {"optimizer", "scheduler", "scaler", "rng", "versions"} <= set(ckpt)
    assert len((run / "results.csv").read_text().strip().splitlines()) == 3


class _Interrupt(Callback):
    def __init__(self, after_epoch: int):
        self.after = after_epoch

    def on_epoch_end(self, trainer):
        if trainer.epoch == self.after:
            raise KeyboardInterrupt


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path):
    cfg = tiny_cfg(tmp_path, epochs=3, model={**TINY_MODEL, "dropout": 0.2})
    full = Trainer(cfg, run_dir=tmp_path / "full")
    full.fit()
    run = tmp_path / "cut"
    cut = Trainer(cfg, run_dir=run, callbacks=[*default_callbacks(cfg, run, True), _Interrupt(after_epoch=1)])
    with pytest.raises(KeyboardInterrupt):
        cut.fit()
    assert load_checkpoint(run / "weights" / "last.pt")["epoch"] == 1
    resumed = Trainer(cfg, resume=load_checkpoint(run / "weights" / "last.pt"), run_dir=run)
    resumed.fit()
    assert resumed.global_step == full.global_step == 3
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_fine_tune_partial_init_freeze_and_lr_groups(tmp_path, capsys):
    first = Trainer(tiny_cfg(tmp_path, epochs=1))
    first.fit()
    weights = first.run_dir / "weights" / "last.pt"
    cfg = tiny_cfg(tmp_path, epochs=1, init_from=str(weights), freeze=["encoder.*"], lr_mult={"backbone.*": 0.1},
                   model={**TINY_MODEL, "neck_se": True})  # fmt: skip
    tuned = Trainer(cfg)
    assert "head.cls.weight" in tuned.init_report["loaded"]
    assert any(k.startswith("neck.se.") for k in tuned.init_report["missing_in_checkpoint"])
    assert "missing_in_checkpoint" in capsys.readouterr().out
    groups = {g["name"]: g["lr"] for g in tuned.optimizer.param_groups}
    assert groups["backbone.*"] == pytest.approx(0.1 * groups["default"])
    encoder_before = {k: v.clone() for k, v in tuned.model.encoder.named_parameters()}
    tuned.fit()
    for k, v in tuned.model.encoder.named_parameters():
        assert torch.equal(v, encoder_before[k]) and not v.requires_grad


def test_early_stopping_stops_when_the_metric_stalls(tmp_path):
    cfg = tiny_cfg(tmp_path, epochs=5, val_split="val", val_max_frames=1, patience=1, lr=0.0, scheduler="constant")
    history = Trainer(cfg).fit()
    assert len(history) == 2  # epoch 2 did not beat epoch 1 (lr 0: nothing changes)


def test_amp_bf16_step_on_cpu(tmp_path):
    trainer = Trainer(tiny_cfg(tmp_path, amp=True, max_steps=1, epochs=1))
    history = trainer.fit()
    assert trainer.global_step == 1 and math.isfinite(history[-1]["train/loss"])


def test_epoch_losses_are_means_of_the_step_losses(tmp_path):
    """Without a progress bar too (it used to divide by the disabled bar's count, 0 -> 1: a sum)."""
    trainer = Trainer(tiny_cfg(tmp_path, epochs=1, batch_size=1, progress=False))
    steps: list[float] = []
    step = trainer.step
    trainer.step = lambda batch: steps.append(step(batch)["loss"]) or {"loss": steps[-1]}
    history = trainer.fit()
    assert len(steps) == 3 and history[0]["train/loss"] == pytest.approx(sum(steps) / 3)


def test_bad_input_fails_before_writing(tmp_path):
    runs = tmp_path / "runs"
    empty = tiny_data(tmp_path, sequences=1, val_sequences=1)
    with pytest.raises(DataError, match="dataset is empty"):  # one sequence: all of it is "train", "val" is empty
        Trainer(tiny_cfg(tmp_path, data=str(empty), train_split="val"))
    with pytest.raises(ConfigError, match="validation split 'val' is empty"):
        Trainer(tiny_cfg(tmp_path, data=str(empty), val_split="val"))
    other = tiny_data(tmp_path, classes="[Car, Pedestrian]")
    with pytest.raises(ConfigError, match=r"dataset classes \['Car', 'Pedestrian'\] do not match the model's"):
        Trainer(tiny_cfg(tmp_path, data=str(other)))
    with pytest.raises(ConfigError, match="freeze patterns"):
        Trainer(tiny_cfg(tmp_path, freeze=["nothing.*"]))
    assert not runs.exists() or not any(runs.iterdir())
    first = Trainer(tiny_cfg(tmp_path, epochs=1))
    first.fit()
    ckpt = load_checkpoint(first.run_dir / "weights" / "last.pt")
    with pytest.raises(CheckpointError, match="do not fit this architecture"):
        Trainer(tiny_cfg(tmp_path, model={**TINY_MODEL, "head": "center"}), resume=ckpt, run_dir=first.run_dir)


def test_schedule_keeps_pace_with_the_time_budget(tmp_path):
    """Under max_minutes, onecycle reaches its end when the clock does, not after epochs x steps."""
    cfg = tiny_cfg(
        tmp_path, epochs=1000, max_minutes=1e-4, lr=0.01, min_lr_ratio=0.01, scheduler="onecycle", warmup_epochs=100
    )
    trainer = Trainer(cfg)
    trainer.fit()
    assert trainer.global_step == 1  # the 6 ms budget ends after the first step
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 0.01, rel=1e-3)
    untimed = Trainer(tiny_cfg(tmp_path, epochs=1000, max_steps=1, lr=0.01, scheduler="onecycle", warmup_epochs=100))
    untimed.fit()
    assert untimed.optimizer.param_groups[0]["lr"] < 0.01 / 20  # still at the start of the warm-up
