"""A detector's input geometry, which the model owns (as torchvision's ``GeneralizedRCNNTransform``): each image
fitted to the model's square input, and the boxes found mapped back to the image's own pixels.

    batch, frames = fit_images(images, size=256, letterbox=False)   # [B, 3, S, S], frames [B, 6]
    boxes = to_original(boxes, frames[i])                           # [N, 4] in image i's pixels

Two fits: squash (each side to ``size``, the book's) or letterbox (the longest side to ``size``, the aspect kept,
centred on :data:`MEAN_RGB`; :func:`letterbox_geometry`). The resize is bilinear (half-pixel centres, as
OpenCV's ``INTER_LINEAR``), or an area-weighted average when the image shrinks at least twice (as OpenCV's
``INTER_AREA``), so small details do not alias; uint8 images stay uint8 (rounded). Both in torch, so they run
on the model's device. Callers hand the model images of any size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

MEAN_RGB = (124, 116, 104)  # ImageNet mean in 0..255: the fill of letterbox borders (and of zoom-out)


def letterbox_geometry(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """Where an image of ``height x width`` lands in a ``size x size`` letterbox: ``(new_h, new_w, top, left)``.
    One scale ``size / max(height, width)``, each side rounded (at least 1 px), the image centred (an odd
    leftover pixel goes to the bottom or right): exactly albumentations' ``LongestMaxSize`` then
    ``PadIfNeeded(position="center")``, which the training presets use."""
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    return new_h, new_w, (size - new_h) // 2, (size - new_w) // 2


def area_resize(x: Tensor, n_out: int, dim: int) -> Tensor:
    """Shrink ``x`` along ``dim`` to ``n_out`` (float out): output pixel ``i`` is the average of the input over
    ``[i * s, (i + 1) * s)``, ``s = n_in / n_out >= 1``, each input pixel weighted by the length it covers
    (OpenCV's ``INTER_AREA``). From the integral at the edges: whole pixels summed per segment, plus the
    fraction of the pixel an edge cuts; O(pixels)."""
    n_in = x.shape[dim]
    edges = torch.arange(n_out + 1, dtype=torch.float64, device=x.device) * (n_in / n_out)  # (n_out + 1,)
    k = edges.floor().long().clamp(max=n_in - 1)  # the pixel each edge falls in
    frac = (edges - k).float()  # how far into it
    segment = torch.searchsorted(k, torch.arange(n_in, device=x.device), right=True) - 1  # (n_in,): the edge before
    shape = [*x.shape[:dim], n_out + 1, *x.shape[dim + 1:]]
    sums = x.new_zeros(shape, dtype=torch.float32).index_add_(dim, segment, x.float())  # pixels k_j .. k_{j+1} - 1
    whole = torch.cat([sums.narrow(dim, 0, 1) * 0, sums.narrow(dim, 0, n_out).cumsum(dim)], dim)  # sum of x[:k_j]
    view = [1] * x.dim()
    view[dim] = -1
    integral = whole + frac.view(view) * x.index_select(dim, k).float()  # (..., n_out + 1): up to each edge
    return (integral.narrow(dim, 1, n_out) - integral.narrow(dim, 0, n_out)) * (n_out / n_in)


RESIZES = ("opencv", "bilinear")  # the project's rule; torchvision's detection transform (always bilinear)


CHUNK = 1 << 22  # elements of a float copy at a time when shrinking a large image (16 MB)


def area_resize_rows(x: Tensor, width: int) -> Tensor:
    """:func:`area_resize` along the width of ``x (Tensor[3, h, w])``, a band of rows at a time, so that a large
    uint8 image is never copied whole to float (a 100-megapixel photo would take 1.2 GB)."""
    rows = max(1, CHUNK // max(1, x.shape[0] * x.shape[2]))
    if rows >= x.shape[1]:
        return area_resize(x, width, 2)
    return torch.cat([area_resize(x[:, i:i + rows], width, 2) for i in range(0, x.shape[1], rows)], 1)


def resize(image: Tensor, height: int, width: int, mode: str = "opencv") -> Tensor:
    """``Tensor[3, h, w]`` (uint8 or float) -> ``Tensor[3, height, width]`` of the same dtype: area-weighted
    averages (:func:`area_resize`) when the image shrinks at least twice along one side, bilinear otherwise;
    ``mode="bilinear"``: always bilinear (torchvision's detection models)."""
    h, w = image.shape[-2:]
    if (h, w) == (height, width):
        return image
    x = image if image.dtype == torch.uint8 else image.float()  # (3, h, w)
    if mode == "opencv" and max(h / height, w / width) >= 2:
        if height > h or width > w:  # the other side grows: bilinear to it first
            x = F.interpolate(x[None].float(), size=(max(h, height), max(w, width)), mode="bilinear",
                              align_corners=False)[0]
        x = area_resize(area_resize_rows(x, width), height, 1)  # (3, h, width) -> (3, height, width)
    else:
        x = F.interpolate(x[None].float(), size=(height, width), mode="bilinear", align_corners=False)[0]
    if image.dtype == torch.uint8:
        return x.round_().clamp_(0, 255).to(torch.uint8)
    return x.to(image.dtype)


def fit_image(image: Tensor, size: int, letterbox: bool = False, mode: str = "opencv") -> tuple[Tensor, list[int]]:
    """One ``Tensor[3, h, w]`` -> ``(Tensor[3, size, size], frame)``; ``frame`` is ``[h, w, new_h, new_w, top,
    left]``: where the image went (squash: ``[h, w, size, size, 0, 0]``). ``mode``: :func:`resize`'s; with
    ``"bilinear"`` (torchvision's models) a uint8 image becomes float in [0, 1] first, as torchvision's
    transforms have it, so nothing is rounded."""
    if mode == "bilinear" and image.dtype == torch.uint8:
        image = image.float() / 255
    h, w = image.shape[-2:]
    if not letterbox:
        return resize(image, size, size, mode), [h, w, size, size, 0, 0]
    new_h, new_w, top, left = letterbox_geometry(h, w, size)
    fill = torch.tensor(MEAN_RGB, dtype=torch.float32, device=image.device)
    if image.dtype != torch.uint8:
        fill = fill / 255
    out = fill.to(image.dtype).view(3, 1, 1).expand(3, size, size).clone()  # (3, S, S) of the mean colour
    out[:, top:top + new_h, left:left + new_w] = resize(image, new_h, new_w, mode)
    return out, [h, w, new_h, new_w, top, left]


def fit_images(images: Tensor | Sequence[Tensor], size: int, letterbox: bool = False,
               mode: str = "opencv") -> tuple[Tensor, Tensor]:
    """A batch ``Tensor[B, 3, H, W]`` or a list of ``Tensor[3, h, w]`` -> ``(Tensor[B, 3, size, size], frames
    [B, 6])`` (:func:`fit_image` per image; a batch already at ``size x size`` passes as it is)."""
    if isinstance(images, Tensor) and tuple(images.shape[-2:]) == (size, size):
        B = images.shape[0]
        frames = torch.tensor([[size, size, size, size, 0, 0]] * B, device=images.device)
        return images, frames
    fitted = [fit_image(image, size, letterbox, mode) for image in images]  # ragged: one resize per image
    return torch.stack([f[0] for f in fitted]), torch.tensor([f[1] for f in fitted], device=fitted[0][0].device)


def to_original(boxes: Tensor, frame: Tensor) -> Tensor:
    """xyxy ``boxes (Tensor[N, 4])`` in pixels of the fitted input -> pixels of the original image that
    ``frame`` (``[h, w, new_h, new_w, top, left]``, :func:`fit_image`) describes: the padding offset taken off,
    each axis divided by its own scale, clipped to the image."""
    h, w, new_h, new_w, top, left = frame.tolist()
    offset = torch.tensor([left, top, left, top], dtype=boxes.dtype, device=boxes.device)
    scale = torch.tensor([w / new_w, h / new_h, w / new_w, h / new_h], dtype=boxes.dtype, device=boxes.device)
    out = (boxes - offset) * scale
    return torch.minimum(out.clamp(min=0), torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device))
