"""``detector data ...``: check, convert, synth and show data sets.

    detector data synth --out data/shapes                  # the default data set (no download)
    detector data check data/shapes                        # summary and every problem; exit 1 on errors
    detector data convert data/shapes --to yolo --out data/shapes-yolo
    detector data show data/shapes --out runs/show         # a few augmented images with their boxes
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from detector.cli.common import (
    add_max_pixels_argument,
    bounded_int,
    count,
    make_out_folder,
    positive_int,
)
from detector.core.errors import InputError, UsageError
from detector.core.progress import plural


def _load(path: str):
    """The data set at ``path``: a missing path is a usage error (exit 2), bad data a :class:`DataError` (exit 1)."""
    from detector.data.dataset import load_dataset

    if not Path(path).exists():
        raise UsageError(f"{path}: no such file or folder")
    return load_dataset(path)


def cmd_check(args: argparse.Namespace) -> int:
    from detector.data.check import check_dataset, summarize

    data = _load(args.path)
    reports = check_dataset(data, max_pixels=args.max_pixels, decode=not args.headers_only,
                            workers=args.workers, progress=True)
    print(f"{data.source}: {len(data.classes)} classes: {', '.join(data.classes)}")
    problems = []
    for name, rep in reports.items():
        s = summarize(rep.records, data.classes)
        print(f"[{name}] {plural(s['images'], 'image')}, {plural(s['boxes'], 'box', 'boxes')}, "
              f"{plural(s['images_without_boxes'], 'image')} without boxes")
        print("  per class: " + ", ".join(f"{c} {n}" for c, n in s["per_class"].items()))
        print("  sizes (COCO area ranges): " + ", ".join(f"{k} {v}" for k, v in s["sizes"].items()))
        if rep.clipped_boxes or rep.dropped_boxes or rep.dropped_images:
            print(f"  {rep.clipped_boxes} boxes would be clipped; {rep.dropped_boxes} boxes and "
                  f"{rep.dropped_images} images would be dropped")
        problems += rep.problems
    errors = sum(p.level == "error" for p in problems)
    if problems:
        print(f"{len(problems)} problems ({errors} errors, {len(problems) - errors} fixed by clipping):")
        for p in problems:
            print(f"  {p}")
    else:
        print("no problems found")
    return 1 if errors else 0


def cmd_convert(args: argparse.Namespace) -> int:
    from detector.data.check import prepare_split
    from detector.data.convert import check_no_overlap, convert_dataset, source_folders

    data = _load(args.src)
    # before anything is written, and over every image (also those the check would drop)
    check_no_overlap(args.out, source_folders([r for rs in data.splits.values() for r in rs], args.src))
    policy = "skip" if args.skip_invalid else "refuse"
    splits = {s: prepare_split(args.src, s, policy, data=data, max_pixels=args.max_pixels)[1] for s in data.splits}
    target = convert_dataset(splits, data.classes, args.to, args.out, data.category_ids, link=args.link,
                             source=args.src)
    counts = ", ".join(f"{s} {len(r)} images" for s, r in splits.items())
    print(f"wrote {args.to} ({counts}) under {args.out}; read it back with --data {target}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from detector.data.synth import synth_dataset

    train = 1000 if args.train is None else args.train
    val = (100 if args.preset == "bananas" else 200) if args.val is None else args.val
    path = synth_dataset(args.out, args.preset, train, val, args.seed, args.size, args.workers, progress=True,
                         exist_ok=args.exist_ok)
    print(f"wrote {args.preset}: {train} train and {val} val images; use --data {path}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from PIL import Image

    from detector.data.check import prepare_split
    from detector.data.convert import check_no_overlap, source_folders
    from detector.data.images import clear_for_writing
    from detector.data.loader import DetectionDataset
    from detector.evaluation.draw import class_colors, draw_boxes

    data, records = prepare_split(args.path, args.split, "skip", data=_load(args.path))
    check_no_overlap(args.out, source_folders(records, args.path))
    dataset = DetectionDataset(records, args.size, train=not args.no_augment, seed=args.seed)
    out = Path(args.out)
    if (error := make_out_folder(out)) is not None:
        raise InputError(error)
    for i in range(min(args.num, len(dataset))):
        image, target = dataset[i]
        labels = target["labels"].tolist()
        drawn = draw_boxes(Image.fromarray(image.permute(1, 2, 0).numpy()), target["boxes"].numpy(),
                           [data.classes[k] for k in labels], class_colors(labels))
        drawn.save(clear_for_writing(out / f"{i:03d}_{Path(records[i].path).stem}.png"))
    print(f"wrote {min(args.num, len(dataset))} images to {out}" + ("" if args.no_augment else " (train augmentation)"))
    return 0


EVAL_SPLITS = ("val", "test")  # splits data negatives never crops


def cmd_negatives(args: argparse.Namespace) -> int:
    import numpy as np

    from detector.data.check import prepare_split
    from detector.data.convert import check_no_overlap, source_folders
    from detector.data.negatives import MIN_SOURCE_SIDE, avoidance_boxes, name_some, write_background_crops

    data = _load(args.source)
    if args.split not in data.splits:
        raise UsageError(f"--split {args.split}: {args.source} has the splits {', '.join(data.splits)}")
    if args.split in EVAL_SPLITS:
        raise UsageError(f"--split {args.split}: crops of the split you evaluate on would leak it into training; "
                         "crop the train split")
    if not args.out.strip():
        raise UsageError("--out '': give a new folder for the crops")
    raw = data.split(args.split)
    raw_boxes = {str(r.path): np.array(r.boxes, copy=True) for r in raw}  # before invalid boxes are dropped
    check_no_overlap_with(args.out, args.source)
    every_split = [r for split in data.splits for r in data.split(split)]
    check_no_overlap(args.out, source_folders(every_split, args.source))
    out = Path(args.out)
    if out.is_dir() and any(out.iterdir()) and not args.exist_ok:
        raise UsageError(f"--out {out} is not empty; choose another folder, or pass --exist-ok to write over it")
    _, records = prepare_split(args.source, args.split, "skip", data=data)
    if not records:
        raise InputError(f"{args.source} [{args.split}]: no usable photograph to crop (`detector data check "
                         f"{args.source}` says why)")
    records = avoidance_boxes(raw_boxes, records)  # boxes dropped as invalid still mark objects to keep out of crops
    created = not out.exists()
    if (error := make_out_folder(out)) is not None:
        raise InputError(error)
    try:
        report = write_background_crops(records, out, args.count, args.seed)
    except OSError as e:  # a full disk, a read-only folder, a folder in the way
        what = e.filename or "there"
        raise InputError(f"--out {out}: cannot write {what} ({e.strerror or e}); choose a folder you can write to "
                         "(the crops written before it stay)") from None
    if report.unreadable:
        print(f"skipped {plural(len(report.unreadable), 'photograph')} that could not be decoded: "
              f"{name_some(report.unreadable)}")
    if report.too_small:
        print(f"skipped {plural(len(report.too_small), 'photograph')} under {MIN_SOURCE_SIDE} pixels on a side: "
              f"{name_some(report.too_small)}")
    if report.written == 0:
        if created:
            out.rmdir()
        if len(report.too_small) + len(report.unreadable) == len(records):
            raise InputError(f"{args.source} [{args.split}]: none of its {plural(len(records), 'photograph')} can "
                             f"be cropped (each is under {MIN_SOURCE_SIDE} pixels on a side or cannot be decoded)")
        raise InputError(f"{args.source} [{args.split}]: no crop free of boxes found in {report.tries} tries over "
                         f"{plural(len(records), 'photograph')}; every region holds an object, so this split "
                         "cannot give background crops: use photographs of other scenes with train --negatives")
    short = "" if report.written == args.count else (
        f" (only {report.written} of the {args.count} asked: few regions of these photographs are free of boxes)")
    print(f"wrote {plural(report.written, 'background crop')} (no object of {', '.join(data.classes)}) to "
          f"{args.out}{short}; train with --negatives {args.out}")
    return 0


def check_no_overlap_with(out: str, source: str) -> None:
    """``--out`` must not be (in) the source data set's folder."""
    src = Path(source).resolve()
    src = src if src.is_dir() else src.parent
    target = Path(out).resolve()
    if target == src or src in target.parents:
        raise UsageError(f"--out {out} is inside the data set {source}; choose a folder outside it")


