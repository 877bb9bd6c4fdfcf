"""The training loop for 3D detectors: ``Trainer(cfg).fit()``; ``perception train`` drives it.

``fit`` -> ``train_one_epoch`` -> ``step``; validation, checkpoints, early stopping and logging
are callbacks (``perception.engine.callbacks``). Every choice comes from the resolved config
(``perception.engine.run_config``); the config is saved in the run folder and in every checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from perception.config import save_config
from perception.data.torch_dataset import AugmentConfig, DetectionDataset, collate
from perception.engine import distributed as dist
from perception.engine.builders import build_optimizer, build_scheduler, freeze
from perception.engine.callbacks import Callback, MetricTracker, default_callbacks
from perception.engine.rng import rng_state, seed_everything, set_rng_state
from perception.errors import ConfigError
from perception.models.detector import build_model_from_config, model_settings


class EpochSampler(torch.utils.data.Sampler):
    """A permutation of ``range(n)`` drawn from ``(seed, epoch)``: the same on resume."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class Trainer:
    """Builds data, model, optimizer and scheduler from ``cfg``; ``resume`` continues a checkpoint."""

    def __init__(
        self,
        cfg: dict[str, Any],
        resume: dict[str, Any] | None = None,
        callbacks: list[Callback] | None = None,
        run_dir: str | Path | None = None,
    ):
        self.cfg, self.settings = cfg, model_settings(cfg)
        self.dist = dist.init_distributed(cfg["device"])
        torch.set_num_threads(max(1, int(cfg["threads"])))
        self.device = f"cuda:{self.dist.local_rank}" if cfg["device"] == "cuda" and self.dist.enabled else cfg["device"]
        seed_everything(cfg["seed"], cfg["deterministic"])
        self.train_set, self.val_set = self._datasets()
        # channels-last conv weights make the whole BEV network run NHWC: 8-10 % faster steps with
        # oneDNN on CPU (BENCHMARKS.md), the layout tensor cores prefer on CUDA
        self.model = build_model_from_config(cfg).to(self.device, memory_format=torch.channels_last)
        self.init_report = (
            init_from_checkpoint(self.model, cfg["init_from"]) if cfg["init_from"] and resume is None else None
        )
        self.frozen = freeze(self.model, list(cfg["freeze"] or []))
        self.optimizer = build_optimizer(self.model, cfg)
        self.loader = self._loader()
        self.scheduler = build_scheduler(self.optimizer, cfg, len(self.loader))
        self.amp_dtype = torch.float16 if self.device.startswith("cuda") else torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda", enabled=bool(cfg["amp"]) and self.device.startswith("cuda"))
        self.epoch, self.global_step, self.history = 0, 0, []
        self.stop, self.improved = False, False
        self.run_dir = Path(run_dir) if run_dir else new_run_dir(cfg, self.dist.is_main)
        self.callbacks = callbacks if callbacks is not None else default_callbacks(cfg, self.run_dir, self.dist.is_main)
        if resume is not None:
            self._restore(resume)
        self.net = self._wrap(self.model)
        if self.dist.is_main:
            save_config(cfg, self.run_dir / "config.yaml")

    # ---- the loop
    def fit(self) -> list[dict[str, Any]]:
        """Train until ``epochs`` (or ``max_steps``, or early stopping); returns per-epoch metrics."""
        self.fit_start = time.perf_counter()
        try:
            while self.epoch < self.cfg["epochs"] and not self.stop:
                t0 = time.perf_counter()
                row = {"epoch": self.epoch + 1, **self.train_one_epoch()}
                if self._validation_due():
                    row.update(self.validate())
                row.update(
                    step=self.global_step,
                    lr=self.optimizer.param_groups[0]["lr"],
                    time_s=round(time.perf_counter() - t0, 2),
                )
                self.history.append(row)
                self.epoch += 1
                self.emit("on_epoch_end")
                self.stop = dist.broadcast_flag(self.stop, self.dist)
                self.log(
                    " ".join(
                        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in row.items()
                        if not k.startswith("val/") or k.endswith("/moderate/R40")
                    )
                )
            self.emit("on_fit_end")
        finally:
            dist.cleanup(self.dist)
        return self.history

    def train_one_epoch(self) -> dict[str, float]:
        self.net.train()
        self.loader.sampler.set_epoch(self.epoch)
        self.train_set.set_epoch(self.epoch)
        sums: dict[str, float] = {}
        steps = 0
        bar = tqdm(
            self.loader,
            desc=f"epoch {self.epoch + 1}/{self.cfg['epochs']}",
            disable=not (self.cfg["progress"] and self.dist.is_main),
            leave=False,
        )
        for batch in bar:
            losses = self.step(batch)
            steps += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix(loss=f"{losses['loss']:.3f}")
            if self._out_of_budget():
                self.stop = True
                break
        return {f"train/{k}": v / max(1, steps) for k, v in sums.items()}

    def step(self, batch: dict[str, Any]) -> dict[str, float]:
        """One optimisation step; returns the loss terms as floats."""
        dev = self.device
        with torch.autocast(
            device_type="cuda" if dev.startswith("cuda") else "cpu", dtype=self.amp_dtype, enabled=bool(self.cfg["amp"])
        ):
            terms = self.net(
                batch["points"].to(dev), batch["batch_idx"].to(dev), batch["batch_size"],
                [b.to(dev) for b in batch["gt_boxes"]], [lb.to(dev) for lb in batch["gt_labels"]],
            )  # fmt: skip
        loss = sum(terms.values())
        if self.cfg["l1_penalty"]:
            terms["l1"] = self.cfg["l1_penalty"] * sum(
                p.abs().sum() for p in self.model.parameters() if p.requires_grad
            )
            loss = loss + terms["l1"]
        if not torch.isfinite(loss):
            raise ConfigError(
                f"loss became {loss.item()} at step {self.global_step}: lower lr, enable grad_clip or check the data"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg["grad_clip"]:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.requires_grad], self.cfg["grad_clip"]
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self._advance_schedule()
        self.global_step += 1
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items()}}

    def validate(self) -> dict[str, float]:
        """KITTI AP on the validation split (rank 0; the other ranks wait)."""
        from perception.engine.evaluate import evaluate_model

        metrics: dict[str, float] = {}
        if self.dist.is_main:
            _, summary = evaluate_model(
                self.model, self.val_set, self.settings, self.device, self.cfg["val_max_frames"]
            )
            metrics = {k: round(v, 4) for k, v in summary.items() if k.endswith("/R40")}
        dist.barrier(self.dist)
        return metrics

    def _advance_schedule(self) -> None:
        """Step the LR schedule. Under ``max_minutes`` a closed-form schedule (onecycle, cosine, lambda)
        also keeps pace with the clock, so it reaches its end when the time budget does, however fast
        the steps run on a shared CPU; it never moves back."""
        self.scheduler.step()
        budget_s = 60 * self.cfg["max_minutes"]
        if not budget_s or self.cfg["scheduler"] not in ("onecycle", "cosine", "lambda"):
            return
        total = max(2, self.cfg["epochs"] * len(self.loader))
        due = min(int(total * (time.perf_counter() - self.fit_start) / budget_s), total - 1)
        if due > self.scheduler.last_epoch:
            self.scheduler.last_epoch = due - 1
            self.scheduler.step()

    def _out_of_budget(self) -> bool:
        c = self.cfg
        over_time = c["max_minutes"] and time.perf_counter() - self.fit_start > 60 * c["max_minutes"]
        return bool((c["max_steps"] and self.global_step >= c["max_steps"]) or over_time)

    # ---- state
    def checkpoint_state(self) -> dict[str, Any]:
        tracker = next((c for c in self.callbacks if isinstance(c, MetricTracker)), None)
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "epoch": self.epoch, "step": self.global_step, "rng": rng_state(),
            "config": self.cfg, "history": self.history, "tracker": tracker.state_dict() if tracker else None,
            "metrics": self.history[-1] if self.history else {},
        }  # fmt: skip

    def _restore(self, ckpt: dict[str, Any]) -> None:
        from perception.models.checkpoint import load_state_strict

        load_state_strict(self.model, ckpt["model"], "resume checkpoint")
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.global_step, self.history = ckpt["epoch"], ckpt["step"], list(ckpt.get("history", []))
        for c in self.callbacks:
            if isinstance(c, MetricTracker) and ckpt.get("tracker"):
                c.load_state_dict(ckpt["tracker"])
        set_rng_state(ckpt["rng"])

    # ---- helpers
    def emit(self, event: str) -> None:
        for c in self.callbacks:
            getattr(c, event)(self)

    def log(self, msg: str) -> None:
        if self.dist.is_main:
            tqdm.write(msg)

    @property
    def has_validation(self) -> bool:
        return self.val_set is not None

    def _validation_due(self) -> bool:
        last = self.epoch + 1 >= self.cfg["epochs"] or self.stop
        return self.has_validation and ((self.epoch + 1) % max(1, self.cfg["val_every"]) == 0 or last)

    def _datasets(self):
        from perception.data.registry import load_dataset

        cfg = self.cfg
        if not cfg["data"]:
            raise ConfigError("no dataset: pass --data datasets/<name>.yaml (or data=...)")
        train = load_dataset(cfg["data"], split=cfg["train_split"] or None)
        check_classes(train.class_names, self.settings["classes"], cfg["data"])
        aug = AugmentConfig(
            tuple(cfg["aug_rotation"]), tuple(cfg["aug_scale"]), bool(cfg["aug_flip"]), int(cfg["gt_samples"])
        )
        s = self.settings
        train_set = DetectionDataset(train, s["point_channels"], s["point_range"], aug, seed=cfg["seed"])
        val = load_dataset(cfg["data"], split=cfg["val_split"]) if cfg["val_split"] else None
        if val is not None and len(val) == 0:
            raise ConfigError(f"validation split {cfg['val_split']!r} is empty", path=cfg["data"])
        return train_set, val

    def _loader(self) -> torch.utils.data.DataLoader:
        n = len(self.train_set)
        if self.dist.enabled:
            sampler = torch.utils.data.DistributedSampler(
                self.train_set, self.dist.world_size, self.dist.rank, shuffle=True, seed=self.cfg["seed"]
            )
        else:
            sampler = EpochSampler(n, self.cfg["seed"])
        return torch.utils.data.DataLoader(
            self.train_set, batch_size=self.cfg["batch_size"], sampler=sampler, collate_fn=collate,
            num_workers=self.cfg["workers"], drop_last=n > self.cfg["batch_size"] * self.dist.world_size,
        )  # fmt: skip

    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.dist.enabled:
            return model
        ids = [self.dist.local_rank] if self.device.startswith("cuda") else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False)


