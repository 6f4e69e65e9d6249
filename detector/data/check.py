"""Checking a data set before it is used: the same checks for ``detector data check``, training and evaluation.

Errors (the image or box would be dropped): missing or unreadable image, image size that differs from
the annotation, NaN or inf coordinates, zero or negative area, a box entirely outside the image, unknown
class, duplicate ids, malformed lines. Fixed (always, and counted): a box partly outside the image is
clipped to it. Nothing is dropped silently: with errors, :func:`prepare_split` refuses unless the caller
chose ``policy="skip"``, and what was skipped is reported with counts.
"""

from __future__ import annotations

import multiprocessing as mp
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np

from detector.core.progress import progress as show_progress
from detector.data.dataset import load_dataset
from detector.data.images import MAX_PIXELS, ImageTooLarge, decode_fully, image_size
from detector.data.records import DataError, DetectionData, ImageRecord, Problem

POLICIES = ("refuse", "skip")
SMALL, MEDIUM = 32**2, 96**2  # COCO's area ranges, in pixels


@dataclass
class SplitReport:
    name: str
    records: list[ImageRecord]  # cleaned: boxes clipped, invalid boxes and unreadable images removed
    problems: list[Problem] = field(default_factory=list)
    dropped_boxes: int = 0
    dropped_images: int = 0
    clipped_boxes: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]


Inspected = tuple[tuple[int, int] | None, str | None, str | None]  # (width, height), problem kind, message


def inspect_image(path: Path | str, max_pixels: int | None = MAX_PIXELS, decode: bool = False) -> Inspected:
    """One image's size from its header (or, with ``decode``, after decoding it whole), or the problem kind
    (``missing-image``, ``too-large``, ``unreadable-image``) and message. Top level: it runs in worker processes."""
    try:
        size = decode_fully(path, max_pixels) if decode else image_size(path, max_pixels)
    except ImageTooLarge as e:
        return None, "too-large", str(e)
    except OSError as e:
        return None, "missing-image" if str(e).endswith("no such image") else "unreadable-image", str(e)
    return size, None, None


