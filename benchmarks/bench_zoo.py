"""CPU latency of our Faster R-CNN against torchvision's on the same weights and the same photographs.

    python benchmarks/bench_zoo.py --batch 1 8 --repeats 3      # medians, in seconds per call

The weights are a randomly initialized ``fasterrcnn_resnet50_fpn`` (v1) copied into ours with
``from_torchvision``: the work is that of the COCO model (800-pixel shorter side, 1000 proposals per image).
Photographs: skimage's astronaut, coffee and chelsea, repeated to fill the batch.
"""

import argparse
import statistics
import time

import torch
import torchvision
from skimage import data

from detector.models.zoo_rcnn import from_torchvision


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    tv = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).eval()
    ours = from_torchvision(tv)
    photos = [torch.from_numpy(f()).permute(2, 0, 1).float() / 255 for f in (data.astronaut, data.coffee, data.chelsea)]
    for b in args.batch:
        images = [photos[i % 3] for i in range(b)]
        for name, model in (("torchvision", tv), ("ours", ours)):
            times = []
            with torch.no_grad():
                model(images[:1])  # warm-up
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    model(images)
                    times.append(time.perf_counter() - t)
            print(f"batch {b} {name}: median {statistics.median(times):.2f} s ({[round(x, 2) for x in times]})", flush=True)


if __name__ == "__main__":
    main()
