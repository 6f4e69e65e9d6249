"""Multi-scale training: every batch at its own input size, drawn per batch from a list of sizes
(``--multi-scale F``: the multiples of 32 in ``img_size * [1 - F, 1 + F]``, see
:func:`detector.engine.config.multi_scale_sizes`), as Ultralytics does.

    batches = with_sizes(loader, sizes=[192, 224, 256, 288, 320], seed=0, epoch=3)  # each batch names its size
    batch = resize_batch(batch, batch["input_size"])                                # on the device, per step

The data paths deliver ``img_size`` batches; :func:`resize_batch` resizes the whole batch (bilinear, antialiased
when it shrinks) and scales its boxes, on whatever device the batch is. The sizes of an epoch come from their
own generator, seeded by (seed, epoch): they are the same on every rank, after ``--resume``, and whatever the
data path, and drawing them changes nothing else's random stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F


def epoch_sizes(sizes: Sequence[int], seed: int, epoch: int) -> Iterator[int]:
    """An endless stream of input sizes for ``epoch``'s batches, drawn uniformly from ``sizes``."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    while True:
        yield sizes[int(torch.randint(len(sizes), (1,), generator=gen))]


def with_sizes(batches: Iterable[dict], sizes: Sequence[int], seed: int, epoch: int) -> Iterator[dict]:
    """``batches`` with ``input_size`` added to each (see :func:`epoch_sizes`)."""
    for batch, size in zip(batches, epoch_sizes(sizes, seed, epoch)):
        yield {**batch, "input_size": size}


def resize_batch(batch: dict, size: int) -> dict:
    """``batch`` with ``images`` (``uint8 [B, 3, S, S]``) resized to ``size x size`` and ``boxes``
    (``[B, G, 4]``, pixels of the input; zero padding rows stay zero) scaled with them."""
    images = batch["images"]
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return batch
    resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False,
                            antialias=size < max(h, w))  # (B, 3, size, size)
    scale = torch.tensor([size / w, size / h, size / w, size / h], device=images.device)
    return {**batch, "images": resized.round_().clamp_(0, 255).to(torch.uint8), "boxes": batch["boxes"] * scale}
