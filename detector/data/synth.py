"""The project's own data sets, generated: everything runs out of the box with no download.

    detector data synth --out data/shapes                       # 5 shape classes, 1000 train / 200 val
    detector data synth --out data/bananas --preset bananas     # the book's banana setup

``shapes``: circle, triangle, square, star, cross; random colour, texture, rotation and aspect; 0 to 8
objects per image, partly occluding each other (every object keeps at least half of its area visible);
sides from 4% to 60% of the image (COCO's small, medium and large at 256 px); pasted on crops of real
photographs that scikit-image ships; then noise and blur. ``bananas``: one banana per 256x256 image, as in
the book, also written in its CSV layout.

Every image is a pure function of (seed, split, index), so a split is the same whatever the number of
workers, and a val split generated with another seed is a fresh test set. Boxes are the tight boxes of
the whole (amodal) object, which always lies fully inside the image.
"""

from __future__ import annotations

import math
import multiprocessing as mp
from pathlib import Path

import cv2
import numpy as np
import yaml

from detector.core.errors import InputError, UsageError, setting
from detector.core.progress import progress as show_progress
from detector.data.banana import write_banana
from detector.data.coco import write_coco
from detector.data.images import clear_for_writing
from detector.data.records import ImageRecord

SHAPES = ("circle", "triangle", "square", "star", "cross")
PRESETS = ("shapes", "bananas")
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}  # part of each image's random key
MAX_OBJECTS = 8  # per image, shapes preset
SIDE_RANGE = (0.04, 0.6)  # object side, fraction of the image side (log-uniform)
MIN_VISIBLE = 0.5  # an object placed later may hide at most half of an earlier one
BACKGROUNDS = ("astronaut", "brick", "camera", "chelsea", "grass", "gravel", "hubble_deep_field",
               "immunohistochemistry", "moon", "rocket", "stereo_motorcycle")  # photos shipped by scikit-image

_photos: list[np.ndarray] = []


def _load_photos() -> list[np.ndarray]:
    if not _photos:
        from skimage import data

        for name in BACKGROUNDS:
            im = getattr(data, name)()
            im = im[0] if isinstance(im, tuple) else im  # stereo_motorcycle returns (left, right, disparity)
            im = np.stack([im] * 3, -1) if im.ndim == 2 else im[..., :3]
            _photos.append(np.ascontiguousarray(im, dtype=np.uint8))
    return _photos


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    photo = _photos[rng.integers(len(_photos))]
    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.3, 1.0))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    bg = cv2.resize(photo[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        bg = bg[:, ::-1]
    return np.clip(bg.astype(np.float32) * rng.uniform(0.6, 1.2) + rng.uniform(-20, 20), 0, 255)


def _unit_shape(name: str) -> np.ndarray:
    """Vertices (K, 2) of a shape inscribed in [-1, 1]^2."""
    if name == "circle":
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        return np.stack([np.cos(t), np.sin(t)], 1)
    if name == "triangle":
        t = np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        return np.stack([np.cos(t), np.sin(t)], 1)
    if name == "square":
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) * 0.8
    if name == "star":
        t = np.pi / 2 + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        return np.stack([r * np.cos(t), r * np.sin(t)], 1)
    if name == "cross":
        a, b = 1.0, 0.33
        return np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a], [-b, b], [-a, b],
                         [-a, -b], [-b, -b]], float)
    raise ValueError(f"unknown shape {name!r}")


def _banana(rng: np.random.Generator) -> np.ndarray:
    """A crescent: an arc of thickness tapering to both tips, inscribed in about [-1, 1]^2."""
    span = rng.uniform(0.5, 0.8) * np.pi
    t = np.linspace(-span / 2, span / 2, 40)
    thick = 0.28 * np.sin(np.linspace(0, np.pi, 40)) ** 0.7 + 0.02
    outer = np.stack([np.sin(t), -np.cos(t)], 1) * (1 + thick[:, None] / 2)
    inner = np.stack([np.sin(t), -np.cos(t)], 1) * (1 - thick[:, None] / 2)
    pts = np.concatenate([outer, inner[::-1]])
    return (pts - (pts.max(0) + pts.min(0)) / 2) * 1.4


