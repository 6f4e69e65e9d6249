"""The book's figures on any image: the Anchors (``display_anchors``), Matching and NMS tabs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from detector.api import Results
from detector.api.book import (
    MAX_ANCHORS,
    anchors_picture,
    candidates_picture,
    match_boxes,
    matching_picture,
    nms_steps,
)
from detector.app.catalog import ModelCache, ModelEntry
from detector.app.detect import draw
from detector.app.uploads import DISPLAY_SIDE, MIN_DISPLAY_SIDE, BadInput, unit

SIDES = {"max_side": DISPLAY_SIDE, "min_side": MIN_DISPLAY_SIDE}  # the figures at the size the page shows images
MAX_BOXES = 100  # typed or clicked ground-truth boxes
MAX_VALUES = 16  # sizes or ratios
MAX_TEXT = 10_000  # characters of any typed field


def parse_numbers(text: str, what: str, positive: bool = True) -> list[float]:
    """``"0.75, 0.5 0.25"`` -> ``[0.75, 0.5, 0.25]``; :class:`BadInput` naming ``what`` otherwise."""
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise BadInput(f"{what}: expected at most {MAX_TEXT} characters of text")
    if len(text.replace(",", " ").split()) > MAX_VALUES and positive:
        raise BadInput(f"{what}: at most {MAX_VALUES} values")
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise BadInput(f"{what}: {text!r} is not a list of numbers") from None
    if not values:
        raise BadInput(f"{what}: give at least one number")
    if positive and not all(v > 0 and np.isfinite(v) for v in values):
        raise BadInput(f"{what}: every value must be a positive number, got {text!r}")
    return values


def feature_map(fmap_h, fmap_w) -> tuple[int, int]:
    """The feature map's ``(H, W)`` from the page's numbers; :class:`BadInput` for anything but whole numbers
    from 1 to 1,000."""
    try:
        fh, fw = int(fmap_h), int(fmap_w)
    except (TypeError, ValueError, OverflowError):
        raise BadInput(f"feature map {fmap_h!r} x {fmap_w!r}: give two whole numbers") from None
    if not (1 <= fh <= 1000 and 1 <= fw <= 1000):
        raise BadInput(f"feature map {fh}x{fw}: both sides must lie in 1..1000")
    return fh, fw


def anchors_figure(image: np.ndarray, fmap_h: int, fmap_w: int, sizes: str, ratios: str,
                   labels: bool = False) -> tuple[Image.Image, str]:
    """The Anchors tab (the book's ``display_anchors``): anchors of an ``fmap_h x fmap_w`` map over the image."""
    s, r = parse_numbers(sizes, "sizes"), parse_numbers(ratios, "ratios")
    fh, fw = feature_map(fmap_h, fmap_w)
    k = len(s) + len(r) - 1
    if fh * fw * k > MAX_ANCHORS:
        raise BadInput(f"{fh}x{fw} cells x {k} anchors = {fh * fw * k}: too many to draw (at most "
                       f"{MAX_ANCHORS}); use a smaller feature map")
    drawn, count = anchors_picture(image, (fh, fw), s, r, labels=labels, **SIDES)
    return drawn, (f"{count} anchors: {fh}x{fw} cells x {k} per cell (sizes {s}, ratios {r}; every size with "
                   f"ratio {r[0]:g}, then size {s[0]:g} with the other ratios)")


def parse_boxes(text: str, width: int, height: int) -> np.ndarray:
    """Ground-truth boxes typed one per line as ``x1 y1 x2 y2`` in pixels -> ``float32 [G, 4]``."""
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise BadInput(f"ground-truth boxes: expected at most {MAX_TEXT} characters of text")
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if len(lines) > MAX_BOXES:
        raise BadInput(f"{len(lines)} ground-truth boxes: the demo takes at most {MAX_BOXES}")
    boxes = []
    for n, line in enumerate(text.strip().splitlines(), 1):
        if not line.strip():
            continue
        v = parse_numbers(line, f"box on line {n}", positive=False)
        if len(v) != 4:
            raise BadInput(f"box on line {n}: {line.strip()!r} needs 4 numbers x1 y1 x2 y2, got {len(v)}")
        x1, y1, x2, y2 = v
        if not (x2 > x1 and y2 > y1):
            raise BadInput(f"box on line {n}: {line.strip()!r} needs x2 > x1 and y2 > y1")
        if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
            raise BadInput(f"box on line {n}: {line.strip()!r} lies outside the {width}x{height} image")
        boxes.append([max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)])
    if not boxes:
        raise BadInput("type at least one ground-truth box (x1 y1 x2 y2 in pixels), or click two corners on "
                       "the image")
    return np.array(boxes, dtype=np.float32)