def add_data_parser(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="check, convert, generate and look at data sets").add_subparsers(
        dest="data_command", required=True)

    p = data.add_parser("check", help="summary and problems of a data set; exit 1 if there are errors")
    p.add_argument("path", help="a data set: COCO json, YOLO/project yaml, VOC root or banana folder")
    p.add_argument("--workers", type=positive_int, default=os.cpu_count() or 1,
                   help="processes that decode the images (default: the CPU count, %(default)s here)")
    p.add_argument("--headers-only", action="store_true",
                   help="read only the image headers (sizes): fast, but truncated or corrupt images pass")
    add_max_pixels_argument(p)
    p.set_defaults(func=cmd_check)

    p = data.add_parser("convert", help="write a data set in another format")
    p.add_argument("src")
    p.add_argument("--to", required=True, choices=("coco", "voc", "yolo"))
    p.add_argument("--out", required=True)
    p.add_argument("--link", action="store_true", help="symlink images instead of copying them")
    p.add_argument("--skip-invalid", action="store_true", help="drop invalid boxes and images (reported) instead of refusing")
    add_max_pixels_argument(p)
    p.set_defaults(func=cmd_convert)

    p = data.add_parser("synth", help="generate the default data set")
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="shapes", choices=("shapes", "bananas"))
    p.add_argument("--train", type=count, default=None, help="train images (shapes 1000, bananas 1000)")
    p.add_argument("--val", type=count, default=None, help="val images (shapes 200, bananas 100)")
    p.add_argument("--seed", type=count, default=0, help="random seed (0 or more)")
    p.add_argument("--size", type=bounded_int(32, 4096), default=256, help="image side in pixels (32-4096)")
    p.add_argument("--workers", type=positive_int, default=2)
    p.add_argument("--exist-ok", action="store_true", help="write into a non-empty --out (its files of the same "
                   "names are replaced)")
    p.set_defaults(func=cmd_synth)

    p = data.add_parser("negatives", help="background crops (no object) of a data set's photographs, for "
                        "train --negatives")
    p.add_argument("source", help="the data set whose photographs are cropped")
    p.add_argument("--out", required=True, help="a new folder for the crops (not inside the data set)")
    p.add_argument("--count", type=bounded_int(1, 100_000), default=300, help="crops to write (1-100000, "
                   "default %(default)s)")
    p.add_argument("--split", default="train", help="the split whose photographs are cropped (default "
                   "%(default)s; val and test are refused: their crops would leak them into training)")
    p.add_argument("--seed", type=count, default=0, help="seed of the crop positions (0 or more, default %(default)s)")
    p.add_argument("--exist-ok", action="store_true", help="write into a non-empty --out (its crops of the same "
                   "names are replaced)")
    p.set_defaults(func=cmd_negatives)

    p = data.add_parser("show", help="write a few images with their boxes drawn, after augmentation")
    p.add_argument("path")
    p.add_argument("--out", required=True)
    p.add_argument("--split", default="train")
    p.add_argument("--num", type=positive_int, default=8)
    p.add_argument("--size", type=bounded_int(32, 4096), default=256, help="the model's input side (32-4096)")
    p.add_argument("--seed", type=count, default=0, help="random seed of the augmentation (0 or more)")
    p.add_argument("--no-augment", action="store_true", help="show the eval preset instead")
    p.set_defaults(func=cmd_show)

