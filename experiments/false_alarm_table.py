"""The false-alarm experiment's table (docs/experiments/raccoon-false-alarms.md): for each raccoon checkpoint, its
val AP and AP50, the share of the measuring half of everyday-500 it fires on at 0.25 and 0.5, the threshold
calibrated on the train half (the lowest at which at most 5% of it fires) and what that threshold does on the
measuring half, and the share of the val raccoons still found (IoU 0.5) at 0.25, 0.5 and that threshold.

    python experiments/everyday_split.py ../shared/datasets/everyday-500 --out data/everyday
    python experiments/false_alarm_table.py models/tinyssd-raccoon.pt runs/rac-ftD/last.pt ...

Prints a Markdown table and, with ``--json FILE``, writes the figures.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from detector import Detector
from detector.api.data import load_data
from detector.core.boxes import box_iou


def recall(det: Detector, data: str, thresholds: list[float]) -> dict[str, float]:
    """The share of the val split's boxes that a detection at or above each threshold finds at IoU 0.5."""
    records = load_data(data).split("val")
    thresholds = sorted(set(thresholds))
    found = {t: 0 for t in thresholds}
    total = 0
    for r, res in zip(records, det.predict([str(x.path) for x in records], conf=min(thresholds), batch=8)):
        total += len(r.boxes)
        if not len(r.boxes) or not len(res):
            continue
        iou = box_iou(torch.as_tensor(r.boxes), torch.as_tensor(res.boxes)).numpy()  # (G, N)
        for t in thresholds:
            keep = res.scores >= t
            found[t] += int((iou[:, keep] >= 0.5).any(1).sum()) if keep.any() else 0
    return {f"{t:g}": round(found[t] / max(total, 1), 3) for t in thresholds}


def row(weights: str, data: str, train_half: str, measure_half: str) -> dict:
    det = Detector(weights, device="cpu")
    m = det.val(data=data, negatives=measure_half, workers=0)
    calibrated = Detector(weights, device="cpu").val(data=data, negatives=train_half, workers=0)
    conf = calibrated.stats["false_alarms"]["conf_for_5_percent"]
    best = [float(r.scores.max()) if len(r) else 0.0 for r in det.predict(measure_half, stream=True, conf=0.25)]
    fa_conf = float(np.mean([s >= conf for s in best])) if best else 0.0  # the measuring half at that threshold
    return {"weights": weights, "AP": round(m.ap, 4), "AP50": round(m.ap50, 4),
            "fa_0.25": m.false_alarms["0.25"], "fa_0.5": m.false_alarms["0.5"], "calibrated_conf": conf,
            "fa_calibrated": round(fa_conf, 4), "recall": recall(det, data, [0.25, 0.5, conf]),
            "worst": m.stats["false_alarms"]["worst"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+")
    ap.add_argument("--data", default="../shared/datasets/raccoon")
    ap.add_argument("--train-half", default="data/everyday/train")
    ap.add_argument("--measure-half", default="data/everyday/measure")
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = [row(w, args.data, args.train_half, args.measure_half) for w in args.weights]
    print("| checkpoint | val AP | AP50 | fires >= 0.25 | >= 0.5 | threshold for 5% (train half) | fires at it | "
          "val raccoons found at 0.25 / 0.5 / it |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        rec = [r["recall"][f"{t:g}"] for t in (0.25, 0.5, r["calibrated_conf"])]
        print(f"| {r['weights']} | {r['AP']:.3f} | {r['AP50']:.3f} | {100 * r['fa_0.25']:.1f}% | {100 * r['fa_0.5']:.1f}% | "
              f"{r['calibrated_conf']:g} | {100 * r['fa_calibrated']:.1f}% | " + " / ".join(f"{v:.2f}" for v in rec)
              + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