def _place(rng: np.random.Generator, unit: np.ndarray, size: int, side: float) -> np.ndarray:
    """Scale, stretch, rotate ``unit`` to about ``side`` pixels and move it to a random place fully inside."""
    aspect = math.exp(rng.uniform(-0.29, 0.29))  # width/height in [0.75, 1.33]
    pts = unit * np.array([aspect**0.5, aspect**-0.5]) * side / 2
    a = rng.uniform(0, 2 * np.pi)
    pts = pts @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    lo, hi = pts.min(0), pts.max(0)
    extent = hi - lo
    scale = min(1.0, (size - 2) / extent.max())  # never larger than the image
    pts, lo, hi = pts * scale, lo * scale, hi * scale
    offset = np.array([rng.uniform(-lo[0] + 1, size - 1 - hi[0]), rng.uniform(-lo[1] + 1, size - 1 - hi[1])])
    return pts + offset


def _texture(rng: np.random.Generator, size: int, color: np.ndarray) -> np.ndarray:
    kind = rng.integers(4)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == 0:  # flat
        mod = np.zeros((size, size), np.float32)
    elif kind == 1:  # linear gradient
        a = rng.uniform(0, 2 * np.pi)
        mod = 0.35 * ((np.cos(a) * xx + np.sin(a) * yy) - 0.5)
    elif kind == 2:  # stripes
        a, f = rng.uniform(0, np.pi), rng.uniform(8, 30)
        mod = 0.2 * np.sin(2 * np.pi * f * (np.cos(a) * xx + np.sin(a) * yy))
    else:  # blotchy noise
        small = rng.normal(0, 0.25, (8, 8)).astype(np.float32)
        mod = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(color[None, None, :] * (1 + mod[..., None]), 0, 255)


def _color(rng: np.random.Generator, banana: bool) -> np.ndarray:
    hue = rng.uniform(22, 32) if banana else rng.uniform(0, 180)  # OpenCV hue: 0..180
    sat = rng.uniform(150, 255) if banana else rng.uniform(90, 255)
    val = rng.uniform(170, 255) if banana else rng.uniform(90, 255)
    hsv = np.array([[[hue, sat, val]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def render(seed: int, split: str, index: int, preset: str = "shapes", size: int = 256):
    """One image: ``(uint8 [size, size, 3] RGB, boxes float32 [N, 4] xyxy pixels, labels int64 [N])``."""
    rng = np.random.default_rng([seed, SPLIT_CODES.get(split, 3), index])
    _load_photos()
    img = _background(rng, size)
    owner = np.full((size, size), -1, np.int16)  # which object each pixel shows
    boxes, labels, areas = [], [], []  # areas: each object's full area in pixels
    banana = preset == "bananas"
    count = 1 if banana else int(rng.integers(0, MAX_OBJECTS + 1))
    for _ in range(count):
        label = 0 if banana else int(rng.integers(len(SHAPES)))
        lo, hi = (0.15, 0.45) if banana else SIDE_RANGE
        for _attempt in range(20):
            side = size * math.exp(rng.uniform(math.log(lo), math.log(hi)))
            pts = _place(rng, _banana(rng) if banana else _unit_shape(SHAPES[label]), size, side)
            mask = np.zeros((size, size), np.uint8)
            cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
            covered = owner[mask > 127]
            if not boxes:
                break
            visible = np.bincount(owner[owner >= 0], minlength=len(boxes))
            hidden = np.bincount(covered[covered >= 0], minlength=len(boxes))
            if (visible - hidden >= MIN_VISIBLE * np.array(areas)).all():
                break
        else:
            continue  # no place that keeps the others visible: leave this object out
        alpha = (mask.astype(np.float32) / 255)[..., None]
        img = img * (1 - alpha) + _texture(rng, size, _color(rng, banana)) * alpha
        if banana:  # brown tips
            tips = np.zeros_like(mask)
            for p in (pts[0], pts[39]):
                cv2.circle(tips, tuple(int(v) for v in p), max(2, int(side * 0.04)), 255, -1, cv2.LINE_AA)
            t = (tips.astype(np.float32) / 255 * alpha[..., 0])[..., None]
            img = img * (1 - t) + np.array([70, 45, 20], np.float32) * t
        owner[mask > 127] = len(boxes)
        areas.append(int((mask > 127).sum()))
        boxes.append([*pts.min(0), *pts.max(0)])
        labels.append(label)
    img = img + rng.normal(0, rng.uniform(0, 8), img.shape)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2))
    boxes = np.clip(np.array(boxes, np.float32).reshape(-1, 4), 0, size)
    return np.clip(img, 0, 255).astype(np.uint8), boxes, np.array(labels, np.int64)


def _write_one(job: tuple) -> tuple:
    seed, split, index, preset, size, image_dir, ext = job
    img, boxes, labels = render(seed, split, index, preset, size)
    path = clear_for_writing(Path(image_dir) / f"{index:06d}{ext}")
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if ext == ".jpg" else []
    if not cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params):
        raise OSError(f"{path}: could not write the image")
    return index, str(path), boxes, labels


