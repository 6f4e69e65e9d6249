"""Training a detector: ``detector train`` calls :func:`train`.

    detector train --model tiny_ssd_plus --data data/shapes --epochs 60 --out runs/shapes
    detector train --resume runs/shapes/last.pt          # continues exactly where it stopped
    detector train --devices 4 ...                       # DDP on 4 GPUs of this node (torchrun; see distributed.py)
    torchrun --nproc_per_node 4 -m detector train ...    # the same, and multi-node with torchrun's flags

On the GPU when there is one (bf16/fp16 autocast with ``--amp``, channels_last, optional ``torch.compile``,
the device-resident data path when the data fits); on the CPU otherwise, the same code. The loop itself
(schedule, checkpoints, resume, results.csv, Ctrl-C, NaN) is :func:`detector.engine.loop.fit`.

The recipe options (all off by default): ``--letterbox`` (:mod:`detector.data.transforms`, and the inference
path), ``--multi-scale`` (:mod:`detector.data.multiscale`), ``--mosaic`` and ``--mixup``
(:mod:`detector.data.mosaic`), ``--ema-decay`` (:mod:`detector.engine.ema`), ``--anchors auto``
(:mod:`detector.engine.autoanchor`).
"""

from __future__ import annotations

import functools
from dataclasses import asdict
from pathlib import Path

import torch

from detector.core.errors import setting
from detector.core.progress import plural
from detector.data.check import prepare_split
from detector.data.device import DeviceData
from detector.data.loader import DetectionDataset, make_loader
from detector.data.multiscale import resize_batch, with_sizes
from detector.data.negatives import background_records, refuse_annotated_copies
from detector.data.records import default_category_ids
from detector.engine.autoanchor import describe_fit, fit_anchors
from detector.engine.config import (
    CPU_BATCH,
    GPU_BATCH,
    ConfigError,
    TrainConfig,
    default_batch_size,
    multi_scale_sizes,
)
from detector.engine.distributed import Dist, broadcast_from_main, gather_to_main, sync_batchnorm, wrap_ddp
from detector.engine.ema import ModelEMA
from detector.engine.loop import (
    Stopping,
    Task,
    TrainingError,
    fit,
    log,
    param_groups,
    require_one_batch,
    resolve_device,
    seed_everything,
)
from detector.engine.mining import HardNegatives, mining_step
from detector.engine.runs import training_run
from detector.evaluation.coco import STAT_KEYS, coco_evaluate
from detector.evaluation.ground_truth import ground_truth
from detector.evaluation.predict import predict_records
from detector.models.checkpoint import load_checkpoint
from detector.models.names import DETECTOR_MIN_INPUT
from detector.models.registry import MODELS, build_model
from detector.models.resnet_body import load_backbone

__all__ = ["TrainingError", "train"]


def train_batches(records, cfg: TrainConfig, device: torch.device, ranks: Dist | None = None,
                  epoch_records=None):
    """``(epoch -> batches, batch generator)``: the device-resident path on a GPU (or when asked), else the
    DataLoader path; under torchrun always the DataLoader path, each rank loading its part of each batch. With
    ``--multi-scale`` each batch names its input size (``input_size``; see :func:`batch_losses`).
    ``epoch_records``: ``epoch -> that epoch's records`` (``--hard-negatives``), of the same length."""
    batches, gen = _data_path(records, cfg, device, ranks or Dist(), epoch_records)
    if not cfg.multi_scale:
        return batches, gen
    sizes = multi_scale_sizes(cfg.img_size, cfg.multi_scale, DETECTOR_MIN_INPUT.get(cfg.model, 1))
    return (lambda epoch: with_sizes(batches(epoch), sizes, cfg.seed, epoch)), gen


