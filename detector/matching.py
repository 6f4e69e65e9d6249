"""Assigning anchors to ground-truth boxes, batched over images.

Two matchers, both pure functions of IoU and returning ``LongTensor[B, A]`` of ground-truth indices:

- :func:`match_anchors` (SSD, the book's ``assign_anchor_to_bbox``): -1 means background.
- :func:`match_thresholds` (Faster R-CNN, torchvision's ``Matcher``): ``BELOW_LOW`` (-1) background,
  ``BETWEEN`` (-2) ignored.

and :func:`sample_pos_neg`, the positive/negative sampler of the RPN and the RoI head.
"""

from __future__ import annotations

import torch
from torch import Tensor

from detector.boxes import box_iou, check_boxes

BELOW_LOW = -1  # background
BETWEEN = -2  # in the ignore band: neither positive nor negative


def _check_match_inputs(anchors: Tensor, gt_boxes: Tensor, gt_valid: Tensor) -> None:
    check_boxes(anchors, "anchors")
    if anchors.ndim != 2:
        raise ValueError(f"anchors must have shape [A, 4], got {tuple(anchors.shape)}")
    if gt_boxes.ndim != 3 or gt_boxes.shape[-1] != 4:
        raise ValueError(f"gt_boxes must have shape [B, G, 4], got {tuple(gt_boxes.shape)}")
    if gt_valid.shape != gt_boxes.shape[:2] or gt_valid.dtype != torch.bool:
        raise ValueError(
            f"gt_valid must be a bool tensor of shape [B, G] = {list(gt_boxes.shape[:2])}, "
            f"got {gt_valid.dtype} {tuple(gt_valid.shape)}"
        )
    check_boxes(gt_boxes, "gt_boxes", valid=gt_valid)


def batched_iou(anchors: Tensor, gt_boxes: Tensor, gt_valid: Tensor, fill: float = -1.0) -> Tensor:
    """IoU of every anchor with every ground-truth box of every image, padding columns set to ``fill``.

    Args:
        anchors (Tensor[A, 4]), gt_boxes (Tensor[B, G, 4]), gt_valid (Tensor[B, G] bool).

    Returns:
        Tensor[B, A, G].
    """
    iou = box_iou(anchors.expand(gt_boxes.shape[0], -1, -1), gt_boxes)  # (B, A, G)
    return iou.masked_fill(~gt_valid[:, None, :], fill)


