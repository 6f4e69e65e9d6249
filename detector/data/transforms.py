"""Box-aware augmentation with albumentations: a train preset and an eval preset.

Train: zoom-out (SSD's "expand": the image on a canvas up to 2.5x its size filled with the mean colour),
SSD's IoU-constrained random crop, horizontal flip, colour jitter, resize to the model's input (or, with
``letterbox``, the longest side to the input and the rest padded with the mean colour). Scale augmentation
comes from the zoom-out and the crop together. Boxes are clipped to the image and dropped when less than
``MIN_VISIBILITY`` of them remains, with labels kept aligned.

Eval: resize (the book's choice) or letterbox to the model's input. :func:`letterbox_geometry`
(:mod:`detector.core.geometry`) is the one letterbox rule: albumentations' ``LongestMaxSize`` + centred
``PadIfNeeded``, which the presets use, and the fit the models themselves make at inference.

Deterministic under a seed: :func:`apply` reseeds the pipeline per image (see ``DetectionDataset``) with one
stream that the steps draw from in turn. (Albumentations' ``Compose.set_random_seed`` gives every step a generator
of its own seeded alike: each step's first draw was the same number, so the flip happened exactly when the
zoom-out did, and an image at its own scale was never seen mirrored. Fixed 2026-12-07.)
"""

from __future__ import annotations

import random
from typing import Any

import albumentations as A
import numpy as np
from albumentations.augmentations.crops.transforms import BaseCrop

from detector.core.geometry import MEAN_RGB  # the one letterbox rule, the model's own

MIN_VISIBILITY = 0.35  # a box keeps at least this fraction of its area after a crop, or is dropped
MIN_IOUS = (None, 0.0, 0.1, 0.3, 0.5, 0.7, 0.9)  # SSD's crop constraints; None keeps the whole image


class SSDRandomCrop(BaseCrop):
    """SSD's random crop. A constraint is drawn from ``min_ious``; up to ``max_tries`` crops of
    ``min_scale``..1 of each side, aspect ratio 0.5..2, are tried; a crop is taken when some box has its
    centre inside it and an IoU with it of at least the constraint. Otherwise the image stays whole."""

    def __init__(self, min_ious=MIN_IOUS, min_scale: float = 0.3, max_tries: int = 50, p: float = 1.0):
        super().__init__(p=p)
        self.min_ious, self.min_scale, self.max_tries = tuple(min_ious), min_scale, max_tries

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        h, w = params["shape"][:2]
        whole = {"crop_coords": (0, 0, w, h)}
        boxes = np.asarray(data.get("bboxes", np.zeros((0, 4))))[:, :4] * [w, h, w, h]  # normalized -> pixels
        min_iou = self.min_ious[self.py_random.randrange(len(self.min_ious))]
        if min_iou is None or len(boxes) == 0:
            return whole
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        for _ in range(self.max_tries):
            cw, ch = self.py_random.uniform(self.min_scale, 1) * w, self.py_random.uniform(self.min_scale, 1) * h
            if not 0.5 <= cw / ch <= 2:
                continue
            x0, y0 = self.py_random.uniform(0, w - cw), self.py_random.uniform(0, h - ch)
            x1, y1 = x0 + cw, y0 + ch
            inside = (centres[:, 0] > x0) & (centres[:, 0] < x1) & (centres[:, 1] > y0) & (centres[:, 1] < y1)
            iw = np.clip(np.minimum(boxes[:, 2], x1) - np.maximum(boxes[:, 0], x0), 0, None)
            ih = np.clip(np.minimum(boxes[:, 3], y1) - np.maximum(boxes[:, 1], y0), 0, None)
            iou = iw * ih / (area + cw * ch - iw * ih)
            if (inside & (iou >= min_iou)).any():
                return {"crop_coords": (int(x0), int(y0), max(int(x0) + 1, int(x1)), max(int(y0) + 1, int(y1)))}
        return whole

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("min_ious", "min_scale", "max_tries")


def _fit(size: int, letterbox: bool) -> list:
    """The last step of both presets: squash to ``size x size``, or letterbox (see :func:`letterbox_geometry`)."""
    if letterbox:
        return [A.LongestMaxSize(size), A.PadIfNeeded(size, size, position="center", fill=MEAN_RGB)]
    return [A.Resize(size, size)]


def _bbox_params() -> A.BboxParams:
    return A.BboxParams(format="pascal_voc", label_fields=["labels", "indices"], min_visibility=MIN_VISIBILITY,
                        clip=True, filter_invalid_bboxes=True)


def train_transforms(size: int, seed: int | None = None, letterbox: bool = False) -> A.Compose:
    """The train preset, output ``size x size`` (``letterbox``: after the crop, keep its aspect and pad);
    ``seed``: as :func:`apply`'s."""
    transform = A.Compose([
        A.CropAndPad(percent=(0.0, 0.75), keep_size=False, sample_independently=True, fill=MEAN_RGB, p=0.5),
        SSDRandomCrop(),
        A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03, p=0.8),
        *_fit(size, letterbox),
    ], bbox_params=_bbox_params())
    if seed is not None:
        _reseed(transform, seed)
    return transform


def _reseed(transform: A.Compose, seed: int) -> None:
    """Every step draws from one pair of generators seeded with ``seed``, each after the one before
    (``set_random_state`` shares them; ``set_random_seed`` and ``Compose(seed=)`` seed each step's own alike: see
    the module doc)."""
    transform.set_random_state(np.random.default_rng(seed), random.Random(seed))


def eval_transforms(size: int, letterbox: bool = False) -> A.Compose:
    """The eval preset: resize to ``size x size`` (the book's), or letterbox (keep the aspect, pad with the mean)."""
    return A.Compose(_fit(size, letterbox), bbox_params=_bbox_params())


def apply(transform: A.Compose, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, seed: int | None = None):
    """Run ``transform`` on one image; returns ``(image, boxes float32 [N, 4], labels int64 [N], kept int64 [N])``,
    where ``kept`` are the indices of the input boxes that survived (to carry other per-box flags along).
    ``seed``: see :func:`_reseed`."""
    if seed is not None:
        _reseed(transform, seed)
    out = transform(image=image, bboxes=np.asarray(boxes, np.float32).reshape(-1, 4),
                    labels=np.asarray(labels, np.int64), indices=np.arange(len(boxes)))
    return (out["image"], np.asarray(out["bboxes"], np.float32).reshape(-1, 4),
            np.asarray(out["labels"], np.int64).reshape(-1), np.asarray(out["indices"], np.int64).reshape(-1))
