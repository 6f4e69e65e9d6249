"""Faster R-CNN over a ResNet body (with or without FPN), on the project's own core, batched over images.

    model = faster_rcnn(num_classes=5, backbone="resnet18")                 # FPN, RoI Align
    model = faster_rcnn(num_classes=5, backbone="resnet50", fpn=False, roi_op="pool")   # the book's RoI pooling

The pieces the book describes (D2L 14.8): a region proposal network (:mod:`detector.models.rpn`), RoI Align or RoI
pooling of each proposal (multi-scale over FPN levels), and a box head of two fully connected layers with
class-specific regression (weights 10, 10, 5, 5). Training samples 512 RoIs per image, 25% positive;
the postprocess is class-aware (score threshold, NMS 0.5, at most 100 per image). Honours the model
contract of ``detector.core.contract``; labels 0..C-1 outside, slot 0 = background inside.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import Conv2dNormActivation

from detector.core.boxes import box_iou, decode, encode
from detector.core.contract import check_images, padded_targets, post_settings
from detector.core.detections import per_image
from detector.core.geometry import fit_images, to_original
from detector.core.matching import BETWEEN, match_thresholds, sample_pos_neg
from detector.models.rcnn_transform import resize_boxes, transform_images
from detector.models.resnet_body import FrozenParts, detection_body
from detector.models.rpn import RPN, clip_to_sizes

BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
CANONICAL_SCALE, CANONICAL_LEVEL = 224, 4  # FPN paper: a 224-pixel RoI is pooled from P4


def pool_rois(features: list[Tensor], strides: list[int], rois: Tensor, output_size: int = 7, op: str = "align",
              aligned: bool = True) -> Tensor:
    """Pool each RoI from the level of its size (the FPN paper's rule; the only level when there is one).
    ``aligned=True`` samples pixel centres (detectron2's choice); torchvision's MultiScaleRoIAlign uses False.

    Args:
        features: maps at ``strides``. rois (Tensor[K, 5]): (image index, x1, y1, x2, y2) in pixels.

    Returns:
        Tensor[K, C, output_size, output_size].
    """
    C = features[0].shape[1]
    out = rois.new_zeros((rois.shape[0], C, output_size, output_size), dtype=features[0].dtype)
    if len(features) == 1:
        level = torch.zeros(rois.shape[0], dtype=torch.long, device=rois.device)
    else:
        k_min, k_max = int(math.log2(strides[0])), int(math.log2(strides[-1]))
        size = ((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2])).clamp(min=1e-6).sqrt()
        k = torch.floor(CANONICAL_LEVEL + torch.log2(size / CANONICAL_SCALE) + 1e-6).clamp(k_min, k_max)
        level = (k - k_min).long()
    for i, (feat, stride) in enumerate(zip(features, strides)):
        idx = (level == i).nonzero(as_tuple=True)[0]
        if idx.numel() == 0:
            continue
        if op == "align":
            pooled = torchvision.ops.roi_align(feat, rois[idx].to(feat.dtype), output_size, 1.0 / stride,
                                               sampling_ratio=2, aligned=aligned)
        else:
            pooled = torchvision.ops.roi_pool(feat, rois[idx].to(feat.dtype), output_size, 1.0 / stride)
        out[idx] = pooled.to(out.dtype)
    return out


def box_head(channels: int, representation: int, convs: int = 0, fcs: int = 2) -> nn.Sequential:
    """The RoI box head on ``[K, channels, 7, 7]``: ``convs`` 3x3 conv + BatchNorm + ReLU (torchvision's v2: 4),
    then ``fcs`` fully connected layers with ReLU (the paper's two; v2: one)."""
    layers: list[nn.Module] = [Conv2dNormActivation(channels, channels, 3, norm_layer=nn.BatchNorm2d) for _ in range(convs)]
    layers.append(nn.Flatten())
    for i in range(fcs):
        layers += [nn.Linear(channels * 7 * 7 if i == 0 else representation, representation), nn.ReLU()]
    return nn.Sequential(*layers)


class FasterRCNN(FrozenParts, nn.Module):
    loss_names = ("loss_objectness", "loss_rpn_box", "loss_classifier", "loss_box_reg")  # torchvision's names

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet18",  # resnet18/34/50 (the book's), tv_resnet18/34/50, tv_mobilenet_v3_large
        fpn: bool = True,
        roi_op: str = "align",  # "align" (RoI Align) or "pool" (RoI pooling, as the book explains first)
        freeze_stages: int = 0,  # body parts kept fixed: 1 = stem, ... (ResNet: 5 = the whole body; MobileNet: 6)
        fpn_channels: int = 256,
        anchor_sizes: tuple = (32, 64, 128, 256),  # pixels, one per FPN level (all on the one level without FPN),
        # or a tuple of sizes per level (torchvision's MobileNet models: (32, 64, 128, 256, 512) at each)
        anchor_ratios: tuple = (0.5, 1.0, 2.0),
        rpn_pre_nms_top_n: tuple = (2000, 1000),  # per level, (training, eval)
        rpn_post_nms_top_n: tuple = (2000, 1000),  # per image, (training, eval)
        rpn_batch_size_per_image: int = 256,  # anchors sampled per image for the RPN's loss
        rpn_score_threshold: float = 0.0,  # proposals below this objectness are dropped (torchvision's mobile: 0.05)
        box_batch_size_per_image: int = 512,
        box_positive_fraction: float = 0.25,
        box_iou: float = 0.5,  # a RoI with IoU >= this is foreground, else background
        representation: int = 1024,  # width of the fully connected layers
        score_threshold: float = 0.05,
        nms_threshold: float = 0.5,
        max_detections: int = 100,
        # the input transform (torchvision's GeneralizedRCNNTransform; its weights: 800, 1333, 32)
        min_size: int | None = None,  # resize the shorter side to this; None: img_size's square fit (the project's)
        max_size: int | None = None,  # ... unless the longer side would pass this
        size_divisible: int = 1,  # pad the batch to a multiple of this
        # torchvision's layout, set by from_torchvision (the defaults are this project's)
        frozen_bn: bool = False,  # FrozenBatchNorm2d in the body (torchvision's v1)
        fpn_from_stage: int | None = None,  # the FPN takes body parts from this one on: ResNet 2 (P3-P6; torchvision
        # 1: P2-P6), MobileNet 4 (torchvision's: its two stride-32 maps)
        fpn_norm: bool = False,  # BatchNorm in the FPN (torchvision's v2)
        roi_levels: int | None = None,  # RoIs pooled from the first N FPN levels; None: all (torchvision: 4, not P6)
        roi_aligned: bool = True,  # RoI Align's half-pixel offset (detectron2); torchvision's MultiScaleRoIAlign: False
        anchor_style: str = "centred",  # or "torchvision" (see detector.models.rpn.ANCHOR_STYLES)
        rpn_conv_depth: int = 1,  # 3x3 convs in the RPN head (torchvision's v2: 2)
        box_head_convs: int = 0,  # 3x3 conv + BN layers before the FCs (torchvision's v2: 4)
        box_head_fcs: int = 2,  # fully connected layers (torchvision's v2: 1)
        class_slots: tuple | None = None,  # the head's slot of each class (COCO's 90 ids, 80 used); None: i for i
        img_size: int | None = None,  # without min_size, eval fits images to img_size x img_size (as the SSDs)
        letterbox: bool = False,  # ... keeping each image's aspect
    ):
        super().__init__()
        if roi_op not in ("align", "pool"):
            raise ValueError(f"roi_op must be 'align' or 'pool', got {roi_op!r}")
        self.num_classes, self.backbone, self.fpn_enabled, self.roi_op = num_classes, backbone, fpn, roi_op
        self.min_size, self.max_size, self.size_divisible = min_size, max_size, size_divisible
        self.img_size, self.letterbox, self.roi_aligned = img_size, letterbox, roi_aligned
        self.class_slots = list(class_slots) if class_slots is not None else list(range(num_classes))
        if len(self.class_slots) != num_classes:
            raise ValueError(f"class_slots names {len(self.class_slots)} slots for {num_classes} classes")
        self.head_classes = max(self.class_slots) + 1  # foreground outputs of the box predictor
        body, part_channels, part_strides = detection_body(backbone, frozen_bn)
        self.body = body  # ResNet: stem, stage1 .. stage4 (strides 4, 4, 8, 16, 32); MobileNet: six parts
        default_from = 4 if backbone == "tv_mobilenet_v3_large" else 2
        self.fpn_from_stage = fpn_from_stage = default_from if fpn_from_stage is None else fpn_from_stage
        per_level = bool(anchor_sizes) and isinstance(anchor_sizes[0], (list, tuple))
        if fpn:
            self.fpn = torchvision.ops.FeaturePyramidNetwork(part_channels[fpn_from_stage:], fpn_channels,
                                                             extra_blocks=LastLevelMaxPool(),
                                                             norm_layer=nn.BatchNorm2d if fpn_norm else None)
            channels, self.strides = fpn_channels, [*part_strides[fpn_from_stage:], part_strides[-1] * 2]
            sizes = [list(s) for s in anchor_sizes] if per_level else [[s] for s in anchor_sizes]
        else:
            self.fpn = None
            channels, self.strides = part_channels[-1], [part_strides[-1]]
            sizes = [list(anchor_sizes[0])] if per_level else [list(anchor_sizes)]
        self.roi_levels = roi_levels or len(self.strides)
        if len(sizes) != len(self.strides):
            raise ValueError(f"anchor_sizes needs one size per level ({len(self.strides)}), got {len(anchor_sizes)}")
        self.rpn = RPN(channels, self.strides, sizes, anchor_ratios, pre_nms_top_n=rpn_pre_nms_top_n,
                       post_nms_top_n=rpn_post_nms_top_n, batch_size_per_image=rpn_batch_size_per_image,
                       conv_depth=rpn_conv_depth, anchor_style=anchor_style, score_threshold=rpn_score_threshold)
        self.box_head = box_head(channels, representation, box_head_convs, box_head_fcs)
        self.cls_score = nn.Linear(representation, self.head_classes + 1)
        self.bbox_pred = nn.Linear(representation, (self.head_classes + 1) * 4)
        self.box_batch_size_per_image, self.box_positive_fraction, self.box_iou = (box_batch_size_per_image,
                                                                                   box_positive_fraction, box_iou)
        self.post_defaults = {"score_threshold": score_threshold, "nms_threshold": nms_threshold, "max_detections": max_detections}
        self.freeze([body[i] for i in range(freeze_stages)])

    @staticmethod
    def body_key(part: int) -> str:
        """The name prefix, in this model, of body part ``part`` (0 = stem, 1..4 = stages)."""
        return f"body.{part}"

    def features(self, x: Tensor) -> list[Tensor]:
        """``x``: the normalized, padded batch ``[B, 3, H, W]`` -> the FPN's maps (or the body's last), finest first."""
        maps = []
        for i, part in enumerate(self.body):
            x = part(x)
            if i >= self.fpn_from_stage:
                maps.append(x)
        if self.fpn is None:
            return [maps[-1]]
        return list(self.fpn(OrderedDict((str(i), m) for i, m in enumerate(maps))).values())

    def forward(self, images: Tensor | list[Tensor], targets: list[dict] | dict | None = None,
                post: dict | None = None, size: int | None = None):
        """The model contract (:mod:`detector.core.contract`). In eval mode without ``min_size``, images are
        fitted to ``size`` (default: ``img_size``) as the SSDs fit them (:mod:`detector.core.geometry`)."""
        size = size or self.img_size
        if self.training or self.min_size is not None or size is None:
            return self._forward(images, targets, post)
        check_images(images)
        x, frames = fit_images(images, size, self.letterbox)  # (B, 3, S, S), (B, 6)
        detections = self._forward(x, None, post)
        for d, frame in zip(detections, frames):
            d["boxes"] = to_original(d["boxes"], frame)  # in the image's own pixels
        return detections

    def _forward(self, images: Tensor | list[Tensor], targets: list[dict] | dict | None, post: dict | None):
        x, sizes, originals = transform_images(images, self.min_size, self.max_size, self.size_divisible)
        B, _, H, W = x.shape
        feats = self.features(x)
        if self.training:
            if targets is None:
                raise ValueError("in training mode the model needs targets")
            gt_boxes, gt_labels, gt_valid = padded_targets(targets, B, x.device)
            gt_boxes = resize_boxes(gt_boxes, originals, sizes)  # (B, G, 4) in the resized images' pixels
            proposals, valid, losses = self.rpn(feats, sizes, (H, W), gt_boxes, gt_valid)
            losses.update(self.roi_losses(feats, proposals, valid, gt_boxes, gt_labels, gt_valid))
            return losses
        proposals, valid, _ = self.rpn(feats, sizes, (H, W))
        detections = self.detect(feats, proposals, valid, sizes, post_settings(self.post_defaults, post))
        for d, size, original in zip(detections, sizes, originals):
            d["boxes"] = resize_boxes(d["boxes"], size, original)  # in the input image's own pixels
        return detections

    def pool(self, feats: list[Tensor], rois: Tensor) -> Tensor:
        """``rois (Tensor[K, 5])`` -> the box head's features ``[K, representation]``."""
        levels = self.roi_levels
        return self.box_head(pool_rois(feats[:levels], self.strides[:levels], rois, 7, self.roi_op, self.roi_aligned))

    def roi_losses(self, feats, proposals, valid, gt_boxes, gt_labels, gt_valid) -> dict[str, Tensor]:
        proposals = torch.cat((proposals, gt_boxes), 1)  # (B, N, 4): the boxes themselves are proposals too
        valid = torch.cat((valid, gt_valid), 1)  # (B, N)
        iou = box_iou(gt_boxes, proposals).masked_fill(~gt_valid[..., None], -1.0)  # (B, G, N)
        matches = match_thresholds(iou, self.box_iou, self.box_iou, allow_low_quality_matches=False)  # (B, N)
        matches = matches.masked_fill(~valid, BETWEEN)  # padding is never sampled
        pos, neg = sample_pos_neg(matches, self.box_batch_size_per_image, self.box_positive_fraction)
        b, n = (pos | neg).nonzero(as_tuple=True)  # (K,) each
        is_pos = pos[b, n]
        idx = matches[b, n].clamp(min=0)
        slots = torch.tensor(self.class_slots, device=b.device)  # (C,)
        labels = torch.where(is_pos, slots[gt_labels[b, idx].clamp(min=0)] + 1, 0)  # (K,) 0 = background
        rois = torch.cat((b[:, None].to(proposals.dtype), proposals[b, n]), 1)  # (K, 5)
        x = self.pool(feats, rois)
        logits, deltas = self.cls_score(x), self.bbox_pred(x).view(-1, self.head_classes + 1, 4)  # (K, S+1), (K, S+1, 4)
        loss_cls = F.cross_entropy(logits.float(), labels)
        target = encode(proposals[b, n][is_pos], gt_boxes[b, idx][is_pos], BOX_WEIGHTS)  # (P, 4)
        pred = deltas[is_pos, labels[is_pos]].float()  # (P, 4): the true class's regression
        loss_box = F.smooth_l1_loss(pred, target, beta=1 / 9, reduction="sum") / max(labels.numel(), 1)
        return {"loss_classifier": loss_cls, "loss_box_reg": loss_box}

    def detect(self, feats, proposals, valid, sizes: Tensor, post: dict) -> list[dict[str, Tensor]]:
        """Class-specific boxes of the valid ``proposals [B, P, 4]``, clipped to ``sizes [B, 2]`` (h, w)."""
        B, C = proposals.shape[0], self.num_classes
        b, n = valid.nonzero(as_tuple=True)  # (K,) each
        rois = torch.cat((b[:, None].to(proposals.dtype), proposals[b, n]), 1)  # (K, 5)
        x = self.pool(feats, rois)
        slots = torch.tensor(self.class_slots, device=b.device) + 1  # (C,): the classes' outputs
        scores = self.cls_score(x).float().softmax(-1)[:, slots]  # (K, C)
        deltas = self.bbox_pred(x).float().view(-1, self.head_classes + 1, 4)[:, slots]  # (K, C, 4)
        boxes = clip_to_sizes(decode(proposals[b, n][:, None], deltas, BOX_WEIGHTS), sizes[b][:, None])  # (K, C, 4)
        image = b[:, None].expand(-1, C)  # (K, C)
        labels = torch.arange(C, device=b.device)[None].expand_as(image)  # (K, C)
        wh = boxes[..., 2:] - boxes[..., :2]
        # at least the threshold, as every postprocess here (torchvision's box head keeps only above it: the two
        # differ on a score exactly equal to the threshold)
        keep = (scores >= post["score_threshold"]) & (wh >= 1e-2).all(-1)  # (K, C)
        image, labels, boxes, scores = image[keep], labels[keep], boxes[keep], scores[keep]
        kept = torchvision.ops.batched_nms(boxes, scores, image * C + labels, post["nms_threshold"])
        return per_image(image[kept], boxes[kept], scores[kept], labels[kept], B, post["max_detections"])


def faster_rcnn(num_classes: int, **kwargs) -> FasterRCNN:
    return FasterRCNN(num_classes, **kwargs)
