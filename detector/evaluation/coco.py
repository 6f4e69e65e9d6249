"""Evaluation with the numbers the field trusts: pycocotools' COCOeval, plus VOC's AP50 (all-point, and VOC2007's
11-point).

    detector eval --weights runs/shapes/best.pt --data data/shapes [--split val] [--out DIR]
    detector eval --data annotations.json --predictions preds.json      # predictions made elsewhere; no images needed

The ground truth is one COCO document (:mod:`detector.evaluation.ground_truth`): a COCO file's own annotations
(so the numbers are pycocotools' on that file), or one built from the records of other formats. The known traps
are handled: an empty result list gives AP 0 instead of crashing pycocotools; malformed results are refused,
naming the entry; boxes are in pixels of the original image before the area ranges apply; category ids are the
data set's own, whatever their order or gaps.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from detector.core.thresholds import CONF
from detector.evaluation.results import check_results

STAT_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def coco_evaluate(gt: dict, classes: list[str], category_ids: list[int], results: list[dict],
                  source: str = "results") -> tuple[dict, object | None]:
    """COCOeval of ``results`` (COCO results format) against the document ``gt``; class ``k`` is category
    ``category_ids[k]``. Returns ``(metrics, coco_eval)``: ``metrics`` holds the 12 statistics (``STAT_KEYS``;
    pycocotools' -1, no boxes in that range, reads 0), ``per_class`` AP, ``AP50_voc`` and ``AP50_voc07``;
    ``coco_eval`` is None when there are no results. A malformed result raises ``DataError`` naming ``source``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    check_results(results, source, [im["id"] for im in gt["images"]], category_ids)
    metrics: dict = voc_ap50(gt, results, category_ids)
    if not results:  # pycocotools cannot load an empty result list: nothing detected is AP 0
        metrics.update({k: 0.0 for k in STAT_KEYS})
        metrics["per_class"] = {c: 0.0 for c in classes}
        return metrics, None
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress; format_table shows the result
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes([dict(r) for r in results]), "bbox")  # loadRes writes into them
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    metrics.update({k: max(float(v), 0.0) for k, v in zip(STAT_KEYS, ev.stats)})
    precision = ev.eval["precision"][:, :, :, 0, 2]  # (T IoUs, R recalls, K categories by sorted id) at area all, 100 dets
    column = {c: k for k, c in enumerate(ev.params.catIds)}
    per_class = {}
    for name, cat in zip(classes, category_ids):
        p = precision[:, :, column[cat]]
        per_class[name] = float(p[p > -1].mean()) if (p > -1).any() else 0.0
    metrics["per_class"] = per_class
    return metrics, ev


