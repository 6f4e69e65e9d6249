"""Training and evaluating the classification networks (``detector.models.backbones``) on the detection engine.

    detector classify train --model resnet18 --data data/shapes --epochs 10 --out runs/cls-resnet18
    detector classify train --model resnet18 --data fashion-mnist:data/fmnist --download --img-size 96
    detector classify train --model resnet18 --data my_images/ --pretrained runs/cls-resnet18/best.pt
    detector classify eval --weights runs/cls-resnet18/best.pt --data data/shapes

The data sets are :mod:`detector.data.classify`'s. From scratch each network trains with its recipe
(:mod:`detector.models.recipes`: the book's SGD rates and Xavier init); the flags given override it, and the
log says which it used. With ``--pretrained`` the new head learns at 10x the learning rate of the pretrained
body (the book's fine-tuning recipe), with AdamW.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from detector.data.classify import load_classification
from detector.data.loader import GlobalBatchSampler
from detector.engine.config import ClassifyConfig
from detector.engine.distributed import all_reduce_sum, wrap_ddp
from detector.engine.loop import (
    OptimizerSpec,
    Stopping,
    Task,
    fit,
    log,
    param_groups,
    require_one_batch,
    resolve_device,
    seed_everything,
)
from detector.engine.runs import training_run
from detector.models.backbones import BACKBONES, xavier_init
from detector.models.checkpoint import CheckpointError, load_checkpoint

HEAD_LR_SCALE = 10.0  # the book: a new head learns 10x faster than a pretrained body


def load_pretrained(model: torch.nn.Module, path: str, skip_prefixes: tuple[str, ...] = ("head.",)) -> dict:
    """Copy the weights of a classifier checkpoint into ``model`` where names and shapes agree, except under
    ``skip_prefixes`` (the new head). Raises ``CheckpointError`` on a shape mismatch; returns a report."""
    ckpt = load_checkpoint(path)
    source, target = ckpt["model"], model.state_dict()
    mismatched = [f"{k}: {tuple(v.shape)} in the checkpoint, {tuple(target[k].shape)} here"
                  for k, v in source.items() if k in target and not k.startswith(skip_prefixes) and v.shape != target[k].shape]
    if mismatched:
        raise CheckpointError(f"{path}: {len(mismatched)} weights do not fit this model ({ckpt.get('model_name')} "
                              f"-> here): " + "; ".join(mismatched[:5]))
    loaded = {k: v for k, v in source.items() if k in target and not k.startswith(skip_prefixes)}
    model.load_state_dict({**target, **{k: v.to(target[k].dtype) for k, v in loaded.items()}})
    fresh = [k for k in target if k not in loaded]
    return {"loaded": len(loaded), "fresh": len(fresh), "fresh_names": fresh, "from": str(path),
            "from_model": ckpt.get("model_name")}


@torch.no_grad()
def accuracy(model: torch.nn.Module, dataset: Dataset, device: torch.device, batch_size: int = 128,
             workers: int = 0, rank: int = 0, world: int = 1) -> dict:
    """Top-1 accuracy (and mean loss) of ``model`` on ``dataset``; under DDP each of ``world`` ranks scores
    every ``world``-th image and the counts are summed over the ranks."""
    model.eval()
    correct, total, loss = 0, 0, 0.0
    part = dataset if world == 1 else torch.utils.data.Subset(dataset, range(rank, len(dataset), world))
    for x, y in DataLoader(part, batch_size=batch_size, num_workers=workers):
        logits = model(x.to(device))
        y = y.to(device)
        correct += int((logits.argmax(1) == y).sum())
        loss += float(F.cross_entropy(logits.float(), y, reduction="sum"))
        total += len(y)
    if world > 1:
        correct, total, loss = all_reduce_sum([correct, total, loss], device)
        correct, total = int(correct), int(total)
    return {"top1": correct / max(total, 1), "val_loss": loss / max(total, 1), "images": total}


def train_classifier(cfg: ClassifyConfig) -> dict:
    """Train a classifier as ``cfg`` says; returns the last val metrics (``top1``). Under torchrun this process
    is one rank of a DDP job (see :mod:`detector.engine.distributed`); the run folder is locked for the run."""
    with training_run(cfg, ClassifyConfig) as run:
        return _train_classifier(run.cfg, run.ckpt, run.ranks, run.device_name)


def _train_classifier(cfg: ClassifyConfig, ckpt: dict | None, ranks, device_name: str) -> dict:
    if cfg.model not in BACKBONES:
        raise ValueError(f"unknown model {cfg.model!r}; choose one of {sorted(BACKBONES)}")
    device = resolve_device(device_name)
    seed_everything(cfg.seed)
    classes, train_set, val_set = load_classification(cfg.data, cfg.img_size, cfg.download, log)
    model = build_classifier(cfg, len(classes), fresh=ckpt is None).to(device)
    if ranks.main:
        log(cfg.recipe_line() + (" (resumed: the run's own settings)" if ckpt is not None else ""))
    lr_scale = None
    if cfg.pretrained and ckpt is None:
        report = load_pretrained(model, cfg.pretrained)
        log(f"pretrained: {report['loaded']} tensors from {report['from']} ({report['from_model']}); "
            f"{report['fresh']} start fresh (the head, at {HEAD_LR_SCALE:g}x the learning rate)")
        lr_scale = {"head.": HEAD_LR_SCALE}
    gen = torch.Generator().manual_seed(cfg.seed)
    sampler = GlobalBatchSampler(len(train_set), cfg.batch_size, gen, shuffle=True, drop_last=True,
                                 rank=ranks.rank, world=ranks.world)
    loader = DataLoader(train_set, batch_sampler=sampler, num_workers=cfg.workers, generator=gen,
                        pin_memory=device.type == "cuda")
    step_model = wrap_ddp(model, device, ranks)
    require_one_batch(cfg.data, len(train_set), cfg.batch_size)
    _, recipe = cfg.recipe()
    epochs = recipe.epochs_for(cfg.epochs, len(loader))
    if ckpt is None and cfg.time is None and "epochs" not in cfg.overrides and epochs > cfg.epochs:
        if ranks.main:
            log(f"epochs: {epochs} instead of {cfg.epochs}: the recipe asks for at least {recipe.min_steps:,} steps, "
                f"and an epoch of {len(train_set):,} images is {len(loader)} (--epochs sets them)")
        cfg.epochs = epochs

    def batches(epoch: int):
        return ({"images": x, "labels": y} for x, y in loader)

    task = Task(
        model=model, step_model=step_model, param_groups=param_groups(model, cfg.weight_decay, lr_scale),
        batches=batches,
        steps_per_epoch=len(loader),
        losses=lambda m, b: {"loss_ce": F.cross_entropy(m(b["images"]).float(), b["labels"])}, loss_names=["loss_ce"],
        evaluate=(lambda m: accuracy(m, val_set, device, workers=cfg.workers, rank=ranks.rank, world=ranks.world))
        if val_set is not None else None,
        metric_names=["top1", "val_loss"], batch_gen=gen,
        describe={"model_name": cfg.model, "model_kwargs": cfg.model_kwargs, "classes": classes, "task": "classify",
                  "img_size": cfg.img_size, "command": cfg.command, "data": cfg.data, "pretrained": cfg.pretrained})
    return fit(task, epochs=cfg.epochs, lr=cfg.lr, out=Path(cfg.out), device=device, amp=cfg.amp,
               warmup_epochs=cfg.warmup_epochs, eval_every=cfg.eval_every, config=asdict(cfg), resume=ckpt,
               stopping=Stopping(cfg.time, cfg.patience), ranks=ranks,
               optimizer=OptimizerSpec(cfg.optimizer, cfg.momentum, cfg.schedule))


def build_classifier(cfg: ClassifyConfig, num_classes: int, fresh: bool = True) -> torch.nn.Module:
    """``cfg.model`` for ``num_classes`` RGB classes; with the book's Xavier init (``cfg.init``) when it starts
    from scratch (``fresh``: not resumed)."""
    model = BACKBONES[cfg.model](num_classes, 3, **cfg.model_kwargs)
    return xavier_init(model) if fresh and cfg.init == "xavier" else model


def load_classifier(path: str, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
    ckpt = load_checkpoint(path)
    if ckpt.get("task") != "classify" or ckpt.get("model_name") not in BACKBONES:
        raise CheckpointError(f"{path}: not a classifier checkpoint (made by `detector classify train`)")
    model = BACKBONES[ckpt["model_name"]](len(ckpt["classes"]), 3, **ckpt.get("model_kwargs", {}))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt
