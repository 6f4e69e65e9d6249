"""Training and evaluating the classification networks (``detector.backbones``) on the detection engine.

    detector classify train --model resnet18 --data data/shapes --epochs 10 --out runs/cls-resnet18
    detector classify train --model resnet18 --data fashion-mnist:data/fmnist --download --img-size 96
    detector classify train --model resnet18 --data my_images/ --pretrained runs/cls-resnet18/best.pt
    detector classify eval --weights runs/cls-resnet18/best.pt --data data/shapes

Data (``--data``):
- a detection data set (anything ``detector data check`` reads): each box, with 10% context, becomes a
  labelled image: the offline default, so pretraining works on the generated data with no download;
- an ImageFolder layout (``ROOT/<class>/*.jpg``; ``ROOT/train`` and ``ROOT/val`` when present, else the
  whole folder is train and a fixed 10% of it val);
- ``fashion-mnist:ROOT`` or ``cifar10:ROOT`` through torchvision (``--download`` when the files are missing).

The book's fine-tuning recipe: RandomResizedCrop and horizontal flips at train time, ImageNet mean and std,
and with ``--pretrained`` the new head at 10x the learning rate of the pretrained body.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from detector.backbones import BACKBONES, MIN_INPUT
from detector.checkpoint import CheckpointError, load_checkpoint
from detector.contract import IMAGENET_MEAN, IMAGENET_STD
from detector.data.images import IMAGE_SUFFIXES, read_image
from detector.data.records import DataError
from detector.engine import Task, TrainingError, fit, log, param_groups, resolve_device, seed_everything

CONTEXT = 0.1  # crops of detection boxes keep this much context on each side
HEAD_LR_SCALE = 10.0  # the book: a new head learns 10x faster than a pretrained body


@dataclass
class ClassifyConfig:
    model: str = "resnet18"  # a name in detector.backbones.BACKBONES
    data: str = "data/shapes"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3  # AdamW peak learning rate (of the body, with --pretrained)
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    img_size: int = 64
    device: str = "auto"
    amp: bool = False
    workers: int = 2
    seed: int = 0
    resume: str | None = None
    out: str = "runs/classify"
    eval_every: int = 1
    pretrained: str | None = None  # a classifier checkpoint whose body starts this one
    download: bool = False  # torchvision data sets: download when missing
    model_kwargs: dict = field(default_factory=dict)
    command: str = ""


class ImageList(Dataset):
    """(image, label) pairs from files, or from boxes cropped out of files, as ``uint8 [3, H, W]`` tensors."""

    def __init__(self, items: list[tuple], transform):
        self.items, self.transform = items, transform  # items: (path, label) or (path, label, (x1, y1, x2, y2))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, label, *box = self.items[i]
        image = read_image(path)
        if box:
            x1, y1, x2, y2 = box[0]
            image = image[int(y1) : max(int(y1) + 1, int(np.ceil(y2))), int(x1) : max(int(x1) + 1, int(np.ceil(x2)))]
        return self.transform(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)), label


class TorchvisionSet(Dataset):
    """Fashion-MNIST or CIFAR-10 from torchvision, as RGB ``uint8 [3, H, W]`` tensors."""

    def __init__(self, base, transform):
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        image, label = self.base[i]
        x = v2.functional.pil_to_tensor(image.convert("RGB"))
        return self.transform(x), label


def box_crops(records: list, margin: float = CONTEXT) -> list[tuple]:
    """``(path, label, box)`` for every box, widened by ``margin`` of its size on each side, inside the image."""
    items = []
    for r in records:
        for (x1, y1, x2, y2), label in zip(r.boxes.tolist(), r.labels.tolist()):
            mx, my = (x2 - x1) * margin, (y2 - y1) * margin
            items.append((r.path, int(label), (max(0.0, x1 - mx), max(0.0, y1 - my), min(r.width, x2 + mx),
                                               min(r.height, y2 + my))))
    return items


def image_folder(root: Path) -> tuple[list[str], list[tuple], list[tuple]]:
    """``(classes, train items, val items)`` of an ImageFolder layout."""
    def scan(folder: Path, classes: list[str]) -> list[tuple]:
        return [(p, k) for k, c in enumerate(classes) for p in sorted((folder / c).rglob("*"))
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]

    if (root / "train").is_dir():
        classes = sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
        train = scan(root / "train", classes)
        val = scan(root / "val", classes) if (root / "val").is_dir() else []
    else:
        classes = sorted(d.name for d in root.iterdir() if d.is_dir())
        items = scan(root, classes)
        val = items[::10]  # a fixed tenth, spread over the classes
        train = [it for i, it in enumerate(items) if i % 10]
    if not classes or not train:
        raise DataError(f"{root}: no class folders with images (expected ROOT/<class>/*.jpg)")
    return classes, train, val


def transforms(size: int, train: bool):
    norm = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if train:
        return v2.Compose([v2.RandomResizedCrop(size, scale=(0.35, 1.0), antialias=True), v2.RandomHorizontalFlip(), *norm])
    return v2.Compose([v2.Resize((size, size), antialias=True), *norm])


def load_classification(data: str, size: int, download: bool = False) -> tuple[list[str], Dataset, Dataset | None]:
    """``(classes, train set, val set or None)`` for ``--data``."""
    kind, _, root = data.partition(":")
    if kind in ("fashion-mnist", "cifar10") and root:
        from torchvision import datasets

        cls = datasets.FashionMNIST if kind == "fashion-mnist" else datasets.CIFAR10
        try:
            train, val = (cls(root, train=t, download=download) for t in (True, False))
        except RuntimeError as e:
            raise DataError(f"{data}: {e} (pass --download to fetch it)") from None
        return list(train.classes), TorchvisionSet(train, transforms(size, True)), TorchvisionSet(val, transforms(size, False))
    from detector.data.check import prepare_split
    from detector.data.dataset import load_dataset

    try:
        det = load_dataset(data)
    except DataError as e:
        if not (Path(data).is_dir() and "no data set found here" in str(e)):
            raise
        classes, train, val = image_folder(Path(data))  # not a detection data set: an ImageFolder layout
    else:
        train_records = prepare_split(data, "train", log=log, data=det)[1]
        val_records = prepare_split(data, "val", log=log, data=det)[1] if "val" in det.splits else []
        classes, train, val = det.classes, box_crops(train_records), box_crops(val_records)
        if not train:
            raise DataError(f"{data}: the train split has no boxes to crop")
    return classes, ImageList(train, transforms(size, True)), ImageList(val, transforms(size, False)) if val else None


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
    from detector.distributed import all_reduce_sum

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
    is one rank of a DDP job (see :mod:`detector.distributed`)."""
    from detector.distributed import process_group

    with process_group(cfg.device) as (ranks, device_name):
        return _train_classifier(cfg, ranks, device_name)


