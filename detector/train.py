"""Training a detector: ``detector train`` (and ``python -m detector.train``) call :func:`train`.

    detector train --model tiny_ssd_plus --data data/shapes --epochs 60 --out runs/shapes
    detector train --resume runs/shapes/last.pt          # continues exactly where it stopped

On the GPU when there is one (bf16/fp16 autocast with ``--amp``, channels_last, optional ``torch.compile``,
the device-resident data path when the data fits); on the CPU otherwise, the same code. Warm-up then
cosine learning rate; val mAP every ``eval_every`` epochs; ``last.pt`` and ``best.pt`` (by val AP) written
atomically; ``results.csv`` and ``results.png`` in the run folder. Ctrl-C saves ``last.pt`` and stops
cleanly; a NaN or inf loss stops with a message that says where and what to try.
"""

from __future__ import annotations

import csv
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from detector.checkpoint import load_checkpoint, save_checkpoint
from detector.data.check import prepare_split
from detector.data.device import DeviceData
from detector.data.loader import DetectionDataset, make_loader
from detector.evaluate import STAT_KEYS, coco_evaluate, predict_records
from detector.models import build_model
from detector.plots import plot_training


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to try."""


@dataclass
class TrainConfig:
    model: str = "tiny_ssd_plus"  # a name in detector.models.MODELS
    data: str = "data/shapes"  # any data set detector.data.dataset.load_dataset reads
    epochs: int = 60
    batch_size: int = 32
    lr: float = 3e-3  # AdamW peak learning rate
    weight_decay: float = 5e-4  # not applied to biases and norm weights
    warmup_epochs: float = 1.0  # linear warm-up from lr / 10, then cosine down to lr / 100
    img_size: int = 256
    device: str = "auto"  # auto: cuda when available
    amp: bool = False  # bf16 autocast (fp16 with loss scaling where bf16 is missing)
    compile: bool = False  # torch.compile the model
    workers: int = 2  # DataLoader worker processes
    seed: int = 0
    resume: str | None = None  # a last.pt to continue from
    out: str = "runs/train"
    eval_every: int = 5  # epochs between val evaluations (and the last epoch)
    data_path: str = "auto"  # "loader", "device" (decoded images kept on the device), auto: device on a GPU
    skip_invalid: bool = False  # drop invalid boxes/images (reported) instead of refusing the data
    model_kwargs: dict = field(default_factory=dict)
    command: str = ""  # the command line, kept in the checkpoint


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"--device {name}: CUDA is not available on this machine")
    return device


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_lambda(total_steps: int, warmup_steps: int):
    def f(step: int) -> float:
        if step < warmup_steps:
            return 0.1 + 0.9 * step / max(1, warmup_steps)
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f


def _rng_state(batch_gen: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()[1], "batches": batch_gen.get_state(),
             "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64))}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, batch_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), 624, 0, 0.0))
    batch_gen.set_state(state["batches"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _log(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def train(cfg: TrainConfig) -> dict:
    """Train as ``cfg`` says; return the last evaluated val metrics (empty without a val split)."""
    ckpt = load_checkpoint(cfg.resume) if cfg.resume else None
    if ckpt is not None:  # a resumed run keeps its model, data and schedule; only the device may change
        saved = ckpt.get("config", {})
        keep = {k: saved[k] for k in ("model", "data", "epochs", "batch_size", "lr", "weight_decay", "warmup_epochs",
                                      "img_size", "seed", "eval_every", "model_kwargs", "out") if k in saved}
        cfg = TrainConfig(**{**asdict(cfg), **keep, "resume": cfg.resume})
    device = resolve_device(cfg.device)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    policy = "skip" if cfg.skip_invalid else "refuse"

    data, train_records = prepare_split(cfg.data, "train", policy, log=_log)
    val_records = prepare_split(cfg.data, "val", policy, log=_log, data=data)[1] if "val" in data.splits else []
    if not train_records:
        raise TrainingError(f"{cfg.data}: the train split has no usable images")
    category_ids = data.category_ids or list(range(1, len(data.classes) + 1))

    raw_model = build_model(cfg.model, len(data.classes), **cfg.model_kwargs).to(device)
    raw_model = raw_model.to(memory_format=torch.channels_last)
    model = torch.compile(raw_model) if cfg.compile else raw_model
    optimizer = torch.optim.AdamW(param_groups(raw_model, cfg.weight_decay), lr=cfg.lr)

    use_device_data = cfg.data_path == "device" or (cfg.data_path == "auto" and device.type == "cuda")
    batch_gen = torch.Generator(device=device if use_device_data else "cpu").manual_seed(cfg.seed)
    if use_device_data:
        try:
            device_data = DeviceData(train_records, cfg.img_size, device)
        except MemoryError as e:
            if cfg.data_path == "device":
                raise TrainingError(str(e)) from None
            _log(f"{e}; using the DataLoader path")
            use_device_data = False
            batch_gen = torch.Generator().manual_seed(cfg.seed)
    if not use_device_data:
        dataset = DetectionDataset(train_records, cfg.img_size, train=True, seed=cfg.seed)
        loader = make_loader(dataset, cfg.batch_size, shuffle=True, workers=cfg.workers, drop_last=True,
                             generator=batch_gen)
    steps_per_epoch = max(1, len(train_records) // cfg.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)))

    amp_dtype = None
    if cfg.amp:
        amp_dtype = torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    start_epoch, best_ap, metrics = 0, -1.0, {}
    if ckpt is not None:
        raw_model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        _set_rng_state(ckpt["rng"], batch_gen)
        start_epoch, best_ap, metrics = ckpt["epoch"] + 1, ckpt.get("best_ap", -1.0), ckpt.get("metrics", {})
        _log(f"resuming {cfg.resume} at epoch {start_epoch + 1}/{cfg.epochs}")

    def state(epoch: int) -> dict:
        return {"model": raw_model.state_dict(), "model_name": cfg.model, "model_kwargs": cfg.model_kwargs,
                "classes": data.classes, "category_ids": category_ids, "img_size": cfg.img_size,
                "command": cfg.command, "epoch": epoch, "device": device_name, "metrics": metrics, "best_ap": best_ap,
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "rng": _rng_state(batch_gen), "config": asdict(cfg),
                "data": str(cfg.data)}

    results_csv = out / "results.csv"
    fields = ["epoch", "lr", "loss", "loss_cls", "loss_box", "images_per_s", "epoch_s", *STAT_KEYS[:6]]
    if start_epoch == 0 or not results_csv.exists():
        with open(results_csv, "w", newline="") as f:
            csv.writer(f).writerow(fields)

    epoch, saved_epoch = start_epoch, start_epoch - 1  # saved_epoch: the epoch last.pt holds
    try:
        for epoch in range(start_epoch, cfg.epochs):
            model.train()
            if use_device_data:
                batches = device_data.batches(cfg.batch_size, shuffle=True, drop_last=True, generator=batch_gen)
            else:
                dataset.set_epoch(epoch)
                batches = iter(loader)
            sums, seen, t0 = {"loss": 0.0, "loss_cls": 0.0, "loss_box": 0.0}, 0, time.perf_counter()
            bar = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                       dynamic_ncols=True, file=sys.stderr)
            for step, batch in enumerate(bar):
                images = batch["images"].to(device, non_blocking=True)
                targets = {k: batch[k].to(device, non_blocking=True) for k in ("boxes", "labels", "valid")}
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    losses = model(images, targets)
                loss = sum(losses.values())
                value = loss.item()
                if not math.isfinite(value):
                    raise TrainingError(
                        f"the loss is {value} at epoch {epoch + 1}, step {step + 1} "
                        f"({ {k: round(v.item(), 4) for k, v in losses.items()} }): try a lower --lr (now {cfg.lr}), "
                        f"training without --amp, or `detector data check {cfg.data}`; last.pt holds the last good epoch")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                seen += len(images)
                sums["loss"] += value * len(images)
                for k, v in losses.items():
                    sums[k] += v.item() * len(images)
                bar.set_postfix(loss=f"{sums['loss'] / seen:.3f}", img_s=f"{seen / (time.perf_counter() - t0):.0f}")
            bar.close()
            epoch_s = time.perf_counter() - t0
            row = {"epoch": epoch + 1, "lr": f"{scheduler.get_last_lr()[0]:.6f}", "epoch_s": f"{epoch_s:.1f}",
                   "images_per_s": f"{seen / epoch_s:.1f}", **{k: f"{v / max(seen, 1):.4f}" for k, v in sums.items()}}
            if val_records and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
                results = predict_records(raw_model, val_records, cfg.img_size, category_ids, device,
                                          batch_size=cfg.batch_size, workers=cfg.workers, amp_dtype=amp_dtype)
                metrics, _ = coco_evaluate(val_records, data.classes, category_ids, results)
                row.update({k: f"{metrics[k]:.4f}" for k in STAT_KEYS[:6]})
                if metrics["AP"] > best_ap:
                    best_ap = metrics["AP"]
                    save_checkpoint(state(epoch), out / "best.pt")
            with open(results_csv, "a", newline="") as f:
                csv.DictWriter(f, fields).writerow(row)
            save_checkpoint(state(epoch), out / "last.pt")
            saved_epoch = epoch
            plot_training(results_csv, out / "results.png")
            ap = f", val AP {metrics['AP']:.3f} AP50 {metrics['AP50']:.3f}" if "AP" in row else ""
            _log(f"epoch {epoch + 1}/{cfg.epochs}: loss {row['loss']}, {row['images_per_s']} images/s{ap}")
    except KeyboardInterrupt:
        # last.pt stays the state at the end of the last complete epoch, so --resume is exact; it redoes this one
        if saved_epoch < 0 and ckpt is None:  # nothing saved yet: keep the partial first epoch's weights
            save_checkpoint(state(-1), out / "last.pt")
        _log(f"interrupted: {out / 'last.pt'} holds {saved_epoch + 1} complete epochs; "
             f"continue with: detector train --resume {out / 'last.pt'}")
        raise
    if not val_records:
        save_checkpoint(state(cfg.epochs - 1), out / "best.pt")  # without a val split, the last is the best known
    return metrics


def main(argv: list[str] | None = None) -> int:
    from detector.cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
