"""Drawing boxes on images (PIL), for the CLI's pictures and the app; one colour per class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (250, 190, 190), (0, 128, 128)]  # distinct colours, cycled


def class_color(label: int) -> tuple[int, int, int]:
    """The colour of class ``label`` everywhere (CLI drawings, the app's figures)."""
    return PALETTE[int(label) % len(PALETTE)]


def class_colors(labels) -> list[tuple[int, int, int]] | None:
    """:func:`class_color` of each label; None for no labels (``draw_boxes`` then cycles the palette)."""
    return [class_color(c) for c in labels] or None


def draw_boxes(
    image: Image.Image,
    boxes: np.ndarray | Sequence[Sequence[float]],
    texts: Sequence[str] | None = None,
    colors: Sequence[tuple[int, int, int]] | None = None,
    width: int = 2,
) -> Image.Image:
    """A copy of ``image`` with ``boxes`` (``[N, 4]`` xyxy in pixels) drawn, each with an optional text."""
    out = image.convert("RGB").copy()
    pen = ImageDraw.Draw(out)
    pen.font = ImageFont.load_default(size=max(11, round(max(out.size) / 45)))  # labels readable at any size
    for i, box in enumerate(np.asarray(boxes, dtype=float).reshape(-1, 4)):
        color = tuple(colors[i % len(colors)]) if colors else PALETTE[i % len(PALETTE)]
        pen.rectangle([float(v) for v in box], outline=color, width=width)
        if texts:
            x, y = float(box[0]), float(box[1])
            left, top, right, bottom = pen.textbbox((x, y), texts[i])
            x -= max(0.0, right + 2 - out.width)  # keep the label inside the image
            y = y if top >= 0 else y - top
            left, top, right, bottom = pen.textbbox((x, y), texts[i])
            pen.rectangle([left, top, right + 2, bottom + 1], fill=color)
            pen.text((x + 1, y), texts[i], fill=(255, 255, 255))
    return out


def anchor_texts(sizes: Sequence[float], ratios: Sequence[float]) -> list[str]:
    """Labels of one cell's anchors in the book's order: every size with ``ratios[0]``, then ``sizes[0]`` with
    each of ``ratios[1:]``."""
    return [f"s={s:g},r={ratios[0]:g}" for s in sizes] + [f"s={sizes[0]:g},r={r:g}" for r in ratios[1:]]


def draw_anchors(image: Image.Image, fmap: tuple[int, int], sizes: Sequence[float], ratios: Sequence[float],
                 labels: bool = False) -> tuple[Image.Image, int]:
    """The book's ``display_anchors``: the anchors of every cell of an ``fmap = (h, w)`` feature map over
    ``image``, one colour per (size, ratio). Returns the drawing and the number of anchors."""
    from detector.core.anchors import generate_anchors

    fh, fw = fmap
    anchors = generate_anchors(fh, fw, sizes, ratios).numpy()  # (fh*fw*K, 4), normalized; ValueError if bad
    k = len(sizes) + len(ratios) - 1
    anchors = anchors * np.array([image.width, image.height, image.width, image.height], dtype=np.float32)
    colors = class_colors(range(k))  # one colour per anchor shape of a cell
    drawn = draw_boxes(image, anchors, anchor_texts(sizes, ratios) * (fh * fw) if labels else None, colors=colors)
    return drawn, len(anchors)
