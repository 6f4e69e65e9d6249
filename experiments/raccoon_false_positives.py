"""False positives of a raccoon model on everyday photographs without raccoons: each photo's best raccoon score
and how many photos get a raccoon at ``--conf`` or more (the app's default 0.25 and 0.5).

    python experiments/raccoon_false_positives.py models/tinyssd-raccoon.pt PHOTO_DIR [--views]

``--views``: also the left and right halves of each photo (not independent photos: a check of stability).
The photographs (not in the repository, none of them used in training): ``python experiments/everyday_photos.py
PHOTO_DIR`` writes them, twelve photographs that ship with scikit-image, matplotlib and scikit-learn.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from detector import Detector
from detector.data.images import list_images, read_image


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("weights")
    ap.add_argument("photos")
    ap.add_argument("--views", action="store_true")
    ap.add_argument("--conf", type=float, nargs="+", default=[0.25, 0.5])
    args = ap.parse_args()
    det = Detector(args.weights, device="cpu")
    best = {}
    for path in list_images(Path(args.photos)):
        image = read_image(path)
        views = {path.name: image}
        if args.views:
            w = image.shape[1]
            views |= {f"{path.name} left": image[:, : w // 2], f"{path.name} right": image[:, w // 2:]}
        for name, view in views.items():
            r = det.predict(np.ascontiguousarray(view), conf=0.01)[0]
            best[name] = round(float(r.scores.max()) if len(r) else 0.0, 3)
    summary = {f"with a raccoon >= {c}": f"{sum(s >= c for s in best.values())} of {len(best)}" for c in args.conf}
    print(json.dumps({"weights": args.weights, "best raccoon score": best, **summary}, indent=1))


if __name__ == "__main__":
    main()
