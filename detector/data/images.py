"""Reading images: one decoder for the whole package (OpenCV, RGB, EXIF orientation ignored so that pixels
match the annotations), and cheap header reads for sizes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

cv2.setNumThreads(1)  # data loading parallelizes over worker processes, not inside OpenCV


def image_size(path: Path | str) -> tuple[int, int]:
    """``(width, height)`` from the file's header, without decoding. Raises ``OSError`` naming the file."""
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise OSError(f"{path}: no such image") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise OSError(f"{path}: not a readable image ({e})") from None


def read_image(path: Path | str) -> np.ndarray:
    """Decode ``path`` to ``uint8 [H, W, 3]`` RGB. Raises ``OSError`` naming the file."""
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    if data is None:
        raise OSError(f"{path}: no such image")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if image is None:
        raise OSError(f"{path}: not a readable image (empty, truncated or not an image format OpenCV reads)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