def boxes_by_image(gt: dict) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``image id -> (xywh float64 [N, 4], category ids int64 [N], crowd bool [N])`` of a COCO document."""
    out = {im["id"]: ([], [], []) for im in gt["images"]}
    for a in gt["annotations"]:
        boxes, cats, crowd = out[a["image_id"]]
        boxes.append(a["bbox"]), cats.append(a["category_id"]), crowd.append(bool(a.get("iscrowd", 0)))
    return {i: (np.array(b, float).reshape(-1, 4), np.array(c, np.int64), np.array(w, bool))
            for i, (b, c, w) in out.items()}


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xywh ``a [N, 4]`` and ``b [M, 4]`` -> ``[N, M]``."""
    ax2, ay2, bx2, by2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2) - np.maximum(a[:, None, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2) - np.maximum(a[:, None, 1], b[:, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _voc_hits(boxes: dict, cat: int, results: list[dict]) -> tuple[np.ndarray, np.ndarray, int]:
    """VOC's matching of category ``cat`` at IoU 0.5: ``(cumulative true positives [D], cumulative false
    positives [D], boxes to find)`` over its detections by falling score; a detection whose best box is
    ignored (crowd, VOC's difficult) counts neither way."""
    gts = {i: (b[c == cat], w[c == cat], np.zeros(int((c == cat).sum()), bool)) for i, (b, c, w) in boxes.items()}
    npos = sum(int((~ignore).sum()) for _, ignore, _ in gts.values())
    dets = sorted((d for d in results if d["category_id"] == cat), key=lambda d: -d["score"])
    tp, fp = np.zeros(len(dets), np.int64), np.zeros(len(dets), np.int64)
    for n, d in enumerate(dets):
        xywh, ignore, used = gts[d["image_id"]]
        ious = _iou(np.array([d["bbox"]], float), xywh)[0] if len(xywh) else np.zeros(0)
        j = int(ious.argmax()) if len(ious) else -1
        if j < 0 or ious[j] < 0.5:
            fp[n] = 1
        elif ignore[j]:
            continue
        elif not used[j]:
            tp[n], used[j] = 1, True
        else:
            fp[n] = 1
    return np.cumsum(tp), np.cumsum(fp), npos


def voc_ap50(gt: dict, results: list[dict], category_ids: list[int]) -> dict[str, float]:
    """Pascal VOC's AP at IoU 0.5, averaged over the categories that have boxes: ``AP50_voc`` with all-point
    interpolation (VOC2010 on), ``AP50_voc07`` with VOC2007's 11 points (the mean of the best precision at
    recall >= 0, 0.1, ..., 1, compared exactly: recall 3/10 reaches 0.3). Ignored boxes neither count nor
    penalize."""
    boxes = boxes_by_image(gt)
    all_point, eleven = [], []
    for cat in category_ids:
        tp, fp, npos = _voc_hits(boxes, cat, results)
        if npos == 0:
            continue
        precision = tp / np.maximum(tp + fp, 1)
        mrec = np.concatenate(([0.0], tp / npos, [1.0]))
        mpre = np.concatenate(([0.0], precision, [0.0]))
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # the precision envelope
        step = np.where(mrec[1:] != mrec[:-1])[0]
        all_point.append(float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1])))
        reached = 10 * tp[None, :] >= np.arange(11)[:, None] * npos  # [11, D]: recall >= k / 10, in integers
        eleven.append(float(np.where(reached, precision, 0.0).max(1, initial=0.0).mean()))
    return {"AP50_voc": float(np.mean(all_point)) if all_point else 0.0,
            "AP50_voc07": float(np.mean(eleven)) if eleven else 0.0}


def format_table(metrics: dict) -> str:
    names = {"AP": "AP @[.50:.95]", "AP50": "AP @.50", "AP75": "AP @.75", "APs": "AP small", "APm": "AP medium",
             "APl": "AP large", "AR1": "AR max 1", "AR10": "AR max 10", "AR100": "AR max 100", "ARs": "AR small",
             "ARm": "AR medium", "ARl": "AR large"}
    lines = [f"{names[k]:<16}{metrics[k]:.4f}" for k in STAT_KEYS]
    lines.append(f"{'AP50 (VOC)':<16}{metrics['AP50_voc']:.4f}")
    lines.append(f"{'AP50 (VOC07)':<16}{metrics['AP50_voc07']:.4f}")
    lines.append("per class AP @[.50:.95]:")
    lines += [f"  {c:<14}{v:.4f}" for c, v in metrics["per_class"].items()]
    return "\n".join(lines)


def confusion_matrix(gt: dict, results: list[dict], category_ids: list[int], conf: float = CONF,
                     iou: float = 0.5) -> np.ndarray:
    """``[C + 1, C + 1]`` counts: row = true class (C: background), column = predicted class (C: missed).
    Detections scoring at least ``conf`` are matched to the non-crowd boxes of ``gt`` by IoU >= ``iou``, greedily
    by score, whatever their class."""
    C = len(category_ids)
    label_of = {c: i for i, c in enumerate(category_ids)}
    by_image: dict[int, list] = {}
    for d in results:
        if d["score"] >= conf:
            by_image.setdefault(d["image_id"], []).append(d)
    matrix = np.zeros((C + 1, C + 1), np.int64)
    for i, (xywh, cats, crowd) in boxes_by_image(gt).items():
        gt_boxes, gt_labels = xywh[~crowd], np.array([label_of[c] for c in cats[~crowd]], np.int64)
        used = np.zeros(len(gt_boxes), bool)
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
