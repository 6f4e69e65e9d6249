"""What ``Detector.predict(..., out=FOLDER)`` and ``detector predict --out FOLDER`` write as results stream in.

    det.predict("photos/", out="runs/predict", save_txt=True)     # drawings, predictions.json, labels/
    det.predict("clip.mp4", out="runs/video")                     # runs/video/clip.webm and clip.json

Each image drawn (``OUT/NAME.jpg``, names unique), ``OUT/predictions.json`` (every image's detections in the one
JSON shape of a detection: COCO results naming their file and class, which ``detector eval --predictions``
scores), ``OUT/labels/NAME.txt`` (YOLO) with ``save_txt``, and each video as ``OUT/NAME.webm`` (VP8) with
``OUT/NAME.json`` (its frames' detections).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from detector.core.errors import DetectorError, InputError, UsageError, setting
from detector.core.files import JsonItems, write_atomic
from detector.evaluation.predict import OutputNames, expand_inputs
from detector.evaluation.video import VideoOutput

logger = logging.getLogger("detector")


def _reads_from(out: Path, item, target: Path) -> bool:
    """Whether input ``item`` (a path, a folder or a glob) reads a file in the folder ``target``."""
    p = Path(item)
    if p.is_dir() or p.is_file():
        return (p if p.is_dir() else p.parent).resolve() == target
    try:  # a glob: the folders of what it matches
        files = expand_inputs([str(item)])
    except DetectorError:
        return False  # matches nothing: the reading says so
    return any(f.parent.resolve() == target for f in files)


def check_out(out: Path, given: list) -> None:
    """``out`` can take the outputs: not a folder any input is read from (globs expanded; their drawings, named as
    they are, would replace them), not a file or a broken link, and it can be made. A :class:`UsageError` or
    :class:`InputError` naming ``out`` otherwise. (A caller's own iterator is checked as it is read:
    :meth:`PredictionWriter.add`.)"""
    target = out.resolve()
    for item in given:
        if isinstance(item, (str, Path)) and str(item).strip() and _reads_from(out, item, target):
            raise UsageError(f"{setting('out', str(out))} is where {item} is read from: its drawings would be "
                             f"written over the inputs; choose another {setting('out')}")
    if out.is_symlink() and not out.exists():
        raise InputError(f"{setting('out', str(out))}: a broken symbolic link (to {os.readlink(out)}); remove it or "
                         "choose another folder")
    if out.exists() and not out.is_dir():
        raise InputError(f"{setting('out', str(out))}: a file, not a folder; choose a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{setting('out', str(out))}: cannot write there ({e.strerror or e}); choose a folder you "
                         "can write to") from None


@dataclass
class Skipped:
    """In the writer's stream, in order: an input that could not be read (a video that failed part-way: what was
    written of it is removed)."""

    path: str | None


@dataclass
class VideoSummary:
    """One video written: where, how many frames and detections, at what speed."""

    source: str
    video: str
    json: str
    frames: int
    objects: int
    width: int
    height: int
    seconds: float
    frames_per_s: float


@dataclass
class PredictionWriter:
    """Writes each :class:`~detector.api.Results` as it comes (see the module's docstring); :meth:`close` ends the
    last video and writes ``predictions.json``. ``images``, ``detections`` and ``videos`` count what was written."""

    out: Path
    save_txt: bool = False
    vid_stride: int = 1  # a video's frames detected: every Nth, written at 1/N of its frame rate
    images: int = 0
    detections: int = 0
    videos: list[VideoSummary] = field(default_factory=list)
    _names: OutputNames = field(default_factory=OutputNames, repr=False)
    _results: JsonItems | None = field(default=None, repr=False)
    _video: VideoOutput | None = field(default=None, repr=False)
    _video_path: str | None = field(default=None, repr=False)
    failed: int = 0  # inputs that could not be read

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self._target = self.out.resolve()
        if self.save_txt:
            labels = self.out / "labels"
            try:
                labels.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise InputError(f"{labels}: cannot hold the labels ({e.strerror or e}: a file of that name?); "
                                 f"choose another {setting('out')}") from None
        self._results = JsonItems(self.out / "predictions.json")  # streamed: flat memory over any number

    def add(self, r) -> None:
        if isinstance(r, Skipped):
            self.failed += 1
            if r.path == self._video_path:
                self.discard_video()  # a video that failed part-way is not passed off as whole
            return
        if r.path is not None and Path(r.path).parent.resolve() == self._target:
            raise UsageError(f"{setting('out', str(self.out))} is where {r.path} is read from: its drawing would be "
                             f"written over it; choose another {setting('out')}")
        if r.frame is not None:
            self._add_frame(r)
            return
        self._end_video()
        stem = self._names(r.path or f"image{self.images + 1}")
        if r.path and stem != Path(r.path).stem:
            logger.info("note: %s is drawn as %s.jpg: an earlier input is also named %s", r.path, stem,
                        Path(r.path).stem)
        r.save(self.out / f"{stem}.jpg")
        if self.save_txt:
            write_atomic(self.out / "labels" / f"{stem}.txt", "".join(line + "\n" for line in r.to_yolo()))
        self.images += 1
        self.detections += len(r)
        for detection in r.to_coco(image_id=self.images):
            self._results.add(detection)

    def _add_frame(self, r) -> None:
        if r.path != self._video_path:
            self._end_video()
            h, w = r.orig_shape
            self._video = VideoOutput(self.out / self._names(r.path), r.path, r.fps / self.vid_stride, w, h)
            self._video_path = r.path
        self._video.add(r)

    def _end_video(self) -> None:
        if self._video is None:
            return
        s = self._video.close()
        summary = VideoSummary(self._video_path, s["video"], s["json"], s["frames"], s["objects"], s["width"],
                               s["height"], s["seconds"], s["frames_per_s"])
        self.videos.append(summary)
        logger.debug("%s: %d detections in %d frames (%dx%d, %.1f frames/s); wrote %s and %s", summary.source,
                    summary.objects, summary.frames, summary.width, summary.height, summary.frames_per_s,
                    summary.video, summary.json)
        self._video = self._video_path = None

    def abandon(self) -> None:
        """After a write failed: the video being written removed (it would be cut short), nothing else written."""
        self.discard_video()
        self._results.discard()

    def discard_video(self) -> None:
        """Remove the video being written (one that failed part-way)."""
        if self._video is not None:
            self._video.discard()
            self._video = self._video_path = None

    def close(self) -> None:
        """Finish the last video; ``predictions.json`` is written when images were (or nothing else was)."""
        self._end_video()
        if self.images or (not self.videos and not self.failed):
            self._results.commit()
        else:
            self._results.discard()
