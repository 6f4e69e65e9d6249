"""Benchmark the data side: generating the default set, and the images per second each loading path delivers.

    python benchmarks/bench_data.py                       # CPU: both paths
    python benchmarks/bench_data.py --device cuda         # the device-resident path on a GPU
    python benchmarks/bench_data.py --json out.json

1. ``synth``: wall time to generate ``--images`` shapes images at 256 px with ``--workers`` processes.
2. DataLoader path: one whole epoch over those images with the train preset (decode, albumentations,
   collate), batch 32, ``--workers`` workers; images/s over the epoch, after one warm-up batch.
3. Device-resident path: the one-time decode-and-upload, then whole epochs of on-device augmented batches
   (batch 32), images/s over the epochs (synchronizing the GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch

from detector.data.check import prepare_split
from detector.data.device import DeviceData
from detector.data.loader import DetectionDataset, make_loader
from detector.data.synth import synth_dataset


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=3, help="epochs timed on the device-resident path")
    parser.add_argument("--json")
    args = parser.parse_args()
    device = torch.device(args.device)
    results = {"cpu_count": os.cpu_count(), "workers": args.workers, "images": args.images, "size": args.size,
               "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        yaml_path = synth_dataset(tmp, "shapes", train=args.images, val=0, size=args.size, workers=args.workers)
        results["synth_s"] = time.perf_counter() - t
        print(f"synth: {args.images} images at {args.size}px in {results['synth_s']:.1f} s "
              f"({args.workers} workers, {os.cpu_count()} cores)")
        _, records = prepare_split(yaml_path, "train", log=lambda s: None)

        dataset = DetectionDataset(records, args.size, train=True)
        loader = make_loader(dataset, args.batch, shuffle=True, workers=args.workers)
        it = iter(loader)
        next(it)  # warm-up: workers started, first batch out
        t, n = time.perf_counter(), 0
        for batch in it:
            n += len(batch["images"])
        results["dataloader_images_per_s"] = n / (time.perf_counter() - t)
        print(f"DataLoader path (train preset, {args.workers} workers): {results['dataloader_images_per_s']:.0f} images/s")

        t = time.perf_counter()
        data = DeviceData(records, args.size, device)
        sync(device)
        results["device_load_s"] = time.perf_counter() - t
        g = torch.Generator(device=device).manual_seed(0)
        for _ in data.batches(args.batch, generator=g):  # warm-up epoch
            pass
        sync(device)
        t, n = time.perf_counter(), 0
        for _ in range(args.epochs):
            for batch in data.batches(args.batch, generator=g):
                n += len(batch["images"])
        sync(device)
        results["device_images_per_s"] = n / (time.perf_counter() - t)
        print(f"device-resident path on {results['device']}: load {results['device_load_s']:.1f} s once, then "
              f"{results['device_images_per_s']:.0f} images/s (augmented on the device)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
