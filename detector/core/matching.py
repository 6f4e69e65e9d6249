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

from detector.core.boxes import box_iou, check_boxes

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
    """IoU of every ground-truth box of every image with every anchor, padding rows set to ``fill``.

    Args:
        anchors (Tensor[A, 4]): xyxy.
        gt_boxes (Tensor[B, G, 4]): xyxy, in the anchors' frame.
        gt_valid (Tensor[B, G] bool): False marks padding rows.
        fill: the IoU given to padding rows.

    Returns:
        Tensor[B, G, A] (torchvision's layout: ground truth by anchors).
    """
    iou = box_iou(gt_boxes, anchors)  # (B, G, A)
    return iou.masked_fill_(~gt_valid[:, :, None], fill)


def _best_gt_where(iou: Tensor, best_iou: Tensor, select: Tensor) -> Tensor:
    """Index of the first box reaching ``best_iou`` for the anchors in ``select``, -1 elsewhere.

    ``iou (Tensor[B, G, A])``, ``best_iou = iou.amax(1)`` and ``select`` (Tensor[B, A] bool). Only the
    selected columns are searched: on the CPU a dense ``max(dim=1)`` with indices costs far more.
    """
    b, a = select.nonzero(as_tuple=True)  # (K,) each
    out = torch.full(best_iou.shape, -1, dtype=torch.long, device=iou.device)
    out[b, a] = iou[b, :, a].argmax(dim=1)  # (K, G) -> (K,): first maximum on ties
    return out


