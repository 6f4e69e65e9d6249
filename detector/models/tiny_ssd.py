"""TinySSD: the book's single-shot detector (D2L 14.7), honouring the model contract of ``detector.core.contract``.

Base net 3-16-32-64 (two 3x3 conv + BN + ReLU and a 2x max-pool per block), then 128-channel down-sampling
blocks and a global max pool: five feature maps (32, 16, 8, 4, 1 cells at 256 px), 4 anchors per cell,
5,444 anchors. Each map has a 3x3 conv class head (``K * (C + 1)``) and box head (``K * 4``).

    model = tiny_ssd(num_classes=5)                   # the book's anchors and loss
    model = tiny_ssd(num_classes=5, sizes=SHAPES_SIZES, cls_loss="hnm", box_loss="smooth_l1")
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import nn

from detector.models.ssd import SMALL_OBJECT_SIZES, SSD, down_sample_blk


class TinySSD(SSD):
    """The book's TinySSD for ``num_classes`` classes (0..C-1)."""

    def __init__(self, num_classes: int, base_channels: Sequence[int] = (16, 32, 64), channels: int = 128, **kwargs):
        chans = [3, *base_channels]
        blocks = nn.ModuleList([
            nn.Sequential(*[down_sample_blk(a, b) for a, b in itertools.pairwise(chans)]),  # the base net
            down_sample_blk(base_channels[-1], channels),
            down_sample_blk(channels, channels),
            down_sample_blk(channels, channels),
            nn.AdaptiveMaxPool2d((1, 1)),
        ])
        super().__init__(num_classes, blocks, [base_channels[-1], *[channels] * 4], **kwargs)


def tiny_ssd(num_classes: int, **kwargs) -> TinySSD:
    """The book's TinySSD (its anchor sizes, ratios and loss unless overridden)."""
    return TinySSD(num_classes, **kwargs)


def tiny_ssd_plus(num_classes: int, **kwargs) -> TinySSD:
    """TinySSD made better for small objects: smaller anchors, hard negative mining, smooth L1."""
    defaults = {"sizes": SMALL_OBJECT_SIZES, "cls_loss": "hnm", "box_loss": "smooth_l1"}
    return TinySSD(num_classes, **{**defaults, **kwargs})
