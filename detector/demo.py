"""The demo's logic, without Gradio: reading uploads, finding models, detecting, and the book's figures
(anchors, matching, NMS). ``detector/demo_ui.py`` lays these out as a Gradio app; the tests call them
directly.

Every handler returns messages for the page instead of raising on bad input: an upload that is not an image,
is corrupt, empty or too large is named with its problem, and the other uploads go on.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

from detector.boxes import batched_nms, encode
from detector.checkpoint import CheckpointError, load_checkpoint
from detector.draw import PALETTE, draw_anchors, draw_boxes
from detector.predict import coco_results, detect

MAX_PIXELS = 100_000_000  # uploads above this are refused (a 10,000 x 10,000 photo still passes)
DISPLAY_SIDE = 1600  # images are shown at most this large; boxes and tables stay in original pixels
MIN_DISPLAY_SIDE = 640  # and small ones drawn at least this large, so boxes and labels stay sharp
MAX_ANCHORS_DRAWN = 20_000
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the checkout, for an editable install
DEFAULT_MODEL = "tinyssd-shapes.pt"


class BadInput(ValueError):
    """An input the demo cannot use; the message names it and says why, for the page."""


# --------------------------------------------------------------------------------------------- reading uploads
def _to_rgb(im: Image.Image, notes: list[str]) -> np.ndarray:
    """Any PIL mode -> ``uint8 [H, W, 3]`` RGB; ``notes`` says what was converted."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):  # 16-bit, 32-bit or float grey
        a = np.asarray(im).astype(np.float64)
        if im.mode.startswith("I;16") or (im.mode == "I" and a.min() >= 0 and a.max() <= 65535):
            a, how = a / 257.0, "16-bit"
        else:
            lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
            a, how = (a - lo) / max(hi - lo, 1e-12) * 255.0, f"{im.mode}-mode (stretched to 8 bits)"
        notes.append(f"{how} greyscale converted to 8-bit RGB")
        return np.repeat(np.clip(np.nan_to_num(a), 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append("transparency flattened onto white")
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    if im.mode in ("L", "1"):
        notes.append("greyscale shown as RGB")
    elif im.mode not in ("RGB", "P"):
        notes.append(f"{im.mode} converted to RGB")
    return np.asarray(im.convert("RGB"))


def load_upload(path: Path | str, name: str | None = None) -> tuple[np.ndarray, list[str]]:
    """Decode an uploaded file to ``uint8 [H, W, 3]`` RGB, upright as its EXIF orientation says.

    Returns ``(image, notes)``; notes say what was converted (greyscale, 16-bit, alpha, rotation, frames).
    Raises :class:`BadInput` naming the file: missing, empty, not an image, corrupt or truncated, too large.
    """
    path = Path(path)
    name = name or path.name
    if not path.is_file():
        raise BadInput(f"{name}: no such file")
    if path.stat().st_size == 0:
        raise BadInput(f"{name}: empty file")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():  # sizes are checked below, against MAX_PIXELS
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise BadInput(f"{name}: too large ({w}x{h} = {w * h / 1e6:.0f} megapixels; the demo takes at most "
                               f"{MAX_PIXELS / 1e6:.0f})")
            if getattr(im, "n_frames", 1) > 1:
                notes.append(f"first of {im.n_frames} frames")
            im.load()
            orientation = im.getexif().get(0x0112, 1)  # EXIF Orientation
            upright = ImageOps.exif_transpose(im)
            if orientation not in (1, None):
                notes.append(f"turned upright as its EXIF orientation ({orientation}) says")
            image = _to_rgb(upright, notes)
    except BadInput:
        raise
    except Image.DecompressionBombError:
        raise BadInput(f"{name}: too large (refused as a decompression bomb)") from None
    except UnidentifiedImageError:
        raise BadInput(f"{name}: not an image (no image format recognised)") from None
    except (OSError, SyntaxError, ValueError) as e:  # PIL raises these on truncated and corrupt data
        raise BadInput(f"{name}: corrupt or truncated image ({e})") from None
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise BadInput(f"{name}: image is {image.shape[1]}x{image.shape[0]} pixels, too small to detect in")
    return np.ascontiguousarray(image), notes


def display_copy(image: np.ndarray) -> tuple[Image.Image, float]:
    """The image as shown in the page (longest side between ``MIN_DISPLAY_SIDE`` and ``DISPLAY_SIDE``, or as
    it is in between) and its scale from the original."""
    h, w = image.shape[:2]
    scale = min(DISPLAY_SIDE / max(h, w), max(1.0, MIN_DISPLAY_SIDE / max(h, w)))
    pil = Image.fromarray(image)
    if scale != 1.0:
        pil = pil.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    return pil, scale


# ---------------------------------------------------------------------------------------------------- models
@dataclass
class ModelEntry:
    """A checkpoint the demo offers: where it is, its classes and what its card or checkpoint says of it."""

    label: str
    path: Path
    classes: list[str] = field(default_factory=list)
    summary: str = ""


def _metric_text(metrics: dict | None) -> str:
    if not metrics:
        return ""
    return ", ".join(f"{k} {metrics[k]:.3f}" for k in ("AP", "AP50") if isinstance(metrics.get(k), (int, float)))


def describe_checkpoint(path: Path) -> ModelEntry:
    """A :class:`ModelEntry` from the model card beside ``path`` (``X.json`` for ``X.pt``) or the checkpoint."""
    card_path = path.with_suffix(".json")
    if card_path.is_file():
        try:
            card = json.loads(card_path.read_text())
            test = card.get("test") or {}
            metrics = _metric_text(test.get("metrics"))
            where = f"held-out {test.get('images', '?')} images" if metrics else ""
            if not metrics:
                metrics, where = _metric_text(card.get("val_metrics_during_training")), "val"
            summary = f"{card.get('model_name', '?')} at {card.get('img_size', '?')} px"
            if metrics:
                summary += f"; {where}: {metrics}"
            return ModelEntry(label="", path=path, classes=list(card.get("classes", [])), summary=summary)
        except (json.JSONDecodeError, OSError, AttributeError, TypeError):
            pass  # fall back to the checkpoint itself
    ckpt = load_checkpoint(path)
    summary = f"{ckpt.get('model_name', '?')} at {ckpt.get('img_size', '?')} px"
    metrics = _metric_text(ckpt.get("metrics"))
    if metrics:
        summary += f"; val at epoch {ckpt.get('epoch', '?') + 1 if isinstance(ckpt.get('epoch'), int) else '?'}: {metrics}"
    return ModelEntry(label="", path=path, classes=list(ckpt.get("classes", [])), summary=summary)


def discover_models(models_dirs: Sequence[Path | str] = (), runs_dir: Path | str | None = "runs",
                    extra: Sequence[Path | str] = ()) -> dict[str, ModelEntry]:
    """The checkpoints the demo offers: ``extra`` first, then ``*.pt`` in each of ``models_dirs``, then
    ``runs/*/best.pt``. Keys are labels for a dropdown; unreadable checkpoints are left out."""
    paths: list[Path] = [Path(p) for p in extra]
    for d in models_dirs:
        if Path(d).is_dir():
            paths += sorted(Path(d).glob("*.pt"))
    if runs_dir is not None and Path(runs_dir).is_dir():
        paths += sorted(Path(runs_dir).glob("*/best.pt"))
    entries: dict[str, ModelEntry] = {}
    seen: set[Path] = set()
    for p in paths:
        if p.resolve() in seen:
            continue
        seen.add(p.resolve())
        try:
            entry = describe_checkpoint(p)
        except (CheckpointError, OSError, KeyError):
            continue
        entry.label = f"{p.parent.name}/{p.name}" if p.name == "best.pt" else p.name
        entries.setdefault(entry.label, entry)
    return entries


def default_models_dirs() -> list[Path]:
    """``./models`` and, for an editable install run from elsewhere, the checkout's ``models/``."""
    return [Path("models"), PACKAGE_ROOT / "models"]


class ModelCache:
    """Loaded models by path (a few at most), with one lock: Gradio calls handlers from several threads, and
    postprocess settings are per call, so a model is used by one call at a time."""

    def __init__(self, device: torch.device | str = "cpu", capacity: int = 3):
        self.device = torch.device(device)
        self.capacity = capacity
        self._models: OrderedDict[Path, tuple[nn.Module, dict]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, path: Path) -> tuple[nn.Module, dict]:
        from detector.models import load_detector

        key = Path(path).resolve()
        with self.lock:
            if key not in self._models:
                try:
                    self._models[key] = load_detector(key, self.device)
                except (CheckpointError, OSError) as e:
                    raise BadInput(str(e)) from None
                while len(self._models) > self.capacity:
                    self._models.popitem(last=False)
            self._models.move_to_end(key)
            return self._models[key]


@contextmanager
def postprocess_settings(model: nn.Module, **overrides) -> Iterator[None]:
    """Override a model's postprocess settings (``model.post``) for one call, then put them back."""
    post = getattr(model, "post", None)
    if post is None:
        yield
        return
    old = dict(post)
    post.update({k: v for k, v in overrides.items() if k in post and v is not None})
    try:
        yield
    finally:
        post.clear()
        post.update(old)


# ------------------------------------------------------------------------------------------------- detection
@dataclass
class Detections:
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


def detect_image(model: nn.Module, ckpt: dict, image: np.ndarray, conf: float = 0.25, iou: float = 0.45,
                 max_det: int = 100, classes: Sequence[str] | None = None, device: torch.device | str = "cpu",
                 name: str = "image") -> Detections:
    """Detections on one RGB image: scores at least ``conf``, class-aware NMS at ``iou``, only ``classes`` (all
    when None or empty), the ``max_det`` best, boxes mapped back to the image's pixels."""
    if not 0.0 <= conf <= 1.0 or not 0.0 <= iou <= 1.0:
        raise BadInput(f"confidence {conf} and NMS IoU {iou} must lie in [0, 1]")
    with postprocess_settings(model, nms_threshold=float(iou), score_threshold=max(float(conf), 1e-4),
                              max_detections=max(int(max_det), 300)):
        det = detect(model, image, int(ckpt["img_size"]), device, conf)
    keep = np.ones(len(det["labels"]), dtype=bool)
    if classes:
        wanted = [i for i, c in enumerate(ckpt["classes"]) if c in set(classes)]
        keep = np.isin(det["labels"], wanted)
    order = np.argsort(-det["scores"][keep], kind="stable")[: max(0, int(max_det))]
    h, w = image.shape[:2]
    return Detections(name, w, h, det["boxes"][keep][order], det["scores"][keep][order], det["labels"][keep][order])


def draw_detections(image: np.ndarray, det: Detections, classes: list[str]) -> Image.Image:
    """The image as shown (see :func:`display_copy`) with boxes, class names and scores, a colour per class."""
    shown, scale = display_copy(image)
    texts = [f"{classes[c]} {s:.2f}" for c, s in zip(det.labels, det.scores)]
    colors = [PALETTE[int(c) % len(PALETTE)] for c in det.labels]
    width = max(2, round(max(shown.size) / 300))
    return draw_boxes(shown, det.boxes * scale, texts, colors or None, width=width)


@dataclass
class DetectResult:
    """What the Detect tab shows for a set of uploads."""

    images: list[tuple[Image.Image, str]]  # (drawing, caption)
    rows: list[list]  # image, class, score, x1, y1, x2, y2: sorted by score within each image
    summary: str
    messages: list[str]
    json_path: str | None
    detections: list[Detections]


ROW_HEADERS = ["image", "class", "score", "x1", "y1", "x2", "y2"]


def run_detect(files: Sequence[str | Path] | None, entry: ModelEntry, cache: ModelCache, conf: float = 0.25,
               iou: float = 0.45, max_det: int = 100, classes: Sequence[str] | None = None,
               names: Sequence[str] | None = None) -> DetectResult:
    """The Detect tab: every upload decoded, detected and drawn; bad uploads become messages, not errors."""
    start = time.perf_counter()
    files = [f for f in (files or []) if f]
    if not files:
        return DetectResult([], [], "", ["Upload one or more images, or click an example."], None, [])
    model, ckpt = cache.get(entry.path)
    names = list(names) if names else [Path(f).name for f in files]
    images, rows, messages, results, dets = [], [], [], [], []
    model_s = 0.0
    for k, (f, name) in enumerate(zip(files, names)):
        try:
            image, notes = load_upload(f, name)
            t = time.perf_counter()
            with cache.lock:
                det = detect_image(model, ckpt, image, conf, iou, max_det, classes, cache.device, name)
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
            messages.append(f"{name}: no objects found at confidence {conf:g}"
                            + (f" among {', '.join(classes)}" if classes else ""))
        images.append((draw_detections(image, det, ckpt["classes"]), f"{name}: {len(det.labels)} objects"))
        rows += det.rows(ckpt["classes"])
        results += coco_results({"boxes": det.boxes, "scores": det.scores, "labels": det.labels}, ckpt["classes"],
                                ckpt["category_ids"], k + 1, name)
    json_path = None
    if dets:
        folder = Path(tempfile.gettempdir()) / "detector-demo"
        folder.mkdir(exist_ok=True)
        for old in folder.glob("detections-*.json"):  # downloads are kept an hour, so the disk stays bounded
            if time.time() - old.stat().st_mtime > 3600:
                old.unlink(missing_ok=True)
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="detections-", dir=folder, delete=False) as fh:
            json.dump(results, fh)
            json_path = fh.name
    total_ms = (time.perf_counter() - start) * 1000
    count = sum(len(d.labels) for d in dets)
    summary = ""
    if dets:
        per = f" ({len(dets)} images, {total_ms / len(dets):.0f} ms each)" if len(dets) > 1 else ""
        summary = (f"**{count} objects** in {total_ms:.0f} ms{per} on {cache.device.type} "
                   f"(model {model_s * 1000:.0f} ms)")
    return DetectResult(images, rows, summary, messages, json_path, dets)


def api_detect(file: str | Path | None, entry: ModelEntry, cache: ModelCache, conf: float = 0.25,
               iou: float = 0.45, max_det: int = 100) -> dict:
    """The ``/detect`` endpoint: one image in, its detections as JSON out. Bad input gives ``{"error": ...}``."""
    start = time.perf_counter()
    if not file:
        return {"error": "no image given"}
    try:
        model, ckpt = cache.get(entry.path)
        image, notes = load_upload(file)
        with cache.lock:
            det = detect_image(model, ckpt, image, conf, iou, max_det, None, cache.device)
    except BadInput as e:
        return {"error": str(e)}
    classes, cat_ids = ckpt["classes"], ckpt["category_ids"]
    return {"model": entry.label, "width": det.width, "height": det.height, "notes": notes,
            "detections": [{"class": classes[c], "category_id": cat_ids[c], "score": round(float(s), 5),
                            "box": [round(float(v), 2) for v in b]}
                           for b, s, c in zip(det.boxes, det.scores, det.labels)],
            "ms": round((time.perf_counter() - start) * 1000, 2), "device": cache.device.type}


# ------------------------------------------------------------------------------------- the book's figures
def parse_numbers(text: str, what: str, positive: bool = True) -> list[float]:
    """``"0.75, 0.5 0.25"`` -> ``[0.75, 0.5, 0.25]``; :class:`BadInput` naming ``what`` otherwise."""
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise BadInput(f"{what}: {text!r} is not a list of numbers") from None
    if not values:
        raise BadInput(f"{what}: give at least one number")
    if positive and not all(v > 0 and np.isfinite(v) for v in values):
        raise BadInput(f"{what}: every value must be a positive number, got {text!r}")
    return values


def anchors_figure(image: np.ndarray, fmap_h: int, fmap_w: int, sizes: str, ratios: str,
                   labels: bool = False) -> tuple[Image.Image, str]:
    """The Anchors tab (the book's ``display_anchors``): anchors of an ``fmap_h x fmap_w`` map over the image."""
    s, r = parse_numbers(sizes, "sizes"), parse_numbers(ratios, "ratios")
    fh, fw = int(fmap_h), int(fmap_w)
    if fh < 1 or fw < 1:
        raise BadInput(f"feature map {fh}x{fw}: both sides must be at least 1")
    k = len(s) + len(r) - 1
    if fh * fw * k > MAX_ANCHORS_DRAWN:
        raise BadInput(f"{fh}x{fw} cells x {k} anchors = {fh * fw * k}: too many to draw (at most "
                       f"{MAX_ANCHORS_DRAWN}); use a smaller feature map")
    shown, _ = display_copy(image)
    drawn, count = draw_anchors(shown, (fh, fw), s, r, labels=labels)
    return drawn, (f"{count} anchors: {fh}x{fw} cells x {k} per cell (sizes {s}, ratios {r}; every size with "
                   f"ratio {r[0]:g}, then size {s[0]:g} with the other ratios)")


def parse_boxes(text: str, width: int, height: int) -> np.ndarray:
    """Ground-truth boxes typed one per line as ``x1 y1 x2 y2`` in pixels -> ``float32 [G, 4]``."""
    boxes = []
    for n, line in enumerate(text.strip().splitlines(), 1):
        if not line.strip():
            continue
        v = parse_numbers(line, f"box on line {n}", positive=False)
        if len(v) != 4:
            raise BadInput(f"box on line {n}: {line.strip()!r} needs 4 numbers x1 y1 x2 y2, got {len(v)}")
        x1, y1, x2, y2 = v
        if not (x2 > x1 and y2 > y1):
            raise BadInput(f"box on line {n}: {line.strip()!r} needs x2 > x1 and y2 > y1")
        if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
            raise BadInput(f"box on line {n}: {line.strip()!r} lies outside the {width}x{height} image")
        boxes.append([max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)])
    if not boxes:
        raise BadInput("type at least one ground-truth box (x1 y1 x2 y2 in pixels), or click two corners on "
                       "the image")
    return np.array(boxes, dtype=np.float32)


