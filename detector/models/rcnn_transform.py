"""Faster R-CNN's input transform, torchvision's ``GeneralizedRCNNTransform``: normalize each image, resize it
keeping its aspect ratio (the shorter side to ``min_size`` unless the longer would pass ``max_size``), pad the
batch to a multiple of ``size_divisible``; and the way back, boxes in each input image's own pixels.

    batch, sizes, originals = transform_images(images, min_size=800, max_size=1333, size_divisible=32)
    boxes = resize_boxes(boxes, sizes[i], originals[i])     # (N, 4) in image i's pixels again
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from detector.core.contract import check_images, normalize_images, pad_images


def resize_image(image: Tensor, min_size: int, max_size: int) -> Tensor:
    """``Tensor[3, h, w]`` float -> ``Tensor[3, h', w']``: bilinear, the shorter side to ``min_size`` unless the
    longer would pass ``max_size`` (torchvision's arithmetic: one Python float scale, recomputed by interpolate)."""
    h, w = image.shape[-2:]
    scale = min(min_size / min(h, w), max_size / max(h, w))
    return F.interpolate(image[None], scale_factor=scale, mode="bilinear", recompute_scale_factor=True,
                         align_corners=False)[0]


def transform_images(images: Tensor | list[Tensor], min_size: int | None, max_size: int | None,
                     size_divisible: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    """A batch or a list of images -> ``(batch [B, 3, H, W] normalized and padded, sizes [B, 2] (h, w) of each
    resized image, originals [B, 2] (h, w) of each input image)``. ``min_size=None``: no resize."""
    check_images(images)
    if min_size is None and isinstance(images, Tensor):
        B, _, h, w = images.shape
        sizes = torch.tensor([[h, w]] * B, device=images.device)
        return pad_images(normalize_images(images), size_divisible), sizes, sizes
    originals, resized = [], []
    for image in images:  # ragged: each image its own size
        x = normalize_images(image)
        originals.append(x.shape[-2:])
        resized.append(resize_image(x, min_size, max_size or 10**9) if min_size is not None else x)
    device = resized[0].device
    sizes = torch.tensor([list(r.shape[-2:]) for r in resized], device=device)  # (B, 2)
    return pad_images(resized, size_divisible), sizes, torch.tensor([list(o) for o in originals], device=device)


def resize_boxes(boxes: Tensor, old: Tensor, new: Tensor) -> Tensor:
    """xyxy ``boxes (Tensor[..., N, 4])`` of images of size ``old`` -> the same boxes in images of size ``new``;
    ``old``, ``new (Tensor[..., 2])``: (h, w), one per image (torchvision's ``resize_boxes``, same arithmetic)."""
    ratio = new.float() / old.float()  # (..., 2): h, w
    rx, ry = ratio[..., 1:2], ratio[..., 0:1]  # (..., 1) each, against (..., N)
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack((x1 * rx, y1 * ry, x2 * rx, y2 * ry), -1)
