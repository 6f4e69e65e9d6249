"""What :meth:`Detector.predict <detector.api.Detector.predict>` takes, read one image at a time: files, folders
(their images, sorted), globs, videos (frame by frame), numpy arrays (RGB, HWC) and PIL images, alone or in a list.
Nothing is read before it is needed, so a folder of 100,000 images streams in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.core.errors import UsageError
from detector.data.images import ImageError, read_image
from detector.evaluation.predict import expand_inputs
from detector.evaluation.video import VideoError, is_video, read_frames


@dataclass
class Item:
    """One image to detect in: decoded (``image``), or the reason it could not be (``error``)."""

    image: np.ndarray | None  # RGB uint8 [H, W, 3]
    path: str | None = None
    frame: int | None = None  # a video frame's index
    fps: float | None = None  # a video's frame rate
    error: str | None = None


def as_rgb(image) -> np.ndarray:
    """A numpy array (RGB ``[H, W, 3]`` or grey ``[H, W]``, uint8) or a PIL image -> RGB uint8 ``[H, W, 3]``."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or 0 in array.shape:
        raise UsageError(f"an image array must be RGB uint8 [H, W, 3] (or grey [H, W]), got {array.dtype} "
                         f"{list(array.shape)}")
    return np.ascontiguousarray(array)


def is_image_object(source) -> bool:
    from PIL import Image

    return isinstance(source, (np.ndarray, Image.Image))


def iter_items(source, max_pixels: int | None) -> Iterator[Item]:
    """Each image of ``source`` in order (each frame of a video); an unreadable file is an :class:`Item` with
    its ``error``. Paths that name nothing raise :class:`InputError` before anything is read."""
    sources = [source] if isinstance(source, (str, Path)) or is_image_object(source) else list(source)
    if not sources:
        raise UsageError("predict: no images given")
    plan = [s if is_image_object(s) else expand_inputs([s]) for s in sources]  # checks every path first
    for entry in plan:
        if not isinstance(entry, list):
            yield Item(as_rgb(entry))
            continue
        for path in entry:
            if is_video(path):
                yield from _frames(path, max_pixels)
                continue
            try:
                yield Item(read_image(path, max_pixels), str(path))
            except ImageError as e:
                yield Item(None, str(path), error=str(e))


def _frames(path: Path, max_pixels: int | None) -> Iterator[Item]:
    try:
        info, frames = read_frames(path, max_pixels)
    except VideoError as e:
        yield Item(None, str(path), error=str(e))
        return
    for k, frame in enumerate(frames):
        yield Item(frame, str(path), frame=k, fps=info["fps"])
