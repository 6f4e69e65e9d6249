"""Mixing training images with their boxes: YOLOv4's mosaic of four and mixup of two.

    image, boxes, labels = mosaic(images, boxes, labels, size=256, centre=(140, 100))   # four of each
    image, boxes, labels = mixup(image_a, boxes_a, labels_a, image_b, boxes_b, labels_b, ratio=0.52)

Mosaic (Ultralytics' ``load_mosaic``): each of the four images scaled so that its longest side is ``size`` (its
aspect kept), and placed on a ``size x size`` canvas of the mean colour, one per quadrant around a centre point:
the first ends at the centre (top left), the second starts at it on the right, the third below on the left, the
fourth below on the right. What falls outside the canvas is cut. Boxes are scaled and moved with their image,
clipped to the part of it that shows, and dropped when less than ``MIN_VISIBILITY`` of their area remains (the
rule of the train preset's crop). The centre is drawn in ``MOSAIC_CENTRE`` of each side.

Mixup (Zhang et al. 2018, as YOLO uses it for detection): two images of one size blended,
``ratio * a + (1 - ratio) * b``, the ratio drawn from Beta(``MIXUP_BETA``, ``MIXUP_BETA``); the boxes of both kept.

albumentations 2.0 has ``A.Mosaic``, but it clips each image's boxes to its cell before it applies
``min_visibility``, so a box cut by a cell border is kept however little of it shows; hence this module.
Everything here is a pure function of its inputs and a numpy ``Generator`` (seeded per image by
:class:`detector.data.loader.DetectionDataset`), so the epochs are the same whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from detector.core.geometry import MEAN_RGB, letterbox_geometry
from detector.data.transforms import MIN_VISIBILITY

MOSAIC_CENTRE = (0.25, 0.75)  # the centre point's range on each side, as a fraction of the canvas side
MIXUP_BETA = 32.0  # mixup ratio ~ Beta(32, 32): about 0.5 +- 0.06 (Ultralytics)


def mosaic(images: Sequence[np.ndarray], boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray], size: int,
           centre: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four images around ``centre`` (x, y) on a ``size x size`` canvas (see the module docstring).

    Args:
        images: four RGB ``uint8 [H_i, W_i, 3]``; boxes: four ``float [N_i, 4]`` xyxy in their pixels;
        labels: four ``int [N_i]``.

    Returns:
        image ``uint8 [size, size, 3]``, boxes ``float32 [N, 4]`` xyxy in its pixels, labels ``int64 [N]``.
    """
    cx, cy = centre
    canvas = np.empty((size, size, 3), np.uint8)
    canvas[:] = MEAN_RGB
    kept_boxes, kept_labels = [], []
    for k, (image, b, lab) in enumerate(zip(images, boxes, labels)):
        h, w = image.shape[:2]
        new_h, new_w, _, _ = letterbox_geometry(h, w, size)
        x0 = cx - new_w if k % 2 == 0 else cx  # left column ends at the centre, right column starts there
        y0 = cy - new_h if k < 2 else cy
        seen = np.array([max(x0, 0), max(y0, 0), min(x0 + new_w, size), min(y0 + new_h, size)])  # in the canvas
        if seen[2] > seen[0] and seen[3] > seen[1]:
            shrink = max(h, w) >= 2 * size
            scaled = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            canvas[seen[1]:seen[3], seen[0]:seen[2]] = scaled[seen[1] - y0:seen[3] - y0, seen[0] - x0:seen[2] - x0]
        scale, shift = np.array([new_w / w, new_h / h] * 2), np.array([x0, y0] * 2)
        moved = np.asarray(b, np.float64).reshape(-1, 4) * scale + shift  # (N_i, 4) in the canvas
        clipped = np.concatenate((np.maximum(moved[:, :2], seen[:2]), np.minimum(moved[:, 2:], seen[2:])), 1)
        keep = _visible(moved, clipped)  # (N_i,)
        kept_boxes.append(clipped[keep])
        kept_labels.append(np.asarray(lab, np.int64).reshape(-1)[keep])
    return canvas, np.concatenate(kept_boxes).astype(np.float32), np.concatenate(kept_labels)


def _visible(boxes: np.ndarray, clipped: np.ndarray) -> np.ndarray:
    """Which boxes ``[N, 4]`` keep at least ``MIN_VISIBILITY`` of their area once ``clipped`` (and some area)."""
    def area(b: np.ndarray) -> np.ndarray:
        return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)

    kept = area(clipped)
    return (kept > 0) & (kept >= MIN_VISIBILITY * area(boxes))


def draw_mosaic(rng: np.random.Generator, n: int, size: int) -> tuple[list[int], tuple[int, int]]:
    """The random part of a mosaic: three more image indices out of ``n`` and the centre (x, y) on the canvas."""
    others = [int(i) for i in rng.integers(n, size=3)]
    lo, hi = MOSAIC_CENTRE
    cx, cy = (int(v) for v in rng.uniform(lo * size, hi * size, size=2))
    return others, (cx, cy)


def mixup(image_a: np.ndarray, boxes_a: np.ndarray, labels_a: np.ndarray, image_b: np.ndarray,
          boxes_b: np.ndarray, labels_b: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``ratio * a + (1 - ratio) * b`` (both ``uint8 [S, S, 3]``, rounded back to uint8); the boxes ``[N, 4]`` of
    ``a`` then ``b``, and their labels."""
    blended = image_a.astype(np.float32) * ratio + image_b.astype(np.float32) * (1 - ratio)
    return (np.clip(np.rint(blended), 0, 255).astype(np.uint8),
            np.concatenate((boxes_a.reshape(-1, 4), boxes_b.reshape(-1, 4))).astype(np.float32),
            np.concatenate((labels_a.reshape(-1), labels_b.reshape(-1))).astype(np.int64))


def draw_mixup(rng: np.random.Generator, n: int) -> tuple[int, int, float]:
    """The random part of a mixup: the other image's index out of ``n``, a seed for its augmentation, the ratio."""
    return int(rng.integers(n)), int(rng.integers(2**62)), float(rng.beta(MIXUP_BETA, MIXUP_BETA))
