"""Data sets from a script, as ``detector data ...`` does them: check, convert, generate, look at, and background
crops for training against false alarms. Every function takes explicit values and returns what it did; the CLI
prints it.

    from detector.api.data import check_data, convert_data, synth_data, show_data, make_negatives
    report = check_data("data/shapes")                  # report.errors, report.splits, report.problems
    convert_data("data/shapes", to="yolo", out="data/shapes-yolo")
    synth_data("data/shapes", preset="shapes", train=1000, val=200)
    show_data("data/shapes", out="runs/show", num=8)
    make_negatives("data/raccoon", out="data/raccoon-negatives", count=100)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detector.core.errors import InputError, UsageError, setting
from detector.core.progress import plural
from detector.data.images import MAX_PIXELS
from detector.data.synth import PRESETS
from detector.engine.config import check_flags

EVAL_SPLITS = ("val", "test")  # splits make_negatives never crops


def _path(name: str, value) -> Path:
    """``value`` as a path, or a :class:`UsageError` naming the setting (a script can pass anything)."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise UsageError(f"{setting(name, value)}: give a path (text or a Path)")
    return Path(value)


def _whole(**values) -> None:
    """Whole numbers of at least the minimum each takes (:func:`check_flags`'s rules), or a :class:`UsageError`."""
    for name, value in values.items():
        if type(value) is not int:
            raise UsageError(f"{setting(name, value)}: must be a whole number")
    check_flags(**values)


def load_data(path: str | Path):
    """The data set at ``path`` (a COCO json, YOLO/project yaml, VOC root or banana folder): a missing path is a
    :class:`UsageError`, bad data a ``DataError`` (an :class:`InputError`)."""
    from detector.data.dataset import load_dataset

    path = _path("path", path)
    if not Path(path).exists():
        raise UsageError(f"{path}: no such file or folder")
    return load_dataset(path)


@dataclass
class SplitSummary:
    """One split's counts, as ``data check`` prints them."""

    name: str
    images: int
    boxes: int
    images_without_boxes: int
    per_class: dict[str, int]
    sizes: dict[str, int]  # boxes per COCO area range (small, medium, large)
    clipped_boxes: int = 0  # would be clipped into their image
    dropped_boxes: int = 0  # would be dropped (invalid)
    dropped_images: int = 0


@dataclass
class DataCheck:
    """What :func:`check_data` found: the classes, each split's counts, and every problem (``level`` "error", or
    "warning" for what clipping fixes)."""

    source: str
    classes: list[str]
    splits: list[SplitSummary] = field(default_factory=list)
    problems: list = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(p.level == "error" for p in self.problems)


def check_data(path: str | Path, *, max_pixels: int = MAX_PIXELS, decode: bool = True, workers: int = 1,
               progress: bool = False) -> DataCheck:
    """Every split of the data set at ``path`` checked: annotations, boxes, and each image's header (and, with
    ``decode``, the whole image, which finds truncated and corrupt files) in ``workers`` processes."""
    from detector.data.check import check_dataset, summarize

    _whole(max_pixels=max_pixels, workers=workers)
    data = load_data(path)
    reports = check_dataset(data, max_pixels=max_pixels, decode=decode, workers=workers, progress=progress)
    check = DataCheck(str(data.source), list(data.classes))
    for name, rep in reports.items():
        s = summarize(rep.records, data.classes)
        check.splits.append(SplitSummary(name, s["images"], s["boxes"], s["images_without_boxes"], s["per_class"],
                                         s["sizes"], rep.clipped_boxes, rep.dropped_boxes, rep.dropped_images))
        check.problems += rep.problems
    return check


@dataclass
class Converted:
    """What :func:`convert_data` wrote: the data set to read back (``--data``), and the images of each split."""

    target: Path
    images: dict[str, int]


