"""The internal form of a detection data set, whatever file format it came from.

One :class:`ImageRecord` per image: path, size, boxes ``xyxy`` in pixels (float32), labels ``0..C-1``,
and the flags evaluation needs. A :class:`DetectionData` holds the class names, the splits, and for
COCO the original category ids (``labels`` index into them, so results map back).

Problems found while reading or checking are :class:`Problem` rows that name the file and the place in it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detector.core.errors import InputError


class DataError(InputError, ValueError):
    """A data set that cannot be used as it is; the message names the file(s) and the problem(s)."""


@dataclass
class Problem:
    """One problem in a data set. ``level`` is ``"error"`` (would be dropped) or ``"fixed"`` (e.g. clipped)."""

    level: str
    kind: str  # short machine-readable tag: missing-image, outside-image, zero-area, nan, unknown-class, ...
    file: str  # the file the problem is in (annotation file, or the image)
    where: str  # the place in it: "line 12", "annotation id 57", "object 3", or ""
    message: str
    split: str | None = None  # the split it belongs to, when no record of that split carries it (a dropped image)

    def __str__(self) -> str:
        place = f"{self.file}: {self.where}: " if self.where else f"{self.file}: "
        return f"{self.level}: {place}{self.message}"


@dataclass
class ImageRecord:
    """One image and its boxes.

    boxes (float32 [N, 4]): xyxy in pixels, ``0 <= x1 < x2 <= width`` once checked.
    labels (int64 [N]): data set classes ``0..C-1`` (-1 marks an unknown class until checked).
    refs (list[str], N): where each box came from in ``ann_file`` ("line 3", "annotation id 12").
    """

    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    iscrowd: np.ndarray | None = None
    difficult: np.ndarray | None = None
    image_id: int = 0
    ann_file: str = ""
    refs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        with np.errstate(over="ignore"):  # numbers beyond float32 become inf, which the checks report
            self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        n = len(self.boxes)
        self.iscrowd = np.zeros(n, bool) if self.iscrowd is None else np.asarray(self.iscrowd, bool).reshape(-1)
        self.difficult = np.zeros(n, bool) if self.difficult is None else np.asarray(self.difficult, bool).reshape(-1)
        if not self.refs:
            self.refs = [f"box {i}" for i in range(n)]
        if not (len(self.labels) == len(self.iscrowd) == len(self.difficult) == len(self.refs) == n):
            raise ValueError(f"{self.path}: boxes, labels and flags must have one entry per box")

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the boxes where ``mask`` is True."""
        self.boxes, self.labels = self.boxes[mask], self.labels[mask]
        self.iscrowd, self.difficult = self.iscrowd[mask], self.difficult[mask]
        self.refs = [r for r, k in zip(self.refs, mask) if k]


def default_category_ids(classes: list[str], category_ids: list[int] | None = None) -> list[int]:
    """The category id of each class ``0..C-1``: the data set's own (COCO's) when it has them, else ``1..C``."""
    return list(category_ids) if category_ids else list(range(1, len(classes) + 1))


@dataclass
class DetectionData:
    """A data set: class names, splits of records, and where it came from."""

    classes: list[str]
    splits: dict[str, list[ImageRecord]]
    source: str = ""
    category_ids: list[int] | None = None  # COCO: the original id of each class 0..C-1
    problems: list[Problem] = field(default_factory=list)  # found while reading (e.g. unknown classes)
    coco_files: dict[str, str] = field(default_factory=dict)  # split -> the COCO annotation file it was read from

    def split(self, name: str) -> list[ImageRecord]:
        if name not in self.splits:
            raise DataError(f"{self.source}: no split {name!r}; it has {sorted(self.splits)}")
        return self.splits[name]

    def category_id(self, label: int) -> int:
        """The data set's own category id for class ``label`` (COCO's ids; ``label + 1`` otherwise)."""
        return self.category_ids[label] if self.category_ids else label + 1


def inside(root: Path | str, name: str) -> Path | None:
    """``root / name`` when ``name`` is a relative path that stays under ``root`` (checked on the path's text,
    so symlinked images inside a data set still work); None for an absolute path, one whose ``..`` parts
    leave ``root``, or one that names ``root`` itself (``.``, ``./``): a data file must not make the loader read
    elsewhere on the machine."""
    parts = Path(name).parts if name else ()
    if not parts or os.path.isabs(name) or name.startswith(("/", "\\")) or ":" in parts[0]:
        return None
    base = os.path.normpath(str(root))
    full = os.path.normpath(os.path.join(base, name))
    return Path(full) if full.startswith(base.rstrip(os.sep) + os.sep) else None


def outside_message(root: Path | str, name: str) -> str:
    """Why :func:`inside` refused ``name``: it names ``root`` itself (``.``, ``./``) or points outside it."""
    if not name:
        return "'' is not a file name"
    same = not os.path.isabs(name) and os.path.normpath(os.path.join(str(root), name)) == os.path.normpath(str(root))
    return f"{name!r} names the folder {root} itself, not a file in it" if same else f"{name!r} points outside {root}"


def read_text(path: Path | str, what: str = "") -> str:
    """The UTF-8 text of ``path`` (a leading BOM dropped); :class:`DataError` naming the file when it is not
    UTF-8 or cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}){what}") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
