"""Anchor boxes: the book's ``multibox_prior``, vectorized, and a cached multi-level generator.

Anchors are xyxy in coordinates normalized to [0, 1] of the input image (the book's frame); multiply by
(W, H, W, H) for pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from detector.core.errors import UsageError


def _check_positive(values: Sequence[float], name: str) -> None:
    if len(values) == 0:
        raise UsageError(f"{name} must name at least one value")
    if any(not (float(v) > 0) for v in values):  # also rejects NaN
        raise UsageError(f"{name} must all be positive, got {list(values)}")


def anchor_shapes(height: int, width: int, sizes: Sequence[float], ratios: Sequence[float]) -> Tensor:
    """The widths and heights ``float64 [K, 2]`` of the anchors of each cell of a ``height x width`` map, in the
    book's order (see :func:`generate_anchors`), normalized to the input."""
    size_t = torch.as_tensor(sizes, dtype=torch.float64)
    ratio_t = torch.as_tensor(ratios, dtype=torch.float64)
    w = torch.cat((size_t * ratio_t[0].sqrt(), size_t[0] * ratio_t[1:].sqrt())) * height / width  # (K,)
    h = torch.cat((size_t / ratio_t[0].sqrt(), size_t[0] / ratio_t[1:].sqrt()))  # (K,)
    return torch.stack((w, h), dim=1)


def generate_anchors(
    height: int,
    width: int,
    sizes: Sequence[float],
    ratios: Sequence[float],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    step: float | None = None,
    clip: bool = False,
) -> Tensor:
    """Anchors centred on every cell of a ``height x width`` feature map: exactly the book's ``multibox_prior``.

    Per cell, ``len(sizes) + len(ratios) - 1`` anchors: every size with ``ratios[0]``, then ``sizes[0]``
    with each of ``ratios[1:]``. An anchor of size s and ratio r has width ``s * sqrt(r) * height / width``
    and height ``s / sqrt(r)`` (the book's correction for rectangular maps). Cells are taken row by row.

    Two extensions give the SSD paper's default boxes as torchvision builds them (sizes ``[s_k, sqrt(s_k
    s_k+1)]``, ratios ``[1, a, 1/a, ...]``): ``step``, the distance between cell centres as a fraction of
    the input (SSD300's ``steps / 300``; default ``1 / height`` and ``1 / width``), and ``clip``, widths and
    heights clipped to [0, 1] before the corners are computed.

    Returns:
        Tensor[height * width * (len(sizes) + len(ratios) - 1), 4]: xyxy, normalized to [0, 1].
    """
    if int(height) != height or int(width) != width or height <= 0 or width <= 0:
        raise UsageError(f"height and width must be positive integers, got {height} x {width}")
    _check_positive(sizes, "sizes")
    _check_positive(ratios, "ratios")
    # per-cell half widths and heights, in the book's order, computed in float64 then cast
    w, h = anchor_shapes(height, width, sizes, ratios).unbind(1)  # (K,) each
    if clip:
        w, h = w.clamp(0, 1), h.clamp(0, 1)
    half = torch.stack((-w, -h, w, h), dim=1).to(dtype) / 2  # (K, 4)

    step_y, step_x = (1 / height, 1 / width) if step is None else (step, step)
    cy = (torch.arange(height, dtype=torch.float64) + 0.5) * step_y  # (H,)
    cx = (torch.arange(width, dtype=torch.float64) + 0.5) * step_x  # (W,)
    shift_y, shift_x = torch.meshgrid(cy, cx, indexing="ij")  # (H, W) each
    centers = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=-1).reshape(-1, 1, 4).to(dtype)  # (H*W, 1, 4)
    return (centers + half).reshape(-1, 4).to(device)  # (H*W*K, 4)


