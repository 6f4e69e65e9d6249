"""Detection losses shared by the detectors: classification over anchors and box regression.

All take per-anchor tensors of a batch and return a scalar normalized the way the docstring says. Under
DDP, the losses normalized by a count of positives take ``num_pos`` from :func:`positives_over_processes`, so
that the gradient DDP averages over the ranks is the whole global batch's, as in one process.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from detector.core.boxes import decode

CLS_LOSSES = ("ce", "hnm", "focal")  # the book's mean cross-entropy, SSD's hard negative mining, focal loss
BOX_LOSSES = ("l1", "smooth_l1", "smooth_l1+giou")
GIOU_WEIGHT = 2.0  # "smooth_l1+giou": the GIoU term's weight beside smooth L1 (DETR weighs L1 5, GIoU 2; our offsets are
# scaled by (10, 10, 5, 5), so smooth L1 is already the larger term)


def positives_over_processes(mask: Tensor) -> Tensor:
    """The normalizer of a loss summed over the positives of ``mask`` (bool [B, A]): their number (at least 1)
    in one process; under DDP (a process group of ``W`` ranks), the number over the whole global batch divided
    by ``W`` (at least ``1 / W``). Each rank's ``sum / normalizer``, averaged over the ranks as DDP averages
    gradients, is then ``global sum / global positives``: the loss one process would compute on the global batch,
    whatever the split of positives between the ranks. Every rank must call it at the same step (a collective)."""
    count = mask.sum().float()
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return count.clamp(min=1)
    count = count.clone()
    dist.all_reduce(count)  # the global batch's positives
    return count.clamp(min=1) / dist.get_world_size()


def cls_loss(logits: Tensor, targets: Tensor, kind: str = "hnm", neg_pos_ratio: float = 3.0, gamma: float = 2.0,
             num_pos: Tensor | None = None, min_negatives: float = 3.0) -> Tensor:
    """Classification loss over anchors.

    Args:
        logits (Tensor[B, A, C + 1]): slot 0 is background.
        targets (LongTensor[B, A]): 0 background, ``c + 1`` for class ``c``.
        kind: ``"ce"`` (the book: cross-entropy averaged over every anchor), ``"hnm"`` (SSD: cross-entropy
            of the positives and of the ``neg_pos_ratio`` x as many hardest negatives per image, summed and
            divided by the number of positives), ``"focal"`` (softmax focal loss, summed over every anchor and
            divided by the number of positives).
        num_pos: what ``"hnm"`` and ``"focal"`` divide by; the batch's positives (at least 1) when None (see
            :func:`positives_over_processes` under DDP).
        min_negatives: ``"hnm"``'s negatives per image at least (an image without boxes still learns
            background); torchvision's SSD takes none there (0).
    """
    ce = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none").view(targets.shape)  # (B, A)
    if kind == "ce":
        return ce.mean()
    pos = targets > 0  # (B, A)
    num_pos = pos.sum().clamp(min=1) if num_pos is None else num_pos
    if kind == "hnm":
        neg_loss = ce.detach().masked_fill(pos, -1.0)  # (B, A): positives never count as negatives
        num_neg = (pos.sum(1, keepdim=True) * neg_pos_ratio).clamp(min=min_negatives)  # (B, 1): at least a few
        rank = neg_loss.argsort(dim=1, descending=True).argsort(dim=1)  # (B, A): 0 = hardest negative
        hard = (rank < num_neg) & ~pos
        return (ce * (pos | hard)).sum() / num_pos
    if kind == "focal":
        p_t = torch.exp(-ce)
        return ((1 - p_t) ** gamma * ce).sum() / num_pos
    raise ValueError(f"cls loss must be one of {CLS_LOSSES}, got {kind!r}")


def giou_loss(pred: Tensor, target: Tensor, eps: float = 1e-7) -> Tensor:
    """``1 - GIoU`` of each pair of xyxy boxes (Tensor[..., 4] both; Rezatofighi et al., 2019): 0 for equal boxes,
    up to 2 for far-apart ones, with a gradient even when the boxes do not overlap. Elementwise, not all pairs."""
    area_p = (pred[..., 2] - pred[..., 0]).clamp(min=0) * (pred[..., 3] - pred[..., 1]).clamp(min=0)
    area_t = (target[..., 2] - target[..., 0]).clamp(min=0) * (target[..., 3] - target[..., 1]).clamp(min=0)
    wh = (torch.minimum(pred[..., 2:], target[..., 2:]) - torch.maximum(pred[..., :2], target[..., :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_p + area_t - inter
    hull = (torch.maximum(pred[..., 2:], target[..., 2:]) - torch.minimum(pred[..., :2], target[..., :2])).clamp(min=0)
    area_c = hull[..., 0] * hull[..., 1]
    return 1 - (inter / (union + eps) - (area_c - union) / (area_c + eps))


def box_loss(pred: Tensor, target: Tensor, mask: Tensor, kind: str = "smooth_l1", beta: float = 1.0,
             num_pos: Tensor | None = None, anchors: Tensor | None = None) -> Tensor:
    """Box regression loss over matched anchors.

    Args:
        pred (Tensor[B, A, 4]): predicted offsets.
        target (Tensor[B, A, 4]): the anchors' target offsets.
        mask (Tensor[B, A] bool): matched anchors.
        kind: ``"l1"`` (the book: masked L1 averaged over every anchor and coordinate) or ``"smooth_l1"``
            (summed over the matched anchors, divided by their number, or by ``num_pos`` when given), or
            ``"smooth_l1+giou"``: that plus ``GIOU_WEIGHT`` times :func:`giou_loss` of the boxes the offsets
            put on ``anchors`` (Tensor[A, 4] xyxy, needed for it), normalized the same way.
    """
    m = mask[..., None].to(pred.dtype)  # (B, A, 1)
    if kind == "l1":
        return F.l1_loss(pred.float() * m, target * m)
    if kind in ("smooth_l1", "smooth_l1+giou"):
        norm = mask.sum().clamp(min=1) if num_pos is None else num_pos
        loss = (F.smooth_l1_loss(pred.float(), target, reduction="none", beta=beta) * m).sum() / norm
        if kind == "smooth_l1":
            return loss
        if anchors is None:
            raise ValueError("the box loss 'smooth_l1+giou' needs the anchors")
        a = anchors.expand_as(pred)[mask]  # (P, 4): the matched anchors only, so that no box is decoded for nothing
        overlap = giou_loss(decode(a, pred[mask].float()), decode(a, target[mask]))
        return loss + GIOU_WEIGHT * overlap.sum() / norm
    raise ValueError(f"box loss must be one of {BOX_LOSSES}, got {kind!r}")
