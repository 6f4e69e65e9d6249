"""Where the time of one video frame goes, in ``Detector.predict(clip, out=...)`` (what ``detector predict clip.mp4``
and the app's video tab run): each stage's busy time per frame, and the wall time per frame of the whole.

    python benchmarks/profile_video.py --weights models/tinyssd-shapes.onnx            # a generated 640x480 clip
    python benchmarks/profile_video.py --weights models/tinyssd-shapes.pt --clip my.mp4

Stages: read (decode a frame, to RGB), model (``Detector._run``: fit to the input, the network, the postprocess),
write (``PredictionWriter.add``: draw the boxes, VP8-encode the frame, its JSON). In the pipeline they run in
three threads, so the wall time per frame is near the slowest stage, not their sum; ``--sequential`` runs the
same stages one after another in one thread, as predict did before the pipeline.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

BUSY: dict[str, float] = defaultdict(float)
LOCK = threading.Lock()


def timed(name: str, fn):
    def run(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            with LOCK:
                BUSY[name] += time.perf_counter() - t
    return run


def make_clip(path: Path, frames: int) -> Path:
    from skimage import data

    wide = cv2.cvtColor(cv2.resize(data.astronaut(), (1280, 960)), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 480))
    for k in range(frames):
        x, y = (2 * k) % 640, k % 480
        writer.write(np.ascontiguousarray(wide[y:y + 480, x:x + 640]))
    writer.release()
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="models/tinyssd-shapes.onnx")
    ap.add_argument("--clip", help="a video (default: a generated 640x480 clip of --frames frames)")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--sequential", action="store_true", help="every stage in one thread, one after another")
    args = ap.parse_args()
    import detector.api.detector as api_detector
    from detector import Detector
    from detector.api import sources
    from detector.api.writer import PredictionWriter

    det = Detector(args.weights, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(args.clip) if args.clip else make_clip(Path(tmp) / "clip.mp4", args.frames)
        det.predict(np.zeros((480, 640, 3), np.uint8))  # warm
        real_frames = sources.read_frames

        def read_frames(*a, **k):
            info, frames = real_frames(*a, **k)

            def each():
                it = iter(frames)
                while True:
                    t = time.perf_counter()
                    try:
                        item = next(it)
                    except StopIteration:
                        return
                    finally:
                        with LOCK:
                            BUSY["read"] += time.perf_counter() - t
                    yield item
            return info, each()

        sources.read_frames = read_frames
        Detector._run = timed("model", Detector._run)
        PredictionWriter.add = timed("write", PredictionWriter.add)
        if args.sequential:  # no threads: the stages one after another, as before the pipeline
            api_detector.ReadAhead = lambda items: items
            api_detector.WriteBehind = Inline
        t = time.perf_counter()
        done = det.predict(clip, out=Path(tmp) / "out", batch=args.batch)
        wall = time.perf_counter() - t
        n = done.writer.videos[0].frames
    per = {k: v / n * 1000 for k, v in BUSY.items()}
    mode = "sequential" if args.sequential else "pipeline"
    print(f"{args.weights}, {mode}, batch {args.batch}, {n} frames: " + ", ".join(
        f"{k} {v:.1f} ms" for k, v in per.items()) + f"; wall {wall / n * 1000:.1f} ms per frame = "
        f"{n / wall:.1f} frames/s")


class Inline:
    """The writer called in the caller's thread (``WriteBehind``'s interface, no thread)."""

    def __init__(self, write, finish, abandon=None):
        self.add, self.close = write, finish


if __name__ == "__main__":
    main()