def match_iou(iou: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """The book's assignment on an IoU matrix ``iou (Tensor[B, G, A])`` (padding rows < 0).

    1. Each ground-truth box takes its own best anchor, greedily in order of the largest remaining IoU;
       each anchor and each box is used once (ties: lowest anchor index, then lowest box index, as the
       book's ``argmax`` over its anchors-by-boxes matrix).
    2. Every other anchor whose best IoU is at least ``iou_threshold`` takes that box.

    One deviation from the book: a box whose IoU with every free anchor is 0 takes no anchor in step 1
    (the book would hand it an arbitrary non-overlapping one).

    Step 1 loops over G (never over anchors), for all images at once. It keeps each box's best free anchor
    and recomputes it only for boxes whose best anchor was just taken.

    Returns:
        LongTensor[B, A]: ground-truth index per anchor, -1 for background.
    """
    B, G, A = iou.shape
    if G == 0 or A == 0:
        return torch.full((B, A), -1, dtype=torch.long, device=iou.device)
    best_iou = iou.amax(dim=1)  # (B, A)
    matches = _best_gt_where(iou, best_iou, best_iou >= iou_threshold)  # (B, A)

    work = iou.clone()  # (B, G, A): taken anchors get -1
    row_val, row_anc = work.max(dim=2)  # (B, G) each: each box's best free anchor, first on ties
    placed = torch.zeros(B, G, dtype=torch.bool, device=iou.device)  # (B, G)
    gt_index = torch.arange(G, device=iou.device)
    for _ in range(min(A, G)):
        value = row_val.amax(dim=1, keepdim=True)  # (B, 1)
        take = value[:, 0] > 0  # (B,) images that still have a box to place
        if not take.any():
            break
        # among the boxes reaching the maximum: the lowest anchor, then the lowest box (the book's order)
        key = torch.where(row_val == value, row_anc * G + gt_index, A * G).amin(dim=1)  # (B,)
        b = take.nonzero(as_tuple=True)[0]  # (K,)
        anc, gt = key[b] // G, key[b] % G  # (K,) each
        matches[b, anc] = gt
        work[b, :, anc] = -1.0  # the anchor is used
        placed[b, gt] = True
        row_val[b, gt] = -1.0
        # boxes whose best anchor was just taken look again, over the free anchors
        stale_b, stale_g = ((row_anc[b] == anc[:, None]) & ~placed[b]).nonzero(as_tuple=True)  # (S,) each
        stale_b = b[stale_b]
        row_val[stale_b, stale_g], row_anc[stale_b, stale_g] = work[stale_b, stale_g].max(dim=1)
    return matches


def match_anchors(anchors: Tensor, gt_boxes: Tensor, gt_valid: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Assign anchors to ground-truth boxes, the book's way (see :func:`match_iou`), for a batch at once.

    Args:
        anchors (Tensor[A, 4]): xyxy.
        gt_boxes (Tensor[B, G, 4]): xyxy, in the anchors' frame; rows where ``gt_valid`` is False are padding.
        gt_valid (Tensor[B, G] bool): False marks padding rows.

    Returns:
        LongTensor[B, A]: the index (into G) of the box assigned to each anchor, or -1.
    """
    _check_match_inputs(anchors, gt_boxes, gt_valid)
    return match_iou(batched_iou(anchors, gt_boxes, gt_valid), iou_threshold)


def match_ssd(iou: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """SSD's matcher as torchvision writes it (``SSDMatcher``), batched: ``iou (Tensor[B, G, A])``, padding < 0.

    Every anchor whose best IoU is at least ``iou_threshold`` takes that box (the first on ties); then each
    box takes its own best anchor whatever the IoU, the later box winning an anchor two boxes share. Unlike
    :func:`match_iou` (the book's), a box's forced anchor may already be another box's.

    Returns:
        LongTensor[B, A]: ground-truth index per anchor, -1 for background.
    """
    B, G, A = iou.shape
    if G == 0 or A == 0:
        return torch.full((B, A), -1, dtype=torch.long, device=iou.device)
    best_iou, best_gt = iou.max(dim=1)  # (B, A) each
    matches = torch.where(best_iou >= iou_threshold, best_gt, -1)  # (B, A)
    best_anchor = iou.argmax(dim=2)  # (B, G)
    real = iou.amax(dim=2) >= 0  # (B, G): padding rows are -1 everywhere
    images = torch.arange(B, device=iou.device)
    for g in range(G):  # in box order, so that a later box wins a shared anchor (a loop over G, not anchors)
        b = images[real[:, g]]
        matches[b, best_anchor[b, g]] = g
    return matches


def match_thresholds(
    iou: Tensor,
    high_threshold: float = 0.7,
    low_threshold: float = 0.3,
    allow_low_quality_matches: bool = True,
) -> Tensor:
    """Faster R-CNN's matcher (torchvision's ``Matcher``), batched: ``iou (Tensor[B, G, A])``, padding < 0.

    An anchor whose best IoU is ``>= high_threshold`` matches that box; ``< low_threshold`` is background
    (:data:`BELOW_LOW`); in between it is ignored (:data:`BETWEEN`). With ``allow_low_quality_matches``,
    every anchor that reaches a box's highest IoU (when above 0) keeps its own best match even if below
    ``high_threshold``, so each box gets at least one anchor.

    Returns:
        LongTensor[B, A].
    """
    if not low_threshold <= high_threshold:
        raise ValueError(f"low_threshold ({low_threshold}) must be <= high_threshold ({high_threshold})")
    B, G, A = iou.shape
    if G == 0:
        return torch.full((B, A), BELOW_LOW, dtype=torch.long, device=iou.device)
    best_iou = iou.amax(dim=1)  # (B, A)
    positive = best_iou >= high_threshold  # (B, A)
    if allow_low_quality_matches:
        best_per_gt = iou.amax(dim=2, keepdim=True)  # (B, G, 1)
        positive |= ((iou == best_per_gt) & (best_per_gt > 0)).any(dim=1)  # (B, A)
    matches = _best_gt_where(iou, best_iou, positive)  # (B, A): the box index where positive
    matches[~positive & (best_iou >= low_threshold)] = BETWEEN
    matches[~positive & (best_iou < low_threshold)] = BELOW_LOW
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
        matches (LongTensor[B, A]): a matcher's output: a box index, ``BELOW_LOW`` or ``BETWEEN``.

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
