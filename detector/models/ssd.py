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
    IMAGENET_MEAN,
    IMAGENET_STD,
    check_images,
    image_sizes,
    normalize_images,
    pad_images,
    padded_targets,
    post_settings,
)
from detector.core.geometry import fit_images, to_original
from detector.core.losses import BOX_LOSSES, CLS_LOSSES, box_loss, cls_loss, positives_over_processes
from detector.core.ssd_ops import assign_targets, postprocess
from detector.core.thresholds import IOU

BOOK_SIZES = ((0.2, 0.272), (0.37, 0.447), (0.54, 0.619), (0.71, 0.79), (0.88, 0.961))  # D2L 14.7
BOOK_RATIOS = (1.0, 2.0, 0.5)
# Smaller first levels, so that objects of 4% of the image side get an anchor with IoU >= 0.5
# (measured with benchmarks/anchor_coverage.py on the shapes train set: 91% of boxes reach IoU 0.5 with
# their best anchor, against 46% with the book's sizes, which give small boxes none).
SMALL_OBJECT_SIZES = ((0.06, 0.09), (0.14, 0.2), (0.28, 0.38), (0.5, 0.65), (0.8, 0.95))


HEADS = ("conv", "ssdlite")


def prediction_head(channels: int, outputs: int, kind: str = "conv") -> nn.Module:
    """One level's class or box head: a 3x3 conv (the book's, SSD's), or SSDlite's depthwise 3x3 conv with
    BatchNorm (eps 0.001, momentum 0.03) and ReLU6, then a 1x1 conv (torchvision's ``SSDLiteHead``)."""
    if kind == "conv":
        return nn.Conv2d(channels, outputs, 3, padding=1)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
                      nn.BatchNorm2d(channels, eps=0.001, momentum=0.03), nn.ReLU6(inplace=True)),
        nn.Conv2d(channels, outputs, 1))


