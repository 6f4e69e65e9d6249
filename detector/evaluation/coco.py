"""Evaluation with the numbers the field trusts: pycocotools' COCOeval, plus VOC's AP50 (all-point).

    detector eval --weights runs/shapes/best.pt --data data/shapes [--split val] [--out DIR]
    detector eval --data data/shapes --predictions preds.json      # predictions made elsewhere

The known traps are handled here: annotation ids start at 1; ``area``, ``iscrowd`` and ``info`` are present;
an empty result list gives AP 0 instead of crashing pycocotools; boxes are in pixels of the original image
before the area ranges apply; category ids are the data set's own. VOC ``difficult`` boxes are ignored
(``iscrowd`` for COCOeval), as VOC's own evaluation does.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from detector.data.coco import coco_document
from detector.data.records import ImageRecord, default_category_ids

STAT_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def image_ids(records: list[ImageRecord]) -> list[int]:
    """The ids evaluation uses: the records' own when they are unique and non-zero, else 1..N."""
    ids = [r.image_id for r in records]
    return ids if all(ids) and len(set(ids)) == len(ids) else list(range(1, len(records) + 1))


def _ground_truth(records: list[ImageRecord], classes: list[str], category_ids: list[int]) -> dict:
    ids = image_ids(records)
    recs = []
    for r, i in zip(records, ids):
        gt = ImageRecord(r.path, r.width, r.height, r.boxes, r.labels, iscrowd=r.iscrowd | r.difficult, image_id=i)
        recs.append(gt)
    return coco_document(recs, classes, category_ids)


def coco_evaluate(records: list[ImageRecord], classes: list[str], category_ids: list[int] | None,
                  results: list[dict]) -> tuple[dict, object | None]:
    """COCOeval on ``results`` (COCO results format). Returns ``(metrics, coco_eval)``; ``metrics`` holds the 12
    statistics (``STAT_KEYS``), ``per_class`` AP and ``AP50_voc``. ``coco_eval`` is None when there are no results."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    category_ids = default_category_ids(classes, category_ids)
    known = set(image_ids(records))
    bad = [r for r in results if r.get("image_id") not in known or r.get("category_id") not in category_ids]
    if bad:
        raise ValueError(f"{len(bad)} results name an image or category that is not in the data set, e.g. {bad[0]}")
    metrics: dict = {"AP50_voc": voc_ap50(records, results, category_ids)}
    if not results:  # pycocotools cannot load an empty result list: nothing detected is AP 0
        metrics.update({k: 0.0 for k in STAT_KEYS})
        metrics["per_class"] = {c: 0.0 for c in classes}
        return metrics, None
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress; format_table shows the result
        gt = COCO()
        gt.dataset = _ground_truth(records, classes, category_ids)
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    metrics.update({k: max(float(v), 0.0) for k, v in zip(STAT_KEYS, ev.stats)})
    precision = ev.eval["precision"][:, :, :, 0, 2]  # (T IoUs, R recalls, K classes) at area all, 100 dets
    per_class = {}
    for k, name in enumerate(classes):
        p = precision[:, :, k]
        per_class[name] = float(p[p > -1].mean()) if (p > -1).any() else 0.0
    metrics["per_class"] = per_class
    return metrics, ev


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xywh ``a [N, 4]`` and ``b [M, 4]`` -> ``[N, M]``."""
    ax2, ay2, bx2, by2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2) - np.maximum(a[:, None, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2) - np.maximum(a[:, None, 1], b[:, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def voc_ap50(records: list[ImageRecord], results: list[dict], category_ids: list[int]) -> float:
    """Pascal VOC's AP at IoU 0.5 with all-point interpolation, averaged over the classes that have boxes;
    ``difficult`` boxes neither count nor penalize."""
    ids = image_ids(records)
    aps = []
    for label, cat in enumerate(category_ids):
        gts = {}
        for r, i in zip(records, ids):
            m = r.labels == label
            xywh = np.concatenate([r.boxes[m, :2], r.boxes[m, 2:] - r.boxes[m, :2]], 1)
            gts[i] = (xywh, r.difficult[m] | r.iscrowd[m], np.zeros(int(m.sum()), bool))
        npos = sum(int((~d).sum()) for _, d, _ in gts.values())
        if npos == 0:
            continue
        dets = sorted((d for d in results if d["category_id"] == cat), key=lambda d: -d["score"])
        tp, fp = np.zeros(len(dets)), np.zeros(len(dets))
        for n, d in enumerate(dets):
            boxes, difficult, used = gts.get(d["image_id"], (np.zeros((0, 4)), np.zeros(0, bool), np.zeros(0, bool)))
            if len(boxes) == 0:
                fp[n] = 1
                continue
            ious = _iou(np.array([d["bbox"]], float), boxes)[0]
            j = int(ious.argmax())
            if ious[j] < 0.5:
                fp[n] = 1
            elif difficult[j]:
                continue
            elif not used[j]:
                tp[n], used[j] = 1, True
            else:
                fp[n] = 1
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        recall = tp / npos
        precision = tp / np.maximum(tp + fp, 1e-12)
        mrec = np.concatenate(([0.0], recall, [1.0]))
        mpre = np.concatenate(([0.0], precision, [0.0]))
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # the precision envelope
        step = np.where(mrec[1:] != mrec[:-1])[0]
        aps.append(float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1])))
    return float(np.mean(aps)) if aps else 0.0


