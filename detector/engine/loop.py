"""The training engine shared by detection (``detector train``) and classification (``detector classify train``).

:func:`fit` runs the epochs of a :class:`Task`: AdamW (or SGD) with warm-up then cosine (or constant) LR,
optional autocast (bf16, or fp16 with loss scaling), a progress bar with loss and images/s, evaluation every ``eval_every``
epochs, ``results.csv`` and ``results.png``, ``last.pt`` and ``best.pt`` (by the task's key metric) written
atomically, an exact ``--resume`` (model, optimizer, scheduler, scaler, epoch, RNG states), Ctrl-C that
keeps ``last.pt`` at the last complete epoch, and a clear stop on a NaN or inf loss. With a task's ``ema``
(:mod:`detector.engine.ema`) the average is updated after every step, evaluated, and saved as the weights. ``time`` (hours) fits the
number of epochs, and the schedule with it, to a wall-clock budget; ``patience`` stops when the key metric
has not improved for that many epochs (:class:`Stopping`). Under torchrun
(``ranks``, see :mod:`detector.engine.distributed`) every rank trains, and rank 0 alone logs and writes files.
"""

from __future__ import annotations

import csv
import io
import math
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from detector.core.errors import InputError, setting
from detector.core.files import write_atomic
from detector.core.progress import logger, on_terminal
from detector.engine.checkpoint import save_checkpoint
from detector.engine.distributed import Dist, all_reduce_sum, broadcast_from_main
from detector.engine.ema import ModelEMA
from detector.evaluation.plots import plot_training


class TrainingError(InputError, RuntimeError):
    """Training cannot go on; the message says why and what to try."""


def require_one_batch(data: str, images: int, batch_size: int) -> None:
    """:class:`TrainingError` when ``images`` training images fill no batch: with ``drop_last`` every epoch would
    be empty and learn nothing."""
    if images < batch_size:
        raise TrainingError(f"{data}: its {images} training images are fewer than one batch of {batch_size}; give "
                            f"{setting('batch_size', images)} or less")


