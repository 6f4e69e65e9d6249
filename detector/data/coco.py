"""COCO: an annotation JSON (``images``, ``annotations``, ``categories``), boxes ``[x, y, w, h]`` in pixels.

Category ids may be any integers: they are sorted and mapped to classes ``0..C-1``, and kept in
``DetectionData.category_ids`` to map back when writing results.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from detector.data.images import clear_for_writing
from detector.data.records import (
    DataError,
    DetectionData,
    ImageRecord,
    Problem,
    default_category_ids,
    inside,
    outside_message,
)


def load_json(path: Path) -> object:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: a folder, not a JSON file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply to be an annotation file") from None


def _image_folders(ann_file: Path, names: list[str], image_root: Path | None) -> list[Path]:
    """The folder of each image: ``image_root`` when given; else, per image, the first of
    the places COCO sets keep images that holds it (beside the JSON, ``images/``, the COCO layout). An image found
    nowhere gets the folder most of the others are in (where it is then reported missing)."""
    if image_root is not None:
        return [Path(image_root)] * len(names)
    here = ann_file.parent
    stem = ann_file.stem.removeprefix("instances_")
    candidates = [here, here / "images", here.parent / "images", here.parent / stem, here.parent / "images" / stem]
    found = [next((c for c in candidates if (p := inside(c, n)) is not None and p.is_file()), None) for n in names]
    common = Counter(f for f in found if f is not None).most_common(1)
    usual = common[0][0] if common else here
    return [f or usual for f in found]


def json_number(value: object) -> float:
    """A JSON number as a float; ``nan`` for anything else (text, booleans, lists, null)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _size(value: object) -> int:
    """A declared image size, or 0 when absent or not a positive number (the check reads the header)."""
    v = json_number(value)
    return int(v) if math.isfinite(v) and v > 0 else 0


def annotation_ref(ann: dict, index: int) -> str:
    """Where annotation ``index`` of a COCO file is, as a box's ``ref`` says it: ``annotation id 57``."""
    return f"annotation id {ann.get('id', f'#{index}')}"


