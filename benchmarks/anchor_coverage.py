"""How well do a model's anchors fit a data set's boxes? For each ground-truth box, its best IoU with any
anchor, and the share of boxes whose best IoU reaches 0.5 (those get a positive anchor by the threshold;
the others only by the greedy step), per COCO size range; with ``--fit``, also the anchors ``detector train
--anchors auto`` would fit (:mod:`detector.engine.autoanchor`, whose coverage code this uses).

    python benchmarks/anchor_coverage.py --data data/shapes [--split val] [--size 256] [--letterbox] [--fit]
"""

from __future__ import annotations

import argparse

from detector.core.anchor_fit import best_anchor_iou, coverage
from detector.data.check import prepare_split
from detector.engine.autoanchor import fit_anchors, input_boxes
from detector.models.ssd import BOOK_RATIOS, BOOK_SIZES, SMALL_OBJECT_SIZES
from detector.models.tiny_ssd import tiny_ssd

SIZE_RANGES = (("small", 0, 32**2), ("medium", 32**2, 96**2), ("large", 96**2, float("inf")))  # COCO's, in px


def coverage_by_size(boxes, shapes, sizes, ratios, img_size: int) -> dict:
    """``{"all" | "small" | "medium" | "large": (share covered, mean best IoU, boxes)}``; areas in input pixels."""
    best = best_anchor_iou(boxes, shapes, sizes, ratios)  # (N,)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) * img_size**2  # (N,)
    out = {}
    for name, lo, hi in (("all", 0, float("inf")), *SIZE_RANGES):
        c = coverage(best[(area >= lo) & (area < hi)])
        out[name] = (c["covered"], c["mean_iou"], c["boxes"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--letterbox", action="store_true", help="boxes as the letterboxed input shows them")
    parser.add_argument("--fit", action="store_true", help="also the anchors --anchors auto fits to this split")
    args = parser.parse_args()
    _, records = prepare_split(args.data, args.split)
    boxes = input_boxes(records, args.size, args.letterbox)
    shapes = tiny_ssd(1).feature_shapes(args.size, args.size)  # the SSD family's maps (strides 8 ... 64, global)
    layouts = [("book", BOOK_SIZES, BOOK_RATIOS), ("small-object", SMALL_OBJECT_SIZES, BOOK_RATIOS)]
    if args.fit:
        _, report = fit_anchors(tiny_ssd(1, sizes=SMALL_OBJECT_SIZES), records, args.size, args.letterbox)
        layouts.append(("fitted", report.get("sizes", SMALL_OBJECT_SIZES), report.get("ratios", BOOK_RATIOS)))
    for name, sizes, ratios in layouts:
        cov = coverage_by_size(boxes, shapes, sizes, ratios, args.size)
        print(f"{name:>13} anchors: " + "; ".join(
            f"{k} {v[0] * 100:.0f}% >= 0.5 (mean best IoU {v[1]:.2f}, {v[2]} boxes)" for k, v in cov.items()))


if __name__ == "__main__":
    main()
