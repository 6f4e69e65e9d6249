"""The Detect tab and the ``/detect`` endpoint: uploads decoded, detected, drawn and tabulated; bad uploads
become messages in the page, and the other uploads go on."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from detector.api import Detector
from detector.app.catalog import ModelCache, ModelEntry
from detector.app.uploads import DISPLAY_SIDE, BadInput, display_copy, load_upload
from detector.core.errors import DetectorError
from detector.core.progress import plural
from detector.core.thresholds import CONF, IOU
from detector.evaluation.draw import class_colors, draw_boxes
from detector.evaluation.predict import coco_results


@dataclass
class ImageDetections:
    """One image's detections in its original pixels."""

    name: str
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) xyxy
    scores: np.ndarray  # (N,)
    labels: np.ndarray  # (N,)
    notes: list[str] = field(default_factory=list)

    def rows(self, classes: list[str]) -> list[list]:
        return [[self.name, classes[c], round(float(s), 3), *(round(float(v), 1) for v in b)]
                for b, s, c in zip(self.boxes, self.scores, self.labels)]


def detect_image(det: Detector, image: np.ndarray, conf: float = CONF, iou: float | None = None,
                 max_det: int = 100, classes: Sequence[str] | None = None, name: str = "image") -> ImageDetections:
    """Detections on one RGB image through the API's one path (:meth:`Detector.predict`): scores at least
    ``conf``, class-aware NMS at ``iou`` (default: the model's own), only ``classes`` (all when None or empty),
    then the ``max_det`` best, boxes in the image's pixels."""
    if not 0.0 <= conf <= 1.0 or (iou is not None and not 0.0 <= iou <= 1.0):
        raise BadInput(f"confidence {conf} and NMS IoU {iou} must lie in [0, 1]")
    (r,) = det.predict(image, conf=float(conf), iou=None if iou is None else float(iou), max_det=int(max_det),
                       classes=list(classes) if classes else None)
    h, w = image.shape[:2]
    return ImageDetections(name, w, h, r.boxes, r.scores, r.labels)


def category_ids(det: Detector) -> list[int]:
    """The model's COCO category id of each class."""
    return det.info.get("category_ids") or list(range(1, len(det.names) + 1))


def draw_detections(image: np.ndarray, det: ImageDetections, classes: list[str]) -> Image.Image:
    """The image as shown (see :func:`display_copy`) with boxes, class names and scores, a colour per class."""
    shown, scale = display_copy(image)
    texts = [f"{classes[c]} {s:.2f}" for c, s in zip(det.labels, det.scores)]
    width = max(2, round(max(shown.size) / 300))
    return draw_boxes(shown, det.boxes * scale, texts, class_colors(det.labels), width=width)


@dataclass
class DetectResult:
    """What the Detect tab shows for a set of uploads."""

    images: list[tuple[Image.Image, str]]  # (drawing, caption)
    rows: list[list]  # image, class, score, x1, y1, x2, y2: sorted by score within each image
    summary: str
    messages: list[str]
    json_path: str | None
    detections: list[ImageDetections]


ROW_HEADERS = ["image", "class", "score", "x1", "y1", "x2", "y2"]
MAX_FILES = 16  # images per Detect request: more are refused with a message (bounds time and memory)
MAX_DETECTIONS = 1000
_downloads: Path | None = None


def check_max_det(max_det: int) -> int:
    if not 1 <= max_det <= MAX_DETECTIONS:
        raise BadInput(f"max detections {max_det} must lie in 1..{MAX_DETECTIONS}")
    return max_det


def downloads_folder() -> Path:
    """This process's private folder for the JSON downloads (mode 0700, removed at exit)."""
    global _downloads
    if _downloads is None or not _downloads.is_dir():
        import atexit
        import shutil

        _downloads = Path(tempfile.mkdtemp(prefix="detector-demo-"))
        atexit.register(shutil.rmtree, _downloads, ignore_errors=True)
    return _downloads


def _write_download(results: list[dict], folder: Path) -> str:
    for old in folder.glob("detections-*.json"):  # downloads are kept an hour, so the disk stays bounded
        if time.time() - old.stat().st_mtime > 3600:
            old.unlink(missing_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="detections-", dir=folder, delete=False) as fh:
        json.dump(results, fh)
        return fh.name


