"""``detector classify train`` and ``detector classify eval``: the book's classification networks.

    detector classify train --model resnet18 --data data/shapes --epochs 10 --out runs/cls-resnet18
    detector classify eval --weights runs/cls-resnet18/best.pt --data data/shapes
"""

from __future__ import annotations

import argparse

from detector.api.settings import ClassifyConfig
from detector.cli.common import add_config_arguments, add_devices_argument, run_training


def cmd_classify_train(args: argparse.Namespace) -> int:
    from detector.api.classify import train_classifier

    return run_training(args, ClassifyConfig, train_classifier, lambda m: f"val top-1 {m['top1']:.4f}")


def cmd_classify_eval(args: argparse.Namespace) -> int:
    from detector.api.classify import evaluate_classifier

    m = evaluate_classifier(args.weights, args.data, device=args.device, workers=args.workers)
    print(f"top-1 {m['top1']:.4f} on {m['images']} images ({m['model']}, {m['img_size']} px)")
    return 0


def add_classify_parser(sub: argparse._SubParsersAction) -> None:
    cls = sub.add_parser("classify", help="train and evaluate the book's classification networks").add_subparsers(
        dest="classify_command", required=True)
    p = cls.add_parser("train", help="train a classifier (the pretrained backbones of the detectors)")
    add_config_arguments(p, ClassifyConfig)
    add_devices_argument(p)
    p.set_defaults(func=cmd_classify_train)

    p = cls.add_parser("eval", help="top-1 accuracy of a classifier checkpoint")
    p.add_argument("--weights", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=cmd_classify_eval)
