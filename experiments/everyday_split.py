"""Split ../shared/datasets/everyday-500 into a train half and a measuring half (links, not copies: the photographs
stay out of the repository), alternately in the order of their file names (ImageNet's class order), so each half
spans the same kinds of scenes.

    python experiments/everyday_split.py ../shared/datasets/everyday-500 --out data/everyday
    # data/everyday/train: 250 photographs to train against false alarms (train --negatives data/everyday/train)
    # data/everyday/measure: 250 photographs no run trains on (detector eval --negatives data/everyday/measure)
"""

import argparse
import os
from pathlib import Path

SUFFIXES = (".jpg", ".jpeg", ".png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("--out", default="data/everyday")
    args = ap.parse_args()
    photos = sorted(p for p in Path(args.source).iterdir() if p.suffix.lower() in SUFFIXES)
    for half, part in (("train", photos[0::2]), ("measure", photos[1::2])):
        folder = Path(args.out) / half
        folder.mkdir(parents=True, exist_ok=True)
        for p in part:
            link = folder / p.name
            if link.is_symlink() or link.exists():
                link.unlink()
            os.symlink(p.resolve(), link)
        print(f"{folder}: {len(part)} photographs")


if __name__ == "__main__":
    main()