def match_iou(iou: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """The book's assignment on an IoU matrix ``iou (Tensor[B, A, G])`` (padding columns < 0).

    1. Each ground-truth box takes its own best anchor, greedily in order of the largest remaining IoU;
       each anchor and each box is used once (ties: lowest anchor index, then lowest box index, as the
       book's ``argmax`` over the flattened matrix).
    2. Every other anchor whose best IoU is at least ``iou_threshold`` takes that box.

    One deviation from the book: a box whose IoU with every free anchor is 0 takes no anchor in step 1
    (the book would hand it an arbitrary non-overlapping one).

    Returns:
        LongTensor[B, A]: ground-truth index per anchor, -1 for background.
    """
    B, A, G = iou.shape
    best_iou, best_gt = iou.max(dim=2) if G > 0 else (iou.new_full((B, A), -1.0), iou.new_zeros((B, A), dtype=torch.long))
    matches = torch.where(best_iou >= iou_threshold, best_gt, -1)  # (B, A)
    if G == 0 or A == 0:
        return matches
    work = iou.clone(memory_format=torch.contiguous_format)  # (B, A, G), flattened below
    batch = torch.arange(B, device=iou.device)
    for _ in range(min(A, G)):
        value, flat = work.reshape(B, A * G).max(dim=1)  # (B,) each; first maximum on ties
        take = value > 0  # (B,) images that still have a box to place
        if not take.any():
            break
        anc, gt = flat // G, flat % G  # (B,) each
        b, anc, gt = batch[take], anc[take], gt[take]
        matches[b, anc] = gt
        work[b, anc, :] = -1.0  # the anchor is used
        work[b, :, gt] = -1.0  # the box is placed
    return matches


def match_anchors(anchors: Tensor, gt_boxes: Tensor, gt_valid: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Assign anchors to ground-truth boxes, the book's way (see :func:`match_iou`), for a batch at once.

    Args:
        anchors (Tensor[A, 4]): xyxy.
        gt_boxes (Tensor[B, G, 4]): xyxy, in the anchors' frame; rows where ``gt_valid`` is False are padding.
        gt_valid (Tensor[B, G] bool).

    Returns:
        LongTensor[B, A]: the index (into G) of the box assigned to each anchor, or -1.
    """
    _check_match_inputs(anchors, gt_boxes, gt_valid)
    return match_iou(batched_iou(anchors, gt_boxes, gt_valid), iou_threshold)


def match_thresholds(
    iou: Tensor,
    high_threshold: float = 0.7,
    low_threshold: float = 0.3,
    allow_low_quality_matches: bool = True,
) -> Tensor:
    """Faster R-CNN's matcher (torchvision's ``Matcher``), batched: ``iou (Tensor[B, A, G])``, padding < 0.

    An anchor whose best IoU is ``>= high_threshold`` matches that box; ``< low_threshold`` is background
    (:data:`BELOW_LOW`); in between it is ignored (:data:`BETWEEN`). With ``allow_low_quality_matches``,
    every anchor that reaches a box's highest IoU (when above 0) keeps its own best match even if below
    ``high_threshold``, so each box gets at least one anchor.

    Returns:
        LongTensor[B, A].
    """
    if not low_threshold <= high_threshold:
        raise ValueError(f"low_threshold ({low_threshold}) must be <= high_threshold ({high_threshold})")
    B, A, G = iou.shape
    if G == 0:
        return iou.new_full((B, A), BELOW_LOW, dtype=torch.long)
    best_iou, best_gt = iou.max(dim=2)  # (B, A)
    matches = best_gt.clone()
    matches[best_iou < high_threshold] = BETWEEN
    matches[best_iou < low_threshold] = BELOW_LOW
    if allow_low_quality_matches:
        best_per_gt = iou.max(dim=1, keepdim=True).values  # (B, 1, G)
        low_quality = ((iou == best_per_gt) & (best_per_gt > 0)).any(dim=2)  # (B, A)
        matches = torch.where(low_quality, best_gt, matches)
    return matches


def sample_pos_neg(
    matches: Tensor,
    batch_size_per_image: int,
    positive_fraction: float,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Sample at most ``batch_size_per_image`` anchors (or proposals) per image, at most
    ``positive_fraction`` of them positive (``matches >= 0``), the rest negative (``matches == BELOW_LOW``);
    ignored ones (``BETWEEN``) are never sampled. Uniform without replacement, batched over images.

    Args:
        matches (LongTensor[B, A]).

    Returns:
        (pos_mask, neg_mask): bool Tensor[B, A] each.
    """
    pos = matches >= 0  # (B, A)
    neg = matches == BELOW_LOW  # (B, A)
    num_pos = pos.sum(1).clamp(max=int(batch_size_per_image * positive_fraction))  # (B,)
    num_neg = neg.sum(1).clamp(max=batch_size_per_image - num_pos)  # (B,)
    rand = torch.rand(matches.shape, device=matches.device, generator=generator)  # (B, A)
    return _take_random(pos, num_pos, rand), _take_random(neg, num_neg, rand)


def _take_random(mask: Tensor, count: Tensor, rand: Tensor) -> Tensor:
    """The first ``count[b]`` elements of ``mask[b]`` in the random order of ``rand[b]``."""
    key = torch.where(mask, rand, 2.0)  # (B, A): masked-out elements sort last
    order = key.argsort(dim=1)  # (B, A)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(mask.shape[1], device=mask.device).expand_as(order))
    return mask & (rank < count[:, None])
