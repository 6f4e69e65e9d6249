"""``detector classify train`` and ``detector classify eval``: the book's classification networks.

    detector classify train --model resnet18 --data data/shapes --epochs 10 --out runs/cls-resnet18
    detector classify eval --weights runs/cls-resnet18/best.pt --data data/shapes
"""

from __future__ import annotations

import argparse
import json
import shlex

from detector.checkpoint import CheckpointError
from detector.cli_common import fail, relaunch, report_done
from detector.data.records import DataError


def cmd_classify_train(args: argparse.Namespace) -> int:
    from detector.classify import ClassifyConfig, train_classifier
    from detector.engine import TrainingError

    status = relaunch(args, "detector.classify", 2)
    if status is not None:
        return status
    try:
        kwargs = json.loads(args.model_kwargs) if args.model_kwargs else {}
    except json.JSONDecodeError as e:
        return fail(f"--model-kwargs is not JSON: {e}", 2)
    cfg = ClassifyConfig(model=args.model, data=args.data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         img_size=args.img_size, device=args.device, amp=args.amp, workers=args.workers, seed=args.seed,
                         resume=args.resume, out=args.out, eval_every=args.eval_every, pretrained=args.pretrained,
                         download=args.download, model_kwargs=kwargs, command="detector " + shlex.join(args.argv))
    try:
        metrics = train_classifier(cfg)
    except KeyboardInterrupt:
        return 130
    except (DataError, CheckpointError, TrainingError, ValueError, OSError) as e:
        return fail(str(e))
    if metrics:
        report_done(args, f"val top-1 {metrics['top1']:.4f}")
    return 0


def cmd_classify_eval(args: argparse.Namespace) -> int:
    from detector.classify import accuracy, load_classification, load_classifier
    from detector.engine import TrainingError, resolve_device

    try:
        device = resolve_device(args.device)
        model, ckpt = load_classifier(args.weights, device)
        classes, _, val = load_classification(args.data, ckpt["img_size"])
    except (DataError, CheckpointError, TrainingError, OSError) as e:
        return fail(str(e))
    if val is None:
        return fail(f"{args.data}: no val split to evaluate on")
    if classes != ckpt["classes"]:
        return fail(f"{args.weights} was trained on classes {ckpt['classes']}, the data has {classes}")
    m = accuracy(model, val, device, workers=args.workers)
    print(f"top-1 {m['top1']:.4f} on {m['images']} images ({ckpt['model_name']}, {ckpt['img_size']} px)")
    return 0


def add_classify_parser(sub: argparse._SubParsersAction) -> None:
    from detector.backbones import BACKBONES

    cls = sub.add_parser("classify", help="train and evaluate the book's classification networks").add_subparsers(
        dest="classify_command", required=True)
    p = cls.add_parser("train", help="train a classifier (the pretrained backbones of the detectors)")
    p.add_argument("--model", default="resnet18", choices=sorted(BACKBONES))
    p.add_argument("--data", default="data/shapes",
                   help="a detection data set (its box crops), an ImageFolder, fashion-mnist:ROOT or cifar10:ROOT")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", action="store_true")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume")
    p.add_argument("--out", default="runs/classify")
    p.add_argument("--eval-every", type=int, default=1)
    p.add_argument("--devices", type=int, default=1, help="DDP over this many GPUs (or CPU processes) of this node, "
                   "through torchrun; --batch-size stays the global batch")
    p.add_argument("--pretrained", help="a classifier checkpoint: its body starts this model, the head learns 10x faster")
    p.add_argument("--download", action="store_true", help="download Fashion-MNIST / CIFAR-10 when missing")
    p.add_argument("--model-kwargs", help='JSON, e.g. \'{"batch_norm": true}\' for LeNet')
    p.set_defaults(func=cmd_classify_train)

    p = cls.add_parser("eval", help="top-1 accuracy of a classifier checkpoint")
    p.add_argument("--weights", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=cmd_classify_eval)