def check_classes(data_classes: tuple[str, ...], model_classes: list[str], data_path: Any) -> None:
    if tuple(data_classes) != tuple(model_classes):
        raise ConfigError(
            f"dataset classes {list(data_classes)} do not match the model's {list(model_classes)}; "
            f"set model.classes={list(data_classes)} (and per-class lists such as anchor_sizes) or use another dataset",
            path=data_path,
        )


def new_run_dir(cfg: dict[str, Any], is_main: bool) -> Path:
    """``project/name``, or ``project/name2``, ``name3``... when it exists (created by rank 0)."""
    base = Path(cfg["project"]) / cfg["name"]
    path, i = base, 2
    while path.exists():
        path, i = base.with_name(f"{base.name}{i}"), i + 1
    if is_main:
        path.mkdir(parents=True)
    return path


def init_from_checkpoint(model: torch.nn.Module, path: str) -> dict[str, list[str]]:
    """Load every weight whose name and shape match; report the rest (fine-tuning)."""
    from perception.models.checkpoint import load_checkpoint

    state = load_checkpoint(path)["model"]
    mine = model.state_dict()
    loaded = {k: v for k, v in state.items() if k in mine and mine[k].shape == v.shape}
    report = {
        "loaded": sorted(loaded),
        "shape_mismatch": sorted(k for k in state if k in mine and mine[k].shape != state[k].shape),
        "missing_in_checkpoint": sorted(set(mine) - set(state)),
        "unexpected_in_checkpoint": sorted(set(state) - set(mine)),
    }
    if not loaded:
        raise ConfigError(f"init_from: no weight of {path} fits this model", path=path)
    model.load_state_dict(loaded, strict=False)
    print(f"init_from {path}: " + ", ".join(f"{len(v)} {k}" for k, v in report.items()))
    for k in ("shape_mismatch", "missing_in_checkpoint", "unexpected_in_checkpoint"):
        if report[k]:
            print(f"  {k}: {', '.join(report[k][:8])}{' ...' if len(report[k]) > 8 else ''}")
    return report


def train(config: str | Path | dict[str, Any], overrides: list[str] | dict[str, Any] = ()) -> Trainer:
    """Resolve ``config`` with ``overrides`` (``["data=datasets/synthetic.yaml", "max_minutes=4"]``),
    train, and return the trainer (``run_dir`` holds weights/best.pt, results.csv and the PNG curves)."""
    from perception.engine.run_config import resolve_config

    trainer = Trainer(resolve_config(config, overrides))
    trainer.fit()
    return trainer
