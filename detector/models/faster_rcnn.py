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

from detector.core.boxes import box_iou, clip_boxes, decode, encode
from detector.core.contract import check_images, normalize_images, padded_targets, post_settings
from detector.core.detections import per_image
from detector.core.matching import BETWEEN, match_thresholds, sample_pos_neg
from detector.models.resnet_ssd import FrozenParts, resnet_body
from detector.models.rpn import RPN

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


class FasterRCNN(FrozenParts, nn.Module):
    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet18",  # resnet18/34/50 (the book's) or tv_resnet18/34/50 (torchvision's)
        fpn: bool = True,
        roi_op: str = "align",  # "align" (RoI Align) or "pool" (RoI pooling, as the book explains first)
        freeze_stages: int = 0,  # body parts kept fixed: 1 = stem, ... 5 = the whole body
        fpn_channels: int = 256,
        anchor_sizes: tuple = (32, 64, 128, 256),  # pixels, one per FPN level (all on the one level without FPN)
        anchor_ratios: tuple = (0.5, 1.0, 2.0),
        rpn_pre_nms_top_n: tuple = (2000, 1000),  # per level, (training, eval)
        rpn_post_nms_top_n: tuple = (2000, 1000),  # per image, (training, eval)
        box_batch_size_per_image: int = 512,
        box_positive_fraction: float = 0.25,
        box_iou: float = 0.5,  # a RoI with IoU >= this is foreground, else background
        representation: int = 1024,  # width of the two fully connected layers
        score_threshold: float = 0.05,
        nms_threshold: float = 0.5,
        max_detections: int = 100,
    ):
        super().__init__()
        if roi_op not in ("align", "pool"):
            raise ValueError(f"roi_op must be 'align' or 'pool', got {roi_op!r}")
        self.num_classes, self.backbone, self.fpn_enabled, self.roi_op = num_classes, backbone, fpn, roi_op
        body, (c3, c4, c5) = resnet_body(backbone)
        self.body = body  # stem, stage1 .. stage4: strides 4, 4, 8, 16, 32
        if fpn:
            self.fpn = torchvision.ops.FeaturePyramidNetwork([c3, c4, c5], fpn_channels, extra_blocks=LastLevelMaxPool())
            channels, self.strides = fpn_channels, [8, 16, 32, 64]
            sizes = [[s] for s in anchor_sizes]
        else:
            self.fpn = None
            channels, self.strides = c5, [32]
            sizes = [list(anchor_sizes)]
        if len(sizes) != len(self.strides):
            raise ValueError(f"anchor_sizes needs one size per level ({len(self.strides)}), got {len(anchor_sizes)}")
        self.rpn = RPN(channels, self.strides, sizes, anchor_ratios, pre_nms_top_n=rpn_pre_nms_top_n,
                       post_nms_top_n=rpn_post_nms_top_n)
        self.box_head = nn.Sequential(nn.Flatten(), nn.Linear(channels * 7 * 7, representation), nn.ReLU(),
                                      nn.Linear(representation, representation), nn.ReLU())
        self.cls_score = nn.Linear(representation, num_classes + 1)
        self.bbox_pred = nn.Linear(representation, (num_classes + 1) * 4)
        self.box_batch_size_per_image, self.box_positive_fraction = box_batch_size_per_image, box_positive_fraction
        self.box_iou = box_iou
        self.post_defaults = {"score_threshold": score_threshold, "nms_threshold": nms_threshold, "max_detections": max_detections}
        self.freeze([body[i] for i in range(freeze_stages)])

    @staticmethod
    def body_key(part: int) -> str:
        """The name prefix, in this model, of body part ``part`` (0 = stem, 1..4 = stages)."""
        return f"body.{part}"

    def features(self, images: Tensor) -> list[Tensor]:
        x = normalize_images(images)
        maps = []
        for i, part in enumerate(self.body):
            x = part(x)
            if i >= 2:
                maps.append(x)  # strides 8, 16, 32
        if self.fpn is None:
            return [maps[-1]]
        return list(self.fpn(OrderedDict((str(i), m) for i, m in enumerate(maps))).values())

    def forward(self, images: Tensor, targets: list[dict] | dict | None = None, post: dict | None = None):
        check_images(images)
        B, _, H, W = images.shape
        feats = self.features(images)
        if self.training:
            if targets is None:
                raise ValueError("in training mode the model needs targets")
            gt_boxes, gt_labels, gt_valid = padded_targets(targets, B, images.device)
            proposals, valid, losses = self.rpn(feats, (H, W), gt_boxes, gt_valid)
            losses.update(self.roi_losses(feats, proposals, valid, gt_boxes, gt_labels, gt_valid))
            return losses
        proposals, valid, _ = self.rpn(feats, (H, W))
        return self.detect(feats, proposals, valid, (H, W), post_settings(self.post_defaults, post))

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
        labels = torch.where(is_pos, gt_labels[b, idx] + 1, 0)  # (K,) 0 = background
        rois = torch.cat((b[:, None].to(proposals.dtype), proposals[b, n]), 1)  # (K, 5)
        x = self.box_head(pool_rois(feats, self.strides, rois, 7, self.roi_op))
        logits, deltas = self.cls_score(x), self.bbox_pred(x).view(-1, self.num_classes + 1, 4)  # (K, C+1), (K, C+1, 4)
        loss_cls = F.cross_entropy(logits.float(), labels)
        target = encode(proposals[b, n][is_pos], gt_boxes[b, idx][is_pos], BOX_WEIGHTS)  # (P, 4)
        pred = deltas[is_pos, labels[is_pos]].float()  # (P, 4): the true class's regression
        loss_box = F.smooth_l1_loss(pred, target, beta=1 / 9, reduction="sum") / max(labels.numel(), 1)
        return {"loss_classifier": loss_cls, "loss_box_reg": loss_box}

    def detect(self, feats, proposals, valid, image_size, post: dict) -> list[dict[str, Tensor]]:
        B, C = proposals.shape[0], self.num_classes
        b, n = valid.nonzero(as_tuple=True)  # (K,) each
        rois = torch.cat((b[:, None].to(proposals.dtype), proposals[b, n]), 1)  # (K, 5)
        x = self.box_head(pool_rois(feats, self.strides, rois, 7, self.roi_op))
        scores = self.cls_score(x).float().softmax(-1)[:, 1:]  # (K, C)
        deltas = self.bbox_pred(x).float().view(-1, C + 1, 4)[:, 1:]  # (K, C, 4)
        boxes = clip_boxes(decode(proposals[b, n][:, None], deltas, BOX_WEIGHTS), *image_size)  # (K, C, 4)
        image = b[:, None].expand(-1, C)  # (K, C)
        labels = torch.arange(C, device=b.device)[None].expand_as(image)  # (K, C)
        wh = boxes[..., 2:] - boxes[..., :2]
        keep = (scores > post["score_threshold"]) & (wh >= 1e-2).all(-1)  # (K, C)
        image, labels, boxes, scores = image[keep], labels[keep], boxes[keep], scores[keep]
        kept = torchvision.ops.batched_nms(boxes, scores, image * C + labels, post["nms_threshold"])
        return per_image(image[kept], boxes[kept], scores[kept], labels[kept], B, post["max_detections"])


def faster_rcnn(num_classes: int, **kwargs) -> FasterRCNN:
    return FasterRCNN(num_classes, **kwargs)
