"""The book's figures on any image (D2L, chapter Computer Vision): anchors (``display_anchors``), the matching of
anchors to ground-truth boxes with their offsets, and what non-maximum suppression keeps of a model's candidates.
``detector anchors`` and the app's Anchors, Matching and NMS tabs draw them.

    picture, count = anchors_picture(photo, (4, 4), sizes=[0.15], ratios=[1, 2, 0.5])
    m = match_boxes(photo.shape[:2], np.array([[120, 20, 330, 290]]), (8, 8), [0.45, 0.25], [1, 2, 0.5], 0.5)
    steps = nms_steps(Detector("models/tinyssd-shapes.pt"), photo, conf=0.1, iou=0.45)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image

from detector.api.results import Results, shown
from detector.core.anchors import generate_anchors
from detector.core.boxes import batched_nms, box_iou, encode
from detector.core.errors import UsageError
from detector.core.matching import match_anchors
from detector.core.thresholds import MAX_DET
from detector.evaluation.draw import class_colors, draw_anchors, draw_boxes

MAX_ANCHORS = 20_000  # anchors drawn or matched at most (a picture with more is a grey blur)


def _anchor_count(fmap: tuple[int, int], sizes: Sequence[float], ratios: Sequence[float]) -> int:
    fh, fw = fmap
    if not (sizes and ratios) or min(fh, fw) < 1:
        raise UsageError(f"anchors of a {fh}x{fw} feature map with sizes {list(sizes)} and ratios {list(ratios)}: "
                         "give at least one size and one ratio, and a map of at least 1x1")
    count = fh * fw * (len(sizes) + len(ratios) - 1)
    if count > MAX_ANCHORS:
        raise UsageError(f"{fh}x{fw} cells x {len(sizes) + len(ratios) - 1} anchors = {count}: too many (at most "
                         f"{MAX_ANCHORS}); use a smaller feature map")
    return count


def anchors_picture(image: np.ndarray, fmap: tuple[int, int], sizes: Sequence[float], ratios: Sequence[float],
                    labels: bool = False, max_side: int | None = None,
                    min_side: int | None = None) -> tuple[Image.Image, int]:
    """The book's ``display_anchors``: the anchors of every cell of an ``fmap = (h, w)`` feature map over the
    RGB image, one colour per (size, ratio); the picture and the number of anchors."""
    _anchor_count(fmap, sizes, ratios)
    pil, _ = shown(image, max_side, min_side)
    return draw_anchors(pil, fmap, list(sizes), list(ratios), labels=labels)


@dataclass
class Matching:
    """Anchors assigned to ground-truth boxes the book's way (each box first takes the anchor it overlaps most;
    then every other anchor whose best IoU reaches the threshold takes its best box)."""

    anchors: np.ndarray  # (A, 4) xyxy pixels
    assigned: np.ndarray  # (A,) the box of each anchor, -1 for background
    iou: np.ndarray  # (A, G)
    positives: np.ndarray  # (P,) the anchors assigned a box
    offsets: np.ndarray  # (P, 4) their offsets to it (weights 10, 10, 5, 5, the book's offset_boxes)
    boxes: np.ndarray  # (G, 4) the ground truth
    cells_per_row: int  # the feature map's width
    per_cell: int  # anchors per cell

    def cell(self, anchor: int) -> tuple[int, int]:
        """``(row, column)`` of an anchor's cell."""
        c = anchor // self.per_cell
        return c // self.cells_per_row, c % self.cells_per_row


def match_boxes(size: tuple[int, int], boxes: np.ndarray, fmap: tuple[int, int], sizes: Sequence[float],
                ratios: Sequence[float], threshold: float = 0.5) -> Matching:
    """Match the anchors of an ``fmap`` feature map over an image of ``size = (h, w)`` to ``boxes``
    (``[G, 4]`` xyxy pixels) at IoU ``threshold``."""
    _anchor_count(fmap, sizes, ratios)
    h, w = size
    gt = torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4))  # (G, 4)
    anchors = generate_anchors(*fmap, list(sizes), list(ratios)) * torch.tensor([w, h, w, h], dtype=torch.float32)
    assigned = match_anchors(anchors, gt[None], torch.ones(1, len(gt), dtype=torch.bool), float(threshold))[0]
    pos = torch.nonzero(assigned >= 0).flatten()  # (P,)
    return Matching(anchors.numpy(), assigned.numpy(), box_iou(anchors, gt).numpy(), pos.numpy(),
                    encode(anchors[pos], gt[assigned[pos]]).numpy(), gt.numpy(), fmap[1],
                    len(sizes) + len(ratios) - 1)


def matching_picture(image: np.ndarray, m: Matching, max_side: int | None = None,
                     min_side: int | None = None) -> Image.Image:
    """The positive anchors drawn thin in their box's colour, the ground-truth boxes thick and named."""
    pil, scale = shown(image, max_side, min_side)
    colors = class_colors(range(len(m.boxes)))
    drawn = draw_boxes(pil, m.anchors[m.positives] * scale, None,
                       [colors[int(m.assigned[i])] for i in m.positives] or None, width=1)
    return draw_boxes(drawn, m.boxes * scale, [f"gt {g}" for g in range(len(m.boxes))], colors, width=3)


@dataclass
class NmsSteps:
    """A model's candidates above the confidence threshold before NMS, and what class-aware NMS keeps."""

    candidates: Results
    kept: Results


def nms_steps(det, image: np.ndarray, conf: float, iou: float) -> NmsSteps:
    """The candidates of ``det`` (a :class:`~detector.api.Detector`) on the RGB image scoring at least ``conf``
    (up to :data:`~detector.core.thresholds.MAX_DET`; NMS at IoU 1.0 keeps them all), and what class-aware NMS
    at ``iou`` keeps of them: the same as ``predict`` gives at these settings, up to its ``max_det``."""
    (raw,) = det.predict(image, conf=conf, iou=1.0, max_det=MAX_DET)
    keep = batched_nms(torch.from_numpy(raw.boxes).float(), torch.from_numpy(raw.scores).float(),
                       torch.from_numpy(raw.labels).long(), float(iou)).numpy()
    return NmsSteps(raw, replace(raw, boxes=raw.boxes[keep], scores=raw.scores[keep], labels=raw.labels[keep]))


def candidates_picture(r: Results, max_side: int | None = None, min_side: int | None = None) -> Image.Image:
    """Every box of ``r`` drawn thin in its class's colour, without text (the NMS tab's "before")."""
    pil, scale = shown(r.image, max_side, min_side)
    return draw_boxes(pil, r.boxes * scale, None, class_colors(r.labels), width=1)