def down_sample_blk(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 conv + BN + ReLU, then a 2x2 max-pool: halves height and width (the book's block)."""
    layers: list[nn.Module] = []
    for c in (in_channels, out_channels):
        layers += [nn.Conv2d(c, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SSD(nn.Module):
    """A single-shot detector over feature blocks: class and box heads on each block's output, anchors per
    level, and the core's target assignment and postprocess. The blocks run in sequence; ``out_channels`` are
    their output channels. Every other hyper-parameter is a keyword with its default: the book's and this
    project's; torchvision's SSD300 and SSDlite set the ones below ``img_size`` (:mod:`detector.models.zoo_ssd`)."""

    loss_names = ("loss_cls", "loss_box")  # the keys of the training losses (results.csv's columns)

    def __init__(
        self,
        num_classes: int,
        blocks: nn.ModuleList,
        out_channels: Sequence[int],
        sizes: Sequence[Sequence[float]] = BOOK_SIZES,
        ratios: Sequence[float] | Sequence[Sequence[float]] = BOOK_RATIOS,
        cls_loss: str = "ce",  # "ce" (the book), "hnm" (SSD), "focal"
        box_loss: str = "l1",  # "l1" (the book), "smooth_l1", "smooth_l1+giou"
        iou_threshold: float = 0.5,  # anchor matching
        score_threshold: float = 0.01,  # postprocess
        nms_threshold: float = IOU,
        pre_nms_top_k: int = 400,
        max_detections: int = 100,
        img_size: int | None = None,  # eval: images are fitted to img_size x img_size; None: taken as they are
        letterbox: bool = False,  # eval: keep each image's aspect (the longest side to img_size, the rest padded)
        # torchvision's SSD300 / SSDlite (the defaults are the book's and this project's)
        anchor_steps: Sequence[float] | None = None,  # per level, the spacing of anchor centres (a fraction)
        anchor_clip: bool = False,  # clip anchor widths and heights to the image
        matcher: str = "book",  # "book": the book's assignment; "ssd": torchvision's SSDMatcher
        min_negatives: float = 3.0,  # hard negative mining: negatives per image at least (torchvision: 0)
        per_class_top_k: bool = False,  # pre_nms_top_k per class (torchvision), not per image
        clip_before_nms: bool = False,  # boxes clipped to the image before NMS (torchvision), not after
        nms_merge: bool = False,  # each kept box the score-weighted mean of those it suppressed (YOLOv5's merge)
        image_mean: Sequence[float] = IMAGENET_MEAN,  # normalization of [0, 1] images
        image_std: Sequence[float] = IMAGENET_STD,
        resize: str = "opencv",  # eval's fit: "opencv" (area when shrinking 2x), "bilinear" (torchvision's)
        head: str = "conv",  # "conv": 3x3 convs (the book's); "ssdlite": depthwise 3x3 + BN + ReLU6, then 1x1
        level_norms: nn.ModuleList | None = None,  # a module per level before its heads (SSD300's L2 norm)
        class_slots: Sequence[int] | None = None,  # the head's slot of each class (COCO's 90 ids); None: i
    ):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if len(sizes) != len(blocks) or len(out_channels) != len(blocks):
            raise ValueError(f"{len(blocks)} feature blocks need as many levels of sizes and channels, "
                             f"got {len(sizes)} and {len(out_channels)}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if cls_loss not in CLS_LOSSES or box_loss not in BOX_LOSSES:
            raise ValueError(f"cls_loss must be one of {CLS_LOSSES} and box_loss one of {BOX_LOSSES}, got "
                             f"{cls_loss!r} and {box_loss!r}")
        if not isinstance(nms_merge, bool):
            raise ValueError(f"nms_merge must be true or false, got {nms_merge!r}")  # noqa: TRY004 (build_model names it)
        self.num_classes, self.img_size, self.letterbox = num_classes, img_size, letterbox
        self.anchor_gen = MultiLevelAnchors(sizes, ratios, anchor_steps, anchor_clip)
        self.num_anchors = self.anchor_gen.num_anchors_per_cell
        self.cls_loss, self.box_loss, self.iou_threshold = cls_loss, box_loss, iou_threshold
        self.matcher, self.min_negatives = matcher, min_negatives
        self.per_class_top_k, self.clip_before_nms, self.resize = per_class_top_k, clip_before_nms, resize
        self.nms_merge = nms_merge
        self.image_mean, self.image_std = tuple(image_mean), tuple(image_std)
        self.post_defaults = {"score_threshold": score_threshold, "nms_threshold": nms_threshold,
                              "pre_nms_top_k": pre_nms_top_k, "max_detections": max_detections}
        slots = list(class_slots) if class_slots is not None else list(range(num_classes))
        if len(slots) != num_classes:
            raise ValueError(f"class_slots names {len(slots)} slots for {num_classes} classes")
        self.head_classes = max(slots) + 1  # the heads' foreground outputs
        self.register_buffer("class_slots", torch.tensor(slots), persistent=False)
        self.blocks = blocks
        self.level_norms = level_norms
        columns = self.head_classes + 1
        self.cls_heads = nn.ModuleList(prediction_head(c, k * columns, head) for c, k in zip(out_channels, self.num_anchors))
        self.box_heads = nn.ModuleList(prediction_head(c, k * 4, head) for c, k in zip(out_channels, self.num_anchors))

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
        """``(cls_logits [B, A, S + 1], offsets [B, A, 4], anchors [A, 4] normalized)``; S is ``num_classes``, or
        the head's slots with ``class_slots``."""
        x = normalize_images(images, self.image_mean, self.image_std).contiguous(memory_format=torch.channels_last)
        cls, box, shapes = [], [], []
        for level, (block, cls_head, box_head) in enumerate(zip(self.blocks, self.cls_heads, self.box_heads)):
            x = block(x)
            shapes.append(tuple(x.shape[-2:]))
            h = x if self.level_norms is None else self.level_norms[level](x)  # what the heads see
            # (B, K*(S+1), H, W) -> (B, H, W, K*(S+1)) -> (B, H*W*K, S+1): cell by cell, K per cell
            cls.append(cls_head(h).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.head_classes + 1))
            box.append(box_head(h).permute(0, 2, 3, 1).reshape(x.shape[0], -1, 4))  # (B, H*W*K, 4)
        anchors = self.anchor_gen(shapes, images.device)  # (A, 4)
        return torch.cat(cls, 1), torch.cat(box, 1), anchors

    def postprocess(self, cls_logits: Tensor, offsets: Tensor, anchors: Tensor, post: dict | None) -> list[dict]:
        """The core's postprocess with this model's settings (``post`` over its defaults); boxes normalized."""
        slots = None if self.head_classes == self.num_classes else self.class_slots
        return postprocess(cls_logits, offsets, anchors, **post_settings(self.post_defaults, post),
                           per_class_top_k=self.per_class_top_k, clip=self.clip_before_nms, class_slots=slots,
                           merge=self.nms_merge)

    def forward(self, images: Tensor | list[Tensor], targets: list[dict] | dict | None = None,
                post: dict | None = None, size: int | None = None):
        """The model contract (:mod:`detector.core.contract`); ``size``: this call's input size in eval mode
        (default: ``img_size``)."""
        check_images(images)
        size = size or self.img_size
        if self.training or size is None:
            return self._forward_as_given(images, targets, post)
        x, frames = fit_images(images, size, self.letterbox, self.resize)  # (B, 3, S, S), (B, 6)
        cls_logits, offsets, anchors = self.head_outputs(x)
        detections = self.postprocess(cls_logits, offsets, anchors, post)
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
            target_offsets, box_mask, cls_targets = assign_targets(anchors, boxes / scale, labels, valid,
                                                                   self.iou_threshold, matcher=self.matcher)
            if self.head_classes != self.num_classes or self.class_slots[-1] != self.num_classes - 1:
                cls_targets = torch.where(box_mask, self.class_slots[(cls_targets - 1).clamp(min=0)] + 1, 0)
            num_pos = positives_over_processes(box_mask)  # under DDP: the global batch's, per rank
            return {"loss_cls": cls_loss(cls_logits, cls_targets, self.cls_loss, num_pos=num_pos,
                                         min_negatives=self.min_negatives),
                    "loss_box": box_loss(offsets, target_offsets, box_mask, self.box_loss, num_pos=num_pos,
                                         anchors=anchors)}
        detections = self.postprocess(cls_logits, offsets, anchors, post)
        for d, (h, w) in zip(detections, sizes):
            d["boxes"] = clip_boxes(d["boxes"] * scale, h, w)  # in the image's own pixels
        return detections
