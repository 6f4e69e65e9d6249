"""What :meth:`Detector.predict <detector.api.Detector.predict>` takes, read one image at a time: files, folders
(their images and videos, sorted), globs, videos (frame by frame), numpy arrays (RGB ``[H, W, 3]`` or grey
``[H, W]``, uint8) and PIL images, alone, in a list, or from any iterable (a generator is read lazily, one item
at a time). A folder of 100,000 images streams in bounded memory.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.core.errors import InputError, UsageError
from detector.data.images import (
    MAX_PIXELS,
    ImageError,
    ImageTooLarge,
    check_pixels,
    open_image,
    pil_to_rgb,
    read_image,
)
from detector.evaluation.predict import expand_inputs
from detector.evaluation.video import TooManyFrames, VideoError, is_video, read_frames

__all__ = ["ImageTooLarge", "Item", "TooManyFrames", "as_rgb", "header_size", "is_lazy", "iter_items", "load_image"]
ACCEPTED = "an image or video path, a folder, a glob, a numpy array (RGB [H, W, 3] or grey [H, W], uint8), a PIL image"


@dataclass
class Item:
    """One image to detect in: decoded (``image``), or the reason it could not be (``error``)."""

    image: np.ndarray | None  # RGB uint8 [H, W, 3]
    path: str | None = None
    frame: int | None = None  # a video frame's index
    fps: float | None = None  # a video's frame rate
    error: str | None = None
    exception: Exception | None = None  # the error itself (an InputError), raised with errors="raise"


def as_rgb(image, max_pixels: int | None = None) -> np.ndarray:
    """A numpy array (RGB ``[H, W, 3]`` or grey ``[H, W]``, uint8) or a PIL image (any mode, converted as the app
    converts uploads) -> RGB uint8 ``[H, W, 3]``, refused over ``max_pixels``."""
    from PIL import Image

    if isinstance(image, Image.Image):
        if 0 in image.size:
            raise UsageError(f"a PIL image of {image.size[0]}x{image.size[1]} pixels: nothing to detect in")
        check_pixels("a PIL image", image.size, max_pixels)
        return np.ascontiguousarray(pil_to_rgb(image))
    given = np.asarray(image)
    array = np.repeat(given[..., None], 3, axis=2) if given.ndim == 2 else given
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or 0 in array.shape:
        raise UsageError(f"an image array must be RGB uint8 [H, W, 3] (or grey [H, W]), got {given.dtype} "
                         f"{list(given.shape)}")
    check_pixels("an image array", (array.shape[1], array.shape[0]), max_pixels)
    return np.ascontiguousarray(array)


def is_image_object(source) -> bool:
    from PIL import Image

    return isinstance(source, (np.ndarray, Image.Image))


def _kind(source) -> str:
    """``"path"``, ``"image"`` or ``"many"``; a :class:`UsageError` naming what it takes otherwise."""
    if isinstance(source, (str, Path)):
        return "path"
    if is_image_object(source):
        return "image"
    if type(source).__module__.startswith("torch") and hasattr(source, "dim"):
        raise UsageError(f"predict: a torch tensor {list(source.shape)}: give it as a numpy array, RGB uint8 "
                         "[H, W, 3] (tensor.permute(1, 2, 0).numpy() for a [3, H, W] one), or a path")
    if isinstance(source, io.IOBase):
        raise UsageError(f"predict: an open file ({getattr(source, 'name', '?')}): give its path instead")
    if isinstance(source, Iterable) and not isinstance(source, (bytes, bytearray, dict)):
        return "many"
    raise UsageError(f"predict: cannot read a {type(source).__name__}; give {ACCEPTED}, or a list of them")


def is_lazy(source) -> bool:
    """Whether ``source`` is the caller's own iterator (a generator, a webcam's frames), read one item at a time
    in the caller's thread as it asks, never ahead."""
    return not isinstance(source, (str, Path, list, tuple)) and not is_image_object(source) and \
        isinstance(source, Iterable)


