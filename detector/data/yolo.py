"""YOLO: a data set YAML (``path``, ``train``, ``val``, ``names``) and one ``cls cx cy w h`` line per box,
normalized to [0, 1], in ``labels/...txt`` beside ``images/...``. An image without a label file has no boxes.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from detector.data.images import IMAGE_SUFFIXES, image_size
from detector.data.records import (
    DataError,
    DetectionData,
    ImageRecord,
    Problem,
    inside,
    outside_message,
    read_text,
)


def load_yaml(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise DataError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a mapping at the top level, got {type(doc).__name__}")
    return doc


def _names(doc: dict, f: str) -> list[str]:
    names = doc.get("names")
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise DataError(f"{f}: 'names' keys must be class indices 0..C-1") from None
        if keys != list(range(len(keys))):
            raise DataError(f"{f}: 'names' keys must be 0..C-1 without gaps, got {keys}")
        values = [names[k] if k in names else names[str(k)] for k in keys]
    elif isinstance(names, list) and names:
        values = names
    else:
        raise DataError(f"{f}: 'names' must be a list or a mapping of class names")
    bad = next((v for v in values if not isinstance(v, (str, int, float)) or isinstance(v, bool)), None)
    if bad is not None or len(set(map(str, values))) != len(values):
        shown = repr(bad)[:60] if isinstance(bad, (str, int, float, bool, type(None))) else f"a {type(bad).__name__}"
        what = f"{shown} is not a class name" if bad is not None else "class names repeat"
        raise DataError(f"{f}: 'names' must hold distinct class names (text); {what}")
    return [str(v) for v in values]


def _label_path(image: Path) -> Path:
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):  # the last 'images' folder becomes 'labels'
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _split_images(entry: object, base: Path, f: str, split: str, problems: list[Problem]) -> list[Path]:
    """The images of one split: folders of images and ``.txt`` lists of image paths relative to ``base``
    (a listed path that is absolute or leaves ``base`` is a ``path-escape`` problem, and left out)."""
    entries = entry if isinstance(entry, list) else [entry]
    images: list[Path] = []
    for e in entries:
        if not isinstance(e, str) or not e.strip():
            shown = repr(e)[:60] if isinstance(e, (str, int, float, bool, type(None))) else f"a {type(e).__name__}"
            raise DataError(f"{f}: {split!r} must be a path or a list of paths (text), got {shown}")
        p = base / e
        if p.is_dir():
            images += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())
        elif p.suffix == ".txt" and p.is_file():
            for n, line in enumerate(read_text(p).splitlines(), start=1):
                if not line.strip():
                    continue
                image = inside(base, line.strip())
                if image is None:
                    problems.append(Problem("error", "path-escape", str(p), f"line {n}",
                                            f"image {outside_message(base, line.strip())}", split=split))
                else:
                    images.append(image)
        else:
            raise DataError(f"{f}: split entry {e!r} is neither a folder of images nor a .txt list ({p} not found)")
    return images


def _read_labels(label_file: Path, num_classes: int, width: int, height: int, problems: list[Problem]):
    boxes, labels, refs = [], [], []
    if not label_file.is_file():
        return boxes, labels, refs
    f = str(label_file)
    for n, line in enumerate(label_file.read_text(errors="replace").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        ref = f"line {n}"
        malformed = False  # reported once per line
        try:
            values = [float(v) for v in fields]
        except ValueError:
            problems.append(Problem("error", "malformed", f, ref, f"not numbers: {line.strip()[:60]!r}"))
            values, malformed = [math.nan] * 5, True
        if len(values) < 5 or (len(values) > 5 and len(values) % 2 == 0):
            problems.append(Problem("error", "malformed", f, ref, f"expected 'cls cx cy w h', got {len(values)} values"))
            values, malformed = (values + [math.nan] * 5)[:5], True
        cls = values[0]
        if len(values) > 5:  # a segment line: cls x1 y1 x2 y2 ...; its box is the polygon's extent
            xs, ys = values[1::2], values[2::2]
            x1, y1, x2, y2 = min(xs) * width, min(ys) * height, max(xs) * width, max(ys) * height
        else:
            cx, cy, w, h = values[1:5]
            x1, y1, x2, y2 = (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height
        label = int(cls) if math.isfinite(cls) and cls == int(cls) and 0 <= cls < num_classes else -1
        if label < 0 and not malformed:
            problems.append(Problem("error", "unknown-class", f, ref, f"class {fields[0]} is not in 0..{num_classes - 1}"))
        boxes.append((x1, y1, x2, y2))
        labels.append(label)
        refs.append(ref)
    return boxes, labels, refs


def read_yolo(yaml_file: Path | str) -> DetectionData:
    """Read a YOLO data set YAML with all its splits (``train``, ``val``, ``test`` where present)."""
    yaml_file = Path(yaml_file)
    f = str(yaml_file)
    doc = load_yaml(yaml_file)
    names = _names(doc, f)
    if not isinstance(doc.get("path") or ".", str):
        raise DataError(f"{f}: 'path' must be a folder (text), got a {type(doc['path']).__name__}")
    base = Path(doc.get("path") or ".")
    base = base if base.is_absolute() else (yaml_file.parent / base)
    problems: list[Problem] = []
    splits = {}
    for split in ("train", "val", "test"):
        if not doc.get(split):
            continue
        records = []
        for k, image in enumerate(_split_images(doc[split], base, f, split, problems)):
            label_file = _label_path(image)
            try:
                width, height = image_size(image)
            except OSError as e:  # reported by the check; boxes cannot be scaled without a size
                width = height = 0
                problems.append(Problem("error", "unreadable-image", str(image), "", str(e).split(": ", 1)[-1]))
            boxes, labels, refs = _read_labels(label_file, len(names), width, height, problems)
            records.append(ImageRecord(image, width, height, boxes, labels, image_id=k + 1,
                                       ann_file=str(label_file), refs=refs))
        splits[split] = records
    if not splits:
        raise DataError(f"{f}: names no split (expected 'train' and/or 'val')")
    return DetectionData(names, splits, f, None, problems)


def write_yolo(root: Path, splits: dict[str, list[ImageRecord]], classes: list[str]) -> None:
    """Write ``labels/<split>/*.txt`` and ``data.yaml``; images are expected under ``images/<split>/``."""
    for split, records in splits.items():
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for r in records:
            lines = []
            for (x1, y1, x2, y2), label in zip(r.boxes.tolist(), r.labels.tolist()):
                cx, cy = (x1 + x2) / 2 / r.width, (y1 + y2) / 2 / r.height
                w, h = (x2 - x1) / r.width, (y2 - y1) / r.height
                lines.append(f"{label} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
            (root / "labels" / split / f"{Path(r.path).stem}.txt").write_text("".join(lines))
    doc = {"path": ".", **{s: f"images/{s}" for s in splits}, "names": dict(enumerate(classes))}
    (root / "data.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
