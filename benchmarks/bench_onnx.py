"""ONNX Runtime against PyTorch eager (channels_last) on the CPU: the same detector, the same images, the whole
call of the model contract (uint8 batch in, postprocessed detections out).

    python benchmarks/bench_onnx.py                                        # the shipped TinySSD (tiny_ssd_plus, 256 px)
    python benchmarks/bench_onnx.py --weights models/tinyssd-shapes.pt runs/raccoon/best.pt --json runs/onnx.json
    python benchmarks/bench_onnx.py --repeats 2 --warmup 1                 # a smoke run: the figures mean nothing

Each checkpoint is exported twice (``detector export --format onnx``: batch 1, and ``--dynamic-batch``) into a
temporary folder. Images: skimage's astronaut, coffee and chelsea and generated shapes, resized to the model's
input as ``predict`` does, repeated to fill the batch. For each batch size: ``--warmup`` calls, then the median
of ``--repeats`` timed calls, PyTorch and ONNX Runtime alternating so that a busy machine slows both alike.
Both use ``--threads`` threads (default: torch's). Prints one JSON object and a Markdown table; the ratio is
PyTorch's time over ONNX Runtime's (above 1: ONNX Runtime is faster). Measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from detector.core.geometry import fit_image
from detector.data.synth import render
from detector.engine.onnx_export import export_onnx
from detector.models.registry import load_detector

ROOT = Path(__file__).resolve().parents[1]


def batch_of(size: int, n: int) -> torch.Tensor:
    """``uint8 [n, 3, size, size]``: three photographs and five generated images, repeated."""
    from skimage import data

    images = [f() for f in (data.astronaut, data.coffee, data.chelsea)]
    images += [render(0, "val", i, size=320)[0] for i in range(5)]
    resized = [fit_image(torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1), size)[0] for im in images]
    return torch.stack([resized[i % len(resized)] for i in range(n)])


@torch.no_grad()
def time_calls(models: dict, x: torch.Tensor, warmup: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each model on ``x``, the models taking turns."""
    for _ in range(warmup):
        for model in models.values():
            model(x)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            t = time.perf_counter()
            model(x)
            times[name].append(time.perf_counter() - t)
    return times


def bench(weights: Path, batches: list[int], warmup: int, repeats: int, folder: Path) -> list[dict]:
    pytorch, ckpt = load_detector(weights)  # channels_last, as predict, eval and the app run it
    size = int(ckpt["img_size"])
    static, dynamic = folder / f"{weights.stem}-b1.onnx", folder / f"{weights.stem}-dyn.onnx"
    export_onnx(weights, static, log=lambda s: None)
    export_onnx(weights, dynamic, dynamic_batch=True, log=lambda s: None)
    rows = []
    for b in batches:
        models = {"pytorch": pytorch, "onnxruntime": load_detector(dynamic)[0]}
        if b == 1:
            models["onnxruntime_batch1_graph"] = load_detector(static)[0]
        x = batch_of(size, b)
        times = time_calls(models, x, warmup, repeats)
        med = {name: statistics.median(t) for name, t in times.items()}
        row = {"weights": str(weights), "model": ckpt["model_name"], "img_size": size, "batch": b,
               **{f"{name}_ms": round(m * 1e3, 2) for name, m in med.items()},
               "ratio": round(med["pytorch"] / med["onnxruntime"], 3),
               "runs_ms": {name: [round(s * 1e3, 1) for s in t] for name, t in times.items()}}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| model | input | batch | PyTorch eager ms | ONNX Runtime ms | ratio (PyTorch / ORT) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ort_ms = f"{r['onnxruntime_ms']}" + (f" (batch-1 graph {r['onnxruntime_batch1_graph_ms']})"
                                             if "onnxruntime_batch1_graph_ms" in r else "")
        lines.append(f"| {Path(r['weights']).name} ({r['model']}) | {r['img_size']} px | {r['batch']} | "
                     f"{r['pytorch_ms']} | {ort_ms} | {r['ratio']} |")
    return "\n".join(lines)


def main() -> None:
    import onnxruntime

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", nargs="+", type=Path, default=[ROOT / "models" / "tinyssd-shapes.pt"])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="for both backends")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # the ONNX Runtime sessions take torch's count (onnx_backend)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for weights in args.weights:
            rows += bench(weights, args.batch, args.warmup, args.repeats, Path(folder))
    report = {"host": platform.processor() or platform.machine(), "threads": args.threads, "torch": torch.__version__,
              "onnxruntime": onnxruntime.__version__, "warmup": args.warmup, "repeats": args.repeats, "rows": rows}
    print(json.dumps(report, indent=2))
    print(f"\nCPU, {args.threads} threads for each backend; medians of {args.repeats} calls after {args.warmup} "
          f"warm-up calls; milliseconds per call (the whole batch, postprocess included)\n")
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
