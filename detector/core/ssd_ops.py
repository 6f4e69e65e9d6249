"""SSD's training targets and its postprocess: the book's ``multibox_target`` and ``multibox_detection``,
batched over images.

Label convention (the one place it is stated): data set classes are ``0..C-1``. SSD's classifier has
``C + 1`` outputs: slot 0 is background and slot ``c + 1`` is class ``c``. :func:`assign_targets` produces
targets in that ``0..C`` space; :func:`postprocess` returns data set labels ``0..C-1`` again.
"""

from __future__ import annotations

import torch
import torchvision
from torch import Tensor

from detector.core.boxes import DEFAULT_WEIGHTS, decode, encode, merge_boxes
from detector.core.detections import per_image
from detector.core.matching import _check_match_inputs, batched_iou, match_iou, match_ssd

MATCHERS = {"book": match_iou, "ssd": match_ssd}  # the book's assignment, torchvision's SSD matcher


def assign_targets(
    anchors: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    gt_valid: Tensor,
    iou_threshold: float = 0.5,
    weights: tuple[float, float, float, float] = DEFAULT_WEIGHTS,
    matcher: str = "book",
) -> tuple[Tensor, Tensor, Tensor]:
    """Label anchors with classes and offsets (the book's ``multibox_target``), for a batch at once.

    Args:
        anchors (Tensor[A, 4]): xyxy.
        gt_boxes (Tensor[B, G, 4]): xyxy, same frame as the anchors; padding rows where ``gt_valid`` is False.
        gt_labels (LongTensor[B, G]): data set classes 0..C-1.
        gt_valid (Tensor[B, G] bool): False marks padding rows.
        iou_threshold: the matching threshold.
        matcher: ``"book"`` (:func:`~detector.core.matching.match_iou`, the book's assignment) or ``"ssd"``
            (:func:`~detector.core.matching.match_ssd`, torchvision's SSD matcher).

    Returns:
        offsets (Tensor[B, A, 4]): :func:`detector.core.boxes.encode` of each anchor's box; zero where unmatched.
        box_mask (Tensor[B, A] bool): True where the anchor matched a box.
        cls_targets (LongTensor[B, A]): 0 for background, ``c + 1`` for class ``c``.
    """
    _check_match_inputs(anchors, gt_boxes, gt_valid)
    if gt_labels.shape != gt_valid.shape or gt_labels.is_floating_point():
        raise ValueError(
            f"gt_labels must be an integer tensor of shape [B, G] = {list(gt_valid.shape)}, "
            f"got {gt_labels.dtype} {tuple(gt_labels.shape)}"
        )
    if (gt_labels[gt_valid] < 0).any():
        raise ValueError("gt_labels must be data set classes 0..C-1; found a negative label in a valid row")

    B, A = gt_boxes.shape[0], anchors.shape[0]
    if gt_boxes.shape[1] == 0:  # no box in any image: every anchor is background
        return anchors.new_zeros((B, A, 4)), gt_valid.new_zeros((B, A)), gt_labels.new_zeros((B, A), dtype=torch.long)
    if matcher not in MATCHERS:
        raise ValueError(f"matcher must be one of {sorted(MATCHERS)}, got {matcher!r}")
    matches = MATCHERS[matcher](batched_iou(anchors, gt_boxes, gt_valid), iou_threshold)  # (B, A)
    box_mask = matches >= 0  # (B, A)
    idx = matches.clamp(min=0)  # (B, A)
    matched_boxes = gt_boxes.gather(1, idx[..., None].expand(-1, -1, 4))  # (B, A, 4)
    offsets = torch.where(box_mask[..., None], encode(anchors, matched_boxes, weights), 0.0)  # (B, A, 4)
    cls_targets = torch.where(box_mask, gt_labels.long().gather(1, idx) + 1, 0)  # (B, A)
    return offsets, box_mask, cls_targets