@dataclass
class MatchResult:
    image: Image.Image
    rows: list[list]  # anchor, cell row, cell col, x1, y1, x2, y2, gt, IoU, 4 offsets
    summary: str
    anchors: np.ndarray  # (A, 4) pixels
    assigned: np.ndarray  # (A,) gt index or -1
    iou: np.ndarray  # (A, G)


MATCH_HEADERS = ["anchor", "row", "col", "x1", "y1", "x2", "y2", "gt", "IoU", "dx", "dy", "dw", "dh"]


def matching_figure(image: np.ndarray, boxes_text: str, fmap_h: int, fmap_w: int, sizes: str, ratios: str,
                    iou_threshold: float = 0.5) -> MatchResult:
    """The Matching tab: anchors of a feature map assigned to typed ground-truth boxes the book's way
    (:func:`detector.api.book.match_boxes`); positives drawn in their box's colour, with their offsets."""
    h, w = image.shape[:2]
    gt = parse_boxes(boxes_text, w, h)
    s, r = parse_numbers(sizes, "sizes"), parse_numbers(ratios, "ratios")
    fh, fw = feature_map(fmap_h, fmap_w)
    if fh * fw * (len(s) + len(r) - 1) > MAX_ANCHORS:
        raise BadInput(f"feature map {fh}x{fw}: at most {MAX_ANCHORS} anchors in all")
    iou_threshold = unit(iou_threshold, "IoU threshold")
    m = match_boxes((h, w), gt, (fh, fw), s, r, iou_threshold)
    rows = []
    for i, o in zip(m.positives.tolist(), m.offsets.tolist()):
        g = int(m.assigned[i])
        rows.append([i, *m.cell(i), *(round(float(v), 1) for v in m.anchors[i]), g, round(float(m.iou[i, g]), 3),
                     *(round(v, 3) for v in o)])
    per_gt = np.bincount(m.assigned[m.positives], minlength=len(gt)) if len(m.positives) else np.zeros(len(gt), int)
    summary = (f"{len(m.positives)} of {len(m.anchors)} anchors are positives at IoU >= {iou_threshold:g} "
               f"(per ground-truth box: {', '.join(str(int(c)) for c in per_gt)}); the rest are background")
    return MatchResult(matching_picture(image, m, **SIDES), rows, summary, m.anchors, m.assigned, m.iou)


@dataclass
class NmsResult:
    before: Image.Image
    after: Image.Image
    summary: str
    candidates: Results
    kept: Results


def nms_figure(image: np.ndarray, entry: ModelEntry, cache: ModelCache, conf: float, iou: float) -> NmsResult:
    """The NMS tab: the model's candidate boxes above ``conf`` before NMS, and what class-aware NMS at
    ``iou`` keeps (:func:`detector.api.book.nms_steps`: the same as the Detect tab gives at these settings, up to
    its maximum detections)."""
    steps = nms_steps(cache.get(entry.path), image, conf, iou)
    n, k = len(steps.candidates), len(steps.kept)
    summary = (f"{n} candidates with score >= {conf:g} before NMS; {k} kept after NMS at IoU {iou:g} (per class, "
               "highest score first; a box is removed when it overlaps a kept box of its class by more than the "
               "IoU)")
    return NmsResult(candidates_picture(steps.candidates, **SIDES), draw(steps.kept), summary, steps.candidates,
                     steps.kept)
