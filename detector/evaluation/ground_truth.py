"""The ground truth that evaluation scores against, as one COCO annotation document.

A split read from a COCO file is scored against that file's own annotations, exactly as pycocotools would score
it on the file: its image and annotation ids, its ``area`` (a mask's area, which decides small, medium and
large), its ``iscrowd`` flags, its unrounded boxes and its category ids. Only what the data check dropped
(``--skip-invalid``) is left out. Other formats (VOC, YOLO, the book's bananas, generated sets) become a document
built from the checked records, unrounded, with VOC's ``difficult`` boxes as ``iscrowd`` (ignored, as VOC's own
evaluation ignores them).

    gt = ground_truth(data, "val", records)
    ids = [im["id"] for im in gt["images"]]      # one per record, in order: the ids predictions must carry
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from detector.data.coco import annotation_ref, coco_document, json_number, load_json
from detector.data.records import DataError, DetectionData, ImageRecord, default_category_ids


def image_ids(records: list[ImageRecord]) -> list[int]:
    """The ids of records that come with no annotation document: the records' own when they are unique and
    non-zero, else 1..N."""
    ids = [r.image_id for r in records]
    return ids if all(ids) and len(set(ids)) == len(ids) else list(range(1, len(records) + 1))


def ids_by_path(records: list[ImageRecord]) -> list[int]:
    """1..N in the order of the records' paths: a split listed in another order (a shuffled ``val.txt``) gets the
    same ids, so pycocotools ranks detections with equal scores the same way (it breaks ties in image-id order)."""
    order = sorted(range(len(records)), key=lambda k: (str(records[k].path), k))
    ids = [0] * len(records)
    for rank, k in enumerate(order):
        ids[k] = rank + 1
    return ids


def ground_truth(data: DetectionData, split: str, records: list[ImageRecord]) -> dict:
    """The COCO document of ``records`` (the checked records of ``split``), its images in the records' order:
    a COCO file's own ids, or, for formats without ids (VOC, YOLO, bananas), ids in the order of the paths."""
    category_ids = default_category_ids(data.classes, data.category_ids)
    ann_file = data.coco_files.get(split)
    if ann_file:
        doc = file_document(ann_file, records, data.classes, category_ids)
        if doc is not None:
            return doc
        return records_document(records, data.classes, category_ids)
    return records_document(records, data.classes, category_ids, ids=ids_by_path(records))


def records_document(records: list[ImageRecord], classes: list[str], category_ids: list[int] | None = None,
                     ids: list[int] | None = None) -> dict:
    """A document built from ``records``: boxes and areas unrounded, ``difficult`` boxes as ``iscrowd``; image
    ids ``ids``, or :func:`image_ids`'."""
    recs = [ImageRecord(r.path, r.width, r.height, r.boxes, r.labels, iscrowd=r.iscrowd | r.difficult, image_id=i)
            for r, i in zip(records, image_ids(records) if ids is None else ids)]
    return coco_document(recs, classes, category_ids, decimals=None)


def _size(value: object) -> bool:
    """A finite JSON number >= 0 (an area)."""
    v = json_number(value)
    return math.isfinite(v) and v >= 0


def file_document(ann_file: str | Path, records: list[ImageRecord], classes: list[str],
                  category_ids: list[int]) -> dict | None:
    """``ann_file``'s own document, cut to the images of ``records`` (read from it) and the boxes they kept;
    None when its categories are not the data set's (a project YAML renamed them)."""
    doc = load_json(Path(ann_file))
    f = str(ann_file)
    names = {c["id"]: str(c["name"]) for c in doc["categories"]}
    if sorted(names) != sorted(category_ids) or [names[c] for c in category_ids] != list(classes):
        return None
    by_id = {im["id"]: im for im in doc["images"]}
    kept = {(r.image_id, ref) for r in records for ref in r.refs}
    ids = {a["id"] for a in doc.get("annotations", []) if isinstance(a.get("id"), int)}
    next_id = max(ids, default=0) + 1
    anns = []
    for i, a in enumerate(doc.get("annotations", [])):
        if (a.get("image_id"), annotation_ref(a, i)) not in kept:
            continue
        a = dict(a)
        if "id" not in a:  # pycocotools needs one: a new id, unused in the file
            a["id"], next_id = next_id, next_id + 1
        _x, _y, w, h = a["bbox"]
        a.setdefault("area", w * h)
        a.setdefault("iscrowd", 0)
        if not _size(a["area"]) or a["iscrowd"] not in (0, 1):
            what = f"'area' {json.dumps(a['area'])[:40]} is not a number >= 0" if not _size(a["area"]) else \
                f"'iscrowd' {json.dumps(a['iscrowd'])[:40]} is not 0 or 1"
            raise DataError(f"{f}: annotations[{i}]: {what}; fix it, or leave it out (the box's area, iscrowd 0)")
        anns.append(a)
    return {"info": doc.get("info", {}), "licenses": doc.get("licenses", []),
            "images": [by_id[r.image_id] for r in records], "annotations": anns, "categories": doc["categories"]}
