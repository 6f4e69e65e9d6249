"""Reading images: one decoder for the whole package (OpenCV, RGB, EXIF orientation ignored so that pixels
match the annotations), cheap header reads for sizes, and one cap on the pixels of an image.

The cap (``MAX_PIXELS``, ``--max-pixels``) is checked on the header before anything is decoded: a PNG of a
few hundred KB can declare 20000x20000 pixels and take gigabytes once decoded. PIL's own decompression-bomb
limit is switched off for our header reads so that every caller gets the same one-line error from our cap.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from detector.core.errors import InputError, setting

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg")  # read frame by frame
MAX_PIXELS = 100_000_000  # images with more pixels (width x height) are refused; --max-pixels changes it

_PIL_LIMIT = threading.Lock()  # guards the global Image.MAX_IMAGE_PIXELS while one header is read


class ImageError(InputError, OSError):
    """An image that cannot be read; the message names the file and why."""


class ImageTooLarge(ImageError):
    """An image over the pixel cap; the message names the file, its size and the flag that raises the cap;
    ``size``: its ``(width, height)``."""

    size: tuple[int, int] = (0, 0)


@functools.cache
def _cv2():
    import cv2  # imported on first use: the CLI's --help and the configs do not pay for it

    cv2.setNumThreads(1)  # data loading parallelizes over worker processes, not inside OpenCV
    return cv2


def open_image(path: Path | str) -> Image.Image:
    """PIL's lazy open (header only) without PIL's decompression-bomb check: our cap applies instead."""
    with _PIL_LIMIT:
        old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = old


def image_size(path: Path | str, max_pixels: int | None = None) -> tuple[int, int]:
    """``(width, height)`` from the file's header, without decoding. Raises ``OSError`` naming the file, and
    :class:`ImageTooLarge` when ``max_pixels`` is given and the image has more pixels."""
    try:
        with open_image(path) as im:
            size = im.size
    except FileNotFoundError:
        raise ImageError(f"{path}: no such image") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{path}: not a readable image ({e})") from None
    check_pixels(path, size, max_pixels)
    return size


def check_pixels(path: Path | str, size: tuple[int, int], max_pixels: int | None = MAX_PIXELS) -> None:
    """Raise :class:`ImageTooLarge` when ``size`` ``(width, height)`` has more than ``max_pixels`` pixels."""
    w, h = size
    if max_pixels is not None and w * h > max_pixels:
        size = f"{w * h / 1e6:.0f} megapixels" if w * h >= 10**7 else f"{w * h:,} pixels"
        error = ImageTooLarge(f"{path}: {w}x{h} is {size}, over the cap of {max_pixels:,} "
                              f"pixels; pass {setting('max_pixels', 'N', placeholder=True)} to allow larger images, or "
                              "shrink the image")
        error.size = (w, h)
        raise error


def read_image(path: Path | str, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """Decode ``path`` to ``uint8 [H, W, 3]`` RGB, after checking its header against ``max_pixels`` (None: no
    cap). Raises ``OSError`` naming the file (:class:`ImageTooLarge` over the cap)."""
    if not Path(path).is_file():
        if Path(path).is_symlink():
            raise ImageError(f"{path}: a broken symbolic link (to {os.readlink(path)}); no image there")
        raise ImageError(f"{path}: no such image")
    if max_pixels is not None:
        image_size(path, max_pixels)
    cv2 = _cv2()
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if image is None:
        raise ImageError(f"{path}: not a readable image (empty, truncated or not an image format OpenCV reads)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode_fully(path: Path | str, max_pixels: int | None = MAX_PIXELS) -> tuple[int, int]:
    """Decode ``path`` whole, as training will, and return its ``(width, height)``; raise ``OSError`` naming the
    file (:class:`ImageTooLarge` over the cap, checked on the header first). PIL decodes it first: it raises on a
    truncated or corrupt stream where OpenCV may fill the rest with grey; then OpenCV, the decoder training uses."""
    size = image_size(path, max_pixels)
    try:
        with open_image(path) as im:
            im.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageError(f"{path}: not a readable image: decoding failed ({e})") from None
    read_image(path, None)
    return size


BAND_PIXELS = 1 << 22  # pixels converted at a time (a band of rows): a huge image is never copied whole


def pil_to_rgb(im: Image.Image, notes: list[str] | None = None) -> np.ndarray:
    """Any PIL mode -> ``uint8 [H, W, 3]`` RGB: 16-bit grey scaled to 8 bits (the high byte, as OpenCV reads
    16-bit files), 32-bit grey holding 8-bit values kept, other 32-bit and float grey stretched, transparency
    flattened onto white; ``notes`` (when given) says what was converted. Converted a band of rows at a time into
    the one array it returns, so the memory it takes beyond the PIL image is that array, not a few copies."""
    notes = [] if notes is None else notes
    if im.mode in ("La", "RGBa"):  # premultiplied alpha: PIL converts these only to their straight-alpha modes
        im = im.convert("LA" if im.mode == "La" else "RGBA")
    convert = _converter(im, notes)
    w, h = im.size
    out = np.empty((h, w, 3), np.uint8)
    rows = max(1, BAND_PIXELS // max(1, w))
    for top in range(0, h, rows):
        out[top:top + rows] = convert(im.crop((0, top, w, min(h, top + rows))))
    return out


def _converter(im: Image.Image, notes: list[str]):
    """The conversion of a band of ``im`` to RGB uint8 (the same for every band; its note said once)."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):  # 16-bit, 32-bit or float grey
        lo, hi = im.getextrema()
        if im.mode == "I" and 0 <= lo and hi <= 255:  # 8-bit values held in 32 bits
            grey, how = (lambda a: a.astype(np.uint8)), "32-bit (8-bit values)"
        elif im.mode.startswith("I;16") or (im.mode == "I" and 0 <= lo and hi <= 65535):
            grey, how = (lambda a: (a >> 8).astype(np.uint8)), "16-bit"
        else:
            span = max(float(hi) - float(lo), 1e-12)
            grey = lambda a: np.clip(np.nan_to_num((a.astype(np.float32) - lo) / span * 255.0), 0, 255).astype(np.uint8)
            how = f"{im.mode}-mode (stretched to 8 bits)"
        notes.append(f"{how} greyscale converted to 8-bit RGB")
        return lambda band: np.repeat(grey(np.asarray(band))[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        notes.append("transparency flattened onto white")

        def flatten(band: Image.Image) -> np.ndarray:
            rgba = band.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))

        return flatten
    if im.mode in ("L", "1"):
        notes.append("greyscale shown as RGB")
    elif im.mode not in ("RGB", "P"):
        notes.append(f"{im.mode} converted to RGB")
    try:
        im.crop((0, 0, 1, 1)).convert("RGB")
    except ValueError as e:  # a mode PIL cannot turn into RGB
        raise ImageError(f"an image of PIL mode {im.mode}: cannot be converted to RGB ({e}); convert it first") \
            from None
    return lambda band: np.asarray(band if band.mode == "RGB" else band.convert("RGB"))


def clear_for_writing(path: Path | str) -> Path:
    """Remove what is at ``path`` when it is a file or a link (symbolic or hard), so that what is written there
    next is a new file: a writer never writes through a link into a file outside its output folder."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    return path


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