def format_table(metrics: dict) -> str:
    names = {"AP": "AP @[.50:.95]", "AP50": "AP @.50", "AP75": "AP @.75", "APs": "AP small", "APm": "AP medium",
             "APl": "AP large", "AR1": "AR max 1", "AR10": "AR max 10", "AR100": "AR max 100", "ARs": "AR small",
             "ARm": "AR medium", "ARl": "AR large"}
    lines = [f"{names[k]:<16}{metrics[k]:.4f}" for k in STAT_KEYS]
    lines.append(f"{'AP50 (VOC)':<16}{metrics['AP50_voc']:.4f}")
    lines.append("per class AP @[.50:.95]:")
    lines += [f"  {c:<14}{v:.4f}" for c, v in metrics["per_class"].items()]
    return "\n".join(lines)


def confusion_matrix(records: list[ImageRecord], results: list[dict], category_ids: list[int],
                     conf: float = 0.25, iou: float = 0.5) -> np.ndarray:
    """``[C + 1, C + 1]`` counts: row = true class (C: background), column = predicted class (C: missed).
    Detections scoring at least ``conf`` are matched to boxes by IoU >= ``iou``, greedily by score, whatever
    their class."""
    C = len(category_ids)
    label_of = {c: i for i, c in enumerate(category_ids)}
    by_image: dict[int, list] = {}
    for d in results:
        if d["score"] >= conf:
            by_image.setdefault(d["image_id"], []).append(d)
    matrix = np.zeros((C + 1, C + 1), np.int64)
    for r, i in zip(records, image_ids(records)):
        keep = ~(r.difficult | r.iscrowd)
        gt_boxes = np.concatenate([r.boxes[keep, :2], r.boxes[keep, 2:] - r.boxes[keep, :2]], 1)
        gt_labels, used = r.labels[keep], np.zeros(int(keep.sum()), bool)
        for d in sorted(by_image.get(i, []), key=lambda d: -d["score"]):
            pred = label_of[d["category_id"]]
            ious = _iou(np.array([d["bbox"]], float), gt_boxes)[0] if len(gt_boxes) else np.zeros(0)
            ious[used] = 0
            j = int(ious.argmax()) if len(ious) else -1
            if j >= 0 and ious[j] >= iou:
                used[j] = True
                matrix[gt_labels[j], pred] += 1
            else:
                matrix[C, pred] += 1
        for j in np.flatnonzero(~used):
            matrix[gt_labels[j], C] += 1
    return matrix
