"""The book's banana layout: a folder with ``label.csv`` (``img_name,label,xmin,ymin,xmax,ymax`` in pixels)
and ``images/``. A parent folder with ``bananas_train/`` and ``bananas_val/`` is a data set of two splits.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from detector.data.images import clear_for_writing, image_size
from detector.data.records import (
    DataError,
    DetectionData,
    ImageRecord,
    Problem,
    inside,
    outside_message,
    read_text,
)

HEADER = ["img_name", "label", "xmin", "ymin", "xmax", "ymax"]
SPLITS = ("train", "val", "test")  # the suffixes that name a banana folder's split


def is_banana_split(path: Path) -> bool:
    return (path / "label.csv").is_file()


def split_of(folder: Path) -> str | None:
    """The split a banana folder's name ends with (``bananas_val`` -> ``val``, ``my_set_train`` -> ``train``), or
    None when it ends with none of ``SPLITS`` (``my_bananas``)."""
    suffix = folder.name.rsplit("_", 1)[-1].lower() if "_" in folder.name else ""
    return suffix if suffix in SPLITS else None


def banana_splits(path: Path) -> dict[str, Path]:
    """``{split: folder}`` for a parent folder holding ``*_train``/``*_val``/``*_test`` banana folders. Raises
    :class:`DataError` for a banana folder named otherwise, or two of one split: none is left out silently."""
    found: dict[str, Path] = {}
    for sub in sorted(p for p in path.iterdir() if p.is_dir() and is_banana_split(p)):
        split = split_of(sub)
        if split is None:
            raise DataError(f"{sub}: a banana folder beside others must be named *_train, *_val or *_test; "
                            f"rename it, or pass the folder itself as --data")
        if split in found:
            raise DataError(f"{sub}: a second {split!r} split beside {found[split]}; keep one, or pass one as --data")
        found[split] = sub
    return found


def _float(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _read_split(folder: Path, num_classes: int, problems: list[Problem], split: str = "train") -> list[ImageRecord]:
    csv_file = folder / "label.csv"
    f = str(csv_file)
    text = read_text(csv_file)  # a BOM (as spreadsheet programs write) is dropped
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise DataError(f"{f}: empty file (expected the header {','.join(HEADER)})")
    if [h.strip() for h in rows[0]] != HEADER:
        raise DataError(f"{f}: line 1: expected the header {','.join(HEADER)}, got {','.join(rows[0])}")
    per_image: dict[str, list] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        ref = f"line {n}"
        if len(row) != 6:
            problems.append(Problem("error", "malformed", f, ref, f"expected 6 fields, got {len(row)}"))
            row = (row + [""] * 6)[:6]
        name, label, *coords = row
        x1, y1, x2, y2 = (_float(c) for c in coords)
        lab = _float(label)
        cls = int(lab) if math.isfinite(lab) and lab == int(lab) and 0 <= lab < num_classes else -1
        if cls < 0:
            problems.append(Problem("error", "unknown-class", f, ref, f"label {label!r} is not in 0..{num_classes - 1}"))
        per_image.setdefault(name, []).append(((x1, y1, x2, y2), cls, ref))
    records = []
    for k, (name, boxes) in enumerate(per_image.items()):
        path = inside(folder / "images", name)
        if path is None:
            problems.append(Problem("error", "path-escape", f, boxes[0][2],
                                    f"img_name {outside_message(folder / 'images', name)}", split=split))
            continue
        try:
            width, height = image_size(path)
        except OSError:
            width = height = 0  # the check reports the missing or unreadable image
        records.append(ImageRecord(path, width, height, [b[0] for b in boxes], [b[1] for b in boxes],
                                   image_id=k + 1, ann_file=f, refs=[b[2] for b in boxes]))
    return records


def read_banana(path: Path | str, classes: list[str] | None = None) -> DetectionData:
    """Read one banana folder (one split named by its suffix, ``bananas_val`` -> ``val``) or a parent of several."""
    path = Path(path)
    classes = classes or ["banana"]
    problems: list[Problem] = []
    folders = {split_of(path) or "train": path} if is_banana_split(path) else banana_splits(path)
    if not folders:
        raise DataError(f"{path}: no label.csv here and no banana split folders below")
    splits = {name: _read_split(folder, len(classes), problems, name) for name, folder in folders.items()}
    return DetectionData(list(classes), splits, str(path), None, problems)


def write_banana(folder: Path, records: list[ImageRecord]) -> None:
    """Write ``label.csv`` for records whose images are (or will be) in ``folder/images``."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(clear_for_writing(folder / "label.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for r in records:
            for (x1, y1, x2, y2), label in zip(r.boxes.tolist(), r.labels.tolist()):
                w.writerow([Path(r.path).name, label, round(x1), round(y1), round(x2), round(y2)])
