"""Multi-scale training's batch resize and its per-epoch size draws."""

import itertools

import torch

from detector.data.multiscale import epoch_sizes, resize_batch, with_sizes


def test_resize_batch_scales_images_and_boxes():
    images = torch.full((2, 3, 4, 4), 10, dtype=torch.uint8)
    boxes = torch.tensor([[[1.0, 1.0, 3.0, 2.0], [0, 0, 0, 0]], [[0.0, 0.0, 4.0, 4.0], [0, 0, 0, 0]]])  # (B, G, 4)
    batch = {"images": images, "boxes": boxes, "labels": torch.tensor([[1, -1], [0, -1]])}
    up = resize_batch(batch, 8)
    assert up["images"].shape == (2, 3, 8, 8) and up["images"].dtype == torch.uint8 and (up["images"] == 10).all()
    assert up["boxes"].tolist() == [[[2, 2, 6, 4], [0, 0, 0, 0]], [[0, 0, 8, 8], [0, 0, 0, 0]]]  # padding stays 0
    assert up["labels"] is batch["labels"] and batch["images"].shape == (2, 3, 4, 4)  # the input is not changed
    down = resize_batch(batch, 2)
    assert down["boxes"][0, 0].tolist() == [0.5, 0.5, 1.5, 1.0] and (down["images"] == 10).all()
    assert resize_batch(batch, 4) is batch


def test_sizes_are_seeded_per_epoch():
    sizes = [64, 96, 128]
    first = list(itertools.islice(epoch_sizes(sizes, seed=0, epoch=3), 50))
    assert first == list(itertools.islice(epoch_sizes(sizes, seed=0, epoch=3), 50))  # resume, other ranks
    assert set(first) == set(sizes)
    assert first != list(itertools.islice(epoch_sizes(sizes, seed=0, epoch=4), 50))
    batches = [{"images": torch.zeros(1)} for _ in range(5)]
    named = list(with_sizes(batches, sizes, seed=0, epoch=3))
    assert [b["input_size"] for b in named] == first[:5] and len(named) == 5