@dataclass
class Task:
    """What :func:`fit` needs to know about a training job; everything else is in its config."""

    model: nn.Module  # the raw model (weights are saved from it)
    step_model: nn.Module  # what the loop calls: the model, or torch.compile of it
    param_groups: list[dict]
    batches: Callable[[int], Iterable[dict]]  # epoch -> that epoch's training batches, each with "images"
    steps_per_epoch: int
    losses: Callable[[nn.Module, dict], dict[str, torch.Tensor]]  # (step_model, batch) -> named losses
    loss_names: list[str]
    evaluate: Callable[[nn.Module], dict] | None  # model -> metrics (None: no val split)
    metric_names: list[str]  # the metrics written to results.csv; the first is the key for best.pt
    batch_gen: torch.Generator  # the data order and augmentation: saved and restored with the checkpoint
    describe: dict = field(default_factory=dict)  # what the checkpoint carries for eval, predict and the app
    data_hint: str = ""  # for messages: the data set
    ema: ModelEMA | None = None  # a moving average of the weights: evaluated and saved in place of the model


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrainingError(f"{setting('device', name)}: not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"{setting('device', name)}: CUDA is not available on this machine; use {setting('device', 'cpu')} (or auto)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise TrainingError(f"{setting('device', name)}: this machine has {torch.cuda.device_count()} GPUs (cuda:0 ... "
                            f"cuda:{torch.cuda.device_count() - 1})")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise TrainingError(f"{setting('device', name)}: MPS is not available on this machine; use {setting('device', 'cpu')} (or auto)")
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads > 1 else ''})"


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def param_groups(model: nn.Module, weight_decay: float, lr_scale: dict[str, float] | None = None) -> list[dict]:
    """Weight decay on weights, not on biases and norm parameters; ``lr_scale`` maps a parameter-name prefix
    to a learning-rate multiplier (e.g. ``{"head.": 10}`` for the book's fine-tuning recipe)."""
    groups: dict[tuple, list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        scale = next((s for prefix, s in (lr_scale or {}).items() if name.startswith(prefix)), 1.0)
        groups.setdefault((p.ndim <= 1, scale), []).append(p)
    return [{"params": ps, "weight_decay": 0.0 if no_decay else weight_decay, "lr_scale": scale}
            for (no_decay, scale), ps in groups.items()]


def lr_lambda(total_steps: int, warmup_steps: int, schedule: str = "cosine") -> Callable[[int], float]:
    """Linear warm-up from 1/10 of the peak, then cosine down to 1/100 of it (or the peak throughout: ``constant``)."""
    def f(step: int) -> float:
        if step < warmup_steps:
            return 0.1 + 0.9 * step / max(1, warmup_steps)
        if schedule == "constant":
            return 1.0
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f


def rng_state(batch_gen: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()[1], "batches": batch_gen.get_state(),
             "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64))}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, batch_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), 624, 0, 0.0))
    batch_gen.set_state(state["batches"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def log(message: str) -> None:
    """A message of the training run, through the ``detector`` logger (the CLI shows it on stderr)."""
    logger.info(message)


def amp_dtype_for(device: torch.device, amp: bool) -> torch.dtype | None:
    """bf16 where the device has it (every CPU), else fp16 (with loss scaling); None without ``amp``."""
    if not amp:
        return None
    return torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16


def start_results_csv(path: Path, fields: list[str], start_epoch: int) -> None:
    """A new ``results.csv`` with its header; when resuming, the rows after the checkpoint's epoch are dropped
    (a run killed between writing the row and saving the checkpoint)."""
    if start_epoch == 0 or not path.exists():
        with open(path, "w", newline="") as f:
            csv.writer(f).writerow(fields)
        return
    with open(path, newline="") as f:
        kept = [r for r in csv.DictReader(f) if r.get("epoch", "").isdigit() and int(r["epoch"]) <= start_epoch]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(kept)
    write_atomic(path, text.getvalue())  # a kill or a full disk here leaves the old rows whole


@dataclass(frozen=True)
class OptimizerSpec:
    """Which optimizer and schedule :func:`fit` builds: AdamW (the default) or SGD with ``momentum``; after the
    warm-up a ``cosine`` down to lr / 100 or a ``constant`` lr."""

    name: str = "adamw"
    momentum: float = 0.0
    schedule: str = "cosine"

    def make(self, groups: list[dict], lr: float) -> torch.optim.Optimizer:
        if self.name == "sgd":
            return torch.optim.SGD(groups, lr=lr, momentum=self.momentum)
        if self.name == "adamw":
            return torch.optim.AdamW(groups, lr=lr)
        raise ValueError(f"unknown optimizer {self.name!r}; use sgd or adamw")


@dataclass
class Optimization:
    """The optimizer, its schedule and the loss scaler of one run, saved and restored together."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    lr: float
    spec: OptimizerSpec = field(default_factory=OptimizerSpec)

    @classmethod
    def build(cls, task: Task, lr: float, epochs: int, warmup_epochs: float, device: torch.device, amp: bool,
              spec: OptimizerSpec | None = None):
        spec = spec or OptimizerSpec()
        groups = [{**g, "lr": lr * g.pop("lr_scale", 1.0)} for g in task.param_groups]
        optimizer = spec.make(groups, lr)
        total, warmup = epochs * task.steps_per_epoch, int(warmup_epochs * task.steps_per_epoch)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total, warmup, spec.schedule))
        amp_dtype = amp_dtype_for(device, amp)
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        return cls(optimizer, scheduler, scaler, amp_dtype, lr, spec)

    def state(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict()}

    def load(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])

    def retarget(self, task: Task, epochs: int, warmup_epochs: float) -> None:
        """Stretch or shrink the schedule to ``epochs`` from the step it is at (``--time``)."""
        total, warmup = epochs * task.steps_per_epoch, int(warmup_epochs * task.steps_per_epoch)
        self.scheduler.lr_lambdas = [lr_lambda(total, warmup, self.spec.schedule) for _ in self.optimizer.param_groups]

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()


@dataclass
class Stopping:
    """When a run ends before ``epochs``: a wall-clock budget (``--time``, hours) and ``--patience`` (epochs
    without a better key metric). Both survive ``--resume`` through the checkpoint (``elapsed_s``, ``best_epoch``)."""

    hours: float | None = None
    patience: int | None = None
    elapsed: float = 0.0  # seconds spent before this process (a resumed run)
    best_epoch: int = -1
    started: float = field(default_factory=lambda: time.perf_counter())

    def spent(self) -> float:
        return self.elapsed + time.perf_counter() - self.started

    def epochs(self, done: int, epochs: int) -> int:
        """The run's length after ``done`` epochs: with a time budget, as many as fit at the mean epoch time so
        far (at least ``done``: stop now when the budget is spent); otherwise ``epochs``."""
        if not self.hours:
            return epochs
        return max(done, int(self.hours * 3600 / (self.spent() / done)))

    def patience_over(self, epoch: int) -> bool:
        return bool(self.patience) and epoch - self.best_epoch >= self.patience


def _not_finite(value: float, losses: dict, epoch: int, step: int, lr: float, data_hint: str) -> TrainingError:
    parts = {k: round(v.item(), 4) for k, v in losses.items()}
    return TrainingError(
        f"the loss is {value} at epoch {epoch + 1}, step {step + 1} ({parts}): try a lower learning rate (now "
        f"{setting('lr', lr)}), training without {setting('amp', True)}, or checking the data"
        f"{f' (detector data check {data_hint})' if data_hint else ''}; last.pt holds the last good epoch")


def train_epoch(task: Task, epoch: int, epochs: int, opt: Optimization, device: torch.device, ranks: Dist) -> dict:
    """One epoch of steps; returns the row of ``results.csv`` without the metrics (loss means over all ranks)."""
    task.step_model.train()
    sums, seen, t0 = dict.fromkeys(["loss", *task.loss_names], 0.0), 0, time.perf_counter()
    bar = tqdm(task.batches(epoch), total=task.steps_per_epoch, desc=f"epoch {epoch + 1}/{epochs}",
               leave=False, dynamic_ncols=True, file=sys.stderr, disable=not (ranks.main and on_terminal()))
    for step, batch in enumerate(bar):
        batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        with torch.autocast(device.type, dtype=opt.amp_dtype, enabled=opt.amp_dtype is not None):
            losses = task.losses(task.step_model, batch)
        loss = sum(losses.values())
        value = loss.item()
        if ranks.enabled:  # every rank sees the same value, so all stop together on a NaN
            value = all_reduce_sum([value], device)[0] / ranks.world
        if not math.isfinite(value):
            raise _not_finite(value, losses, epoch, step, opt.lr, task.data_hint)
        opt.step(loss)
        if task.ema is not None:
            task.ema.update(task.model)
        n = len(batch["images"])
        seen += n
        sums["loss"] += value * n
        for k, v in losses.items():
            sums[k] += v.item() * n
        bar.set_postfix(loss=f"{sums['loss'] / seen:.3f}", img_s=f"{seen / (time.perf_counter() - t0):.0f}")
    bar.close()
    if ranks.enabled:  # the epoch's losses over all ranks' images
        totals = all_reduce_sum([seen, *sums.values()], device)
        seen, sums = int(totals[0]), dict(zip(sums, totals[1:]))
    epoch_s = time.perf_counter() - t0
    return {"epoch": epoch + 1, "lr": f"{opt.scheduler.get_last_lr()[0]:.6f}", "epoch_s": f"{epoch_s:.1f}",
            "images_per_s": f"{seen / epoch_s:.1f}", **{k: f"{v / max(seen, 1):.4f}" for k, v in sums.items()}}


def fit(task: Task, *, epochs: int, lr: float, out: Path, device: torch.device, amp: bool = False,
        warmup_epochs: float = 1.0, eval_every: int = 5, config: dict | None = None, resume: dict | None = None,
        ranks: Dist | None = None, stopping: Stopping | None = None, optimizer: OptimizerSpec | None = None) -> dict:
    """Train ``task`` for ``epochs`` (or until ``stopping`` says); return the last evaluation's metrics.
    ``resume`` is a loaded last.pt. With ``ranks.enabled``, ``task.step_model`` is the DDP-wrapped model and
    ``task.evaluate`` gathers over the ranks (its metrics are the same on every rank). ``optimizer``: AdamW with
    warm-up and cosine unless it says otherwise."""
    ranks, stop = ranks or Dist(), stopping or Stopping()
    main, model, config = ranks.main, task.model, dict(config or {})
    if main:
        out.mkdir(parents=True, exist_ok=True)
    opt = Optimization.build(task, lr, epochs, warmup_epochs, device, amp, optimizer)
    key = task.metric_names[0] if task.metric_names else None
    start_epoch, best, metrics = 0, -math.inf, {}
    if resume is not None:
        if task.ema is not None:
            task.ema.load(resume, model)
        else:
            model.load_state_dict(resume["model"])
        opt.load(resume)
        set_rng_state(resume["rng"], task.batch_gen)
        start_epoch, best, metrics = resume["epoch"] + 1, resume.get("best", -math.inf), resume.get("metrics", {})
        stop.elapsed, stop.best_epoch = resume.get("elapsed_s", 0.0), resume.get("best_epoch", -1)
        if main:
            log(f"resuming at epoch {start_epoch + 1}/{epochs}")

    def state(epoch: int) -> dict:
        weights = task.ema.state(model) if task.ema else {"model": model.state_dict()}
        return {**task.describe, **weights, "epoch": epoch, "device": device_name(device),
                "metrics": metrics, "best": best, **opt.state(), "rng": rng_state(task.batch_gen),
                "config": {**config, "epochs": epochs}, "elapsed_s": stop.spent(), "best_epoch": stop.best_epoch}

    results_csv = out / "results.csv"
    fields = ["epoch", "lr", "loss", *task.loss_names, "images_per_s", "epoch_s", *task.metric_names]
    if main:
        start_results_csv(results_csv, fields, start_epoch)
    saved_epoch, epoch = start_epoch - 1, start_epoch  # the epoch last.pt holds; the one being trained
    try:
        while epoch < epochs:
            row = train_epoch(task, epoch, epochs, opt, device, ranks)
            epochs = _fitted_epochs(stop, epoch, epochs, opt, task, warmup_epochs, ranks, device)
            evaluated = task.evaluate is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs)
            if evaluated:
                metrics = task.evaluate(task.ema.module if task.ema else model)
                row.update({k: f"{metrics[k]:.4f}" for k in task.metric_names})
                if metrics[key] > best:
                    best, stop.best_epoch = metrics[key], epoch
                    if main:
                        save_checkpoint(state(epoch), out / "best.pt")
            if evaluated and stop.patience_over(epoch):
                epochs = epoch + 1  # this epoch is the last: --resume --epochs N goes on
                if main:
                    log(f"stopping: val {key} has not improved for {epoch - stop.best_epoch} epochs "
                        f"({setting('patience', stop.patience)}); best {best:.4f} at epoch {stop.best_epoch + 1}")
            saved_epoch, epoch = epoch, epoch + 1
            if main:
                with open(results_csv, "a", newline="") as f:
                    csv.DictWriter(f, fields).writerow(row)
                save_checkpoint(state(saved_epoch), out / "last.pt")
                _report(task, row, results_csv, out, metrics if evaluated else None, epochs)
    except KeyboardInterrupt:
        # last.pt stays the state at the end of the last complete epoch, so --resume is exact; it redoes this one
        if not main:
            raise
        if saved_epoch < 0 and resume is None:  # nothing saved yet: keep the partial first epoch's weights
            save_checkpoint(state(-1), out / "last.pt")
        log(f"interrupted: {out / 'last.pt'} holds {saved_epoch + 1} complete epochs; continue with {setting('resume')} "
            f"{out / 'last.pt'}")
        raise
    if task.evaluate is None and main:
        save_checkpoint(state(epochs - 1), out / "best.pt")  # without a val split, the last is the best known
    return metrics


def _fitted_epochs(stop: Stopping, epoch: int, epochs: int, opt: Optimization, task: Task, warmup_epochs: float,
                   ranks: Dist, device: torch.device) -> int:
    """The run's length after ``epoch`` (``--time``); the schedule follows when it changes. Under DDP rank 0's
    clock decides, so every rank stops at the same epoch."""
    fitted = broadcast_from_main(stop.epochs(epoch + 1, epochs), ranks)
    if fitted != epochs:
        opt.retarget(task, fitted, warmup_epochs)
        if ranks.main and (epoch == 0 or fitted == epoch + 1):
            log(f"{setting('time', f'{stop.hours:g}', placeholder=True)} h: {fitted} epochs fit ({stop.spent() / (epoch + 1):.0f} s each so far)")
    return fitted


def _report(task: Task, row: dict, results_csv: Path, out: Path, metrics: dict | None, epochs: int) -> None:
    """Rank 0, after an epoch is saved: the plot and the log line."""
    plot_training(results_csv, out / "results.png", task.loss_names, task.metric_names[:2])
    shown = ", ".join(f"val {k} {metrics[k]:.3f}" for k in task.metric_names[:2]) if metrics else ""
    log(f"epoch {row['epoch']}/{epochs}: loss {row['loss']}, {row['images_per_s']} images/s"
        + (f", {shown}" if shown else ""))
