"""Detections in COCO's results format, checked before pycocotools sees them (it would fail with a traceback,
or score nonsense, on a malformed entry)::

    [{"image_id": 42, "category_id": 18, "bbox": [x, y, w, h], "score": 0.93}, ...]    # bbox in pixels
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from pathlib import Path

from detector.data.coco import json_number, load_json
from detector.data.records import DataError


def read_results(path: str | Path) -> list:
    """The list in the JSON file ``path`` (its entries are checked by :func:`check_results`)."""
    results = load_json(Path(path))
    if not isinstance(results, list):
        raise DataError(f"{path}: expected a JSON list of COCO results "
                        f"([{{\"image_id\", \"category_id\", \"bbox\": [x, y, w, h], \"score\"}}, ...]), "
                        f"got a JSON {type(results).__name__}")
    return results


def _integer(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _real(v: object) -> bool:
    return math.isfinite(json_number(v))


def _short(v: object) -> str:
    text = json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."


def result_problem(r: object, image_ids: Collection[int], category_ids: Collection[int]) -> str | None:
    """What is wrong with one result entry, or None."""
    if not isinstance(r, dict):
        return f"expected an object with image_id, category_id, bbox and score, got {_short(r)}"
    missing = [k for k in ("image_id", "category_id", "bbox", "score") if k not in r]
    if missing:
        return f"has no {', '.join(missing)} (each result needs image_id, category_id, bbox [x, y, w, h] and score)"
    if not _integer(r["image_id"]) or r["image_id"] not in image_ids:
        return (f"image_id {_short(r['image_id'])} is not an image of the ground truth; use the annotation file's "
                "image ids")
    if not _integer(r["category_id"]) or r["category_id"] not in category_ids:
        return f"category_id {_short(r['category_id'])} is not one of the data set's {sorted(category_ids)}"
    box = r["bbox"]
    if not isinstance(box, list) or len(box) != 4 or not all(_real(v) for v in box):
        return f"bbox must be 4 finite numbers [x, y, w, h] in pixels, got {_short(box)}"
    if box[2] < 0 or box[3] < 0:
        return f"bbox {_short(box)} has a negative width or height (COCO boxes are [x, y, w, h])"
    if not _real(r["score"]):
        return f"score must be a finite number, got {_short(r['score'])}"
    return None


def check_results(results: list, source: str, image_ids: Collection[int], category_ids: Collection[int]) -> None:
    """Raise ``DataError("SOURCE: entry K: ...")`` naming the first malformed entry (counted from 0)."""
    image_ids, category_ids = set(image_ids), set(category_ids)
    for k, r in enumerate(results):
        problem = result_problem(r, image_ids, category_ids)
        if problem:
            raise DataError(f"{source}: entry {k}: {problem}")


def join_by_file(results: list, records: list, gt: dict, source: str) -> tuple[list, str]:
    """Predictions joined to the ground truth's images by their ``file_name`` (the path ``detector predict``
    writes), never by position: each entry gets the ``image_id`` of the image with that path (or, failing that,
    the one image of the split with that file name). Entries without any ``file_name`` keep their ``image_id``
    (COCO's own results). Returns ``(results, how)``; a :class:`DataError` counts the entries that name no image
    of the split, or mixes of entries with and without file names."""
    named = [isinstance(r, dict) and isinstance(r.get("file_name"), str) for r in results]
    if not any(named):
        return results, "by image_id (the predictions carry no file names)"
    if not all(named):
        raise DataError(f"{source}: {named.count(False)} of {len(results)} entries have no 'file_name' and the others "
                        "do; give every entry its file name, or none (to join by image_id)")
    ids = [im["id"] for im in gt["images"]]
    by_path = {str(Path(r.path).resolve()): i for r, i in zip(records, ids)}
    by_name: dict[str, set] = {}
    for r, im in zip(records, gt["images"]):
        for name in {Path(r.path).name, Path(str(im.get("file_name", ""))).name} - {""}:
            by_name.setdefault(name, set()).add(im["id"])
    joined, missing = [], []
    for r in results:
        image_id = by_path.get(str(Path(r["file_name"]).resolve()))
        if image_id is None:
            candidates = by_name.get(Path(r["file_name"]).name, set())
            image_id = next(iter(candidates)) if len(candidates) == 1 else None
        if image_id is None:
            missing.append(r["file_name"])
            continue
        joined.append({**r, "image_id": image_id})
    if missing:
        raise DataError(f"{source}: {len(missing)} of {len(results)} entries name images that are not in this split "
                        f"(the first: {missing[0]}); score them against the split they were made on (--split)")
    return joined, "by file name"
