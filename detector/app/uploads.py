"""Reading what users upload: any image file to upright 8-bit RGB, or one clear message naming the file.

An upload that is not an image, is corrupt, empty or too large raises :class:`BadInput` with its name and
problem; greyscale, 16-bit, transparent, multi-frame and EXIF-rotated images are converted, with notes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from detector.core.errors import InputError
from detector.data.images import pil_to_rgb

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
    """Decode an uploaded file to ``uint8 [H, W, 3]`` RGB, upright as its EXIF orientation says.

    Returns ``(image, notes)``; notes say what was converted (greyscale, 16-bit, alpha, rotation, frames).
    Raises :class:`BadInput` naming the file: missing, empty, not an image, corrupt or truncated, too large.
    """
    path = Path(path)
    name = name or path.name
    if not path.is_file():
        raise BadInput(f"{name}: no such file")
    if path.stat().st_size == 0:
        raise BadInput(f"{name}: empty file")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():  # sizes are checked below, against MAX_PIXELS
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise BadInput(f"{name}: too large ({w}x{h} = {w * h / 1e6:.0f} megapixels; the demo takes at most "
                               f"{MAX_PIXELS / 1e6:.0f})")
            if getattr(im, "n_frames", 1) > 1:
                notes.append(f"first of {im.n_frames} frames")
            im.load()
            orientation = im.getexif().get(0x0112, 1)  # EXIF Orientation
            upright = ImageOps.exif_transpose(im)
            if orientation not in (1, None):
                notes.append(f"turned upright as its EXIF orientation ({orientation}) says")
            image = pil_to_rgb(upright, notes)
    except BadInput:
        raise
    except Image.DecompressionBombError:
        raise BadInput(f"{name}: too large (refused as a decompression bomb)") from None
    except UnidentifiedImageError:
        raise BadInput(f"{name}: not an image (no image format recognised)") from None
    except (OSError, SyntaxError, ValueError) as e:  # PIL raises these on truncated and corrupt data
        raise BadInput(f"{name}: corrupt or truncated image ({e})") from None
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise BadInput(f"{name}: image is {image.shape[1]}x{image.shape[0]} pixels, too small to detect in")
    return np.ascontiguousarray(image), notes


def display_copy(image: np.ndarray) -> tuple[Image.Image, float]:
    """The image as shown in the page (longest side between ``MIN_DISPLAY_SIDE`` and ``DISPLAY_SIDE``, or as
    it is in between) and its scale from the original."""
    h, w = image.shape[:2]
    scale = min(DISPLAY_SIDE / max(h, w), max(1.0, MIN_DISPLAY_SIDE / max(h, w)))
    pil = Image.fromarray(image)
    if scale != 1.0:
        pil = pil.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    return pil, scale
