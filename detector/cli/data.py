"""``detector data ...``: check, convert, synth and show data sets.

    detector data synth --out data/shapes                  # the default data set (no download)
    detector data check data/shapes                        # summary and every problem; exit 1 on errors
    detector data convert data/shapes --to yolo --out data/shapes-yolo
    detector data show data/shapes --out runs/show         # a few augmented images with their boxes
"""

from __future__ import annotations

import argparse
import os

from detector.cli.common import (
    add_max_pixels_argument,
    bounded_int,
    count,
    positive_int,
)
from detector.core.progress import plural


def cmd_check(args: argparse.Namespace) -> int:
    from detector.api.data import check_data

    report = check_data(args.path, max_pixels=args.max_pixels, decode=not args.headers_only, workers=args.workers,
                        progress=True)
    print(f"{report.source}: {len(report.classes)} classes: {', '.join(report.classes)}")
    for s in report.splits:
        print(f"[{s.name}] {plural(s.images, 'image')}, {plural(s.boxes, 'box', 'boxes')}, "
              f"{plural(s.images_without_boxes, 'image')} without boxes")
        print("  per class: " + ", ".join(f"{c} {n}" for c, n in s.per_class.items()))
        print("  sizes (COCO area ranges): " + ", ".join(f"{k} {v}" for k, v in s.sizes.items()))
        if s.clipped_boxes or s.dropped_boxes or s.dropped_images:
            print(f"  {s.clipped_boxes} boxes would be clipped; {s.dropped_boxes} boxes and "
                  f"{s.dropped_images} images would be dropped")
    if report.problems:
        print(f"{len(report.problems)} problems ({report.errors} errors, {len(report.problems) - report.errors} "
              "fixed by clipping):")
        for p in report.problems:
            print(f"  {p}")
    else:
        print("no problems found")
    return 1 if report.errors else 0


def cmd_convert(args: argparse.Namespace) -> int:
    from detector.api.data import convert_data

    done = convert_data(args.src, args.to, args.out, link=args.link, skip_invalid=args.skip_invalid,
                        max_pixels=args.max_pixels)
    counts = ", ".join(f"{s} {n} images" for s, n in done.images.items())
    print(f"wrote {args.to} ({counts}) under {args.out}; read it back with --data {done.target}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from detector.api.data import synth_data

    path, train, val = synth_data(args.out, args.preset, args.train, args.val, args.seed, args.size, args.workers,
                                  progress=True, exist_ok=args.exist_ok)
    print(f"wrote {args.preset}: {train} train and {val} val images; use --data {path}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from detector.api.data import show_data

    written = show_data(args.path, args.out, split=args.split, num=args.num, size=args.size, seed=args.seed,
                        augment=not args.no_augment)
    print(f"wrote {len(written)} images to {args.out}" + ("" if args.no_augment else " (train augmentation)"))
    return 0


def cmd_negatives(args: argparse.Namespace) -> int:
    from detector.api.data import make_negatives

    done = make_negatives(args.source, args.out, count=args.count, split=args.split, seed=args.seed,
                          exist_ok=args.exist_ok)
    for line in done.lines():
        print(line)
    return 0


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