@dataclass
class MatchResult:
    image: Image.Image
    rows: list[list]  # anchor, cell row, cell col, x1, y1, x2, y2, gt, IoU, 4 offsets
    summary: str
    anchors: np.ndarray  # (A, 4) pixels
    assigned: np.ndarray  # (A,) gt index or -1
    iou: np.ndarray  # (A, G)


MATCH_HEADERS = ["anchor", "row", "col", "x1", "y1", "x2", "y2", "gt", "IoU", "dx", "dy", "dw", "dh"]


def matching_figure(image: np.ndarray, boxes_text: str, fmap_h: int, fmap_w: int, sizes: str, ratios: str,
                    iou_threshold: float = 0.5) -> MatchResult:
    """The Matching tab: anchors of a feature map assigned to typed ground-truth boxes the book's way
    (each box first takes its best anchor, then every anchor with IoU >= threshold its best box); positives
    drawn in their box's colour, with their offsets (weights 10, 10, 5, 5, as the book's ``offset_boxes``)."""
    from detector.anchors import generate_anchors
    from detector.boxes import box_iou
    from detector.matching import match_anchors

    h, w = image.shape[:2]
    gt = parse_boxes(boxes_text, w, h)
    s, r = parse_numbers(sizes, "sizes"), parse_numbers(ratios, "ratios")
    fh, fw = int(fmap_h), int(fmap_w)
    if fh < 1 or fw < 1 or fh * fw * (len(s) + len(r) - 1) > MAX_ANCHORS_DRAWN:
        raise BadInput(f"feature map {fh}x{fw}: sides at least 1 and at most {MAX_ANCHORS_DRAWN} anchors in all")
    k = len(s) + len(r) - 1
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    anchors = generate_anchors(fh, fw, s, r) * scale  # (A, 4) pixels
    gt_t = torch.from_numpy(gt)
    assigned = match_anchors(anchors, gt_t[None], torch.ones(1, len(gt), dtype=torch.bool), float(iou_threshold))[0]
    iou = box_iou(anchors, gt_t)  # (A, G)
    pos = torch.nonzero(assigned >= 0).flatten()
    offsets = encode(anchors[pos], gt_t[assigned[pos]])
    rows = []
    for i, o in zip(pos.tolist(), offsets.tolist()):
        g = int(assigned[i])
        cell = i // k
        rows.append([i, cell // fw, cell % fw, *(round(v, 1) for v in anchors[i].tolist()), g,
                     round(float(iou[i, g]), 3), *(round(v, 3) for v in o)])
    shown, sc = display_copy(image)
    gt_colors = [PALETTE[g % len(PALETTE)] for g in range(len(gt))]
    drawn = draw_boxes(shown, anchors[pos].numpy() * sc, None, [gt_colors[int(assigned[i])] for i in pos] or None,
                       width=1)
    drawn = draw_boxes(drawn, gt * sc, [f"gt {g}" for g in range(len(gt))], gt_colors, width=3)
    per_gt = np.bincount(assigned[pos].numpy(), minlength=len(gt)) if len(pos) else np.zeros(len(gt), int)
    summary = (f"{len(pos)} of {len(anchors)} anchors are positives at IoU >= {iou_threshold:g} "
               f"(per ground-truth box: {', '.join(str(int(c)) for c in per_gt)}); the rest are background")
    return MatchResult(drawn, rows, summary, anchors.numpy(), assigned.numpy(), iou.numpy())


