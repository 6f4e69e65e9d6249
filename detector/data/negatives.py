"""Background images: photographs without any object of the data set's classes, trained as negatives (every
anchor is background), as Ultralytics trains its background images.

    detector train --data raccoon/ --negatives photos-without-raccoons/
    detector data negatives ../shared/datasets/raccoon --out data/raccoon-negatives --count 300

:func:`background_records` reads a folder of images (sizes from their headers); :func:`write_background_crops`
makes such a folder from a data set's own photographs: crops that overlap none of their boxes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detector.core.errors import InputError, UsageError, setting
from detector.core.progress import plural
from detector.data.images import (
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    ImageError,
    clear_for_writing,
    decode_fully,
    image_size,
    read_image,
)
from detector.data.records import ImageRecord

MIN_SOURCE_SIDE = 32  # photographs with a smaller side give no crops (a crop's side is at least 0.3 of theirs)
GIVE_UP_AFTER = 20_000  # consecutive tries without a free region: the photographs have none (about 0.2 s)


def name_some(paths: list, shown: int = 3) -> str:
    """The first ``shown`` of ``paths``, comma-separated, then ``...`` if there are more."""
    return ", ".join(map(str, paths[:shown])) + (", ..." if len(paths) > shown else "")


def _images_under(folder: Path) -> list[Path]:
    """Image files in ``folder`` and its subfolders (linked folders too, each real folder once: no loops),
    sorted."""
    found, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        found += [Path(root) / f for f in sorted(files) if Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return found


def background_records(folder: str | Path, max_pixels: int | None = MAX_PIXELS, first_id: int = 1,
                       skip_invalid: bool = False, log: Callable[[str], None] = print) -> list[ImageRecord]:
    """One record without boxes per image of ``folder`` and its subfolders (sorted). An unreadable image is an
    :class:`InputError` naming it, or, with ``skip_invalid``, left out and said through ``log``."""
    if not str(folder).strip():
        raise UsageError(f"{setting('negatives', '')}: give a folder of images without objects (or leave the option out)")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{setting('negatives', folder)}: a file, not a folder; give the folder of images without objects")
    if not folder.is_dir():
        raise InputError(f"{setting('negatives', folder)}: no such folder (it holds images without objects)")
    paths = _images_under(folder)
    if not paths:
        raise InputError(f"{setting('negatives', folder)}: no images in it or its subfolders (.jpg, .png, ...)")
    records, skipped = [], []
    for path in paths:
        try:  # with skip_invalid, decoded: a truncated image is skipped now, not met in the middle of an epoch
            w, h = decode_fully(path, max_pixels) if skip_invalid else image_size(path, max_pixels)
        except OSError as e:
            if not skip_invalid:
                raise ImageError(f"{e}; fix or remove it, or pass {setting('skip_invalid', True)}") from None
            skipped.append(path)
            continue
        records.append(ImageRecord(path, w, h, np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                                   image_id=first_id + len(records)))
    if skipped and not records:
        raise InputError(f"{setting('negatives', folder)}: none of its {len(skipped)} images can be read (the first: "
                         f"{skipped[0]}); give a folder of readable images without objects")
    if skipped:
        log(f"{setting('negatives', folder)}: skipped {plural(len(skipped), 'unreadable image')} "
            f"({setting('skip_invalid', True)}): {name_some(skipped)}")
    return records


def _digest(path: Path, known: dict[Path, str]) -> str:
    """``path``'s SHA-1, read once: ``known`` keeps the digests already taken."""
    if path not in known:
        with open(path, "rb") as f:
            known[path] = hashlib.file_digest(f, "sha1").hexdigest()
    return known[path]


def refuse_annotated_copies(negatives: list[ImageRecord], annotated: Iterable[ImageRecord], folder) -> None:
    """Raise :class:`InputError` when a background image is a data set image (the same file, or the same bytes):
    an annotated photograph trained as background would teach the model that its objects are not objects, and a
    val photograph would leak into training. Only files of equal size are read."""
    by_size: dict[int, list[Path]] = {}
    for r in annotated:
        try:
            by_size.setdefault(os.stat(r.path).st_size, []).append(Path(r.path))
        except OSError:
            continue
    copies, digests = [], {}
    for r in negatives:
        same = by_size.get(os.stat(r.path).st_size, [])
        if not same:
            continue
        mine = _digest(Path(r.path), digests)
        match = next((p for p in same if p.resolve() == Path(r.path).resolve() or _digest(p, digests) == mine), None)
        if match is not None:
            copies.append((r.path, match))
    if copies:
        first, source = copies[0]
        raise InputError(f"{setting('negatives', folder)}: {len(copies)} of its images are images of the data set itself "
                         f"(the first: {first} = {source}); background images must hold no object of the data "
                         "set and no val image; remove them from the folder")