def convert_data(src: str | Path, to: str, out: str | Path, *, link: bool = False, skip_invalid: bool = False,
                 max_pixels: int = MAX_PIXELS) -> Converted:
    """Write the data set ``src`` in the format ``to`` (coco, voc, yolo) under ``out`` (never inside the images
    it reads); images copied, or linked with ``link``."""
    from detector.data.check import prepare_split
    from detector.data.convert import TARGETS, check_no_overlap, convert_dataset, source_folders

    if to not in TARGETS:
        raise UsageError(f"{setting('to', to)}: choose one of {', '.join(TARGETS)}")
    out = _path("out", out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{setting('out', str(out))}: a file, not a folder; choose a folder for the data set")
    _whole(max_pixels=max_pixels)
    data = load_data(src)
    # before anything is written, and over every image (also those the check would drop)
    check_no_overlap(out, source_folders([r for rs in data.splits.values() for r in rs], src))
    policy = "skip" if skip_invalid else "refuse"
    splits = {s: prepare_split(src, s, policy, data=data, max_pixels=max_pixels)[1] for s in data.splits}
    target = convert_dataset(splits, data.classes, to, out, data.category_ids, link=link, source=src)
    return Converted(Path(target), {s: len(r) for s, r in splits.items()})


def synth_data(out: str | Path, preset: str = "shapes", train: int | None = None, val: int | None = None,
               seed: int = 0, size: int = 256, workers: int = 2, progress: bool = False,
               exist_ok: bool = False) -> tuple[Path, int, int]:
    """Generate a data set (``shapes``: five shapes on photographs; ``bananas``: the book's) under ``out``;
    ``(the file to train with, train images, val images)``. Defaults: 1000 train, 200 val (bananas 100)."""
    from detector.data.synth import synth_dataset

    if preset not in PRESETS:
        raise UsageError(f"{setting('preset', preset)}: choose one of {', '.join(PRESETS)}")
    train = 1000 if train is None else train
    val = (100 if preset == "bananas" else 200) if val is None else val
    path = synth_dataset(out, preset, train, val, seed, size, workers, progress=progress, exist_ok=exist_ok)
    return Path(path), train, val


def synth_sample(index: int, split: str = "val", seed: int = 0, preset: str = "shapes",
                 size: int = 256) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One generated image, as :func:`synth_data` makes it: ``(RGB image, boxes [N, 4] xyxy, class names)``."""
    from detector.data.synth import SHAPES, render

    image, boxes, labels = render(seed, split, index, preset, size)
    names = [SHAPES[c] for c in labels] if preset == "shapes" else ["banana"] * len(labels)
    return image, boxes, names


def show_data(path: str | Path, out: str | Path, *, split: str = "train", num: int = 8, size: int = 256,
              seed: int = 0, augment: bool = True) -> list[Path]:
    """Write ``num`` images of a split with their boxes drawn, after the training augmentation (or the eval
    preset without ``augment``), to ``out`` (never inside the images); the files written."""
    from PIL import Image

    from detector.data.check import prepare_split
    from detector.data.convert import check_no_overlap, source_folders
    from detector.data.images import clear_for_writing
    from detector.data.loader import DetectionDataset
    from detector.evaluation.draw import class_colors, draw_boxes

    _whole(num=num, size=size, seed=seed)
    if not 32 <= size <= 4096:
        raise UsageError(f"{setting('size', size)}: the model's input side, 32-4096 pixels")
    data, records = prepare_split(path, split, "skip", data=load_data(path))
    out = _path("out", out)
    check_no_overlap(out, source_folders(records, path))
    dataset = DetectionDataset(records, size, train=augment, seed=seed)
    folder = _make_folder(Path(out))
    written = []
    for i in range(min(num, len(dataset))):
        image, target = dataset[i]
        labels = target["labels"].tolist()
        drawn = draw_boxes(Image.fromarray(image.permute(1, 2, 0).numpy()), target["boxes"].numpy(),
                           [data.classes[k] for k in labels], class_colors(labels))
        p = clear_for_writing(folder / f"{i:03d}_{Path(records[i].path).stem}.png")
        drawn.save(p)
        written.append(p)
    return written


def _make_folder(path: Path) -> Path:
    """Make the folder ``path`` (with its parents), or an :class:`InputError` saying why it cannot be."""
    import os

    flag = setting("out", str(path))
    if path.is_symlink() and not path.exists():
        raise InputError(f"{flag}: a broken symbolic link (to {os.readlink(path)}); remove it or choose another "
                         "folder")
    if path.exists() and not path.is_dir():
        raise InputError(f"{flag}: a file, not a folder; choose a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{flag}: cannot write there ({e.strerror or e}); choose a folder you can write to") from None
    return path


@dataclass
class Negatives:
    """What :func:`make_negatives` wrote: how many crops of how many asked, and the photographs passed over."""

    out: Path
    written: int
    asked: int
    unreadable: list[str]
    too_small: list[str]
    classes: list[str]

    def lines(self) -> list[str]:
        """What was done, a line each, as ``detector data negatives`` prints it."""
        from detector.data.negatives import MIN_SOURCE_SIDE, name_some

        said = []
        if self.unreadable:
            said.append(f"skipped {plural(len(self.unreadable), 'photograph')} that could not be decoded: "
                        f"{name_some(self.unreadable)}")
        if self.too_small:
            said.append(f"skipped {plural(len(self.too_small), 'photograph')} under {MIN_SOURCE_SIDE} pixels on a "
                        f"side: {name_some(self.too_small)}")
        short = "" if self.written == self.asked else (
            f" (only {self.written} of the {self.asked} asked: few regions of these photographs are free of boxes)")
        said.append(f"wrote {plural(self.written, 'background crop')} (no object of {', '.join(self.classes)}) to "
                    f"{self.out}{short}; train with {setting('negatives', str(self.out))}")
        return said


def make_negatives(source: str | Path, out: str | Path, *, count: int = 300, split: str = "train", seed: int = 0,
                   exist_ok: bool = False) -> Negatives:
    """Background crops (``count`` at most) of the photographs of ``source``'s ``split`` that overlap none of its
    boxes (not even those dropped as invalid), written to ``out`` (a new folder outside every folder the data set
    reads) for ``train(negatives=out)``. Val and test are refused: their crops would leak them into training."""
    from detector.data.check import prepare_split
    from detector.data.convert import check_no_overlap, source_folders
    from detector.data.negatives import MIN_SOURCE_SIDE, avoidance_boxes, write_background_crops

    _whole(count=count, seed=seed)
    out = _path("out", out) if str(out).strip() else out
    data = load_data(source)
    if split not in data.splits:
        raise UsageError(f"{setting('split', split)}: {source} has the splits {', '.join(data.splits)}")
    if split in EVAL_SPLITS:
        raise UsageError(f"{setting('split', split)}: crops of the split you evaluate on would leak it into "
                         "training; crop the train split")
    if not str(out).strip():
        raise UsageError(f"{setting('out', str(out))}: give a new folder for the crops")
    raw_boxes = {str(r.path): np.array(r.boxes, copy=True) for r in data.split(split)}  # before invalid ones go
    _outside(out, source)
    check_no_overlap(out, source_folders([r for s in data.splits for r in data.split(s)], source))
    folder = Path(out)
    if folder.is_dir() and any(folder.iterdir()) and not exist_ok:
        raise UsageError(f"{setting('out', str(out))} is not empty; choose another folder, or pass "
                         f"{setting('exist_ok', True)} to write over it")
    _, records = prepare_split(source, split, "skip", data=data)
    if not records:
        raise InputError(f"{source} [{split}]: no usable photograph to crop (`detector data check {source}` says "
                         "why)")
    records = avoidance_boxes(raw_boxes, records)  # boxes dropped as invalid still mark objects to keep out
    created = not folder.exists()
    _make_folder(folder)
    try:
        report = write_background_crops(records, folder, count, seed)
    except OSError as e:  # a full disk, a read-only folder, a folder in the way
        raise InputError(f"{setting('out', str(out))}: cannot write {e.filename or 'there'} ({e.strerror or e}); "
                         "choose a folder you can write to (the crops written before it stay)") from None
    if report.written == 0:
        if created:
            folder.rmdir()
        if len(report.too_small) + len(report.unreadable) == len(records):
            raise InputError(f"{source} [{split}]: none of its {plural(len(records), 'photograph')} can be cropped "
                             f"(each is under {MIN_SOURCE_SIDE} pixels on a side or cannot be decoded)")
        raise InputError(f"{source} [{split}]: no crop free of boxes found in {report.tries} tries over "
                         f"{plural(len(records), 'photograph')}; every region holds an object, so this split "
                         f"cannot give background crops: use photographs of other scenes with {setting('negatives')}")
    return Negatives(folder, report.written, count, [str(p) for p in report.unreadable],
                     [str(p) for p in report.too_small], list(data.classes))


def _outside(out: str | Path, source: str | Path) -> None:
    """``out`` must not be (in) the source data set's folder."""
    src = Path(source).resolve()
    src = src if src.is_dir() else src.parent
    target = Path(out).resolve()
    if target == src or src in target.parents:
        raise UsageError(f"{setting('out', str(out))} is inside the data set {source}; choose a folder outside it")