@dataclass
class NmsResult:
    before: Image.Image
    after: Image.Image
    summary: str
    candidates: Detections
    kept: Detections


def nms_figure(image: np.ndarray, entry: ModelEntry, cache: ModelCache, conf: float = 0.25,
               iou: float = 0.45) -> NmsResult:
    """The NMS tab: the model's candidate boxes above ``conf`` before NMS, and what class-aware NMS at
    ``iou`` keeps (the same as the Detect tab gives at these settings, up to its 100 best)."""
    model, ckpt = cache.get(entry.path)
    with cache.lock:
        raw = detect_image(model, ckpt, image, conf, 1.0, 10_000, None, cache.device)  # IoU 1.0: NMS keeps all
    keep = batched_nms(torch.from_numpy(raw.boxes).float(), torch.from_numpy(raw.scores).float(),
                       torch.from_numpy(raw.labels).long(), float(iou)).numpy()
    kept = Detections(raw.name, raw.width, raw.height, raw.boxes[keep], raw.scores[keep], raw.labels[keep])
    classes = ckpt["classes"]
    shown, sc = display_copy(image)
    before = draw_boxes(shown, raw.boxes * sc, None, [PALETTE[int(c) % len(PALETTE)] for c in raw.labels] or None,
                        width=1)
    after = draw_detections(image, kept, classes)
    summary = (f"{len(raw.labels)} candidates with score >= {conf:g} before NMS; {len(keep)} kept after NMS at "
               f"IoU {iou:g} (per class, highest score first; a box is removed when it overlaps a kept box of its "
               f"class by more than the IoU)")
    return NmsResult(before, after, summary, raw, kept)


