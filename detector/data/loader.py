"""The DataLoader path: images decoded and augmented in worker processes, batches padded for the core.

A batch is a dict:
    images (uint8 [B, 3, S, S]): RGB, not normalized (the model normalizes on its device).
    boxes (float32 [B, G, 4]): xyxy in pixels of the S x S input; padding rows are zeros.
    labels (int64 [B, G]): classes 0..C-1; padding rows are -1.
    valid (bool [B, G]): False on padding rows.
    image_ids (int64 [B]), orig_sizes (int64 [B, 2]): (height, width) of each original image.

G is the largest box count in the batch (at least 1, so shapes stay regular).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from detector.core.contract import pad_targets
from detector.data.images import MAX_PIXELS, read_image
from detector.data.mosaic import draw_mixup, draw_mosaic, mixup, mosaic
from detector.data.records import ImageRecord
from detector.data.transforms import apply, eval_transforms, train_transforms


class DetectionDataset(Dataset):
    """Records -> (image uint8 [3, S, S], target dict). With ``train=True`` the train preset runs, reseeded per
    image from (seed, epoch, index), so an epoch is the same whatever the number of workers; call
    :meth:`set_epoch` before each epoch (workers are re-created per epoch, so they see it). In training,
    ``mosaic`` and ``mixup`` are the probabilities of :mod:`detector.data.mosaic`'s mixes (drawn from the same
    per-image seed): a mosaic goes through the preset like one image; mixup blends two preset outputs."""

    def __init__(self, records: list[ImageRecord], size: int, train: bool = False, seed: int = 0,
                 letterbox: bool = False, max_pixels: int | None = MAX_PIXELS, mosaic: float = 0.0,
                 mixup: float = 0.0):
        self.records, self.size, self.train, self.seed, self.epoch = records, size, train, seed, 0
        self.max_pixels = max_pixels  # images over it are refused from their header, never decoded
        self.transform = train_transforms(size, letterbox=letterbox) if train else eval_transforms(size, letterbox)
        self.mosaic, self.mixup = (mosaic, mixup) if train else (0.0, 0.0)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = self.records[index]
        image = read_image(r.path, self.max_pixels)  # raises OSError naming the file
        if image.shape[:2] != (r.height, r.width) and r.height and r.width:
            raise OSError(f"{r.path}: decoded as {image.shape[1]}x{image.shape[0]}, annotated as {r.width}x{r.height}")
        return image, r.boxes, r.labels

    def _augmented(self, index: int, seed: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image ``index`` (or, drawn with probability ``mosaic``, its mosaic with three others) through the preset."""
        image, boxes, labels = self._read(index)
        rng = np.random.default_rng([seed, 0]) if self.mosaic else None
        if rng is not None and rng.random() < self.mosaic:
            others, centre = draw_mosaic(rng, len(self.records), self.size)
            parts = [(image, boxes, labels), *(self._read(i) for i in others)]
            image, boxes, labels = mosaic(*zip(*parts), size=self.size, centre=centre)
        return apply(self.transform, image, boxes, labels, seed)[:3]

    def __getitem__(self, index: int):
        r = self.records[index]
        seed = (self.seed * 1_000_003 + self.epoch) * 10_000_019 + index if self.train else None
        image, boxes, labels = self._augmented(index, seed)
        rng = np.random.default_rng([seed, 1]) if self.mixup else None
        if rng is not None and rng.random() < self.mixup:
            other, other_seed, ratio = draw_mixup(rng, len(self.records))
            image, boxes, labels = mixup(image, boxes, labels, *self._augmented(other, other_seed), ratio=ratio)
        target = {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels),
                  "image_id": r.image_id, "orig_size": (r.height, r.width)}
        return torch.from_numpy(image).permute(2, 0, 1).contiguous(), target  # (3, S, S)


def collate(samples: list) -> dict[str, torch.Tensor]:
    """Stack images and pad a variable number of boxes per image into ``[B, G, 4]`` with a valid mask."""
    images = torch.stack([s[0] for s in samples])  # (B, 3, S, S)
    boxes, labels, valid = pad_targets([t for _, t in samples])
    return {"images": images, "boxes": boxes, "labels": labels, "valid": valid,
            "image_ids": torch.tensor([t["image_id"] for _, t in samples]),
            "orig_sizes": torch.tensor([t["orig_size"] for _, t in samples])}


def make_loader(dataset: DetectionDataset, batch_size: int, shuffle: bool, workers: int = 2,
                pin_memory: bool | None = None, drop_last: bool = False, seed: int = 0,
                generator: torch.Generator | None = None, rank: int = 0, world: int = 1) -> DataLoader:
    """A DataLoader over ``dataset`` with :func:`collate`; memory is pinned when CUDA is available. The order
    (and the workers' seeds) come from ``generator``, or one seeded with ``seed``. ``batch_size`` is the
    global batch: with ``world`` processes, rank ``rank`` loads its part of each (see
    :class:`GlobalBatchSampler`), and a single process draws the same global batches."""
    generator = generator if generator is not None else torch.Generator().manual_seed(seed)
    sampler = GlobalBatchSampler(len(dataset), batch_size, generator, shuffle, drop_last, rank, world)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, collate_fn=collate,
                      pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
                      generator=generator, persistent_workers=False,
                      prefetch_factor=4 if workers > 0 else None)


class GlobalBatchSampler(Sampler[list[int]]):
    """Batches of indices: each epoch one permutation of ``range(n)`` from ``generator`` (the same on every
    rank), cut into global batches of ``batch_size``; rank ``r`` of ``world`` gets the ``r``-th contiguous
    part of each. With ``world == 1`` it is an ordinary shuffled batch sampler."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, shuffle: bool = True,
                 drop_last: bool = True, rank: int = 0, world: int = 1):
        if batch_size % world:
            raise ValueError(f"--batch-size {batch_size} is the global batch: it must divide evenly over "
                             f"{world} processes")
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.shuffle, self.drop_last, self.rank, self.world = shuffle, drop_last, rank, world
        self.local = batch_size // world

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else torch.arange(self.n)
        for b in range(len(self)):
            batch = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield batch[self.rank * self.local:(self.rank + 1) * self.local].tolist()
