"""Reading what users upload: any image file to upright 8-bit RGB (:func:`detector.api.load_image`), or one clear
message naming the file; and the numbers the page's fields send.

An upload that is not an image, is corrupt, empty or too large raises an error with its name and problem;
greyscale, 16-bit, transparent, multi-frame and EXIF-rotated images are converted, with notes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.api import load_image
from detector.api.sources import ImageTooLarge
from detector.core.errors import InputError

MAX_PIXELS = 100_000_000  # uploads above this are refused (a 10,000 x 10,000 photo still passes)
DISPLAY_SIDE = 1600  # images are shown at most this large; boxes and tables stay in original pixels
MIN_DISPLAY_SIDE = 640  # and small ones drawn at least this large, so boxes and labels stay sharp


class BadInput(InputError, ValueError):
    """An input the demo cannot use; the message names it and says why, for the page."""


def unit(value, what: str = "") -> float:
    """A number in [0, 1] (a slider's value, a threshold; raw HTTP can send anything); ``what`` names it."""
    name = f"{what} {value!r}" if what else repr(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise BadInput(f"{name}: expected a number in [0, 1]") from None
    if not 0.0 <= v <= 1.0:
        raise BadInput(f"{name}: expected a number in [0, 1]")
    return v


def load_upload(path: Path | str, name: str | None = None) -> tuple[np.ndarray, list[str]]:
    """An uploaded file decoded to ``uint8 [H, W, 3]`` RGB, upright, with notes on what was converted; an
    :class:`~detector.core.errors.InputError` naming the file (``name``) when it cannot be."""
    try:
        return load_image(path, name, max_pixels=MAX_PIXELS)
    except ImageTooLarge as e:
        w, h = e.size
        raise BadInput(f"{name or Path(path).name}: too large ({w}x{h} = {w * h / 1e6:.0f} megapixels; the demo "
                       f"takes at most {MAX_PIXELS / 1e6:.0f})") from None