def make_examples(folder: Path | str, count: int = 4, seed: int = 7) -> list[Path]:
    """A few images of the generated ``shapes`` val split (seed ``seed``) in ``folder``, written on first use
    with their ground truth beside them (``example-N.json``); images with fewer than 2 objects are passed over."""
    from detector.data.synth import SHAPES, render

    folder = Path(folder)
    existing = sorted(folder.glob("example-*.jpg"))
    if len(existing) >= count and all(p.with_suffix(".json").is_file() for p in existing[:count]):
        return existing[:count]
    folder.mkdir(parents=True, exist_ok=True)
    paths, index = [], 0
    while len(paths) < count and index < 100:
        image, boxes, labels = render(seed, "val", index)
        index += 1
        if len(boxes) < 2:
            continue
        p = folder / f"example-{len(paths)}.jpg"
        Image.fromarray(image).save(p, quality=95)
        truth = {"boxes": boxes.round(1).tolist(), "classes": [SHAPES[c] for c in labels], "seed": seed,
                 "split": "val", "index": index - 1}
        p.with_suffix(".json").write_text(json.dumps(truth))
        paths.append(p)
    return paths


def example_boxes_text(path: Path | str) -> str:
    """The ground-truth boxes of an example from :func:`make_examples`, one ``x1 y1 x2 y2`` line each."""
    try:
        boxes = json.loads(Path(path).with_suffix(".json").read_text())["boxes"]
    except (OSError, KeyError, json.JSONDecodeError):
        return ""
    return "\n".join(" ".join(f"{v:.0f}" for v in b) for b in boxes)
