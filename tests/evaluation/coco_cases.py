"""Random COCO ground truth and results with every trap real annotation files hold: mask areas that are not the
box's w*h (and cross the small/medium/large limits differently), unrounded coordinates, category ids that are
neither contiguous nor 1-based, crowd boxes, images without boxes, an image id 0, and tied scores.

Also pycocotools run directly on the files: the reference the package must equal."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np

CATEGORY_IDS = (3, 17, 90)
NAMES = {3: "car", 17: "cat", 90: "toothbrush"}


def random_case(seed: int = 0, images: int = 24) -> tuple[dict, list[dict]]:
    """``(annotation document, results)``: about 5 boxes per image, sizes spread over COCO's area ranges."""
    rng = np.random.default_rng(seed)
    doc = {"info": {"description": "random"}, "licenses": [], "images": [], "annotations": [],
           "categories": [{"id": c, "name": NAMES[c], "supercategory": "x"} for c in (90, 3, 17)]}  # not sorted
    results = []
    for k in range(images):
        image_id = 0 if k == 0 else 1000 + 7 * k  # id 0 is a valid COCO id
        W, H = int(rng.integers(200, 641)), int(rng.integers(200, 641))
        doc["images"].append({"id": image_id, "file_name": f"im{k}.jpg", "width": W, "height": H})
        for _ in range(int(rng.integers(0, 9)) if k % 6 else 0):  # every 6th image has no boxes
            side = float(np.exp(rng.uniform(np.log(8), np.log(200))))  # 8..200 px: small, medium and large
            w, h = side * rng.uniform(0.6, 1.4), side * rng.uniform(0.6, 1.4)
            x, y = rng.uniform(0, W - min(w, W - 1)), rng.uniform(0, H - min(h, H - 1))
            w, h = min(w, W - x), min(h, H - y)
            cat = int(rng.choice(CATEGORY_IDS))
            ann = {"id": 5000 + len(doc["annotations"]) * 3, "image_id": image_id, "category_id": cat,
                   "bbox": [x, y, w, h], "area": w * h * rng.uniform(0.35, 0.95),  # a mask's area
                   "iscrowd": int(rng.random() < 0.1), "segmentation": [[x, y, x + w, y, x + w, y + h]]}
            doc["annotations"].append(ann)
            if rng.random() < 0.8:  # found, more or less well, sometimes as the wrong class
                jitter = rng.normal(0, 0.08, 4) * [w, h, w, h]
                found = cat if rng.random() < 0.85 else int(rng.choice(CATEGORY_IDS))
                results.append({"image_id": image_id, "category_id": found, "bbox": (np.array([x, y, w, h]) + jitter)
                                .clip(0.5).tolist(), "score": round(float(rng.uniform(0.05, 1.0)), 1)})  # ties
        for _ in range(int(rng.integers(0, 4))):  # false positives
            x, y = rng.uniform(0, W - 20), rng.uniform(0, H - 20)
            results.append({"image_id": image_id, "category_id": int(rng.choice(CATEGORY_IDS)),
                            "bbox": [x, y, float(rng.uniform(5, W - x)), float(rng.uniform(5, H - y))],
                            "score": round(float(rng.uniform(0.05, 1.0)), 1)})
    return doc, results


def write_case(folder: Path, seed: int = 0, images: int = 24) -> tuple[Path, Path]:
    doc, results = random_case(seed, images)
    ann, preds = folder / f"ann{seed}.json", folder / f"preds{seed}.json"
    ann.write_text(json.dumps(doc))
    preds.write_text(json.dumps(results))
    return ann, preds


def pycocotools_stats(ann_file: Path, results_file: Path, category_id: int | None = None) -> np.ndarray:
    """The 12 statistics of pycocotools' own COCOeval on the two files (one category with ``category_id``)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        ev = COCOeval(gt, gt.loadRes(str(results_file)), "bbox")
        if category_id is not None:
            ev.params.catIds = [category_id]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats
