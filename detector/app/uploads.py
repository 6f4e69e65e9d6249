"""Reading what users upload: any image file to upright 8-bit RGB (:func:`detector.api.load_image`), or one clear
message naming the file; and the numbers the page's fields send.

An upload that is not an image, is corrupt, empty or too large raises an error with its name and problem;
greyscale, 16-bit, transparent, multi-frame and EXIF-rotated images are converted, with notes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from detector.api import load_image
from detector.api.sources import ImageTooLarge, header_size
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


class PixelBudget:
    """The pixels of uploads decoded and held at once, over every handler of the server: a handler waits for
    room before it decodes, and gives it back when its full-size image is gone. With ``limit`` above the largest
    upload taken (:data:`MAX_PIXELS`), one huge upload goes at a time while small ones go beside it: the
    server's memory is bounded by the budget, not by how many calls come at once."""

    def __init__(self, limit: int):
        self.limit, self.held = limit, 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        pixels = min(max(0, pixels), self.limit)
        with self._cond:
            while self.held and self.held + pixels > self.limit:
                self._cond.wait()
            self.held += pixels
        try:
            yield
        finally:
            with self._cond:
                self.held -= pixels
                self._cond.notify_all()


PIXELS_HELD = PixelBudget(MAX_PIXELS + MAX_PIXELS // 2)  # one 100-megapixel upload and 50 more beside it


@contextmanager
def upload(path: Path | str, name: str | None = None) -> Iterator[tuple[np.ndarray, list[str]]]:
    """``with upload(path, name) as (image, notes):`` the upload decoded (:func:`load_upload`) inside the server's
    pixel budget (:data:`PIXELS_HELD`), held for the ``with`` block: drop the image before it ends."""
    size = header_size(path)
    with PIXELS_HELD.hold(size[0] * size[1] if size else 0):
        yield load_upload(path, name)
