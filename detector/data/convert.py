"""Writing a data set in another format, images copied (or linked) into the target layout.

| to | layout under OUT |
| --- | --- |
| coco | ``annotations/instances_<split>.json`` and ``<split>/`` images (the COCO layout) |
| voc | ``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt`` |
| yolo | ``images/<split>/``, ``labels/<split>/``, ``data.yaml`` |

Each is readable again with ``--data OUT`` (``OUT/annotations`` for COCO, ``OUT/data.yaml`` for YOLO).
``OUT`` must not overlap the source (the data set's folder or any image's folder, in either direction):
otherwise writing could replace an image by a link to itself or delete it, so that is refused first.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

from detector.core.errors import UsageError, setting
from detector.core.progress import logger
from detector.data.coco import write_coco
from detector.data.images import clear_for_writing
from detector.data.records import ImageRecord
from detector.data.voc import write_voc
from detector.data.yolo import write_yolo

TARGETS = ("coco", "voc", "yolo")


def source_folders(records: list[ImageRecord], source: Path | str | None = None) -> set[Path]:
    """The resolved folders a conversion reads: ``source`` (its folder when it is a file) and each image's
    folder, both as named and where a symlinked image really lies."""
    folders = set()
    if source is not None:
        src = Path(source).resolve()
        folders.add(src.parent if src.is_file() else src)
    for r in records:
        folders |= {Path(r.path).parent.resolve(), Path(r.path).resolve().parent}
    return folders


def check_no_overlap(out: Path | str, folders: set[Path]) -> None:
    """Raise :class:`UsageError` when ``out`` is one of ``folders``, inside one, or holds one."""
    target = Path(out).resolve()
    for folder in sorted(folders):
        if target == folder or folder in target.parents or target in folder.parents:
            raise UsageError(f"{setting('out', out)} overlaps the source folder {folder}: writing there could overwrite or "
                            f"delete source images; choose an {setting('out')} folder outside {folder}")


def _place_images(records: list[ImageRecord], folder: Path, link: bool, prefix: str = "",
                  taken: set[str] | None = None) -> list[ImageRecord]:
    """Copy (or symlink) each record's image into ``folder``; return records pointing at the new files. Names
    are unique by stem in ``taken`` (``a.jpg`` and ``a.png`` would share ``a.xml`` or ``a.txt``: the second
    becomes ``a_2.png``) and free of white space (VOC's lists are split on it); each renaming is said."""
    folder.mkdir(parents=True, exist_ok=True)
    placed, taken = [], set() if taken is None else taken
    for r in records:
        original = Path(r.path).name
        name = prefix + "_".join(original.split())
        stem, suffix, k = Path(name).stem, Path(name).suffix, 1
        while (stem if k == 1 else f"{stem}_{k}") in taken:
            k += 1
        name = name if k == 1 else f"{stem}_{k}{suffix}"
        taken.add(Path(name).stem)
        if name != prefix + original:
            logger.info("note: %s is written as %s (%s)", r.path, name,
                        "white space in VOC's lists" if k == 1 else f"an earlier image is also {stem}.*")
        dst = clear_for_writing(folder / name)
        if link:
            os.symlink(Path(r.path).resolve(), dst)
        else:
            shutil.copyfile(r.path, dst)
        placed.append(replace(r, path=dst))
    return placed


def convert_dataset(splits: dict[str, list[ImageRecord]], classes: list[str], to: str, out: Path | str,
                    category_ids: list[int] | None = None, link: bool = False,
                    source: Path | str | None = None) -> Path:
    """Write ``splits`` (checked records) in format ``to`` under ``out``; return the path to pass as ``--data``.
    Raises :class:`DataError`, before writing anything, when ``out`` overlaps ``source`` or an image's folder."""
    if to not in TARGETS:
        raise ValueError(f"{setting('to')} must be one of {TARGETS}, got {to!r}")
    check_no_overlap(out, source_folders([r for rs in splits.values() for r in rs], source))
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
    taken: set[str] = set()
    placed = {s: _place_images(r, out / "JPEGImages", link, f"{s}_" if prefix else "", taken)
              for s, r in splits.items()}
    write_voc(out, placed, classes)
    return out