MAX_SIZE = 4096  # the largest image side generated (a 4096 x 4096 image is 48 MB in memory)


def synth_dataset(out: Path | str, preset: str = "shapes", train: int = 1000, val: int = 200, seed: int = 0,
                  size: int = 256, workers: int = 2, progress: bool = False, exist_ok: bool = False) -> Path:
    """Generate a data set under ``out``; return the path of its dataset YAML. A non-empty ``out`` is refused
    (a :class:`UsageError`) unless ``exist_ok`` (its files of the same names are then replaced).

    Layout: ``<split>/images/*``, ``<split>/annotations.json`` (COCO) and ``dataset.yaml``; the bananas preset
    names its split folders ``bananas_train``/``bananas_val`` and also writes the book's ``label.csv`` there.
    """
    if preset not in PRESETS:
        raise UsageError(f"{setting('preset', preset)}: choose one of {', '.join(PRESETS)}")
    for name, value in (("size", size), ("train", train), ("val", val), ("seed", seed), ("workers", workers)):
        if type(value) is not int:
            raise UsageError(f"{setting(name, value)}: must be a whole number")
    if size < 32 or size > MAX_SIZE:
        raise UsageError(f"{setting('size', size)}: must be between 32 and {MAX_SIZE} pixels")
    if train < 0 or val < 0:
        raise UsageError(f"{setting('train', train)} {setting('val', val)}: counts must be 0 or more")
    if train == val == 0:
        raise UsageError(f"{setting('train', 0)} {setting('val', 0)}: nothing to generate; ask for some images")
    if seed < 0 or workers < 1:
        raise UsageError(f"{setting('seed', seed)}, {setting('workers', workers)}: the seed must be 0 or more and "
                         "the workers 1 or more")
    if not isinstance(out, (str, Path)) or not str(out).strip():
        raise UsageError(f"{setting('out', out)}: give a folder for the data set")
    if Path(out).is_dir() and any(Path(out).iterdir()) and not exist_ok:
        raise UsageError(f"{setting('out', out)} is not empty{' (a data set: dataset.yaml)' if (Path(out) / 'dataset.yaml').exists() else ''}; "
                         f"choose another folder, or pass {setting('exist_ok', True)} to write over it")
    try:
        return _synth(Path(out), preset, train, val, seed, size, workers, progress)
    except OSError as e:  # a folder or file that cannot be written (read-only, full disk, a file in the way)
        raise InputError(f"{setting('out', out)}: cannot write there ({e.strerror or e}: {e.filename or out})") from None


def _synth(out: Path, preset: str, train: int, val: int, seed: int, size: int, workers: int, progress: bool) -> Path:
    classes = ["banana"] if preset == "bananas" else list(SHAPES)
    ext = ".png" if preset == "bananas" else ".jpg"
    doc = {"format": "detector", "root": ".", "names": classes, "preset": preset, "seed": seed, "size": size}
    for split, count in (("train", train), ("val", val)):
        if count <= 0:
            continue
        folder = out / (f"bananas_{split}" if preset == "bananas" else split)
        (folder / "images").mkdir(parents=True, exist_ok=True)
        jobs = [(seed, split, i, preset, size, str(folder / "images"), ext) for i in range(count)]
        results = _run(jobs, workers, progress, f"synth {split}")
        records = [ImageRecord(Path(p), size, size, b, lab, image_id=i + 1) for i, p, b, lab in sorted(results)]
        write_coco(folder / "annotations.json", records, classes, image_root=folder / "images")
        if preset == "bananas":
            write_banana(folder, records)
        doc[split] = {"coco": f"{folder.name}/annotations.json", "images": f"{folder.name}/images"}
    yaml_path = clear_for_writing(out / "dataset.yaml")
    yaml_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return yaml_path


def _run(jobs: list, workers: int, progress: bool, desc: str) -> list:
    if workers <= 1:
        return [_write_one(j) for j in show_progress(jobs, desc, len(jobs), progress, "images")]
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(workers, initializer=_load_photos) as pool:
        return list(show_progress(pool.imap_unordered(_write_one, jobs, chunksize=8), desc, len(jobs), progress,
                                  "images"))
