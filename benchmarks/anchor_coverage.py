"""How well do a model's anchors fit a data set's boxes? For each ground-truth box, its best IoU with any
anchor, and the share of boxes whose best IoU reaches 0.5 (those get a positive anchor by the threshold;
the others only by the greedy step), per COCO size range.

    python benchmarks/anchor_coverage.py --data data/shapes [--split val] [--size 256]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from detector.core.anchors import MultiLevelAnchors
from detector.core.boxes import box_iou
from detector.data.check import prepare_split
from detector.models.ssd import BOOK_RATIOS, BOOK_SIZES, SMALL_OBJECT_SIZES


def coverage(records, sizes, img_size: int) -> dict:
    fmaps = [(img_size // s, img_size // s) for s in (8, 16, 32, 64)] + [(1, 1)]
    anchors = MultiLevelAnchors(sizes, BOOK_RATIOS)(fmaps)  # (A, 4) normalized
    best, area = [], []
    for r in records:
        if len(r.boxes) == 0:
            continue
        boxes = torch.from_numpy(r.boxes) / torch.tensor([r.width, r.height, r.width, r.height])
        best.append(box_iou(boxes, anchors).amax(1).numpy())
        area.append((boxes[:, 2] - boxes[:, 0]).numpy() * (boxes[:, 3] - boxes[:, 1]).numpy() * img_size**2)
    best, area = np.concatenate(best), np.concatenate(area)
    out = {"all": (float((best >= 0.5).mean()), float(best.mean()), len(best))}
    for name, lo, hi in (("small", 0, 32**2), ("medium", 32**2, 96**2), ("large", 96**2, np.inf)):
        m = (area >= lo) & (area < hi)
        out[name] = (float((best[m] >= 0.5).mean()), float(best[m].mean()), int(m.sum())) if m.any() else (0.0, 0.0, 0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    _, records = prepare_split(args.data, args.split)
    for name, sizes in (("book", BOOK_SIZES), ("small-object", SMALL_OBJECT_SIZES)):
        cov = coverage(records, sizes, args.size)
        print(f"{name:>13} anchors: " + "; ".join(
            f"{k} {v[0] * 100:.0f}% >= 0.5 (mean best IoU {v[1]:.2f}, {v[2]} boxes)" for k, v in cov.items()))


if __name__ == "__main__":
    main()