def postprocess(
    cls_logits: Tensor,
    offsets: Tensor,
    anchors: Tensor,
    score_threshold: float = 0.01,
    nms_threshold: float = 0.5,
    pre_nms_top_k: int | None = 400,
    max_detections: int = 100,
    class_agnostic: bool = False,
    weights: tuple[float, float, float, float] = DEFAULT_WEIGHTS,
    per_class_top_k: bool = False,
    clip: bool = False,
    class_slots: Tensor | None = None,
    merge: bool = False,
) -> list[dict[str, Tensor]]:
    """Detections from SSD outputs: softmax, decode, drop scores under ``score_threshold``, keep the
    ``pre_nms_top_k`` best (anchor, class) pairs per image, NMS, keep ``max_detections`` per image, and with
    ``merge``, :func:`merge_boxes` with the candidates of each box's image and class (:func:`_merge_candidates`).

    Class-aware by default (a box suppresses only boxes of its own class); ``class_agnostic=True`` gives the
    book's ``multibox_detection``: each anchor votes for its best class and NMS runs across classes.

    Args:
        cls_logits (Tensor[B, A, C + 1]): slot 0 is background.
        offsets (Tensor[B, A, 4]): each anchor's predicted offsets (as :func:`~detector.core.boxes.encode`'s).
        anchors (Tensor[A, 4]): xyxy.
        pre_nms_top_k: candidates kept per image before NMS; None keeps every one. With ``per_class_top_k``,
            per image and class (torchvision's SSD: ``topk_candidates``).
        clip: clip the decoded boxes to [0, 1] before NMS (torchvision's SSD clips to the image there).
        class_slots (LongTensor[C]): the foreground output of each class when the head has more outputs than
            classes (COCO's 90 ids for 80 classes); the softmax is over every output.

    Returns:
        One dict per image: ``boxes`` (Tensor[K, 4], xyxy in the anchors' frame), ``scores`` (Tensor[K]),
        ``labels`` (LongTensor[K], data set classes 0..C-1), sorted by decreasing score.
    """
    if cls_logits.ndim != 3 or cls_logits.shape[-1] < 2:
        raise ValueError(f"cls_logits must have shape [B, A, C + 1] with C >= 1, got {tuple(cls_logits.shape)}")
    B, A, C1 = cls_logits.shape[0], cls_logits.shape[1], cls_logits.shape[2] if class_slots is None else len(class_slots) + 1
    if offsets.shape != (B, A, 4):
        raise ValueError(f"offsets must have shape [B, A, 4] = [{B}, {A}, 4], got {tuple(offsets.shape)}")
    if anchors.shape != (A, 4):
        raise ValueError(f"anchors must have shape [A, 4] = [{A}, 4], got {tuple(anchors.shape)}")
    C = C1 - 1

    scores = cls_logits.float().softmax(dim=-1)[..., 1:]  # (B, A, C), or (B, A, slots) then picked
    if class_slots is not None:
        scores = scores[..., class_slots]  # (B, A, C)
    if class_agnostic:
        flat_scores, best_class = scores.max(dim=-1)  # (B, A) each
    else:
        flat_scores = scores.reshape(B, A * C)  # (B, A*C): index = anchor * C + class
    if per_class_top_k and not class_agnostic:
        k = A if pre_nms_top_k is None else min(int(pre_nms_top_k), A)
        top_scores, top_anchor = scores.transpose(1, 2).topk(k, dim=2)  # (B, C, k) each
        classes = torch.arange(C, device=scores.device)[None, :, None]  # (1, C, 1)
        top_scores, top_idx = top_scores.reshape(B, C * k), (top_anchor * C + classes).reshape(B, C * k)
        k = C * k
    else:
        k = flat_scores.shape[1] if pre_nms_top_k is None else min(int(pre_nms_top_k), flat_scores.shape[1])
        top_scores, top_idx = flat_scores.topk(k, dim=1)  # (B, k) each, sorted

    keep = top_scores >= score_threshold  # (B, k)
    image = torch.arange(B, device=cls_logits.device)[:, None].expand(B, k)[keep]  # (N,)
    cand = top_idx[keep]  # (N,)
    cand_scores = top_scores[keep]  # (N,)
    if class_agnostic:
        anchor, labels = cand, best_class[image, cand]
    else:
        anchor, labels = cand // C, cand % C
    boxes = decode(anchors[anchor], offsets[image, anchor].float(), weights)  # (N, 4)
    if clip:
        boxes = boxes.clamp(0.0, 1.0)

    group = image if class_agnostic else image * C + labels  # (N,) NMS never crosses a group
    kept = torchvision.ops.batched_nms(boxes, cand_scores, group, float(nms_threshold))  # (K,) by score
    detections = per_image(image[kept], boxes[kept], cand_scores[kept], labels[kept], B, max_detections)
    if merge:
        _merge_candidates(detections, image, boxes, cand_scores, labels, class_agnostic, nms_threshold)
    return detections


def _merge_candidates(detections: list[dict[str, Tensor]], image: Tensor, boxes: Tensor, scores: Tensor,
                      labels: Tensor, class_agnostic: bool, iou_threshold: float) -> None:
    """:func:`postprocess`'s ``merge``: each image's kept boxes (in ``detections``, replaced in place) merged
    with the NMS candidates (``image``, ``boxes``, ``scores``, ``labels`` [N]) of that image and class."""
    for i, d in enumerate(detections):
        mine = image == i
        same = (d["labels"][:, None] == labels[mine][None]) | class_agnostic  # (K, N)
        weights = torch.where(same, scores[mine][None], 0.0)
        d["boxes"] = merge_boxes(d["boxes"], boxes[mine].expand(len(d["boxes"]), -1, -1), weights, iou_threshold)
