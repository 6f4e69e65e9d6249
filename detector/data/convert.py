"""Writing a data set in another format, images copied (or linked) into the target layout.

| to | layout under OUT |
| --- | --- |
| coco | ``annotations/instances_<split>.json`` and ``<split>/`` images (the COCO layout) |
| voc | ``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt`` |
| yolo | ``images/<split>/``, ``labels/<split>/``, ``data.yaml`` |

Each is readable again with ``--data OUT`` (``OUT/annotations`` for COCO, ``OUT/data.yaml`` for YOLO).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

from detector.data.coco import write_coco
from detector.data.records import DataError, ImageRecord
from detector.data.voc import write_voc
from detector.data.yolo import write_yolo

TARGETS = ("coco", "voc", "yolo")


def _place_images(records: list[ImageRecord], folder: Path, link: bool, prefix: str = "") -> list[ImageRecord]:
    """Copy (or symlink) each record's image into ``folder``; return records pointing at the new files."""
    folder.mkdir(parents=True, exist_ok=True)
    placed, seen = [], set()
    for r in records:
        name = prefix + Path(r.path).name
        if name in seen:
            raise DataError(f"{r.path}: two images of one split would both be written as {folder / name}")
        seen.add(name)
        dst = folder / name
        if dst.exists() or dst.is_symlink():
            dst.unlink()
        if link:
            os.symlink(Path(r.path).resolve(), dst)
        else:
            shutil.copyfile(r.path, dst)
        placed.append(replace(r, path=dst))
    return placed


def convert_dataset(splits: dict[str, list[ImageRecord]], classes: list[str], to: str, out: Path | str,
                    category_ids: list[int] | None = None, link: bool = False) -> Path:
    """Write ``splits`` (checked records) in format ``to`` under ``out``; return the path to pass as ``--data``."""
    if to not in TARGETS:
        raise ValueError(f"--to must be one of {TARGETS}, got {to!r}")
    out = Path(out)
    if to == "coco":
        for split, records in splits.items():
            placed = _place_images(records, out / split, link)
            write_coco(out / "annotations" / f"instances_{split}.json", placed, classes, category_ids, out / split)
        return out / "annotations"
    if to == "yolo":
        placed = {s: _place_images(r, out / "images" / s, link) for s, r in splits.items()}
        write_yolo(out, placed, classes)
        return out / "data.yaml"
    names = [Path(r.path).name for rs in splits.values() for r in rs]
    prefix = len(set(names)) < len(names)  # one JPEGImages folder: make names unique across splits
    placed = {s: _place_images(r, out / "JPEGImages", link, f"{s}_" if prefix else "") for s, r in splits.items()}
    write_voc(out, placed, classes)
    return out
