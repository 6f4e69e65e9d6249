"""Where the memory of one huge upload goes: ``/detect``'s steps run one by one in this process (the handler's own
functions), with the resident memory after each and the peak within each (``VmHWM``, reset before each step).

    python tools/trace_upload.py                       # a 9999x9999 RGB 16-bit PNG of zeros, as in issue 42
    python tools/trace_upload.py --image photo.jpg     # any file

Steps: decode (the upload to RGB uint8, ``load_upload``), detect (``Detector.predict`` on it: the model's fit to
its input, the network, the postprocess), draw (what the page shows, ``Results.plot`` at 1600 px), reply (the
JSON). The model is the app's default (``models/tinyssd-shapes.onnx``).
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM back to the current RSS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image")
    ap.add_argument("--side", type=int, default=9999)
    args = ap.parse_args()
    import cv2

    from detector.api import Detector
    from detector.app.detect import draw
    from detector.app.uploads import load_upload

    path = Path(args.image) if args.image else Path(tempfile.mkdtemp()) / "deep16.png"
    if not args.image:
        cv2.imwrite(str(path), np.zeros((args.side, args.side, 3), np.uint16), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    det = Detector(ROOT / "models" / "tinyssd-shapes.onnx", device="cpu")
    det.predict(np.zeros((64, 64, 3), np.uint8))  # warm
    gc.collect()
    rows, held = [], {}

    def step(name, fn):
        reset_peak()
        before = status("VmRSS")
        held[name] = fn()
        rows.append((name, before, status("VmHWM"), status("VmRSS")))

    step("decode", lambda: load_upload(path)[0])
    step("detect", lambda: det.predict(held["decode"])[0])
    step("draw", lambda: draw(held["detect"]))
    step("reply", lambda: json.dumps(held["detect"].to_dict()))
    print(f"{path.name}: {held['decode'].shape[1]}x{held['decode'].shape[0]}, decoded {held['decode'].nbytes / 2**20:.0f} "
          "MiB")
    print(f"{'step':<8}{'RSS before':>12}{'peak in it':>12}{'RSS after':>12}  (MiB)")
    for name, before, peak, after in rows:
        print(f"{name:<8}{before:>12.0f}{peak:>12.0f}{after:>12.0f}")


if __name__ == "__main__":
    main()