def batch_losses(model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
    """The model's losses on ``batch`` (on the device), resized first to the size multi-scale drew for it."""
    if "input_size" in batch:
        batch = resize_batch(batch, batch["input_size"])
    return model(batch["images"], batch)


def _data_path(records, cfg: TrainConfig, device: torch.device, ranks: Dist, epoch_records=None):
    use_device = not ranks.enabled and (cfg.data_path == "device" or (cfg.data_path == "auto" and device.type == "cuda"))
    if use_device and (cfg.letterbox or cfg.mosaic or cfg.mixup or cfg.hard_negatives):  # device: refused earlier
        log(f"{setting('letterbox')}, {setting('mosaic')}, {setting('mixup')} and {setting('hard_negatives')} are "
            "done by the DataLoader path: using it")
        use_device = False
    if use_device:
        try:
            data = DeviceData(records, cfg.img_size, device, max_pixels=cfg.max_pixels)
            gen = torch.Generator(device=device).manual_seed(cfg.seed)
            return lambda epoch: data.batches(cfg.batch_size, shuffle=True, drop_last=True, generator=gen), gen
        except MemoryError as e:
            if cfg.data_path == "device":
                raise TrainingError(str(e)) from None
            log(f"{e}; using the DataLoader path")
    gen = torch.Generator().manual_seed(cfg.seed)
    dataset = DetectionDataset(records, cfg.img_size, train=True, seed=cfg.seed, letterbox=cfg.letterbox,
                               max_pixels=cfg.max_pixels, mosaic=cfg.mosaic, mixup=cfg.mixup)
    loader = make_loader(dataset, cfg.batch_size, shuffle=True, workers=cfg.workers, drop_last=True, generator=gen,
                         rank=ranks.rank, world=ranks.world)

    def batches(epoch: int):
        dataset.set_epoch(epoch)
        if epoch_records is not None:
            dataset.records = epoch_records(epoch)  # the same length: the sampler's count holds
        return iter(loader)

    return batches, gen


def val_metrics(model: torch.nn.Module, records: list, gt: dict, classes: list[str], category_ids: list[int],
                device: torch.device, ranks: Dist, batch_size: int, workers: int = 0,
                amp_dtype: torch.dtype | None = None, max_pixels: int | None = None) -> dict:
    """The val split's metrics (pycocotools' against ``gt``) under any number of processes: each rank predicts
    its share (every ``world``-th record, each with its own image id), rank 0 scores what they all found against
    the whole split, and every rank gets the metrics."""
    ids = [im["id"] for im in gt["images"]]
    part = slice(ranks.rank, None, ranks.world)
    results = predict_records(model, records[part], category_ids, device, batch_size=batch_size, workers=workers,
                              amp_dtype=amp_dtype, ids=ids[part], max_pixels=max_pixels)
    parts = gather_to_main(results, ranks)
    metrics = None
    if ranks.main:
        metrics = coco_evaluate(gt, classes, category_ids, [r for p in parts for r in p])[0]
    return broadcast_from_main(metrics, ranks)


def train(cfg: TrainConfig) -> dict:
    """Train a detector as ``cfg`` says; return the last evaluated val metrics with ``images``, the val images
    they were measured on (empty without a val split).
    Under torchrun (``WORLD_SIZE`` > 1) this process is one rank of a DDP job. The run folder is locked for the
    run (see :mod:`detector.engine.runs`); ``--resume`` continues in the checkpoint's own folder."""
    with training_run(cfg, TrainConfig) as run:
        return _train(run.cfg, run.ckpt, run.ranks, run.device_name, run.say)


def _train(cfg: TrainConfig, ckpt: dict | None, ranks: Dist, device_name: str, say) -> dict:
    if cfg.model not in MODELS:
        raise ConfigError(f"{setting('model', cfg.model)}: choose one of {', '.join(sorted(MODELS))}")
    device = resolve_device(device_name)
    if cfg.batch_size is None:
        cfg.batch_size = default_batch_size(device.type, ranks.world)
        say(f"batch size {cfg.batch_size}: the default on {'a CPU' if device.type == 'cpu' else device.type} "
            f"({CPU_BATCH} on a CPU, {GPU_BATCH} on a GPU; set it with {setting('batch_size')})")
    seed_everything(cfg.seed)
    policy = "skip" if cfg.skip_invalid else "refuse"
    data, train_records = prepare_split(cfg.data, "train", policy, log=say, max_pixels=cfg.max_pixels)
    val_records = (prepare_split(cfg.data, "val", policy, log=say, data=data, max_pixels=cfg.max_pixels)[1]
                   if "val" in data.splits else [])
    if cfg.negatives is not None:
        negatives = background_records(cfg.negatives, cfg.max_pixels, first_id=len(train_records) + 1,
                                       skip_invalid=cfg.skip_invalid, log=say)
        refuse_annotated_copies(negatives, [*train_records, *val_records], cfg.negatives)
        say(f"negatives: {plural(len(negatives), 'background image')} from {cfg.negatives}")
        train_records = train_records + negatives
    if not train_records:
        raise TrainingError(f"{cfg.data}: the train split has no usable images")
    empty = sum(len(r.boxes) == 0 for r in train_records)
    say(f"train: {len(train_records)} images, {empty} of them without objects (background)")
    category_ids = default_category_ids(data.classes, data.category_ids)
    if ckpt is not None and ckpt.get("classes") != data.classes:
        raise TrainingError(f"{setting('resume', cfg.resume)}: the run learned the classes {ckpt.get('classes')}, the data "
                            f"{cfg.data} now has {data.classes}; resume it on its own data, or start a new run")

    model, anchor_fit = _build_model(cfg, len(data.classes), train_records, ckpt, say)
    require_one_batch(cfg.data, len(train_records), cfg.batch_size)
    model = model.to(device).to(memory_format=torch.channels_last)
    if ranks.enabled and cfg.sync_bn:
        model = sync_batchnorm(model, device)
    step_model = wrap_ddp(model, device, ranks)
    if ranks.enabled:
        say(f"DDP: {ranks.world} processes, global batch {cfg.batch_size} ({cfg.batch_size // max(ranks.world, 1)} "
            f"per process), backend {torch.distributed.get_backend()}")
    epoch_records = None
    if cfg.hard_negatives:
        miner = HardNegatives(train_records, cfg.hard_negatives, cfg.seed, cfg.max_pixels)
        if miner.background:
            epoch_records = mining_step(miner, model, device, cfg.eval_every, ranks.main,
                                        functools.partial(broadcast_from_main, d=ranks), say)
        else:
            say(f"{setting('hard_negatives', cfg.hard_negatives)}: no background image to look at (give "
                f"{setting('negatives')}); training without")
    batches, gen = train_batches(train_records, cfg, device, ranks, epoch_records)
    amp_dtype = torch.bfloat16 if cfg.amp else None
    val_gt = ground_truth(data, "val", val_records) if val_records else None
    evaluate = functools.partial(val_metrics, records=val_records, gt=val_gt, classes=data.classes,
                                 category_ids=category_ids, device=device, ranks=ranks, batch_size=cfg.batch_size,
                                 workers=cfg.workers, amp_dtype=amp_dtype, max_pixels=cfg.max_pixels)

    task = Task(
        model=model, step_model=torch.compile(step_model) if cfg.compile else step_model,
        param_groups=param_groups(model, cfg.weight_decay), batches=batches,
        steps_per_epoch=max(1, len(train_records) // cfg.batch_size),
        losses=batch_losses, loss_names=list(model.loss_names),
        evaluate=evaluate if val_records else None, metric_names=list(STAT_KEYS[:6]), batch_gen=gen,
        describe={"model_name": cfg.model, "model_kwargs": cfg.model_kwargs, "classes": data.classes,
                  "category_ids": category_ids, "img_size": cfg.img_size, "letterbox": cfg.letterbox,
                  "command": cfg.command, "data": str(cfg.data), "pretrained": cfg.pretrained,
                  **({"anchor_fit": anchor_fit} if anchor_fit else {})},
        data_hint=str(cfg.data), ema=ModelEMA(model, cfg.ema_decay, cfg.ema_tau) if cfg.ema_decay else None)
    metrics = fit(task, epochs=cfg.epochs, lr=cfg.lr, out=Path(cfg.out), device=device, amp=cfg.amp,
                  warmup_epochs=cfg.warmup_epochs, eval_every=cfg.eval_every, config=asdict(cfg), resume=ckpt,
                  stopping=Stopping(cfg.time, cfg.patience), ranks=ranks)
    return {**metrics, "images": len(val_records)} if metrics else metrics


ZOO_FINETUNE = {"lr": 1e-4, "epochs": 20}  # fine-tuning a COCO model: AdamW at a tenth of a from-scratch lr or less


def zoo_start(cfg: TrainConfig, say) -> dict:
    """``--pretrained torchvision:NAME``: the zoo checkpoint, with ``cfg`` set to build its architecture for the
    data's classes: its model (when ``--model`` was not given), its keywords (the class slots left out), its input
    size, and the fine-tuning recipe (:data:`ZOO_FINETUNE`) where the flags do not say otherwise."""
    from detector.engine.zoo import zoo_checkpoint

    zoo = zoo_checkpoint(cfg.pretrained)
    if "model" not in cfg.given:
        cfg.model = zoo["model_name"]
    if cfg.model != zoo["model_name"]:
        raise TrainingError(f"{setting('pretrained', cfg.pretrained)} is a {zoo['model_name']}; give "
                            f"{setting('model', zoo['model_name'])} (or leave {setting('model')} out)")
    kwargs = {k: v for k, v in zoo["model_kwargs"].items() if k != "class_slots"}
    cfg.model_kwargs = {**kwargs, **cfg.model_kwargs}
    chosen = {k: v for k, v in {"img_size": zoo["img_size"], **ZOO_FINETUNE}.items() if k not in cfg.given}
    for k, v in chosen.items():
        setattr(cfg, k, v)
    if chosen:
        say("fine-tuning recipe: " + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in chosen.items())
            + " (flags override)")
    return zoo


def load_zoo_weights(model: torch.nn.Module, zoo: dict, cfg: TrainConfig, say) -> None:
    """Every tensor of the zoo model that fits ``model``, but its class-specific predictors (built for the data's
    classes: :data:`detector.engine.zoo.FRESH`); the log says what was loaded and what starts fresh."""
    from detector.engine.zoo import FRESH

    fresh = FRESH.get(zoo["model_name"], ())
    own = model.state_dict()
    taken = {k: v.float() if v.is_floating_point() else v for k, v in zoo["model"].items()
             if k in own and not k.startswith(fresh) and own[k].shape == v.shape}
    model.load_state_dict(taken, strict=False)
    left = sorted({k.split(".")[0] for k in own if k not in taken and not k.endswith("num_batches_tracked")})
    say(f"pretrained: {len(taken)} of {len(own)} tensors from {cfg.pretrained} (COCO); fresh for this data's "
        f"{model.num_classes} classes: {', '.join(left) or 'nothing'}")


def start_from(model: torch.nn.Module, cfg: TrainConfig, num_classes: int, say) -> None:
    """Load the weights of the detector checkpoint ``cfg.weights`` into ``model`` (the same model, keywords and
    number of classes: what ``Detector("x.pt").train()`` continues from); a :class:`TrainingError` otherwise."""
    source = load_checkpoint(cfg.weights)
    name, classes = source.get("model_name"), source.get("classes", [])
    if name != cfg.model or len(classes) != num_classes:
        raise TrainingError(f"{cfg.weights}: a {name} of {len(classes)} classes cannot start a {cfg.model} of "
                            f"{num_classes} classes; train the model from scratch or give data with its classes")
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in source["model"].items()})
    except RuntimeError as e:
        raise TrainingError(f"{cfg.weights}: its weights do not fit this model ({str(e).splitlines()[0][:200]}); "
                            "give the model keywords it was trained with") from None
    say(f"weights: every tensor from {cfg.weights} (epoch {source.get('epoch', -1) + 1})")