def _train_classifier(cfg: ClassifyConfig, ranks, device_name: str) -> dict:
    from detector.distributed import GlobalBatchSampler, wrap_ddp
    from detector.train import resumed_config

    cfg, ckpt = resumed_config(cfg, ClassifyConfig)
    if cfg.model not in BACKBONES:
        raise ValueError(f"unknown model {cfg.model!r}; choose one of {sorted(BACKBONES)}")
    if cfg.img_size < MIN_INPUT[cfg.model]:
        raise ValueError(f"{cfg.model} needs inputs of at least {MIN_INPUT[cfg.model]} px, got --img-size {cfg.img_size}")
    device = resolve_device(device_name)
    seed_everything(cfg.seed)
    classes, train_set, val_set = load_classification(cfg.data, cfg.img_size, cfg.download)
    model = BACKBONES[cfg.model](len(classes), 3, **cfg.model_kwargs).to(device)
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
    if len(loader) == 0:
        raise TrainingError(f"{cfg.data}: {len(train_set)} training images are fewer than one batch of {cfg.batch_size}")

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
               ranks=ranks)


def load_classifier(path: str, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
    ckpt = load_checkpoint(path)
    if ckpt.get("task") != "classify" or ckpt.get("model_name") not in BACKBONES:
        raise CheckpointError(f"{path}: not a classifier checkpoint (made by `detector classify train`)")
    model = BACKBONES[ckpt["model_name"]](len(ckpt["classes"]), 3, **ckpt.get("model_kwargs", {}))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt


def main(argv: list[str] | None = None) -> int:
    """``python -m detector.classify ...`` (what torchrun runs) = ``detector classify train ...``."""
    import sys

    from detector.cli import main as cli_main

    return cli_main(["classify", "train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
