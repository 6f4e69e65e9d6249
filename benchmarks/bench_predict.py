"""Prediction latency of a checkpoint: model forward + postprocess, per image, at the checkpoint's input size.

    python benchmarks/bench_predict.py --weights models/tinyssd-shapes.pt                  # CPU, batch 1
    python benchmarks/bench_predict.py --weights models/tinyssd-shapes.pt --device cuda --batch 64

Median over ``--repeats`` timed runs after warm-up; the GPU is synchronized around each run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from detector.models.registry import load_detector


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json")
    args = parser.parse_args()
    device = torch.device(args.device)
    model, ckpt = load_detector(args.weights, device)
    model = model.to(memory_format=torch.channels_last)
    size = ckpt["img_size"]
    x = torch.randint(0, 256, (args.batch, 3, size, size), dtype=torch.uint8, device=device)
    times = []
    for i in range(args.repeats + 5):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 5:
            times.append(time.perf_counter() - t)
    per_image = statistics.median(times) / args.batch * 1e3
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.weights} at {size}px on {name}: {per_image:.2f} ms per image at batch {args.batch}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "batch": args.batch, "ms_per_image": per_image, "img_size": size}, f)


if __name__ == "__main__":
    main()