def inspect_images(paths: list[Path], max_pixels: int | None = MAX_PIXELS, decode: bool = False, workers: int = 1,
                   progress: bool = False) -> dict[str, Inspected]:
    """:func:`inspect_image` of every path, ``{str(path): result}``; with ``decode``, in ``workers`` processes
    and with a progress bar on stderr when ``progress``."""
    unique = list(dict.fromkeys(str(p) for p in paths))
    job = partial(inspect_image, max_pixels=max_pixels, decode=decode)
    bar = partial(show_progress, total=len(unique), desc="decode" if decode else "headers", enabled=progress,
                  unit="images")
    if not decode or workers <= 1 or len(unique) < 2:
        return dict(zip(unique, list(bar(map(job, unique)))))
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    chunk = max(1, min(32, len(unique) // (workers * 8)))
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        return dict(zip(unique, list(bar(pool.map(job, unique, chunksize=chunk)))))


def check_records(records: list[ImageRecord], num_classes: int, split: str, read_images: bool = True,
                  max_pixels: int | None = MAX_PIXELS, inspected: dict[str, Inspected] | None = None) -> SplitReport:
    """Check every image and box of a split; return cleaned copies and the problems found. Images are checked
    from their headers (size, the ``max_pixels`` cap) unless ``inspected`` (:func:`inspect_images`) is given.
    With ``read_images=False`` an image is opened only when the annotation does not give its size."""
    report = SplitReport(split, [])
    opened = [r.path for r in records if read_images or not (r.width and r.height)]
    if inspected is None:
        inspected = inspect_images(opened, max_pixels)
    for r in records:
        img = str(r.path)
        if read_images or not (r.width and r.height):
            size, kind, message = inspected[img]
            if size is None:
                report.problems.append(Problem("error", kind, img, "", message.removeprefix(f"{img}: ")))
                report.dropped_images += 1
                report.dropped_boxes += len(r.boxes)
                continue
            if r.width and r.height and (r.width, r.height) != size:
                report.problems.append(Problem("error", "size-mismatch", r.ann_file or img, "",
                                               f"{img} is {size[0]}x{size[1]} but annotated as {r.width}x{r.height}"))
                report.dropped_images += 1
                report.dropped_boxes += len(r.boxes)
                continue
            r = replace(r, width=size[0], height=size[1])
        report.records.append(_check_boxes(r, num_classes, report))
    return report


def _check_boxes(r: ImageRecord, num_classes: int, report: SplitReport) -> ImageRecord:
    b = r.boxes
    finite = np.isfinite(b).all(1)
    positive = finite & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    inside = positive & (b[:, 2] > 0) & (b[:, 3] > 0) & (b[:, 0] < r.width) & (b[:, 1] < r.height)
    known = (r.labels >= 0) & (r.labels < num_classes)
    clipped = np.clip(b, 0, [r.width, r.height, r.width, r.height]).astype(np.float32) if len(b) else b
    partly = inside & (clipped != b).any(1)
    where = r.ann_file or str(r.path)
    for i in np.flatnonzero(~(finite & positive & inside)):
        box = ", ".join(f"{v:g}" for v in b[i])
        if not finite[i]:
            kind, msg = "nan", f"box ({box}) has NaN, inf or missing coordinates"
        elif not positive[i]:
            kind, msg = "zero-area", f"box ({box}) has zero or negative width or height"
        else:
            kind, msg = "outside-image", f"box ({box}) lies entirely outside the {r.width}x{r.height} image"
        report.problems.append(Problem("error", kind, where, r.refs[i], msg))
    for i in np.flatnonzero(partly):
        report.problems.append(Problem("fixed", "clipped", where, r.refs[i],
                                       f"box ({', '.join(f'{v:g}' for v in b[i])}) clipped to the {r.width}x{r.height} image"))
    keep = finite & positive & inside & known
    report.clipped_boxes += int(partly.sum())
    report.dropped_boxes += int((~keep).sum())
    out = replace(r, boxes=clipped)
    out.keep(keep)
    return out


def summarize(records: list[ImageRecord], classes: list[str]) -> dict:
    """Counts: images, boxes, boxes per class, per COCO size range, images without boxes."""
    per_class = Counter()
    sizes = Counter({"small": 0, "medium": 0, "large": 0})
    boxes = 0
    for r in records:
        boxes += len(r.boxes)
        per_class.update(r.labels.tolist())
        area = (r.boxes[:, 2] - r.boxes[:, 0]) * (r.boxes[:, 3] - r.boxes[:, 1])
        sizes["small"] += int((area < SMALL).sum())
        sizes["medium"] += int(((area >= SMALL) & (area < MEDIUM)).sum())
        sizes["large"] += int((area >= MEDIUM).sum())
    return {"images": len(records), "boxes": boxes,
            "per_class": {c: per_class.get(i, 0) for i, c in enumerate(classes)},
            "sizes": dict(sizes), "images_without_boxes": sum(1 for r in records if len(r.boxes) == 0)}


def check_dataset(data: DetectionData, read_images: bool = True, max_pixels: int | None = MAX_PIXELS,
                  decode: bool = False, workers: int = 1, progress: bool = False) -> dict[str, SplitReport]:
    """Check every split; problems found while reading the files are attached to the first split. With
    ``decode``, every image is decoded whole (in ``workers`` processes), which finds truncated and corrupt files
    that a header read lets through."""
    inspected = None
    if read_images:
        paths = [r.path for recs in data.splits.values() for r in recs]
        inspected = inspect_images(paths, max_pixels, decode, workers, progress)
    reports = {name: check_records(recs, len(data.classes), name, read_images, max_pixels, inspected)
               for name, recs in data.splits.items()}
    if data.problems and reports:
        first = next(iter(reports.values()))
        first.problems[:0] = data.problems
    return reports


def format_problems(problems: list[Problem], limit: int = 20) -> str:
    lines = [str(p) for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more")
    return "\n".join(lines)


IMAGE_LEVEL = ("path-escape", "missing-annotation", "bad-size")  # reader problems that leave an image out


def prepare_split(
    path: Path | str,
    split: str,
    policy: str = "refuse",
    log: Callable[[str], None] = print,
    data: DetectionData | None = None,
    read_images: bool = True,
    max_pixels: int | None = MAX_PIXELS,
) -> tuple[DetectionData, list[ImageRecord]]:
    """Load ``path``, check ``split``, and return its cleaned records, or raise :class:`DataError`.

    Images are checked from their headers (size, and ``max_pixels``: larger images are errors, never decoded);
    ``detector data check`` decodes them all.

    ``policy="refuse"`` (the default) raises on any error, listing them; ``"skip"`` drops what is invalid.
    Clipped boxes and anything skipped are always reported through ``log``. ``read_images=False`` (scoring
    predictions made elsewhere) needs no image on disk where the annotation gives the image's size.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    data = data or load_dataset(path)
    records = data.split(split)
    report = check_records(records, len(data.classes), split, read_images, max_pixels=max_pixels)
    split_files = {r.ann_file for r in records} | {str(r.path) for r in records}
    extra = [p for p in data.problems if p.split == split or p.file in split_files or p.file == data.source]
    report.problems[:0] = extra
    report.dropped_images += sum(p.kind in IMAGE_LEVEL for p in extra)  # images the reader could not take
    errors = report.errors
    if report.clipped_boxes:
        log(f"{data.source} [{split}]: clipped {report.clipped_boxes} boxes that were partly outside their image")
    if errors and policy == "refuse":
        raise DataError(
            f"{data.source} [{split}]: {len(errors)} problems would drop {report.dropped_boxes} boxes and "
            f"{report.dropped_images} images:\n{format_problems(errors)}\n"
            "Fix the data (see `detector data check`), or pass --skip-invalid to train without them."
        )
    if errors:
        log(f"{data.source} [{split}]: skipped {report.dropped_boxes} invalid boxes and {report.dropped_images} "
            f"unreadable images ({len(errors)} problems; `detector data check` lists them)")
    return data, report.records
