"""``--data PATH``: find the format from the path and read the data set.

| PATH | read as |
| --- | --- |
| a ``.json`` file | COCO, one split (named ``val``/``test`` if the file name says so, else ``train``) |
| a folder of COCO ``.json`` files | COCO, one split per file |
| a ``.yaml`` with ``format: detector`` | the project's data set YAML (below) |
| any other ``.yaml`` | YOLO |
| a folder with ``Annotations/`` and ``JPEGImages/`` | Pascal VOC |
| a folder with ``label.csv``, or holding ``*_train``/``*_val`` such folders | the book's banana layout |
| a folder holding exactly one ``.yaml`` (e.g. what ``detector data synth`` writes) | that YAML |

The project YAML (``data/<name>.yaml``, and the one ``synth`` writes)::

    format: detector
    root: .                      # relative to this file
    names: [circle, triangle]    # class names, 0..C-1
    train: {coco: train/annotations.json, images: train/images}
    val: {coco: val/annotations.json, images: val/images}
    # other split forms: {voc: VOCdevkit/VOC2007, split: val}, {banana: bananas_val}, {yolo: data.yaml, split: val}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.data.banana import banana_splits, is_banana_split, read_banana
from detector.data.coco import read_coco
from detector.data.records import DataError, DetectionData
from detector.data.voc import is_voc_root, read_voc
from detector.data.yolo import load_yaml, read_yolo


def split_name_of(path: Path) -> str:
    stem = path.stem.lower()
    return "val" if "val" in stem else "test" if "test" in stem else "train"


def _read_project_split(spec: object, root: Path, names: list[str] | None, f: str, split: str,
                        reading: tuple[Path, ...]) -> DetectionData:
    if isinstance(spec, str):
        return load_dataset(root / spec, names, _reading=reading)
    if not isinstance(spec, dict):
        raise DataError(f"{f}: split {split!r} must be a path or a mapping like {{coco: FILE, images: DIR}}")
    bad = next((k for k in ("coco", "images", "voc", "banana", "yolo", "split") if k in spec
                and not isinstance(spec[k], str)), None)
    if bad is not None:
        raise DataError(f"{f}: split {split!r}: {bad!r} must be a path (text), got a {type(spec[bad]).__name__}")
    if "yolo" in spec and (root / spec["yolo"]).resolve() in reading:
        raise DataError(f"{f}: split {split!r} includes {root / spec['yolo']}, which is being read already (a loop)")
    if "coco" in spec:
        images = root / spec["images"] if spec.get("images") else None
        return read_coco(root / spec["coco"], images, split)
    if "voc" in spec:
        return read_voc(root / spec["voc"], names)
    if "banana" in spec:
        return read_banana(root / spec["banana"], names)
    if "yolo" in spec:
        return read_yolo(root / spec["yolo"])
    raise DataError(f"{f}: split {split!r} names no format (coco, voc, banana or yolo)")


def _rename_classes(part: DetectionData, names: list[str], f: str) -> None:
    """Map ``part``'s labels onto ``names`` by class name (unknown names become -1 and are reported)."""
    if part.classes == names:
        return
    index = {n: i for i, n in enumerate(names)}
    missing = [c for c in part.classes if c not in index]
    if missing:
        raise DataError(f"{f}: {part.source} has classes {missing} that are not in 'names' {names}")
    lut = np.array([index[c] for c in part.classes] + [-1], dtype=np.int64)  # label -1 (unknown) stays -1
    for records in part.splits.values():
        for r in records:
            r.labels = lut[r.labels]
    part.classes, part.category_ids = list(names), None


def read_project_yaml(yaml_file: Path, _reading: tuple[Path, ...] = ()) -> DetectionData:
    f = str(yaml_file)
    doc = load_yaml(yaml_file)
    if not isinstance(doc.get("root") or ".", str):
        raise DataError(f"{f}: 'root' must be a folder (text), got a {type(doc['root']).__name__}")
    root = Path(doc.get("root") or ".")
    root = root if root.is_absolute() else yaml_file.parent / root
    names = doc.get("names")
    if names is not None and (not isinstance(names, list) or not names  # types first: str() of an alias bomb is huge
                              or not all(isinstance(n, (str, int, float)) and not isinstance(n, bool) for n in names)
                              or len(set(map(str, names))) != len(names)):
        raise DataError(f"{f}: 'names' must be a non-empty list of distinct class names (text)")
    splits, problems, category_ids, coco_files = {}, [], None, {}
    for split in ("train", "val", "test"):
        if split not in doc:
            continue
        part = _read_project_split(doc[split], root, names, f, split, (*_reading, yaml_file.resolve()))
        key = split if split in part.splits else next(iter(part.splits))
        if isinstance(doc[split], dict) and doc[split].get("split"):
            key = doc[split]["split"]
        if names is None:
            names = part.classes
        _rename_classes(part, [str(n) for n in names], f)
        category_ids = category_ids or part.category_ids
        splits[split] = part.split(key)
        problems += part.problems
        if key in part.coco_files:
            coco_files[split] = part.coco_files[key]
    if not splits:
        raise DataError(f"{f}: names no split (expected train, val and/or test)")
    return DetectionData([str(n) for n in names], splits, f, category_ids, problems, coco_files)


def load_dataset(path: Path | str, classes: list[str] | None = None, _reading: tuple[Path, ...] = ()) -> DetectionData:
    """Read the data set at ``path`` in whichever supported format it is (see the module docstring).
    ``_reading``: the project YAMLs being read around this one, so that one that includes itself is refused."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.resolve() in _reading:
        raise DataError(f"{_reading[-1]}: includes {path}, which is being read already (a loop)")
    if path.is_file():
        if path.suffix.lower() == ".json":
            return read_coco(path, split=split_name_of(path))
        if path.suffix.lower() in (".yaml", ".yml"):
            if load_yaml(path).get("format") == "detector":
                return read_project_yaml(path, _reading)
            return read_yolo(path)
        if path.name == "label.csv":
            return read_banana(path.parent, classes)
        raise DataError(f"{path}: not a data set file (expected .json, .yaml or label.csv)")
    if is_voc_root(path):
        return read_voc(path, classes)
    if is_banana_split(path) or banana_splits(path):
        return read_banana(path, classes)
    yamls = sorted(list(path.glob("*.yaml")) + list(path.glob("*.yml")))
    if len(yamls) == 1:
        return load_dataset(yamls[0], classes, _reading)
    jsons = sorted(path.glob("*.json"))
    if jsons:
        parts = [read_coco(j, split=split_name_of(j)) for j in jsons]
        first = parts[0]
        for p in parts[1:]:
            if p.classes != first.classes:
                raise DataError(f"{p.source}: categories differ from those of {first.source}")
            first.splits.update(p.splits)
            first.coco_files.update(p.coco_files)
            first.problems += p.problems
        first.source = str(path)
        return first
    raise DataError(
        f"{path}: no data set found here (expected a COCO .json, a YOLO or project .yaml, a VOC root with "
        "Annotations/ and JPEGImages/, or the book's banana label.csv)"
    )
