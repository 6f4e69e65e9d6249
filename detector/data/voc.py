"""Pascal VOC: ``Annotations/*.xml``, ``JPEGImages/``, ``ImageSets/Main/{train,val,...}.txt``.

VOC pixel coordinates are 1-based and inclusive: ``x1 = xmin - 1``, ``x2 = xmax`` in our 0-based frame
(and back when writing). The ``difficult`` flag is kept for evaluation.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

from detector.data.records import (
    DataError,
    DetectionData,
    ImageRecord,
    Problem,
    inside,
    outside_message,
    read_text,
)


def is_voc_root(path: Path) -> bool:
    return (path / "Annotations").is_dir() and (path / "JPEGImages").is_dir()


def _text(node: ET.Element | None, tag: str) -> str | None:
    child = node.find(tag) if node is not None else None
    return child.text.strip() if child is not None and child.text else None


def _float(text: str | None) -> float:
    try:
        return float(text) if text is not None else math.nan
    except ValueError:
        return math.nan


def _read_xml(xml_path: Path, jpeg_dir: Path, class_index: dict[str, int], problems: list[Problem]) -> ImageRecord | None:
    f = str(xml_path)
    try:
        root = ET.parse(xml_path).getroot()
    except FileNotFoundError:
        raise DataError(f"{f}: no such annotation file") from None
    except ET.ParseError as e:
        raise DataError(f"{f}: not valid XML ({e})") from None
    filename = _text(root, "filename") or xml_path.stem + ".jpg"
    size = root.find("size")
    boxes, labels, difficult, refs = [], [], [], []
    for i, obj in enumerate(root.findall("object")):
        name = _text(obj, "name")
        ref = f"object {i + 1} ({name})"
        bb = obj.find("bndbox")
        xmin, ymin, xmax, ymax = (_float(_text(bb, t)) for t in ("xmin", "ymin", "xmax", "ymax"))
        if name not in class_index:
            problems.append(Problem("error", "unknown-class", f, ref, f"class {name!r} is not one of the data set's classes"))
        boxes.append((xmin - 1, ymin - 1, xmax, ymax))
        labels.append(class_index.get(name, -1))
        difficult.append(_text(obj, "difficult") == "1")
        refs.append(ref)
    path = inside(jpeg_dir, filename)
    if path is None:
        problems.append(Problem("error", "path-escape", f, "filename", outside_message(jpeg_dir, filename)))
        return None
    texts = [_text(size, "width"), _text(size, "height")]
    width, height = (_float(t) for t in texts)
    if any(t is not None and not (math.isfinite(v) and 0 <= v < 2**31) for t, v in zip(texts, (width, height))):
        problems.append(Problem("error", "bad-size", f, "size", f"width {texts[0]!r} and height {texts[1]!r} must be "
                                "whole numbers of pixels (0 or no <size>: the image's header is read)"))
        return None
    return ImageRecord(path, int(width) if width > 0 else 0, int(height) if height > 0 else 0,
                       boxes, labels, difficult=difficult, ann_file=f, refs=refs)


def read_voc(root: Path | str, classes: list[str] | None = None) -> DetectionData:
    """Read a VOC root. Splits come from ``ImageSets/Main/<split>.txt`` (all annotations as ``train`` if
    there are none). Classes: ``classes`` if given, else every object name found, sorted."""
    root = Path(root)
    ann_dir, jpeg_dir = root / "Annotations", root / "JPEGImages"
    sets = root / "ImageSets" / "Main"
    split_ids: dict[str, list[str]] = {}
    if sets.is_dir():
        for txt in sorted(sets.glob("*.txt")):
            if "_" not in txt.stem:  # class-specific lists are named <class>_<split>.txt
                ids = [line.split()[0] for line in read_text(txt).splitlines() if line.strip()]
                split_ids[txt.stem] = ids
    if not split_ids:
        split_ids["train"] = sorted(p.stem for p in ann_dir.glob("*.xml"))
    if classes is None:
        names = set()
        for ids in split_ids.values():
            for i in ids:
                xml = inside(ann_dir, f"{i}.xml")
                if xml is None:
                    continue  # reported below
                try:
                    names.update(_text(o, "name") for o in ET.parse(xml).getroot().findall("object"))
                except (FileNotFoundError, ET.ParseError):
                    pass  # reported when the file is read below
        classes = sorted(n for n in names if n)
    class_index = {c: i for i, c in enumerate(classes)}
    problems: list[Problem] = []
    splits = {}
    for name, ids in split_ids.items():
        records = []
        for k, i in enumerate(ids):
            xml_path = inside(ann_dir, f"{i}.xml")
            if xml_path is None:
                problems.append(Problem("error", "path-escape", str(sets / f"{name}.txt"), f"line {k + 1}",
                                        f"image id {i!r} points outside {ann_dir}", split=name))
                continue
            if not xml_path.is_file():
                problems.append(Problem("error", "missing-annotation", str(sets / f"{name}.txt"), f"line {k + 1}",
                                        f"{xml_path} does not exist", split=name))
                continue
            rec = _read_xml(xml_path, jpeg_dir, class_index, problems)
            if rec is None:
                problems[-1].split = name
                continue
            rec.image_id = k + 1
            records.append(rec)
        splits[name] = records
    return DetectionData(list(classes), splits, str(root), None, problems)


def write_voc(root: Path, splits: dict[str, list[ImageRecord]], classes: list[str]) -> None:
    """Write annotations and split lists; images are expected under ``root/JPEGImages`` (the caller copies)."""
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for split, records in splits.items():
        ids = []
        for r in records:
            stem = Path(r.path).stem
            ids.append(stem)
            ann = ET.Element("annotation")
            ET.SubElement(ann, "folder").text = "JPEGImages"
            ET.SubElement(ann, "filename").text = Path(r.path).name
            size = ET.SubElement(ann, "size")
            for tag, v in (("width", r.width), ("height", r.height), ("depth", 3)):
                ET.SubElement(size, tag).text = str(v)
            for box, label, diff in zip(r.boxes.tolist(), r.labels.tolist(), r.difficult.tolist()):
                obj = ET.SubElement(ann, "object")
                ET.SubElement(obj, "name").text = classes[label]
                ET.SubElement(obj, "difficult").text = str(int(diff))
                bb = ET.SubElement(obj, "bndbox")
                for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), (box[0] + 1, box[1] + 1, box[2], box[3])):
                    ET.SubElement(bb, tag).text = f"{v:.2f}"
            ET.indent(ann)
            ET.ElementTree(ann).write(root / "Annotations" / f"{stem}.xml", encoding="utf-8")
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