def _build_model(cfg: TrainConfig, num_classes: int, train_records, ckpt: dict | None, say):
    """``(model, anchor fit report or None)``: the model ``cfg`` names; a new run (not ``--resume``) also gets
    ``--anchors auto``'s fitted sizes (written into ``cfg.model_kwargs``, so the checkpoint rebuilds them; the
    model is rebuilt from the same seed, as if they had been given) and the ``--pretrained`` body."""
    zoo = None
    if cfg.pretrained and cfg.pretrained.startswith("torchvision:") and ckpt is None:
        zoo = zoo_start(cfg, say)  # sets the zoo model's architecture (and its fine-tuning recipe) on cfg
    geometry = {"img_size": cfg.img_size, "letterbox": cfg.letterbox}  # the model's own (kept in the checkpoint)
    model, report = build_model(cfg.model, num_classes, **geometry, **cfg.model_kwargs), (ckpt or {}).get("anchor_fit")
    if cfg.anchors == "auto" and ckpt is None:
        fitted, report = fit_anchors(model, train_records, cfg.img_size, cfg.letterbox)
        say(describe_fit(report))
        if fitted:
            cfg.model_kwargs = {**cfg.model_kwargs, **fitted}
            seed_everything(cfg.seed)
            model = build_model(cfg.model, num_classes, **geometry, **cfg.model_kwargs)
    if cfg.weights and ckpt is None:
        start_from(model, cfg, num_classes, say)
    if zoo is not None:
        load_zoo_weights(model, zoo, cfg, say)
    elif cfg.pretrained and ckpt is None:
        if not hasattr(model, "backbone"):
            raise TrainingError(f"{setting('pretrained')} needs a model with a backbone (resnet_ssd), not {cfg.model}")
        loaded = load_backbone(model, cfg.pretrained)
        say(f"pretrained: {loaded['loaded']} body tensors from {loaded['file']}; {loaded['fresh']} start fresh "
            f"(heads and extra blocks){'; missing in the file: ' + str(loaded['missing_in_body'][:5]) if loaded['missing_in_body'] else ''}")
    return model, report
