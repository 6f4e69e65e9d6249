"""Faster R-CNN's region proposal network, batched over images on the project's core.

Anchors per level (:func:`detector.core.anchors.grid_anchors`), matching at 0.7 / 0.3 with low-quality matches
(:func:`detector.core.matching.match_thresholds`), 256 samples per image, half positive
(:func:`detector.core.matching.sample_pos_neg`), offsets with weights (1, 1, 1, 1); proposals decoded, clipped,
small ones removed, top-k per level, NMS at 0.7, the best ``post_nms_top_n`` per image kept. No Python loop
over images or anchors: every image of the batch goes through each step at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from detector.core.anchors import grid_anchors
from detector.core.boxes import decode, encode
from detector.core.matching import batched_iou, match_thresholds, sample_pos_neg

RPN_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
ANCHOR_STYLES = {
    "centred": "anchors centred on each cell, the nominal stride of each level",
    "torchvision": "torchvision's AnchorGenerator: at each cell's top-left corner, base sizes rounded to whole "
                   "pixels, strides = padded image size // map size per axis",
}


def clip_to_sizes(boxes: Tensor, sizes: Tensor) -> Tensor:
    """Clip xyxy ``boxes (Tensor[..., 4])`` to ``[0, w] x [0, h]`` of ``sizes (Tensor[..., 2])`` = (h, w),
    broadcast against the boxes' leading dimensions (one size per image)."""
    wh = sizes.flip(-1).to(boxes.dtype)  # (..., 2): w, h
    limit = torch.cat((wh, wh), -1)  # (..., 4)
    return torch.minimum(boxes.clamp(min=0), limit)


class RPNHead(nn.Module):
    """A 3x3 conv and ReLU shared by all levels, then 1x1 convs for objectness (K) and offsets (4K)."""

    def __init__(self, channels: int, num_anchors: int, conv_depth: int = 1):
        super().__init__()
        convs = [nn.Conv2d(channels, channels, 3, padding=1) for _ in range(conv_depth)]  # torchvision's v2: 2
        self.conv = convs[0] if conv_depth == 1 else nn.Sequential(*[m for c in convs for m in (c, nn.ReLU())][:-1])
        self.objectness = nn.Conv2d(channels, num_anchors, 1)
        self.deltas = nn.Conv2d(channels, num_anchors * 4, 1)
        for layer in (*convs, self.objectness, self.deltas):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features: list[Tensor]) -> tuple[Tensor, Tensor, list[int]]:
        """``(objectness [B, A], offsets [B, A, 4], anchors per level)``, levels concatenated cell by cell."""
        scores, deltas, counts = [], [], []
        for x in features:
            t = F.relu(self.conv(x))
            B = t.shape[0]
            scores.append(self.objectness(t).permute(0, 2, 3, 1).reshape(B, -1))  # (B, H*W*K)
            deltas.append(self.deltas(t).permute(0, 2, 3, 1).reshape(B, -1, 4))  # (B, H*W*K, 4)
            counts.append(scores[-1].shape[1])
        return torch.cat(scores, 1), torch.cat(deltas, 1), counts