def iter_items(source, max_pixels: int | None, skip_bad_frames: bool = False,
               max_frames: int | None = None, vid_stride: int = 1) -> Iterator[Item]:
    """Each image of ``source`` in order (each frame of a video); an unreadable file is an :class:`Item` with
    its ``error``. A path, and every path of a list or tuple, is looked up now, before anything is read (one
    that names nothing is an :class:`InputError` at once); a generator is read as it goes."""
    kind = _kind(source)
    if kind == "path":
        expand_inputs([source])  # raises for a path that names nothing, before anything is read or written
    if kind != "many":
        items = [source]
    elif isinstance(source, (list, tuple)):
        items = list(source)
        if not items:
            raise UsageError("predict: no images given (an empty list)")
        for item in items:
            if _kind(item) == "path":
                expand_inputs([item])  # raises for a path that names nothing
            elif _kind(item) == "many":
                raise UsageError(f"predict: a list holds {ACCEPTED}; not a {type(item).__name__}")
    else:
        items = source  # an iterator: lazily
    return _read(items, max_pixels, skip_bad_frames, max_frames, vid_stride)


def _read(items, max_pixels: int | None, skip_bad_frames: bool, max_frames: int | None,
          vid_stride: int = 1) -> Iterator[Item]:
    for item in items:
        kind = _kind(item)
        if kind == "image":
            yield Item(as_rgb(item, max_pixels))
        elif kind == "path":
            yield from _files(item, max_pixels, skip_bad_frames, max_frames, vid_stride)
        else:
            raise UsageError(f"predict: a list holds {ACCEPTED}; not a {type(item).__name__}")


def _files(item: str | Path, max_pixels: int | None, skip_bad_frames: bool = False,
           max_frames: int | None = None, vid_stride: int = 1) -> Iterator[Item]:
    paths = expand_inputs([item])
    if not paths:
        raise InputError(f"{item}: a folder with no images or videos")
    for path in paths:
        if is_video(path):
            yield from _frames(path, max_pixels, skip_bad_frames, max_frames, vid_stride)
            continue
        try:
            yield Item(read_image(path, max_pixels), str(path))
        except ImageError as e:
            yield Item(None, str(path), error=str(e), exception=e)


def _frames(path: Path, max_pixels: int | None, skip_bad_frames: bool = False,
            max_frames: int | None = None, vid_stride: int = 1) -> Iterator[Item]:
    try:
        info, frames = read_frames(path, max_pixels, max_frames, skip_bad_frames=skip_bad_frames, stride=vid_stride)
        for k, frame in frames:
            yield Item(frame, str(path), frame=k, fps=info["fps"])
    except VideoError as e:
        yield Item(None, str(path), error=str(e), exception=e)


def load_image(path: Path | str, name: str | None = None, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, list[str]]:
    """Any image file (an upload) to upright ``uint8 [H, W, 3]`` RGB, as its EXIF orientation says, and ``notes``:
    what was converted (greyscale, 16-bit, alpha, rotation, frames). An :class:`InputError` naming the file
    (``name``, default its file name): missing, empty, not an image, corrupt or truncated, too small; over
    ``max_pixels`` (checked on the header, before decoding) an :class:`ImageTooLarge`, one of them."""
    from PIL import ImageOps, UnidentifiedImageError

    path = Path(path)
    name = name or path.name
    if not path.is_file():
        raise InputError(f"{name}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{name}: empty file")
    notes: list[str] = []
    try:
        with open_image(path) as im:  # the header only, PIL's own bomb check off: the cap is ours
            check_pixels(name, im.size, max_pixels)  # ImageTooLarge (an InputError) naming the cap
            if getattr(im, "n_frames", 1) > 1:
                notes.append(f"first of {im.n_frames} frames")
            im.load()
            orientation = im.getexif().get(0x0112, 1)  # EXIF Orientation
            upright = im
            if orientation not in (1, None):  # a copy, only when it is turned
                upright = ImageOps.exif_transpose(im)
                notes.append(f"turned upright as its EXIF orientation ({orientation}) says")
            image = pil_to_rgb(upright, notes)  # in bands: the decoded image and this array, no more
            del upright
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"{name}: not an image (no image format recognised)") from None
    except (OSError, SyntaxError, ValueError) as e:  # PIL raises these on truncated and corrupt data
        raise InputError(f"{name}: corrupt or truncated image ({e})") from None
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise InputError(f"{name}: image is {image.shape[1]}x{image.shape[0]} pixels, too small to detect in")
    return image, notes


def header_size(path: Path | str) -> tuple[int, int] | None:
    """``(width, height)`` from an image file's header (nothing decoded), or None when it has none (the decoding
    then says what is wrong)."""
    try:
        with open_image(path) as im:
            return im.size
    except Exception:  # noqa: BLE001 - any unreadable header: the same answer
        return None
