"""Evidence for the classification chapters as pretrained backbones.

    python experiments/pretrain_experiment.py table --data data/shapes                     # each network's recipe
    python experiments/pretrain_experiment.py table --data data/shapes --epochs 6 --img-size 64 --lr 1e-3 \
        --optimizer adamw                                                                  # the same for all
    python experiments/pretrain_experiment.py detect --data data/shapes --epochs 12         # pretrained vs scratch

``table``: for every network in ``detector.models.backbones.BACKBONES``: parameters, FLOPs of one forward pass at its
default input (the size the book trains it at), top-1 on the default classification set (the object crops
of ``--data``) and training images/s. Each network trains with its default recipe
(``detector.models.recipes``: optimizer, lr, schedule, epochs, input size); ``--epochs``, ``--img-size``,
``--lr``, ``--optimizer``, ``--momentum`` and ``--schedule`` override it for every network when given (an input
size below a network's minimum is raised to it).

``detect``: ``resnet_ssd`` with a ResNet-18 body, trained on ``--data`` twice with the same schedule and seed:
once from scratch, once from the ResNet-18 classifier trained on the same set's crops (``--pretrained``).
Prints both val APs. Everything runs through the CLI's own functions, so it measures what users run.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from detector.engine.classify import train_classifier
from detector.engine.config import ClassifyConfig, TrainConfig
from detector.engine.detect import train
from detector.models.backbones import BACKBONES, MIN_INPUT

DEFAULT_INPUT = {"lenet": 28, "alexnet": 224, "vgg11": 224, "nin": 224, "googlenet": 96, "resnet18": 96,
                 "resnet34": 96, "resnet50": 96, "densenet": 96}  # the sizes the book trains them at


def flops(net: torch.nn.Module, size: int) -> int:
    net.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.rand(1, 3, size, size))
    return counter.get_total_flops()


def table(args) -> list[dict]:
    rows = []
    for name in args.models or sorted(BACKBONES):
        given = {k: getattr(args, k) for k in ("epochs", "lr", "optimizer", "momentum", "schedule")
                 if getattr(args, k) is not None}
        if args.img_size is not None:
            given["img_size"] = max(args.img_size, MIN_INPUT.get(name, 0))  # AlexNet and NiN need a little more
        out = Path(args.out) / f"cls-{name}"
        t = time.perf_counter()
        if args.batch_size is not None:
            given["batch_size"] = args.batch_size
        cfg = ClassifyConfig(model=name, data=args.data, out=str(out), device=args.device, workers=args.workers,
                             amp=args.amp, **given)
        size = cfg.img_size
        metrics = train_classifier(cfg)
        with open(out / "results.csv") as f:
            speed = [float(r["images_per_s"]) for r in csv.DictReader(f)]  # one row an epoch
        net = BACKBONES[name](10, 3, **cfg.model_kwargs)  # the recipe's (VGG: the book's narrow one)
        rows.append({"network": name, "model_kwargs": cfg.model_kwargs,
                     "params_M": sum(p.numel() for p in net.parameters()) / 1e6,
                     "gflops_at_default_input": flops(net, DEFAULT_INPUT[name]) / 1e9, "default_input": DEFAULT_INPUT[name],
                     "top1": metrics.get("top1"), "img_size": size, "epochs": len(speed),
                     "train_images_per_s": sum(speed) / len(speed),
                     "wall_s": time.perf_counter() - t, "recipe": cfg.recipe_line()})
        print(json.dumps(rows[-1]))
    print("| network | params (M) | GFLOPs at its default input | top-1 | epochs | training images/s | wall time | "
          "recipe |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['network']} | {r['params_M']:.2f} | {r['gflops_at_default_input']:.3f} at {r['default_input']} px "
              f"| {r['top1']:.3f} | {r['epochs']} | {r['train_images_per_s']:.0f} at {r['img_size']} px | "
              f"{r['wall_s'] / 60:.1f} min | {r['recipe']} |")
    return rows


def detect(args) -> dict:
    cls_out = Path(args.out) / "cls-resnet18"
    if not (cls_out / "best.pt").exists():
        train_classifier(ClassifyConfig(model="resnet18", data=args.data, epochs=args.cls_epochs, img_size=args.img_size,
                                        out=str(cls_out), device=args.device, workers=args.workers, amp=args.amp))
    common = {"model": "resnet_ssd", "data": args.data, "epochs": args.epochs, "batch_size": args.batch_size,
              "device": args.device, "workers": args.workers, "amp": args.amp, "eval_every": args.epochs,
              "model_kwargs": {"backbone": "resnet18"}, "seed": 0}
    scratch = train(TrainConfig(**common, out=str(Path(args.out) / "det-scratch")))
    pre = train(TrainConfig(**common, out=str(Path(args.out) / "det-pretrained"), pretrained=str(cls_out / "best.pt")))
    result = {"scratch": {k: scratch[k] for k in ("AP", "AP50")}, "pretrained": {k: pre[k] for k in ("AP", "AP50")}}
    print(json.dumps(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("table", "detect"))
    parser.add_argument("--data", default="data/shapes")
    parser.add_argument("--epochs", type=int, help="table: default each network's recipe; detect: 5")
    parser.add_argument("--cls-epochs", type=int, default=10)
    parser.add_argument("--img-size", type=int, help="table: default each network's recipe; detect: 64")
    parser.add_argument("--lr", type=float, help="table: default each network's recipe")
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), help="table: default each network's recipe")
    parser.add_argument("--momentum", type=float, help="table: default each network's recipe")
    parser.add_argument("--schedule", choices=("constant", "cosine"), help="table: default each network's recipe")
    parser.add_argument("--batch-size", type=int, help="table: default the CLI's (64); detect: 32")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--out", default="runs/pretrain")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.what == "detect":
        args.epochs, args.img_size, args.batch_size = args.epochs or 5, args.img_size or 64, args.batch_size or 32
    result = table(args) if args.what == "table" else detect(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
