"""The project's detectors beside the ones users would pick instead, in one run on the same photos and machine: batch
1 at 640x480, a folder of photographs, a video.

    python benchmarks/bench_peers.py                                   # everything (about 10 minutes on 2 cores)
    python benchmarks/bench_peers.py --only tinyssd ssdlite yolo       # a subset
    python benchmarks/bench_peers.py --out benchmarks/results/peers-cpu   # also OUT.json and OUT.md

Rows: the shipped TinySSD (PyTorch and ONNX Runtime); the zoo's SSDlite, SSD300 and the Faster R-CNNs, ours with
PyTorch (the SSDs also with ONNX Runtime) and torchvision's own; Ultralytics YOLOv8n built from its yaml at 320
and 640 px (``pip install ultralytics``; skipped with a line when it is not installed; nothing downloads).
Weights (nothing can be downloaded here): YOLO's freshly initialized; the zoo's seeded with activations in a
trained model's range (``zoo_hub``); the speed does not depend on their values otherwise, except through how many
candidates reach NMS: with these weights none reach the 0.25 threshold, as with trained weights on most of a
photograph. Columns:

- ``ms/image``: one 640x480 RGB photograph through the user's call (``Detector.predict(array)``, torchvision's
  ``model([tensor])``, YOLO's ``predict(array)``): resizing, the network and the postprocess; median of
  ``--repeats`` after a warm-up.
- ``folder images/s``: ``--images`` JPEG photographs (640x480) from a folder, decoded and detected, results
  streamed (``Detector.predict(folder, stream=True)``, YOLO's ``predict(folder, stream=True)``; torchvision has no
  folder reader: not measured).
- ``video frames/s``: a ``--frames``-frame 640x480 MP4 read, detected, drawn and written (ours:
  ``Detector.predict(clip, out=...)``, what ``detector predict clip.mp4`` runs: VP8 WebM and per-frame JSON);
  YOLO: read and detected (``predict(clip, stream=True)``, nothing drawn or written).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
ZOO_ROWS = {"ssdlite": "torchvision:ssdlite320_mobilenet_v3_large", "ssd300": "torchvision:ssd300_vgg16",
            "frcnn-mobile-320": "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn",
            "frcnn-mobile": "torchvision:fasterrcnn_mobilenet_v3_large_fpn",
            "frcnn-r50": "torchvision:fasterrcnn_resnet50_fpn"}
STREAM_ZOO = ("ssdlite", "ssd300", "frcnn-mobile-320")  # fast enough to take through the folder and the video


def make_media(folder: Path, images: int, frames: int) -> tuple[np.ndarray, Path, Path]:
    """A 640x480 photograph, a folder of ``images`` 640x480 JPEGs (crops of scikit-image's photographs) and a
    ``frames``-frame 640x480 MP4 at 30 frames/s (a photograph panned)."""
    from skimage import data

    photos = [cv2.resize(f(), (960, 720)) for f in (data.astronaut, data.coffee, data.chelsea, data.rocket)]
    (folder / "photos").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(images):
        p = photos[k % len(photos)]
        y, x = rng.integers(0, 240), rng.integers(0, 320)
        cv2.imwrite(str(folder / "photos" / f"{k:04d}.jpg"), cv2.cvtColor(p[y:y + 480, x:x + 640], cv2.COLOR_RGB2BGR))
    clip = folder / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 480))
    wide = cv2.cvtColor(cv2.resize(data.astronaut(), (1280, 960)), cv2.COLOR_RGB2BGR)
    for k in range(frames):
        x, y = (2 * k) % 640, k % 480
        writer.write(np.ascontiguousarray(wide[y:y + 480, x:x + 640]))
    writer.release()
    return cv2.resize(data.astronaut(), (640, 480)), folder / "photos", clip


def median_ms(call, repeats: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def per_second(count_of, call) -> float:
    t = time.perf_counter()
    n = count_of(call())
    return n / (time.perf_counter() - t)


def ours(label: str, det, photo, photos: Path, clip: Path, tmp: Path, repeats: int, stream: bool) -> dict:
    row = {"model": label, "ms/image": round(median_ms(lambda: det.predict(photo), repeats), 1)}
    if stream:
        det.predict(next(iter(sorted(photos.iterdir()))))  # warm
        row["folder images/s"] = round(per_second(lambda it: sum(1 for _ in it), lambda: det.predict(
            photos, stream=True, batch=8)), 1)
        out = tmp / f"video-{label.replace(' ', '_').replace(',', '')}"
        row["video frames/s"] = round(per_second(lambda r: r.writer.videos[0].frames, lambda: det.predict(
            clip, out=out, batch=8)), 1)
    print(json.dumps(row), flush=True)
    return row


def zoo_hub(tmp: Path, names: list[str]) -> None:
    """A torch hub cache of seeded zoo weights under torchvision's file names (nothing downloads): the body's
    activations in a trained model's range (tests/conftest.py's ``seeded_zoo_model``; torch's default
    initialization leaves VGG16's and the ResNet-50's activations near zero, where denormal floats make the CPU
    1.5-2x slower than on trained weights), the class scores below 0.25 (as a trained model's are on most of a
    photograph)."""
    import sys

    import torchvision

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import seeded_zoo_model

    from detector.engine.zoo import ZOO, hub_folder

    os.environ["TORCH_HOME"], os.environ["DETECTOR_OFFLINE"] = str(tmp / "torch"), "1"
    hub_folder().mkdir(parents=True, exist_ok=True)
    for name in names:
        z = ZOO[name]
        tv = seeded_zoo_model(name)
        with torch.no_grad():
            if z.model == "faster_rcnn":
                tv.roi_heads.box_predictor.cls_score.bias[1:] -= 12.0  # background wins
            else:
                for layer in tv.head.classification_head.module_list:
                    last = layer[-1] if isinstance(layer, torch.nn.Sequential) else layer
                    last.bias.view(-1, 91)[:, 1:] -= 12.0
        weights = getattr(torchvision.models.detection, z.weights).COCO_V1
        torch.save(tv.state_dict(), hub_folder() / weights.url.rsplit("/", 1)[-1])


def torchvision_row(name: str, photo: np.ndarray, repeats: int) -> dict:
    import torchvision

    from detector.engine.zoo import ZOO

    z = ZOO[name]
    weights = getattr(torchvision.models.detection, z.weights).COCO_V1
    tv = getattr(torchvision.models.detection, z.builder)(weights=weights, weights_backbone=None).eval()
    x = torch.from_numpy(photo).permute(2, 0, 1).contiguous()
    with torch.no_grad():
        ms = median_ms(lambda: tv([x.float() / 255]), repeats)
    row = {"model": f"{name.removeprefix('torchvision:')}, torchvision's own", "ms/image": round(ms, 1)}
    print(json.dumps(row), flush=True)
    return row


def yolo_rows(photo, photos: Path, clip: Path, repeats: int) -> list[dict]:
    try:
        from ultralytics import YOLO
    except ImportError:
        print("ultralytics is not installed: the YOLOv8n rows are skipped (pip install ultralytics)", flush=True)
        return []
    rows = []
    bgr = np.ascontiguousarray(photo[:, :, ::-1])  # YOLO takes OpenCV's BGR arrays
    model = YOLO("yolov8n.yaml")  # built from its yaml: random weights, nothing downloaded
    for size in (320, 640):
        row = {"model": f"YOLOv8n at {size} px (Ultralytics)",
               "ms/image": round(median_ms(lambda s=size: model.predict(bgr, imgsz=s, verbose=False), repeats), 1)}
        row["folder images/s"] = round(per_second(lambda it: sum(1 for _ in it), lambda s=size: model.predict(
            str(photos), imgsz=s, stream=True, verbose=False)), 1)
        row["video frames/s"] = round(per_second(lambda it: sum(1 for _ in it), lambda s=size: model.predict(
            str(clip), imgsz=s, stream=True, verbose=False)), 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", default=["tinyssd", *ZOO_ROWS, "yolo"],
                    choices=["tinyssd", *ZOO_ROWS, "yolo"])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", help="OUT.json and OUT.md")
    args = ap.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from detector import Detector

    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        photo, photos, clip = make_media(tmp, args.images, args.frames)
        if "tinyssd" in args.only:
            for suffix, backend in ((".pt", "PyTorch"), (".onnx", "ONNX Runtime")):
                det = Detector(ROOT / "models" / f"tinyssd-shapes{suffix}", device="cpu")
                rows.append(ours(f"TinySSD (shipped), {backend}", det, photo, photos, clip, tmp, args.repeats, True))
        zoo = [k for k in ZOO_ROWS if k in args.only]
        if zoo:
            zoo_hub(tmp, [ZOO_ROWS[k] for k in zoo])
        for key in zoo:
            name, stream = ZOO_ROWS[key], key in STREAM_ZOO
            short = name.removeprefix("torchvision:")
            repeats = args.repeats if stream else max(3, args.repeats // 5)
            rows.append(ours(f"{short}, ours, PyTorch", Detector(name, device="cpu"), photo, photos, clip, tmp,
                             repeats, stream))
            if key in ("ssdlite", "ssd300"):
                from detector.api.zoo import zoo_onnx

                rows.append(ours(f"{short}, ours, ONNX Runtime", Detector(str(zoo_onnx(name)), device="cpu"), photo,
                                 photos, clip, tmp, repeats, stream))
            rows.append(torchvision_row(name, photo, repeats))
        if "yolo" in args.only:
            rows += yolo_rows(photo, photos, clip, args.repeats)
    report(rows, args)


def report(rows: list[dict], args) -> None:
    import onnxruntime

    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.get_num_threads()} threads",
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "images": args.images,
            "frames": args.frames, "repeats": args.repeats, "date": time.strftime("%Y-%m-%d")}
    cols = ["model", "ms/image", "folder images/s", "video frames/s"]
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    by = {r["model"]: r for r in rows}
    lite, yolo = by.get("ssdlite320_mobilenet_v3_large, ours, ONNX Runtime"), by.get("YOLOv8n at 320 px (Ultralytics)")
    if lite and yolo:
        lines.append(f"\nSSDlite (ONNX Runtime) / YOLOv8n at 320 px, time per image: "
                     f"{lite['ms/image'] / yolo['ms/image']:.2f} (below 1: SSDlite faster)")
    text = ", ".join(f"{k} {v}" for k, v in meta.items()) + "\n\n" + "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
        Path(args.out).with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