def run_detect(files: Sequence[str | Path] | None, entry: ModelEntry, cache: ModelCache, conf: float = CONF,
               iou: float = IOU, max_det: int = 100, classes: Sequence[str] | None = None,
               names: Sequence[str] | None = None, downloads: Path | None = None) -> DetectResult:
    """The Detect tab: every upload decoded, detected and drawn; bad uploads become messages, not errors.
    ``downloads``: the folder for the COCO-results JSON (default: this process's private folder)."""
    start = time.perf_counter()
    files = [f for f in (files or []) if f]
    if not files:
        return DetectResult([], [], "", ["Upload one or more images, or click an example."], None, [])
    if len(files) > MAX_FILES:
        raise BadInput(f"{len(files)} files: the demo takes at most {MAX_FILES} at once")
    check_max_det(max_det)
    det_model = cache.get(entry.path)
    classes_of = det_model.names
    names = list(names) if names else [Path(f).name for f in files]
    images, rows, messages, results, dets = [], [], [], [], []
    model_s = 0.0
    for k, (f, name) in enumerate(zip(files, names)):
        try:
            image, notes = load_upload(f, name)
            t = time.perf_counter()
            det = detect_image(det_model, image, conf, iou, max_det, classes, name)
            model_s += time.perf_counter() - t
        except BadInput as e:
            messages.append(str(e))
            continue
        det.notes = notes
        dets.append(det)
        if notes:
            messages.append(f"{name}: " + "; ".join(notes))
        if image.shape[0] * image.shape[1] > DISPLAY_SIDE**2:
            messages.append(f"{name}: {image.shape[1]}x{image.shape[0]} shown downscaled; boxes are in its pixels")
        if not len(det.labels):
            hint = "" if entry.is_zoo else "; for other objects choose a COCO model in the Model list"
            messages.append(f"{name}: no objects found at confidence {conf:g}"
                            + (f" among {', '.join(classes)}" if classes else "")
                            + f". {entry.label} detects only {entry.detects()}{hint}")
        images.append((draw_detections(image, det, classes_of), f"{name}: {plural(len(det.labels), 'object')}"))
        rows += det.rows(classes_of)
        results += coco_results({"boxes": det.boxes, "scores": det.scores, "labels": det.labels},
                                category_ids(det_model), k + 1, classes_of, name)
    json_path = _write_download(results, downloads or downloads_folder()) if dets else None
    total_ms = (time.perf_counter() - start) * 1000
    count = sum(len(d.labels) for d in dets)
    summary = ""
    if dets:
        per = f" ({len(dets)} images, {total_ms / len(dets):.0f} ms each)" if len(dets) > 1 else ""
        summary = (f"**{plural(count, 'object')}** in {total_ms:.0f} ms{per} on {cache.device.type} "
                   f"with {entry.label} (model {model_s * 1000:.0f} ms)")
        if len(dets) > 1:  # the count of each image, readable without scrolling through the gallery
            summary += "  \n" + " · ".join(f"{d.name}: {plural(len(d.labels), 'object')}" for d in dets)
    return DetectResult(images, rows, summary, messages, json_path, dets)


def api_detect(file: str | Path | None, entry: ModelEntry, cache: ModelCache, conf: float = CONF,
               iou: float = IOU, max_det: int = 100) -> dict:
    """The ``/detect`` endpoint: one image in, its detections as JSON out. Bad input gives ``{"error": ...}``."""
    start = time.perf_counter()
    if not file:
        return {"error": "no image given"}
    try:
        check_max_det(max_det)
        det_model = cache.get(entry.path)
        image, notes = load_upload(file)
        det = detect_image(det_model, image, conf, iou, max_det)
    except DetectorError as e:
        return {"error": str(e)}
    classes, cat_ids = det_model.names, category_ids(det_model)
    return {"model": entry.label, "width": det.width, "height": det.height, "notes": notes,
            "detections": [{"class": classes[c], "category_id": cat_ids[c], "score": round(float(s), 5),
                            "box": [round(float(v), 2) for v in b]}
                           for b, s, c in zip(det.boxes, det.scores, det.labels)],
            "ms": round((time.perf_counter() - start) * 1000, 2), "device": cache.device.type}


MAX_VIDEO_FRAMES = 900  # 30 s at 30 frames/s: longer videos are refused (each frame goes through the model)
MAX_VIDEO_PIXELS = 1920 * 1080  # per frame


def run_video(file: str | Path | None, entry: ModelEntry, cache: ModelCache, conf: float = CONF, iou: float = IOU,
              downloads: Path | None = None) -> tuple[str, str, str]:
    """The Detect tab's video: ``(drawn .webm, per-frame .json, summary)``; :class:`BadInput` names a video that
    cannot be read or is over the limits."""
    from detector.evaluation.video import VideoError, VideoOutput, is_video, read_frames

    if not file:
        raise BadInput("upload a video (mp4 or webm, at most 30 s)")
    name = Path(file).name
    if not is_video(name):
        raise BadInput(f"{name}: not a video file (mp4, webm, avi, mov, mkv)")
    if not (0.0 <= conf <= 1.0 and 0.0 <= iou <= 1.0):
        raise BadInput(f"confidence {conf} and NMS IoU {iou} must lie in [0, 1]")
    det = cache.get(entry.path)
    folder = Path(tempfile.mkdtemp(dir=downloads or downloads_folder()))
    output = None
    try:
        info, frames = read_frames(file, MAX_VIDEO_PIXELS, MAX_VIDEO_FRAMES)
        output = VideoOutput(folder / Path(name).stem, name, info["fps"], info["width"], info["height"], det.names,
                             category_ids(det))
        for frame in frames:
            output.add(det.predict(frame, conf=float(conf), iou=float(iou))[0])  # the API's one path, per frame
        r = output.close()
    except VideoError as e:
        if output is not None:
            output.discard()
        raise BadInput(str(e).replace(str(file), name)) from None
    summary = (f"**{plural(r['objects'], 'detection')}** in {plural(r['frames'], 'frame')} ({r['width']}x"
               f"{r['height']}) in {r['seconds']:.1f} s: {r['frames_per_s']} frames/s on {cache.device.type}")
    return r["video"], r["json"], summary