class MultiLevelAnchors:
    """Anchors of several feature maps, concatenated level by level, cached per shape, device and dtype.

    Args:
        sizes: one sequence of sizes per level.
        ratios: one sequence of ratios per level (or a single sequence shared by every level).
        steps: :func:`generate_anchors`'s ``step``, one per level (None: the map's own cells).
        clip: :func:`generate_anchors`'s ``clip``, for every level.

    ``anchors(feature_shapes, device)`` returns ``Tensor[sum_l H_l * W_l * K_l, 4]``; ``num_anchors_per_cell``
    gives each level's K.
    """

    def __init__(self, sizes: Sequence[Sequence[float]], ratios: Sequence[Sequence[float]] | Sequence[float],
                 steps: Sequence[float] | None = None, clip: bool = False):
        sizes = [tuple(float(s) for s in level) for level in sizes]
        if ratios and not isinstance(ratios[0], (list, tuple)):
            ratios = [ratios] * len(sizes)
        ratios = [tuple(float(r) for r in level) for level in ratios]
        if len(ratios) != len(sizes):
            raise ValueError(f"got {len(sizes)} levels of sizes but {len(ratios)} levels of ratios")
        for level, (s, r) in enumerate(zip(sizes, ratios)):
            _check_positive(s, f"sizes of level {level}")
            _check_positive(r, f"ratios of level {level}")
        if steps is not None and len(steps) != len(sizes):
            raise ValueError(f"got {len(sizes)} levels of sizes but {len(steps)} steps")
        self.sizes, self.ratios = sizes, ratios
        self.steps, self.clip = (list(steps) if steps is not None else [None] * len(sizes)), clip
        self._cache: dict[tuple, Tensor] = {}

    @property
    def num_anchors_per_cell(self) -> list[int]:
        return [len(s) + len(r) - 1 for s, r in zip(self.sizes, self.ratios)]

    def __call__(
        self,
        feature_shapes: Sequence[tuple[int, int]],
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        shapes = tuple((int(h), int(w)) for h, w in feature_shapes)
        if len(shapes) != len(self.sizes):
            raise ValueError(f"expected {len(self.sizes)} feature maps, got {len(shapes)}")
        key = (shapes, str(torch.device(device) if device is not None else "cpu"), dtype)
        if key not in self._cache:
            self._cache[key] = torch.cat([
                generate_anchors(h, w, s, r, device, dtype, step, self.clip)
                for (h, w), s, r, step in zip(shapes, self.sizes, self.ratios, self.steps)])
        return self._cache[key]


def grid_anchors(
    height: int,
    width: int,
    stride: int | tuple[int, int],  # pixels per cell, or (along y, along x)
    sizes: Sequence[float],
    ratios: Sequence[float],
    device: torch.device | str | None = None,
    offset: float = 0.5,  # centres at (i + offset) * stride; torchvision's AnchorGenerator uses 0 (cell corners)
    round_sizes: bool = False,  # round the base anchors to whole pixels, as torchvision's AnchorGenerator does
) -> Tensor:
    """Faster R-CNN's anchors in pixels: every size with every ratio (``h / w = ratio``, area ``size**2``),
    centred on each cell of a ``height x width`` map of the given ``stride``, cell by cell.

    Returns:
        Tensor[height * width * len(sizes) * len(ratios), 4]: xyxy pixels.
    """
    _check_positive(sizes, "sizes")
    _check_positive(ratios, "ratios")
    size_t = torch.as_tensor(sizes, dtype=torch.float32)[None, :]  # (1, S)
    h_ratio = torch.as_tensor(ratios, dtype=torch.float32).sqrt()[:, None]  # (R, 1)
    ws, hs = (size_t / h_ratio).reshape(-1), (size_t * h_ratio).reshape(-1)  # (R*S,) ratio-major, as torchvision
    half = torch.stack((-ws, -hs, ws, hs), dim=1) / 2  # (K, 4)
    half = half.round() if round_sizes else half
    stride_y, stride_x = (stride, stride) if isinstance(stride, (int, float)) else stride
    cy = (torch.arange(height, dtype=torch.float32) + offset) * stride_y  # (H,)
    cx = (torch.arange(width, dtype=torch.float32) + offset) * stride_x  # (W,)
    sy, sx = torch.meshgrid(cy, cx, indexing="ij")  # (H, W) each
    centers = torch.stack((sx, sy, sx, sy), dim=-1).reshape(-1, 1, 4)  # (H*W, 1, 4)
    return (centers + half).reshape(-1, 4).to(device)  # (H*W*K, 4)
