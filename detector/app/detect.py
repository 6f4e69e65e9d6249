"""The Detect tab and the ``/detect`` endpoint: uploads decoded, detected through :meth:`Detector.predict
<detector.api.Detector.predict>` (the one path of the API and ``detector predict``), drawn with
:meth:`Results.plot <detector.api.Results.plot>` and tabulated; bad uploads become messages in the page, and the
other uploads go on. A setting left empty (None) is the model's own, as in the API and on the command line."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from detector.api import Detector, Results
from detector.api.settings import MAX_DET, VIDEO_SUFFIXES
from detector.api.sources import TooManyFrames
from detector.app.catalog import ModelCache, ModelEntry
from detector.app.uploads import DISPLAY_SIDE, MIN_DISPLAY_SIDE, BadInput, upload
from detector.core.errors import DetectorError
from detector.core.progress import plural


def detect_image(det: Detector, path: str | Path, name: str, conf: float | None = None, iou: float | None = None,
                 max_det: int | None = None, classes: Sequence[str] | None = None,
                 drawn: bool = False) -> tuple[Results, list[str], Image.Image | None]:
    """One upload decoded (inside the server's pixel budget, :func:`~detector.app.uploads.upload`), detected and,
    with ``drawn``, drawn as the page shows it: its :class:`~detector.api.Results` without the full-size image
    (``path`` is the upload's ``name``), the notes on what was converted, the drawing. Settings left at None are
    the model's own."""
    with upload(path, name) as (image, notes):
        (r,) = det.predict(image, conf=conf, iou=iou, max_det=max_det, classes=list(classes) if classes else None)
        picture = draw(r) if drawn else None
        r = replace(r, path=name, image=None)  # the full-size image goes before the budget is given back
        del image
    return r, notes, picture


def check_max_det(max_det: int | None) -> None:
    if max_det is not None and not 1 <= max_det <= MAX_DET:
        raise BadInput(f"max detections {max_det} must lie in 1..{MAX_DET}")


def table_rows(r: Results) -> list[list]:
    """The Detect tab's table: image, class, score, x1, y1, x2, y2 (pixels), by decreasing score."""
    return [[r.path, r.names[c], round(float(s), 3), *(round(float(v), 1) for v in b)]
            for b, s, c in zip(r.boxes, r.scores, r.labels)]


def draw(r: Results) -> Image.Image:
    """An image as the page shows it (see :data:`DISPLAY_SIDE`), with its boxes, class names and scores."""
    return r.plot(max_side=DISPLAY_SIDE, min_side=MIN_DISPLAY_SIDE)


@dataclass
class DetectResult:
    """What the Detect tab shows for a set of uploads."""

    images: list[tuple[Image.Image, str]]  # (drawing, caption)
    rows: list[list]  # image, class, score, x1, y1, x2, y2: sorted by score within each image
    summary: str
    messages: list[str]
    json_path: str | None
    results: list[Results]


ROW_HEADERS = ["image", "class", "score", "x1", "y1", "x2", "y2"]
MAX_FILES = 16  # images per Detect request: more are refused with a message (bounds time and memory)
_downloads: Path | None = None


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


def run_detect(files: Sequence[str | Path] | None, entry: ModelEntry, cache: ModelCache, conf: float | None = None,
               iou: float | None = None, max_det: int | None = None, classes: Sequence[str] | None = None,
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
    det = cache.get(entry.path)
    shown_conf = det.info.defaults.conf if conf is None else conf
    names = list(names) if names else [Path(f).name for f in files]
    images, rows, messages, coco, found = [], [], [], [], []
    model_s = 0.0  # decoding, detecting and drawing
    for f, name in zip(files, names):
        t = time.perf_counter()
        try:
            r, notes, picture = detect_image(det, f, name, conf, iou, max_det, classes, drawn=True)
        except DetectorError as e:
            messages.append(str(e))
            continue
        model_s += time.perf_counter() - t
        found.append(r)
        if notes:
            messages.append(f"{name}: " + "; ".join(notes))
        h, w = r.orig_shape
        if h * w > DISPLAY_SIDE**2:
            messages.append(f"{name}: {w}x{h} shown downscaled; boxes are in its pixels")
        if not len(r):
            hint = "" if entry.is_zoo else "; for other objects choose a COCO model in the Model list"
            messages.append(f"{name}: no objects found at confidence {shown_conf:g}"
                            + (f" among {', '.join(classes)}" if classes else "")
                            + f". {entry.label} detects only {entry.detects()}{hint}")
        images.append((picture, f"{name}: {plural(len(r), 'object')}"))
        rows += table_rows(r)
        coco += r.to_coco(image_id=len(found))
    json_path = _write_download(coco, downloads or downloads_folder()) if found else None
    total_ms = (time.perf_counter() - start) * 1000
    summary = ""
    if found:
        count = sum(len(r) for r in found)
        per = f" ({len(found)} images, {total_ms / len(found):.0f} ms each)" if len(found) > 1 else ""
        summary = (f"**{plural(count, 'object')}** in {total_ms:.0f} ms{per} on {det.device.type} "
                   f"with {entry.label} (decoding, model and drawing {model_s * 1000:.0f} ms)")
        if len(found) > 1:  # the count of each image, readable without scrolling through the gallery
            summary += "  \n" + " · ".join(f"{r.path}: {plural(len(r), 'object')}" for r in found)
    return DetectResult(images, rows, summary, messages, json_path, found)


def api_detect(file: str | Path | None, entry: ModelEntry, cache: ModelCache, conf: float | None = None,
               iou: float | None = None, max_det: int | None = None) -> dict:
    """The ``/detect`` endpoint: one image in, its size and detections as JSON out (as :meth:`Results.to_dict
    <detector.api.Results.to_dict>` gives them: the one JSON shape of a detection) with the model, notes, time and
    device. Bad input gives ``{"error": ...}``."""
    start = time.perf_counter()
    if not file:
        return {"error": "no image given"}
    try:
        check_max_det(max_det)
        det = cache.get(entry.path)
        r, notes, _ = detect_image(det, file, Path(file).name, conf, iou, max_det)
    except DetectorError as e:
        return {"error": str(e)}
    image = r.to_dict()  # without "path" (a client such as gradio_client takes a "path" for a file to fetch)
    return {"model": entry.label, "width": image["width"], "height": image["height"], "notes": notes,
            "detections": image["detections"], "ms": round((time.perf_counter() - start) * 1000, 2),
            "device": det.device.type}


MAX_VIDEO_FRAMES = 900  # 30 s at 30 frames/s: longer videos are refused (each frame goes through the model)
MAX_VIDEO_PIXELS = 1920 * 1080  # per frame


def run_video(file: str | Path | None, entry: ModelEntry, cache: ModelCache, conf: float | None = None,
              iou: float | None = None, max_det: int | None = None,
              downloads: Path | None = None) -> tuple[str, str, str]:
    """The Detect tab's video through ``Detector.predict(..., out=...)`` (the path of ``detector predict
    clip.mp4``): ``(drawn .webm, per-frame .json, summary)``; :class:`BadInput` names a video that cannot be read
    or is over the limits."""
    if not file:
        raise BadInput("upload a video (mp4 or webm, at most 30 s)")
    name = Path(file).name
    if Path(name).suffix.lower() not in VIDEO_SUFFIXES:
        raise BadInput(f"{name}: not a video file (mp4, webm, avi, mov, mkv)")
    check_max_det(max_det)
    det = cache.get(entry.path)
    folder = Path(tempfile.mkdtemp(dir=downloads or downloads_folder()))
    stream = det.predict(file, stream=True, out=folder, conf=conf, iou=iou, max_det=max_det,
                         max_pixels=MAX_VIDEO_PIXELS, max_frames=MAX_VIDEO_FRAMES)
    try:
        for _ in stream:
            pass
    except TooManyFrames:
        stream.writer.discard_video()
        raise BadInput(f"{name}: longer than the app takes ({MAX_VIDEO_FRAMES} frames, 30 s at 30 frames/s); cut "
                       "it, or run detector predict on it") from None
    except DetectorError as e:
        stream.writer.discard_video()
        raise BadInput(str(e).replace(str(file), name)) from None
    finally:
        stream.close()
    (v,) = stream.writer.videos
    summary = (f"**{plural(v.objects, 'detection')}** in {plural(v.frames, 'frame')} ({v.width}x{v.height}) in "
               f"{v.seconds:.1f} s: {v.frames_per_s} frames/s on {det.device.type}")
    return v.video, v.json, summary
