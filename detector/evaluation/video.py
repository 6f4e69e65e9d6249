"""Detection on videos: every frame through the one inference path, drawn, written as WebM (VP8, which browsers
play), with the detections of each frame as JSON.

    detector predict clip.mp4 --weights models/tinyssd-shapes.pt       # runs/predict/clip.webm and clip.json

Frames go through :func:`detect_images` in small batches; boxes are in the frame's pixels.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

from detector.core.errors import InputError
from detector.data.images import MAX_PIXELS
from detector.evaluation.draw import class_colors, draw_boxes
from detector.evaluation.predict import detect_images

VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg")
BATCH = 8  # frames per model call


class VideoError(InputError, ValueError):
    """A video that cannot be read or is over a limit; the message names the file."""


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (C code writing to it) for a moment."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def is_video(path: Path | str) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def open_video(path: Path | str, max_pixels: int | None = MAX_PIXELS) -> tuple[cv2.VideoCapture, dict]:
    """``(reader, info)`` with ``info`` = fps, frames (as the container says; may be 0), width, height."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such video")
    cap = cv2.VideoCapture(str(path))
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if not cap.isOpened() or w <= 0 or h <= 0:
        cap.release()
        raise VideoError(f"{path}: not a readable video (no frames OpenCV can decode)")
    if max_pixels is not None and w * h > max_pixels:
        cap.release()
        raise VideoError(f"{path}: frames of {w}x{h} are over the cap of {max_pixels:,} pixels")
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if np.isfinite(fps) and 0 < fps <= 240 else 25.0
    return cap, {"fps": fps, "frames": max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))), "width": w, "height": h}


def _frame_record(index: int, fps: float, det: dict, classes: list[str], category_ids: list[int]) -> dict:
    return {"frame": index, "time_s": round(index / fps, 3),
            "detections": [{"class": classes[c], "category_id": category_ids[c], "score": round(float(s), 5),
                            "box": [round(float(v), 2) for v in b]}
                           for b, s, c in zip(det["boxes"], det["scores"], det["labels"])]}


def detect_video(model: nn.Module, ckpt: dict, src: Path | str, out: Path | str, conf: float = 0.25,
                 post: dict | None = None, device: torch.device | str = "cpu", max_frames: int | None = None,
                 max_pixels: int | None = MAX_PIXELS, progress: bool = True, only: list[int] | None = None) -> dict:
    """Detect in every frame of ``src`` (up to ``max_frames``: more is a :class:`VideoError`), write the drawn
    frames to ``out`` (``.webm``) and ``out`` with ``.json`` (one record per frame); returns a summary.
    ``only``: keep only these class indices."""
    from tqdm import tqdm

    cap, info = open_video(src, max_pixels)
    if max_frames is not None and info["frames"] > max_frames:
        cap.release()
        raise VideoError(f"{src}: {info['frames']} frames ({info['frames'] / info['fps']:.0f} s); at most "
                         f"{max_frames} are taken")
    out = Path(out).with_suffix(".webm")
    out.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_stderr():  # OpenCV's FFmpeg layer prints a harmless note about the VP8 tag
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"vp80"), info["fps"],
                                 (info["width"], info["height"]))
    classes, category_ids, size = ckpt["classes"], ckpt["category_ids"], ckpt.get("size")
    records, batch, start = [], [], time.perf_counter()
    bar = tqdm(total=info["frames"] or None, desc=f"video {Path(src).name}", unit="frame", disable=not progress)

    def flush():
        found = detect_images(model, batch, device, post, conf, size=size)
        for frame, det in zip(batch, found):
            if only is not None:
                keep = np.isin(det["labels"], only)
                det = {k: v[keep] for k, v in det.items()}
            records.append(_frame_record(len(records), info["fps"], det, classes, category_ids))
            texts = [f"{classes[c]} {s:.2f}" for c, s in zip(det["labels"], det["scores"])]
            drawn = draw_boxes(Image.fromarray(frame), det["boxes"], texts, class_colors(det["labels"]),
                               width=max(2, round(max(frame.shape[:2]) / 300)))
            writer.write(cv2.cvtColor(np.asarray(drawn), cv2.COLOR_RGB2BGR))
        bar.update(len(batch))
        batch.clear()

    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if max_frames is not None and len(records) + len(batch) >= max_frames:
                raise VideoError(f"{src}: more than {max_frames} frames; at most {max_frames} are taken")
            batch.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            if len(batch) == BATCH:
                flush()
        if batch:
            flush()
    finally:
        cap.release()
        writer.release()
        bar.close()
    if not records:
        out.unlink(missing_ok=True)
        raise VideoError(f"{src}: no frame could be decoded")
    seconds = time.perf_counter() - start
    out.with_suffix(".json").write_text(json.dumps({"source": str(src), "fps": info["fps"], "width": info["width"],
                                                    "height": info["height"], "frames": records}))
    return {"video": str(out), "json": str(out.with_suffix(".json")), "frames": len(records),
            "objects": sum(len(r["detections"]) for r in records), "seconds": round(seconds, 2),
            "frames_per_s": round(len(records) / max(seconds, 1e-9), 1), **{k: info[k] for k in ("width", "height")}}
