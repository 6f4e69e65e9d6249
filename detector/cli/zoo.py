"""``detector import``: torchvision's COCO detectors as checkpoints of this project.

    detector import torchvision:ssdlite320_mobilenet_v3_large --out models/ssdlite-coco.pt
    detector import torchvision:fasterrcnn_resnet50_fpn_v2 --out models/frcnn-r50v2-coco.pt --weights-file f.pth
"""

from __future__ import annotations

import argparse
from pathlib import Path

from detector.api.zoo import ZOO_NAMES


def cmd_import(args: argparse.Namespace) -> int:
    from detector.api.zoo import import_zoo

    info = import_zoo(args.name, args.out, args.weights_file)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 2**20:.1f} MiB): {info.command}, "
          f"{len(info.classes)} COCO classes")
    return 0


def add_zoo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="torchvision's COCO detectors (Faster R-CNN, SSD300, SSDlite) as checkpoints of "
                       "this project")
    p.add_argument("name", choices=ZOO_NAMES)
    p.add_argument("--out", required=True, help="the checkpoint to write (.pt or .pth)")
    p.add_argument("--weights-file", help="torchvision's downloaded .pth (default: its weights API: the torch hub "
                   "cache, or a download)")
    p.set_defaults(func=cmd_import)