@dataclass
class CropReport:
    written: int = 0
    tries: int = 0
    unreadable: list[str] = field(default_factory=list)  # photographs that could not be decoded (skipped)
    too_small: list[str] = field(default_factory=list)  # photographs under MIN_SOURCE_SIDE pixels a side (skipped)


def write_background_crops(records: list[ImageRecord], out: str | Path, count: int, seed: int = 0,
                           min_side: float = 0.3) -> CropReport:
    """Write up to ``count`` crops of the records' images that overlap none of their boxes (each side at least
    ``min_side`` of the image's, tried at random from ``seed``) as JPEGs ``bg0000.jpg``, ... in ``out``.

    Photographs under :data:`MIN_SOURCE_SIDE` pixels on a side, and those that cannot be decoded, are skipped
    and counted; the search stops after :data:`GIVE_UP_AFTER` tries in a row find no free region. A file that
    cannot be written raises ``OSError`` naming it (the crops before it stay)."""
    import cv2

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = CropReport()
    usable = [r for r in records if min(r.width, r.height) >= MIN_SOURCE_SIDE]
    report.too_small = [str(r.path) for r in records if min(r.width, r.height) < MIN_SOURCE_SIDE]
    rng = np.random.default_rng(seed)
    misses = 0
    while report.written < count and usable and misses < GIVE_UP_AFTER and report.tries < count * 200 + GIVE_UP_AFTER:
        report.tries += 1
        i = int(rng.integers(len(usable)))
        r = usable[i]
        w = max(1, int(r.width * rng.uniform(min_side, 1.0)))
        h = max(1, int(r.height * rng.uniform(min_side, 1.0)))
        x, y = int(rng.integers(0, r.width - w + 1)), int(rng.integers(0, r.height - h + 1))
        b = np.asarray(r.boxes, np.float32).reshape(-1, 4)
        if ((b[:, 0] < x + w) & (b[:, 2] > x) & (b[:, 1] < y + h) & (b[:, 3] > y)).any():
            misses += 1
            continue  # it would show part of an object
        try:
            image = read_image(r.path)
        except ImageError:
            report.unreadable.append(str(r.path))
            usable.pop(i)
            continue
        crop = image[y:y + h, x:x + w]
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise InputError(f"{r.path}: OpenCV could not encode a crop of it as JPEG; remove it from the split")
        target = out / f"bg{report.written:04d}.jpg"
        try:
            clear_for_writing(target)  # a link there is replaced, never written through
            with open(target, "wb") as f:
                f.write(encoded.tobytes())
        except OSError as e:  # a full disk, a read-only folder, a folder in the way: named, nothing half-written
            if target.is_file() and not target.is_symlink():
                target.unlink(missing_ok=True)
            raise OSError(e.errno, e.strerror, str(target)) from None
        report.written += 1
        misses = 0
    return report


def avoidance_boxes(raw_boxes: dict[str, np.ndarray], clean: list[ImageRecord]) -> list[ImageRecord]:
    """``clean``'s photographs with the boxes of ``raw_boxes`` (path -> boxes as read, before invalid ones were
    dropped): a box of an unknown class or a reversed box still marks an object a background crop must not show.
    A box that is not finite covers the whole photograph."""
    out = []
    for r in clean:
        b = np.asarray(raw_boxes.get(str(r.path), r.boxes), np.float64).reshape(-1, 4)
        whole = ~np.isfinite(b).all(1)
        b = np.where(whole[:, None], [0.0, 0.0, float(r.width), float(r.height)], b)
        b = np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], 1)
        out.append(ImageRecord(r.path, r.width, r.height, b, np.full(len(b), -1), image_id=r.image_id))
    return out
