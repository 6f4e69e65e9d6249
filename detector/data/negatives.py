"""Background images: photographs without any object of the data set's classes, trained as negatives (every
anchor is background), as Ultralytics trains its background images.

    detector train --data raccoon/ --negatives photos-without-raccoons/
    detector data negatives ../shared/datasets/raccoon --out data/raccoon-negatives --count 300

:func:`background_records` reads a folder of images (sizes from their headers); :func:`write_background_crops`
makes such a folder from a data set's own photographs: crops that overlap none of their boxes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.core.errors import InputError
from detector.data.images import MAX_PIXELS, ImageError, image_size, list_images, read_image
from detector.data.records import ImageRecord


def background_records(folder: str | Path, max_pixels: int | None = MAX_PIXELS, first_id: int = 1,
                       skip_invalid: bool = False) -> list[ImageRecord]:
    """One record without boxes per image of ``folder`` (sorted). An unreadable image is an :class:`InputError`
    naming it, or, with ``skip_invalid``, left out."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--negatives {folder}: no such folder (it holds images without objects)")
    paths = list_images(folder)
    if not paths:
        raise InputError(f"--negatives {folder}: no images in it (.jpg, .png, ...)")
    records = []
    for path in paths:
        try:
            w, h = image_size(path, max_pixels)
        except ImageError:
            if skip_invalid:
                continue
            raise
        records.append(ImageRecord(path, w, h, np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                                   image_id=first_id + len(records)))
    return records


def write_background_crops(records: list[ImageRecord], out: str | Path, count: int, seed: int = 0,
                           min_side: float = 0.3) -> int:
    """Write up to ``count`` crops of the records' images that overlap none of their boxes (each side at least
    ``min_side`` of the image's, tried at random from ``seed``) as JPEGs in ``out``; returns how many."""
    import cv2

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written, tries = 0, 0
    while written < count and tries < count * 200 and records:
        tries += 1
        r = records[int(rng.integers(len(records)))]
        w = int(r.width * rng.uniform(min_side, 1.0))
        h = int(r.height * rng.uniform(min_side, 1.0))
        x, y = int(rng.integers(0, r.width - w + 1)), int(rng.integers(0, r.height - h + 1))
        b = np.asarray(r.boxes, np.float32).reshape(-1, 4)
        if ((b[:, 0] < x + w) & (b[:, 2] > x) & (b[:, 1] < y + h) & (b[:, 3] > y)).any():
            continue  # it would show part of an object
        crop = read_image(r.path)[y:y + h, x:x + w]
        cv2.imwrite(str(out / f"bg{written:04d}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 92])
        written += 1
    return written
