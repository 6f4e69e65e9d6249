"""The ``detector`` command.

    detector anchors --out anchors.png                      # the book's display_anchors on a photo
    detector anchors IMAGE --fmap 4 4 --sizes 0.15 --ratios 1 2 0.5 --out a.png
    detector data synth --out data/shapes                   # the default data set, generated
    detector data check data/shapes                         # see detector/cli/data.py for the data commands
    python -m detector train ...                            # the same (what torchrun runs for --devices N)

Only :func:`main` sees parsed arguments; every subcommand calls library functions with explicit values. The
library's errors (:class:`detector.core.errors.DetectorError`) become one line and their exit status here, in
one place; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detector import __version__
from detector.cli.classify import add_classify_parser
from detector.cli.common import add_max_pixels_argument, bounded_int, finite_positive
from detector.cli.data import add_data_parser
from detector.cli.demo import add_demo_parser
from detector.cli.model import add_model_parsers
from detector.cli.zoo import add_zoo_parser
from detector.core.errors import DetectorError, InputError, UsageError, cli_terms
from detector.core.progress import setup_cli_logging


def cmd_anchors(args: argparse.Namespace) -> int:
    """Draw the anchors of a ``fmap_h x fmap_w`` feature map over an image (the book's display_anchors)."""
    from detector.api import load_image
    from detector.api.book import anchors_picture

    if args.image is None:  # a real photograph that scikit-image ships: the book's cat
        from skimage import data

        image = data.chelsea()
    else:
        image = load_image(args.image, args.image, max_pixels=args.max_pixels)[0]
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise UsageError(f"--out {out}: end it in .png or .jpg (an image is written)")
    fh, fw = args.fmap
    drawn, count = anchors_picture(image, (fh, fw), args.sizes, args.ratios, labels=args.labels)
    k = len(args.sizes) + len(args.ratios) - 1
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        drawn.save(out)
    except OSError as e:
        raise InputError(f"--out {out}: cannot write there ({e.strerror or e}); choose a folder you can write to") \
            from None
    print(f"{count} anchors ({fh}x{fw} cells x {k} per cell) drawn on a {drawn.width}x{drawn.height} image: {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="detector", description="Object detection from D2L, production-grade.")
    parser.add_argument("--version", action="version", version=f"detector {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("anchors", help="draw anchor boxes over an image (the book's display_anchors)")
    p.add_argument("image", nargs="?", help="an image file (default: a photograph that scikit-image ships)")
    p.add_argument("--fmap", type=bounded_int(1, 1000), nargs=2, default=(4, 4), metavar=("H", "W"),
                   help="feature-map size (1-1000 cells a side, as the app)")
    p.add_argument("--sizes", type=finite_positive, nargs="+", default=[0.15], help="anchor sizes, fractions of the image")
    p.add_argument("--ratios", type=finite_positive, nargs="+", default=[1.0, 2.0, 0.5], help="width/height ratios")
    p.add_argument("--labels", action="store_true", help="write size and ratio on each anchor")
    p.add_argument("--out", default="anchors.png", help="output PNG")
    add_max_pixels_argument(p)
    p.set_defaults(func=cmd_anchors)

    add_data_parser(sub)
    add_model_parsers(sub)
    add_zoo_parser(sub)
    add_classify_parser(sub)

    add_demo_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # for --devices, which relaunches the same command under torchrun
    setup_cli_logging()
    try:
        with cli_terms():  # messages name settings as flags (--img-size 5), not keywords
            return args.func(args)
    except DetectorError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
