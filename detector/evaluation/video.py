"""Detection on videos: every frame through the one inference path, drawn, written as WebM (VP8, which browsers
play), with the detections of each frame as JSON.

    detector predict clip.mp4 --weights models/tinyssd-shapes.pt       # runs/predict/clip.webm and clip.json

:func:`read_frames` gives the frames one by one (``Detector.predict`` takes a video as frames); :class:`VideoOutput`
writes the drawn frames and their detections as they come; boxes are in the frame's pixels.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from detector.core.errors import InputError, setting
from detector.core.files import JsonItems
from detector.core.progress import logger
from detector.data.images import MAX_PIXELS, VIDEO_SUFFIXES


class VideoError(InputError, ValueError):
    """A video that cannot be read or is over a limit; the message names the file."""


class TooManyFrames(VideoError):
    """A video longer than the frames a call takes (``max_frames``)."""


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
    with _quiet_stderr():  # FFmpeg's own notes on a broken file ("moov atom not found"): the error below says it
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


def read_frames(path: Path | str, max_pixels: int | None = MAX_PIXELS, max_frames: int | None = None,
                skip_bad_frames: bool = False, stride: int = 1) -> tuple[dict, Iterator[tuple[int, np.ndarray]]]:
    """``(info, frames)``: the video's ``info`` (fps, frames, width, height) and its frames one by one as ``(index,
    RGB uint8 [H, W, 3])``, every ``stride``-th (the others are grabbed, not converted). More than ``max_frames`` frames is a :class:`VideoError` (before any is read when the
    container says so); so is a video without a single readable frame, and one whose frames stop short of what
    the container declares (a frame that cannot be decoded, a truncated file), after the frames that could be
    read: the count and the first frame missing; with ``skip_bad_frames`` that is a warning in the log."""
    cap, info = open_video(path, max_pixels)
    if max_frames is not None and info["frames"] > max_frames:
        cap.release()
        raise TooManyFrames(f"{path}: {info['frames']} frames ({info['frames'] / info['fps']:.0f} s), more than the "
                         f"{max_frames} taken ({setting('max_frames', max_frames)}); raise it, or detect in every "
                         f"Nth frame ({setting('vid_stride')})")

    def frames() -> Iterator[tuple[int, np.ndarray]]:
        count = 0
        try:
            while True:
                if count % stride:
                    ok, frame = cap.grab(), None
                else:
                    ok, frame = cap.read()
                if not ok:
                    break
                if max_frames is not None and count >= max_frames:
                    raise TooManyFrames(f"{path}: more than {max_frames} frames, the most taken "
                                     f"({setting('max_frames', max_frames)}); raise it")
                count += 1
                if frame is not None:
                    yield count - 1, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()
        if not count:
            raise VideoError(f"{path}: no frame could be decoded")
        declared = info["frames"]
        if declared and declared - count > max(1, declared // 100):
            message = (f"{path}: {count} of its {declared} frames could be decoded (frame {count} onwards failed: "
                       "a damaged or truncated file)")
            if not skip_bad_frames:
                raise VideoError(message + f"; pass {setting('skip_bad_frames', True)} to keep the frames that could be")
            logger.warning("warning: %s", message)

    return info, frames()


class VideoOutput:
    """Detections of a video's frames written as they come: the drawn frames to ``OUT.webm`` (VP8, which browsers
    play) and the detections of each frame to ``OUT.json`` (streamed: memory stays flat over any length). ``add``
    takes a frame's :class:`~detector.api.Results`-like object (``frame``, ``fps``, ``to_coco()``, ``plot()``)."""

    def __init__(self, out: Path | str, source: Path | str, fps: float, width: int, height: int):
        self.out, self.source = Path(out).with_suffix(".webm"), str(source)
        self.fps, self.width, self.height = fps, width, height
        self.out.parent.mkdir(parents=True, exist_ok=True)
        with _quiet_stderr():  # OpenCV's FFmpeg layer prints a harmless note about the VP8 tag
            self.writer = cv2.VideoWriter(str(self.out), cv2.VideoWriter_fourcc(*"vp80"), fps, (width, height))
        head = json.dumps({"source": self.source, "fps": fps, "width": width, "height": height})[:-1] + ', "frames": ['
        self.records = JsonItems(self.out.with_suffix(".json"), head, "]}")
        self.objects = 0
        self.start = time.perf_counter()

    def add(self, result) -> None:
        """One frame's :class:`~detector.api.Results`: drawn into the video, its detections (in the one JSON shape
        of a detection, ``image_id`` the frame's index in the source + 1) into the JSON."""
        k = self.records.count if result.frame is None else result.frame
        source_fps = result.fps or self.fps
        detections = result.to_coco(image_id=k + 1, file_name=self.source)
        self.records.add({"frame": k, "time_s": round(k / source_fps, 3), "detections": detections})
        self.objects += len(detections)
        self.writer.write(cv2.cvtColor(np.asarray(result.plot()), cv2.COLOR_RGB2BGR))

    def close(self) -> dict:
        """Finish both files; returns the summary (frames, objects, frames/s, where they are)."""
        self.writer.release()
        seconds = time.perf_counter() - self.start
        json_path = self.records.commit()
        frames = self.records.count
        return {"video": str(self.out), "json": str(json_path), "frames": frames, "objects": self.objects,
                "seconds": round(seconds, 2), "frames_per_s": round(frames / max(seconds, 1e-9), 1),
                "width": self.width, "height": self.height}

    def discard(self) -> None:
        """Remove what was written (a video that failed part-way)."""
        self.writer.release()
        self.records.discard()
        self.out.unlink(missing_ok=True)
