"""Classification data for the book's networks (``detector classify train|eval``).

Data (``--data``):
- a detection data set (anything ``detector data check`` reads): each box, with 10% context, becomes a
  labelled image: the offline default, so pretraining works on the generated data with no download;
- an ImageFolder layout (``ROOT/<class>/*.jpg``; ``ROOT/train`` and ``ROOT/val`` when present, else the
  whole folder is train and a fixed 10% of it val);
- ``fashion-mnist:ROOT`` or ``cifar10:ROOT`` through torchvision (``--download`` when the files are missing).

The book's fine-tuning recipe: RandomResizedCrop and horizontal flips at train time, ImageNet mean and std.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from detector.core.contract import IMAGENET_MEAN, IMAGENET_STD
from detector.core.errors import setting
from detector.data.check import prepare_split
from detector.data.dataset import load_dataset
from detector.data.images import IMAGE_SUFFIXES, read_image
from detector.data.records import DataError

CONTEXT = 0.1  # crops of detection boxes keep this much context on each side


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


def load_classification(data: str, size: int, download: bool = False,
                        log: Callable[[str], None] | None = None) -> tuple[list[str], Dataset, Dataset | None]:
    """``(classes, train set, val set or None)`` for ``--data``; ``log`` gets the data checks' report (default:
    stderr)."""
    log = log or (lambda s: print(s, file=sys.stderr))
    kind, _, root = data.partition(":")
    if kind in ("fashion-mnist", "cifar10") and root:
        from torchvision import datasets

        cls = datasets.FashionMNIST if kind == "fashion-mnist" else datasets.CIFAR10
        try:
            train, val = (cls(root, train=t, download=download) for t in (True, False))
        except RuntimeError as e:
            raise DataError(f"{data}: {e} (pass {setting('download', True)} to fetch it)") from None
        return list(train.classes), TorchvisionSet(train, transforms(size, True)), TorchvisionSet(val, transforms(size, False))
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