class RPN(nn.Module):
    def __init__(
        self,
        channels: int,
        strides: Sequence[int],
        sizes: Sequence[Sequence[float]],  # anchor sizes in pixels, per level
        ratios: Sequence[float] = (0.5, 1.0, 2.0),
        fg_iou: float = 0.7,
        bg_iou: float = 0.3,
        batch_size_per_image: int = 256,
        positive_fraction: float = 0.5,
        pre_nms_top_n: tuple[int, int] = (2000, 1000),  # per level, (training, eval)
        post_nms_top_n: tuple[int, int] = (2000, 1000),  # per image, (training, eval)
        nms_threshold: float = 0.7,
        min_size: float = 1e-3,
        conv_depth: int = 1,  # 3x3 convs in the head (torchvision's v2: 2)
        anchor_style: str = "centred",  # or "torchvision": see ANCHOR_STYLES
        score_threshold: float = 0.0,  # proposals of a lower objectness probability are dropped before NMS
    ):
        super().__init__()
        if anchor_style not in ANCHOR_STYLES:
            raise ValueError(f"anchor_style must be one of {list(ANCHOR_STYLES)}, got {anchor_style!r}")
        self.strides, self.sizes, self.ratios = list(strides), [list(s) for s in sizes], list(ratios)
        self.anchor_style = anchor_style
        self.head = RPNHead(channels, len(self.sizes[0]) * len(self.ratios), conv_depth)
        self.fg_iou, self.bg_iou = fg_iou, bg_iou
        self.batch_size_per_image, self.positive_fraction = batch_size_per_image, positive_fraction
        self.pre_nms_top_n, self.post_nms_top_n = pre_nms_top_n, post_nms_top_n
        self.nms_threshold, self.min_size, self.score_threshold = nms_threshold, min_size, score_threshold
        self._anchor_cache: dict[tuple, Tensor] = {}

    def anchors(self, features: list[Tensor], padded: tuple[int, int]) -> Tensor:
        """All levels' anchors in pixels, ``[A, 4]``, cached per feature-map shapes, batch size and device."""
        key = (tuple(tuple(f.shape[-2:]) for f in features), tuple(padded), str(features[0].device))
        if key not in self._anchor_cache:
            tv = self.anchor_style == "torchvision"
            strides = [(padded[0] // f.shape[-2], padded[1] // f.shape[-1]) if tv else s
                       for f, s in zip(features, self.strides)]
            self._anchor_cache[key] = torch.cat([
                grid_anchors(f.shape[-2], f.shape[-1], s, sz, self.ratios, f.device, offset=0.0 if tv else 0.5,
                             round_sizes=tv)
                for f, s, sz in zip(features, strides, self.sizes)])
        return self._anchor_cache[key]

    def forward(self, features: list[Tensor], sizes: Tensor, padded: tuple[int, int], gt_boxes: Tensor | None = None,
                gt_valid: Tensor | None = None) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """``(proposals [B, P, 4], proposal_valid [B, P], losses)``; losses only when ``gt_boxes`` is given.
        ``sizes (Tensor[B, 2])``: (h, w) of each image in the batch, ``padded``: the batch's (H, W)."""
        objectness, deltas, counts = self.head(features)  # (B, A), (B, A, 4)
        anchors = self.anchors(features, padded)  # (A, 4)
        proposals, valid = self.propose(anchors, objectness.detach(), deltas.detach(), counts, sizes)
        losses = {}
        if gt_boxes is not None:
            losses = self.loss(anchors, objectness, deltas, gt_boxes, gt_valid)
        return proposals, valid, losses

    def propose(self, anchors: Tensor, objectness: Tensor, deltas: Tensor, counts: list[int],
                sizes: Tensor) -> tuple[Tensor, Tensor]:
        B = objectness.shape[0]
        mode = 0 if self.training else 1
        idx, levels = [], []
        for level, (start, n) in enumerate(zip(torch.tensor([0, *counts]).cumsum(0).tolist(), counts)):
            k = min(self.pre_nms_top_n[mode], n)
            top = objectness[:, start : start + n].topk(k, dim=1).indices + start  # (B, k)
            idx.append(top)
            levels.append(torch.full((k,), level, device=objectness.device))
        idx, levels = torch.cat(idx, 1), torch.cat(levels)  # (B, N), (N,)
        scores = objectness.gather(1, idx).float().sigmoid()  # (B, N): probabilities, as torchvision ranks them
        boxes = clip_to_sizes(decode(anchors[idx], deltas.gather(1, idx[..., None].expand(-1, -1, 4)), RPN_WEIGHTS),
                              sizes[:, None])  # (B, N, 4)
        wh = boxes[..., 2:] - boxes[..., :2]
        keep = (wh >= self.min_size).all(-1) & torch.isfinite(scores) & (scores >= self.score_threshold)  # (B, N)
        image = torch.arange(B, device=boxes.device)[:, None].expand_as(scores)  # (B, N)
        group = image * len(counts) + levels[None]  # NMS within each image and level
        kept = torchvision.ops.batched_nms(boxes[keep], scores[keep], group[keep], self.nms_threshold)
        flat_image, flat_boxes = image[keep][kept], boxes[keep][kept]
        return pad_per_image(flat_image, flat_boxes, B, self.post_nms_top_n[mode])

    def loss(self, anchors: Tensor, objectness: Tensor, deltas: Tensor, gt_boxes: Tensor, gt_valid: Tensor) -> dict:
        iou = batched_iou(anchors, gt_boxes, gt_valid)  # (B, G, A)
        matches = match_thresholds(iou, self.fg_iou, self.bg_iou, allow_low_quality_matches=True)  # (B, A)
        pos, neg = sample_pos_neg(matches, self.batch_size_per_image, self.positive_fraction)  # (B, A) each
        sampled = pos | neg
        num = sampled.sum().clamp(min=1)
        obj_loss = F.binary_cross_entropy_with_logits(objectness[sampled].float(), pos[sampled].float(), reduction="sum") / num
        matched = gt_boxes.gather(1, matches.clamp(min=0)[..., None].expand(-1, -1, 4))  # (B, A, 4)
        target = encode(anchors[None].expand_as(matched)[pos], matched[pos], RPN_WEIGHTS)  # (P, 4)
        box_loss = F.smooth_l1_loss(deltas[pos].float(), target, beta=1 / 9, reduction="sum") / num
        return {"loss_objectness": obj_loss, "loss_rpn_box": box_loss}


def pad_per_image(image: Tensor, boxes: Tensor, batch: int, top_n: int) -> tuple[Tensor, Tensor]:
    """Flat detections sorted by decreasing score -> the best ``top_n`` per image, padded:
    ``(boxes [B, top_n, 4], valid [B, top_n])``."""
    order = torch.sort(image, stable=True).indices  # by image, keeping the score order within each
    image, boxes = image[order], boxes[order]
    counts = torch.bincount(image, minlength=batch)  # (B,)
    starts = counts.cumsum(0) - counts
    rank = torch.arange(len(image), device=image.device) - starts[image]  # position within its image
    keep = rank < top_n
    out = boxes.new_zeros(batch, top_n, 4)
    valid = torch.zeros(batch, top_n, dtype=torch.bool, device=boxes.device)
    out[image[keep], rank[keep]] = boxes[keep]
    valid[image[keep], rank[keep]] = True
    return out, valid
