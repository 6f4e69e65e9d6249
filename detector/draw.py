"""Drawing boxes on images (PIL), for the CLI's pictures and, later, the app."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (250, 190, 190), (0, 128, 128)]  # distinct colours, cycled


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
