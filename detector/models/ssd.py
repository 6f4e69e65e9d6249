"""The SSD family's common part: class and box heads (3x3 convs) over five feature blocks, anchors per level,
and the core's target assignment, losses and postprocess. TinySSD (:mod:`detector.models.tiny_ssd`) and
ResNet-SSD (:mod:`detector.models.resnet_ssd`) differ only in their blocks.

The model owns its input geometry: in eval mode it fits images of any size to its square input (``img_size``,
squashed or ``letterbox``-ed, :mod:`detector.core.geometry`) and returns boxes in each image's own pixels. In
training the data pipeline has sized the batch (augmentation, multi-scale), and the model takes it as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detector.core.anchors import MultiLevelAnchors
from detector.core.boxes import clip_boxes
from detector.core.contract import (
    check_images,
    image_sizes,
    normalize_images,
    pad_images,
    padded_targets,
    post_settings,
)
from detector.core.geometry import fit_images, to_original
from detector.core.losses import box_loss, cls_loss, positives_over_processes
from detector.core.ssd_ops import assign_targets, postprocess
from detector.core.thresholds import IOU

BOOK_SIZES = ((0.2, 0.272), (0.37, 0.447), (0.54, 0.619), (0.71, 0.79), (0.88, 0.961))  # D2L 14.7
BOOK_RATIOS = (1.0, 2.0, 0.5)
# Smaller first levels, so that objects of 4% of the image side get an anchor with IoU >= 0.5
# (measured with benchmarks/anchor_coverage.py on the shapes train set: 91% of boxes reach IoU 0.5 with
# their best anchor, against 46% with the book's sizes, which give small boxes none).
SMALL_OBJECT_SIZES = ((0.06, 0.09), (0.14, 0.2), (0.28, 0.38), (0.5, 0.65), (0.8, 0.95))


def down_sample_blk(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 conv + BN + ReLU, then a 2x2 max-pool: halves height and width (the book's block)."""
    layers: list[nn.Module] = []
    for c in (in_channels, out_channels):
        layers += [nn.Conv2d(c, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SSD(nn.Module):
    """A single-shot detector over five feature blocks: class and box heads (3x3 convs) on each block's
    output, anchors per level, and the core's target assignment and postprocess. The blocks run in sequence;
    ``out_channels`` are their output channels. Every other hyper-parameter is a keyword with its default."""

    loss_names = ("loss_cls", "loss_box")  # the keys of the training losses (results.csv's columns)

    def __init__(
        self,
        num_classes: int,
        blocks: nn.ModuleList,
        out_channels: Sequence[int],
        sizes: Sequence[Sequence[float]] = BOOK_SIZES,
        ratios: Sequence[float] = BOOK_RATIOS,
        cls_loss: str = "ce",  # "ce" (the book), "hnm" (SSD), "focal"
        box_loss: str = "l1",  # "l1" (the book), "smooth_l1"
        iou_threshold: float = 0.5,  # anchor matching
        score_threshold: float = 0.01,  # postprocess
        nms_threshold: float = IOU,
        pre_nms_top_k: int = 400,
        max_detections: int = 100,
        img_size: int | None = None,  # eval: images are fitted to img_size x img_size; None: taken as they are
        letterbox: bool = False,  # eval: keep each image's aspect (the longest side to img_size, the rest padded)
    ):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if len(sizes) != len(blocks) or len(out_channels) != len(blocks):
            raise ValueError(f"{len(blocks)} feature blocks need as many levels of sizes and channels, "
                             f"got {len(sizes)} and {len(out_channels)}")
        self.num_classes, self.img_size, self.letterbox = num_classes, img_size, letterbox
        self.anchor_gen = MultiLevelAnchors(sizes, ratios)
        self.num_anchors = self.anchor_gen.num_anchors_per_cell
        self.cls_loss, self.box_loss, self.iou_threshold = cls_loss, box_loss, iou_threshold
        self.post_defaults = {"score_threshold": score_threshold, "nms_threshold": nms_threshold,
                              "pre_nms_top_k": pre_nms_top_k, "max_detections": max_detections}
        self.blocks = blocks
        self.cls_heads = nn.ModuleList(nn.Conv2d(c, k * (num_classes + 1), 3, padding=1) for c, k in zip(out_channels, self.num_anchors))
        self.box_heads = nn.ModuleList(nn.Conv2d(c, k * 4, 3, padding=1) for c, k in zip(out_channels, self.num_anchors))

    @torch.no_grad()
    def feature_shapes(self, height: int, width: int) -> list[tuple[int, int]]:
        """The ``(h, w)`` of each level's feature map for a ``height x width`` input (the blocks run once on zeros,
        in eval mode), e.g. to place anchors without images."""
        training, device = self.training, next(self.parameters()).device
        self.eval()
        x, shapes = torch.zeros(1, 3, height, width, device=device), []
        for block in self.blocks:
            x = block(x)
            shapes.append(tuple(x.shape[-2:]))
        self.train(training)
        return shapes

    def head_outputs(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(cls_logits [B, A, C + 1], offsets [B, A, 4], anchors [A, 4] normalized)``."""
        x = normalize_images(images).contiguous(memory_format=torch.channels_last)
        cls, box, shapes = [], [], []
        for block, cls_head, box_head in zip(self.blocks, self.cls_heads, self.box_heads):
            x = block(x)
            shapes.append(tuple(x.shape[-2:]))
            # (B, K*(C+1), H, W) -> (B, H, W, K*(C+1)) -> (B, H*W*K, C+1): cell by cell, K per cell
            cls.append(cls_head(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.num_classes + 1))
            box.append(box_head(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, 4))  # (B, H*W*K, 4)
        anchors = self.anchor_gen(shapes, images.device)  # (A, 4)
        return torch.cat(cls, 1), torch.cat(box, 1), anchors

    def forward(self, images: Tensor | list[Tensor], targets: list[dict] | dict | None = None,
                post: dict | None = None, size: int | None = None):
        """The model contract (:mod:`detector.core.contract`); ``size``: this call's input size in eval mode
        (default: ``img_size``)."""
        check_images(images)
        size = size or self.img_size
        if self.training or size is None:
            return self._forward_as_given(images, targets, post)
        x, frames = fit_images(images, size, self.letterbox)  # (B, 3, S, S), (B, 6)
        cls_logits, offsets, anchors = self.head_outputs(x)
        detections = postprocess(cls_logits, offsets, anchors, **post_settings(self.post_defaults, post))
        for d, frame in zip(detections, frames):
            d["boxes"] = to_original(d["boxes"] * size, frame)  # in the image's own pixels
        return detections

    def _forward_as_given(self, images: Tensor | list[Tensor], targets: list[dict] | dict | None, post: dict | None):
        """Training (the batch as the data pipeline sized it), or eval without a fitted input size: a list is
        padded at the bottom and right, and each image's boxes are clipped to its own part of the batch."""
        sizes, images = image_sizes(images), pad_images(images)
        B, _, H, W = images.shape
        cls_logits, offsets, anchors = self.head_outputs(images)
        scale = torch.tensor([W, H, W, H], dtype=torch.float32, device=images.device)
        if self.training:
            if targets is None:
                raise ValueError("in training mode the model needs targets")
            boxes, labels, valid = padded_targets(targets, B, images.device)
            target_offsets, box_mask, cls_targets = assign_targets(anchors, boxes / scale, labels, valid, self.iou_threshold)
            num_pos = positives_over_processes(box_mask)  # under DDP: the global batch's, per rank
            return {"loss_cls": cls_loss(cls_logits, cls_targets, self.cls_loss, num_pos=num_pos),
                    "loss_box": box_loss(offsets, target_offsets, box_mask, self.box_loss, num_pos=num_pos)}
        detections = postprocess(cls_logits, offsets, anchors, **post_settings(self.post_defaults, post))
        for d, (h, w) in zip(detections, sizes):
            d["boxes"] = clip_boxes(d["boxes"] * scale, h, w)  # in the image's own pixels
        return detections
