"""Write a mirrored copy of a Pascal VOC data set: every photograph flipped left to right, its boxes with it, the
split lists kept. A detector should find mirrored objects as well as the originals; a model that does much
better on the originals has learnt their unmirrored views (see docs/experiments/raccoon-false-alarms.md).

    python experiments/mirror_voc.py ../shared/datasets/raccoon --out data/raccoon-mirrored
    detector eval --weights models/tinyssd-raccoon.pt --data data/raccoon-mirrored

The photographs are saved again as JPEG at quality 98 (PNG stays PNG): the copy differs from the source by the
flip and that re-encoding only. Annotations are read and written by detector.data.voc (its pixel convention).
"""

import argparse
import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image

from detector.data.voc import read_voc, write_voc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    src, dst = Path(args.source), Path(args.out)
    if dst.resolve() == src.resolve():
        raise SystemExit(f"--out {dst}: the source itself; give another folder")
    data = read_voc(src)
    (dst / "JPEGImages").mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, records in data.splits.items():
        splits[split] = []
        for r in records:
            with Image.open(r.path) as image:
                image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(dst / "JPEGImages" / Path(r.path).name, quality=98)
            boxes = np.stack([r.width - r.boxes[:, 2], r.boxes[:, 1], r.width - r.boxes[:, 0], r.boxes[:, 3]], 1)
            splits[split].append(dataclasses.replace(r, boxes=boxes.reshape(-1, 4)))
    write_voc(dst, splits, data.classes)
    print(f"{dst}: {sum(map(len, splits.values()))} photographs mirrored, with their boxes")


if __name__ == "__main__":
    main()
