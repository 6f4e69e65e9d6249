"""CPU speed of the zoo: each torchvision COCO detector, ours (torchvision's weights copied into this project's
model) against torchvision's own, and ONNX Runtime for the SSD family, at the model's native input.

    python benchmarks/bench_zoo.py --batch 1 8 --repeats 3 --out benchmarks/results/zoo-cpu
    python benchmarks/bench_zoo.py --models torchvision:ssdlite320_mobilenet_v3_large --batch 1

Milliseconds per image, the median of ``--repeats`` calls after a warm-up call, in one run, the models taking
turns. Weights: seeded (the COCO layout: 91 outputs, the zoo's class slots); speed does not depend on their
values except through the number of candidates, the same for both. Images: skimage's astronaut, coffee and
chelsea (512x512, 400x600, 300x451), as uint8, repeated to fill the batch; each model fits them to its input.
Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import seeded_zoo_model

from detector.engine.zoo import ZOO, coco_classes
from detector.models.registry import load_detector


def ours_of(name: str, tv) -> torch.nn.Module:
    """Our model with ``tv``'s weights and the zoo's 80 classes in their slots."""
    from detector.models import zoo_rcnn, zoo_ssd

    weights = getattr(torchvision.models.detection, ZOO[name].weights).COCO_V1
    slots = [i - 1 for i in coco_classes(weights.meta["categories"])[1]]
    module = zoo_rcnn if ZOO[name].model == "faster_rcnn" else zoo_ssd
    return module.from_torchvision(tv, class_slots=slots).to(memory_format=torch.channels_last).eval()


def onnx_of(name: str, model: torch.nn.Module, folder: Path):
    """Our SSD exported (dynamic batch) and loaded with ONNX Runtime."""
    from detector.engine.checkpoint import save_checkpoint
    from detector.engine.onnx_export import export_onnx

    ckpt = folder / "m.pt"
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in model.config.items() if k != "name"}
    save_checkpoint({"model": model.state_dict(), "model_name": ZOO[name].model, "model_kwargs": kwargs,
                     "classes": [str(i) for i in range(model.num_classes)], "img_size": model.img_size}, ckpt)
    export_onnx(ckpt, folder / "m.onnx", dynamic_batch=True, log=lambda s: None)
    return load_detector(folder / "m.onnx")[0]


def timed(model, images, repeats: int) -> list[float]:
    with torch.no_grad():
        model(images)  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            model(images)
            times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=list(ZOO))
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", help="OUT.json and OUT.md")
    args = ap.parse_args()
    photos = [torch.from_numpy(f()).permute(2, 0, 1).contiguous() for f in (data.astronaut, data.coffee, data.chelsea)]
    rows = []
    for name in args.models:
        tv = seeded_zoo_model(name)
        ours = ours_of(name, tv)
        runners = {"torchvision": lambda ims, tv=tv: tv([im.float() / 255 for im in ims]), "ours": ours}
        with tempfile.TemporaryDirectory() as tmp:
            if ZOO[name].model != "faster_rcnn":
                runners["ours, ONNX Runtime"] = onnx_of(name, ours, Path(tmp))
            for b in args.batch:
                images = [photos[i % 3] for i in range(b)]
                times = {who: timed(run, images, args.repeats) for who, run in runners.items()}
                row = {"model": name, "batch": b, **{f"{who} ms/image": round(statistics.median(t) / b * 1000, 1)
                                                     for who, t in times.items()}}
                row["ours / torchvision speed"] = round(statistics.median(times["torchvision"]) /
                                                        statistics.median(times["ours"]), 3)
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        meta = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads", "torch": torch.__version__,
                "torchvision": torchvision.__version__, "repeats": args.repeats}
        Path(args.out).with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
        cols = ["model", "batch", "torchvision ms/image", "ours ms/image", "ours, ONNX Runtime ms/image",
                "ours / torchvision speed"]
        lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
        lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
        Path(args.out).with_suffix(".md").write_text(", ".join(f"{k} {v}" for k, v in meta.items()) + "\n\n"
                                                  + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