def read_coco(ann_file: Path | str, image_root: Path | str | None = None, split: str = "train") -> DetectionData:
    """Read one COCO annotation file as a data set with one split named ``split``.

    Images are looked up under ``image_root``, or beside the JSON, in ``images/``, or in the COCO layout
    (``annotations/instances_val2017.json`` next to ``val2017/``).
    """
    ann_file = Path(ann_file)
    doc = load_json(ann_file)
    f = str(ann_file)
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise DataError(f"{f}: not a COCO annotation file (expected an object with an 'images' list)")
    anns = doc.get("annotations", [])
    cats = doc.get("categories", [])
    if not isinstance(anns, list) or not isinstance(cats, list):
        raise DataError(f"{f}: 'annotations' and 'categories' must be lists")
    problems: list[Problem] = []

    cat_name: dict[int, str] = {}
    for i, c in enumerate(cats):
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or "name" not in c:
            raise DataError(f"{f}: categories[{i}] must have an integer 'id' and a 'name'")
        if c["id"] in cat_name:
            problems.append(Problem("error", "duplicate-id", f, f"category id {c['id']}", "duplicate category id"))
        elif str(c["name"]) in cat_name.values():
            other = next(k for k, v in cat_name.items() if v == str(c["name"]))
            raise DataError(f"{f}: categories[{i}]: the name {str(c['name'])!r} is also category {other}'s; each "
                            "class needs its own name (its AP is reported by name)")
        cat_name[c["id"]] = str(c["name"])
    category_ids = sorted(cat_name)
    label_of = {cid: i for i, cid in enumerate(category_ids)}

    images: dict[int, dict] = {}
    for i, im in enumerate(doc["images"]):
        if not isinstance(im, dict) or not isinstance(im.get("id"), int) or not isinstance(im.get("file_name"), str):
            raise DataError(f"{f}: images[{i}] must have an integer 'id' and a string 'file_name'")
        if im["id"] in images:
            problems.append(Problem("error", "duplicate-id", f, f"image id {im['id']}", "duplicate image id"))
            continue
        images[im["id"]] = im

    per_image: dict[int, list] = {i: [] for i in images}
    seen_ann: set = set()
    for i, a in enumerate(anns):
        if not isinstance(a, dict):
            raise DataError(f"{f}: annotations[{i}] is not an object")
        for key in ("id", "image_id", "category_id"):  # a list or an object here would break the lookups below
            if key in a and (not isinstance(a[key], int) or isinstance(a[key], bool)):
                raise DataError(f"{f}: annotations[{i}]: {key!r} must be an integer, got {json.dumps(a[key])[:40]}")
        ref = annotation_ref(a, i)
        if a.get("id") in seen_ann:
            problems.append(Problem("error", "duplicate-id", f, ref, "duplicate annotation id"))
        seen_ann.add(a.get("id"))
        if a.get("image_id") not in per_image:
            problems.append(Problem("error", "unknown-image", f, ref, f"image_id {a.get('image_id')!r} is not in 'images'"))
            continue
        bbox = a.get("bbox")
        x, y, w, h = ([json_number(v) for v in bbox] if isinstance(bbox, list) and len(bbox) == 4 else [math.nan] * 4)
        label = label_of.get(a.get("category_id"), -1)
        if label < 0:
            problems.append(Problem("error", "unknown-class", f, ref, f"category_id {a.get('category_id')!r} is not in 'categories'"))
        per_image[a["image_id"]].append(((x, y, x + w, y + h), label, bool(a.get("iscrowd", 0)), ref))

    folders = _image_folders(ann_file, [im["file_name"] for im in images.values()],
                                Path(image_root) if image_root else None)
    records = []
    for (image_id, im), root in zip(images.items(), folders):
        rows = per_image[image_id]
        path = inside(root, im["file_name"])
        if path is None:
            problems.append(Problem("error", "path-escape", f, f"image id {image_id}",
                                    f"file_name {outside_message(root, im['file_name'])}", split=split))
            continue
        records.append(ImageRecord(
            path=path, width=_size(im.get("width")), height=_size(im.get("height")),
            boxes=[r[0] for r in rows], labels=[r[1] for r in rows],
            iscrowd=[r[2] for r in rows], image_id=image_id, ann_file=f, refs=[r[3] for r in rows],
        ))
    return DetectionData([cat_name[c] for c in category_ids], {split: records}, f, category_ids, problems, {split: f})


def coco_document(records: list[ImageRecord], classes: list[str], category_ids: list[int] | None = None,
                  image_root: Path | None = None, decimals: int | None = 2) -> dict:
    """A COCO annotation document for ``records``, with every field pycocotools needs (``info``, ``area``,
    ``iscrowd``, annotation ids from 1). File names are relative to ``image_root`` when given. Coordinates and
    areas are rounded to ``decimals`` (for a file; None keeps them whole, for evaluation)."""
    def rnd(v: float) -> float:
        return v if decimals is None else round(v, decimals)

    cat_ids = default_category_ids(classes, category_ids)
    images, anns = [], []
    for i, r in enumerate(records):
        image_id = r.image_id or i + 1
        name = str(Path(r.path).relative_to(image_root)) if image_root else Path(r.path).name
        images.append({"id": image_id, "file_name": name, "width": r.width, "height": r.height})
        for box, label, crowd in zip(r.boxes.tolist(), r.labels.tolist(), r.iscrowd.tolist()):
            x1, y1, x2, y2 = box
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat_ids[label],
                         "bbox": [rnd(x1), rnd(y1), rnd(x2 - x1), rnd(y2 - y1)],
                         "area": rnd((x2 - x1) * (y2 - y1)), "iscrowd": int(crowd)})
    return {"info": {"description": "written by detector"}, "licenses": [], "images": images,
            "annotations": anns, "categories": [{"id": c, "name": n} for c, n in zip(cat_ids, classes)]}


def write_coco(path: Path, records: list[ImageRecord], classes: list[str], category_ids: list[int] | None = None,
               image_root: Path | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(clear_for_writing(path), "w", encoding="utf-8") as f:  # a link there is replaced, not written through
        json.dump(coco_document(records, classes, category_ids, image_root), f)
