"""Box operations: pure functions over ``Tensor[..., 4]``.

One format inside the package: ``xyxy`` = (x1, y1, x2, y2) with x1 <= x2 and y1 <= y2, in whatever frame
the caller uses (D2L's normalized [0, 1] coordinates or pixels). Other formats appear only at the edges:
``xywh`` (COCO files) and ``cxcywh`` (inside :func:`encode` / :func:`decode`).

Every function accepts any number of leading batch dimensions unless its docstring says otherwise.
"""

from __future__ import annotations

import math

import torch
import torchvision
from torch import Tensor

FORMATS = ("xyxy", "xywh", "cxcywh")
DEFAULT_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # the book's offsets: 10 * dxy / wh, 5 * log(wh ratio)
BBOX_XFORM_CLIP = math.log(1000.0 / 16)  # largest exp() argument in decode, as torchvision


def check_boxes(boxes: Tensor, name: str = "boxes", valid: Tensor | None = None) -> None:
    """Raise ``ValueError`` naming ``name`` if ``boxes`` is not a finite ``[..., 4]`` xyxy tensor.

    Args:
        boxes (Tensor[..., 4]): xyxy boxes.
        name: the argument's name, used in the message.
        valid (Tensor[...] bool, optional): only these rows are checked (padding rows may hold anything).
    """
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(boxes).__name__}")
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape [..., 4], got {tuple(boxes.shape)}")
    if not boxes.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {boxes.dtype}")
    if boxes.numel() == 0:
        return
    rows = boxes if valid is None else boxes[valid]  # (K, 4)
    if not torch.isfinite(rows).all():
        bad = (~torch.isfinite(rows).all(-1)).nonzero()[0, 0].item()
        raise ValueError(f"{name} has NaN or inf values (first at row {bad} of the checked rows)")
    inverted = (rows[..., 2] < rows[..., 0]) | (rows[..., 3] < rows[..., 1])
    if inverted.any():
        bad = inverted.flatten().nonzero()[0, 0].item()
        raise ValueError(
            f"{name} must be xyxy with x1 <= x2 and y1 <= y2; row {bad} of the checked rows is "
            f"{rows.reshape(-1, 4)[bad].tolist()}"
        )


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert ``boxes (Tensor[..., 4])`` between ``"xyxy"``, ``"xywh"`` and ``"cxcywh"``."""
    for fmt in (in_fmt, out_fmt):
        if fmt not in FORMATS:
            raise ValueError(f"unknown box format {fmt!r}; expected one of {FORMATS}")
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":
        x1, y1, x2, y2 = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        x1, y1, x2, y2 = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    else:
        x1, y1, x2, y2 = a, b, c, d
    if out_fmt == "xyxy":
        out = (x1, y1, x2, y2)
    elif out_fmt == "xywh":
        out = (x1, y1, x2 - x1, y2 - y1)
    else:
        out = ((x1 + x2) * 0.5, (y1 + y2) * 0.5, x2 - x1, y2 - y1)
    return torch.stack(out, dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    """Area of ``boxes (Tensor[..., 4])`` in xyxy -> ``Tensor[...]``."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU.

    Args:
        boxes1 (Tensor[N, 4] or Tensor[B, N, 4]): xyxy.
        boxes2 (Tensor[M, 4] or Tensor[B, M, 4]): xyxy; leading dimensions broadcast against ``boxes1``'s.

    Returns:
        Tensor[N, M] or Tensor[B, N, M]. A pair whose union is empty (two zero-area boxes) has IoU 0.
    """
    if boxes1.ndim < 2 or boxes2.ndim < 2 or boxes1.shape[-1] != 4 or boxes2.shape[-1] != 4:
        raise ValueError(
            f"box_iou takes [N,4] x [M,4] or [B,N,4] x [B,M,4]; got {tuple(boxes1.shape)} x {tuple(boxes2.shape)}"
        )
    # One coordinate at a time, so every intermediate is (..., N, M) with M innermost. Leading dimensions
    # broadcast ([B, N, 4] x [M, 4] works). Intermediates are updated in place (much faster on the CPU for
    # large matrices) unless autograd needs them.
    inplace = not (torch.is_grad_enabled() and (boxes1.requires_grad or boxes2.requires_grad))
    ax1, ay1, ax2, ay2 = (c[..., :, None] for c in boxes1.unbind(-1))  # (..., N, 1) each
    bx1, by1, bx2, by2 = (c.contiguous()[..., None, :] for c in boxes2.unbind(-1))  # (..., 1, M) each
    w = torch.min(ax2, bx2) - torch.max(ax1, bx1)  # (..., N, M)
    h = torch.min(ay2, by2) - torch.max(ay1, by1)  # (..., N, M)
    if inplace:
        inter = w.clamp_(min=0).mul_(h.clamp_(min=0))
        union = ((ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1)).sub_(inter)
        return inter.div_(union).nan_to_num_(0.0)  # 0 / 0 (two empty boxes) -> 0
    inter = w.clamp(min=0) * h.clamp(min=0)
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return (inter / union).nan_to_num(0.0)


def clip_boxes(boxes: Tensor, height: float, width: float) -> Tensor:
    """Clip xyxy ``boxes (Tensor[..., 4])`` to ``[0, width] x [0, height]``."""
    x = boxes[..., 0::2].clamp(0, width)  # (..., 2)
    y = boxes[..., 1::2].clamp(0, height)  # (..., 2)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def encode(anchors: Tensor, boxes: Tensor, weights: tuple[float, float, float, float] = DEFAULT_WEIGHTS) -> Tensor:
    """Offsets that move ``anchors`` onto ``boxes`` (the book's ``offset_boxes``, without its eps).

    ``wx * (cx_box - cx_anchor) / w_anchor``, ``wy * (cy_box - cy_anchor) / h_anchor``,
    ``ww * log(w_box / w_anchor)``, ``wh * log(h_box / h_anchor)``.

    Args:
        anchors (Tensor[..., 4]): xyxy, positive width and height.
        boxes (Tensor[..., 4]): xyxy, positive width and height, broadcastable against ``anchors``.
        weights: (wx, wy, ww, wh); the book uses (10, 10, 5, 5), Faster R-CNN's RPN (1, 1, 1, 1).

    Returns:
        Tensor[..., 4] offsets (dx, dy, dw, dh).
    """
    wx, wy, ww, wh = weights
    a = box_convert(anchors, "xyxy", "cxcywh")  # (..., 4)
    b = box_convert(boxes, "xyxy", "cxcywh")  # (..., 4)
    dx = wx * (b[..., 0] - a[..., 0]) / a[..., 2]
    dy = wy * (b[..., 1] - a[..., 1]) / a[..., 3]
    dw = ww * torch.log(b[..., 2] / a[..., 2])
    dh = wh * torch.log(b[..., 3] / a[..., 3])
    return torch.stack((dx, dy, dw, dh), dim=-1)


def decode(anchors: Tensor, offsets: Tensor, weights: tuple[float, float, float, float] = DEFAULT_WEIGHTS) -> Tensor:
    """Boxes from ``anchors`` moved by ``offsets``: the exact inverse of :func:`encode` (the book's
    ``offset_inverse``). The width and height exponents are clamped at ``log(1000/16)``, as torchvision does,
    so that a wild prediction cannot overflow.

    Args:
        anchors (Tensor[..., 4]): xyxy.
        offsets (Tensor[..., 4]): (dx, dy, dw, dh), broadcastable against ``anchors``.

    Returns:
        Tensor[..., 4] xyxy boxes in the anchors' frame.
    """
    wx, wy, ww, wh = weights
    a = box_convert(anchors, "xyxy", "cxcywh")  # (..., 4)
    cx = offsets[..., 0] / wx * a[..., 2] + a[..., 0]
    cy = offsets[..., 1] / wy * a[..., 3] + a[..., 1]
    w = torch.exp((offsets[..., 2] / ww).clamp(max=BBOX_XFORM_CLIP)) * a[..., 2]
    h = torch.exp((offsets[..., 3] / wh).clamp(max=BBOX_XFORM_CLIP)) * a[..., 3]
    return box_convert(torch.stack((cx, cy, w, h), dim=-1), "cxcywh", "xyxy")


def merge_boxes(kept: Tensor, cands: Tensor, weights: Tensor, iou_threshold: float | Tensor) -> Tensor:
    """Weighted-merge NMS's boxes (YOLOv5's ``merge=True``): each box NMS kept replaced by the mean of the
    candidates that overlap it with IoU > ``iou_threshold`` (the ones NMS suppressed for it, and itself),
    weighted by their scores. Only the boxes move: which detections there are, and their scores, stay NMS's.

    Args:
        kept (Tensor[K, 4]): xyxy, the boxes NMS kept.
        cands (Tensor[K, N, 4]): xyxy, each kept box's candidates (the same N for all, e.g. its image's).
        weights (Tensor[K, N]): each candidate's weight for that box, its score; 0 for a candidate that may
            not merge into it (another class, under the score threshold).
        iou_threshold: a candidate merges when its IoU with the kept box is above this (NMS's own threshold).

    Returns:
        Tensor[K, 4]: the merged boxes; a box with no candidate of positive weight (none, or a degenerate box
        that overlaps nothing) stays as it was.
    """
    lt = torch.maximum(kept[:, None, :2], cands[..., :2])  # (K, N, 2)
    rb = torch.minimum(kept[:, None, 2:], cands[..., 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]  # (K, N)
    iou = inter / (box_area(kept)[:, None] + box_area(cands) - inter)  # NaN for two empty boxes: not above the threshold
    w = torch.where(iou > iou_threshold, weights, torch.zeros_like(weights))
    total = w.sum(1, keepdim=True)  # (K, 1)
    merged = (w[..., None] * cands).sum(1) / total.clamp(min=torch.finfo(w.dtype).tiny)
    return torch.where(total > 0, merged, kept)


def _check_nms_inputs(boxes: Tensor, scores: Tensor, labels: Tensor | None = None) -> None:
    check_boxes(boxes, "boxes")
    if boxes.ndim != 2:
        raise ValueError(f"boxes must have shape [N, 4], got {tuple(boxes.shape)}")
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f"scores must have shape [N] = [{boxes.shape[0]}], got {tuple(scores.shape)}")
    if labels is not None and labels.shape != boxes.shape[:1]:
        raise ValueError(f"labels must have shape [N] = [{boxes.shape[0]}], got {tuple(labels.shape)}")


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Non-maximum suppression on torchvision's kernel.

    Args:
        boxes (Tensor[N, 4]): xyxy.
        scores (Tensor[N]): one score per box.
        iou_threshold: a box is removed when its IoU with a higher-scoring kept box is above this.

    Returns:
        LongTensor[K]: indices of the kept boxes, by decreasing score.
    """
    _check_nms_inputs(boxes, scores)
    return torchvision.ops.nms(boxes, scores, float(iou_threshold))


def batched_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each label (or any group id: class, image, or both combined) at once.

    Args:
        boxes (Tensor[N, 4]): xyxy.
        scores (Tensor[N]): one score per box.
        labels (Tensor[N] int): boxes with different labels never suppress each other.

    Returns:
        LongTensor[K]: indices of the kept boxes, by decreasing score.
    """
    _check_nms_inputs(boxes, scores, labels)
    return torchvision.ops.batched_nms(boxes, scores, labels, float(iou_threshold))
