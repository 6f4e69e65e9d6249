"""``detector train``, ``detector eval``, ``detector predict`` and ``detector export``.

    detector train --model tiny_ssd_plus --data data/shapes --epochs 60 --out runs/shapes
    detector eval --weights runs/shapes/best.pt --data data/shapes --out runs/shapes/eval
    detector eval --data data/shapes --predictions preds.json
    detector predict --weights models/tinyssd-shapes.pt photos/ more/*.jpg --out runs/predict
    detector export --weights runs/shapes/best.pt --out models/tinyssd-shapes.pt --half
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from detector.checkpoint import CheckpointError
from detector.cli_common import fail, relaunch, report_done
from detector.data.records import DataError


def cmd_train(args: argparse.Namespace) -> int:
    from detector.train import TrainConfig, TrainingError, train

    status = relaunch(args, "detector.train", 1)
    if status is not None:
        return status
    try:
        model_kwargs = json.loads(args.model_kwargs) if args.model_kwargs else {}
    except json.JSONDecodeError as e:
        return fail(f"--model-kwargs is not JSON: {e}", 2)
    if args.backbone or args.freeze_stages:
        if args.model not in ("resnet_ssd", "faster_rcnn"):
            return fail(f"--backbone and --freeze-stages need --model resnet_ssd or faster_rcnn, not {args.model}", 2)
        model_kwargs.update({"backbone": args.backbone or "resnet18", "freeze_stages": args.freeze_stages})
    cfg = TrainConfig(model=args.model, data=args.data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      img_size=args.img_size, device=args.device, amp=args.amp, compile=args.compile,
                      workers=args.workers, seed=args.seed, resume=args.resume, out=args.out,
                      eval_every=args.eval_every, data_path=args.data_path, skip_invalid=args.skip_invalid,
                      model_kwargs=model_kwargs, pretrained=args.pretrained, sync_bn=args.sync_bn,
                      command="detector " + shlex.join(args.argv))
    try:
        metrics = train(cfg)
    except KeyboardInterrupt:
        return 130
    except (DataError, CheckpointError, TrainingError, ValueError) as e:
        return fail(str(e))
    if metrics:
        report_done(args, f"val AP {metrics['AP']:.4f}, AP50 {metrics['AP50']:.4f}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from detector.data.check import prepare_split
    from detector.engine import TrainingError, resolve_device
    from detector.evaluate import coco_evaluate, confusion_matrix, format_table, predict_records
    from detector.models import load_detector
    from detector.plots import plot_confusion, plot_pr_curves

    if not args.weights and not args.predictions:
        return fail("give --weights (a checkpoint to run) or --predictions (a COCO results JSON)", 2)
    try:
        data, records = prepare_split(args.data, args.split, "skip" if args.skip_invalid else "refuse",
                                      log=lambda s: print(s, file=sys.stderr))
        category_ids = data.category_ids or list(range(1, len(data.classes) + 1))
        if args.predictions:
            from detector.data.coco import load_json

            results = load_json(Path(args.predictions))
            if not isinstance(results, list):
                return fail(f"{args.predictions}: expected a JSON list of COCO results")
        else:
            device = resolve_device(args.device)
            model, ckpt = load_detector(args.weights, device)
            if ckpt["classes"] != data.classes:
                return fail(f"{args.weights} was trained on classes {ckpt['classes']}, the data has {data.classes}")
            results = predict_records(model, records, ckpt["img_size"], category_ids, device, args.batch_size, args.workers)
        metrics, ev = coco_evaluate(records, data.classes, category_ids, results)
    except (DataError, CheckpointError, TrainingError, ValueError, OSError) as e:
        return fail(str(e))
    print(format_table(metrics))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "metrics.json", "w") as f:
            json.dump(metrics, f, indent=2)
        if ev is not None:
            plot_pr_curves(ev, data.classes, out)
        plot_confusion(confusion_matrix(records, results, category_ids), data.classes, out / "confusion_matrix.png")
        print(f"wrote {out / 'metrics.json'}, PR curves and the confusion matrix")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from detector.engine import TrainingError, resolve_device
    from detector.models import load_detector
    from detector.predict import expand_inputs, predict_paths, set_nms_threshold

    try:
        paths = expand_inputs(args.inputs)
        device = resolve_device(args.device)
        model, ckpt = load_detector(args.weights, device)
    except (FileNotFoundError, CheckpointError, TrainingError) as e:
        return fail(str(e))
    set_nms_threshold(model, args.iou)
    results, errors = predict_paths(model, ckpt, paths, Path(args.out), args.conf, device)
    for e in errors:
        print(f"skipped: {e}", file=sys.stderr)
    print(f"{len(results)} detections in {len(paths) - len(errors)} images; drawn images and predictions.json in {args.out}")
    return 1 if errors else 0


def cmd_export(args: argparse.Namespace) -> int:
    from detector.checkpoint import load_checkpoint, save_checkpoint

    try:
        ckpt = load_checkpoint(args.weights)
    except CheckpointError as e:
        return fail(str(e))
    keep = ("model_name", "model_kwargs", "classes", "category_ids", "img_size", "command", "epoch", "metrics", "data")
    small = {k: ckpt[k] for k in keep if k in ckpt}
    small["model"] = {k: v.half() if args.half and v.is_floating_point() else v for k, v in ckpt["model"].items()}
    save_checkpoint(small, args.out)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 2**20:.2f} MiB)")
    if args.card:
        try:
            card = model_card(args.weights, args.out, ckpt, args.test_data, args.device, args.trained_on)
            card["notes"] = args.note or []
        except (DataError, CheckpointError, ValueError, OSError) as e:
            return fail(str(e))
        card_path = Path(args.out).with_suffix(".json")
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        print(f"wrote the model card {card_path}")
    return 0


def _split_sizes(path: str) -> dict:
    from detector.data.dataset import load_dataset

    try:
        data = load_dataset(path)
    except (DataError, OSError):
        return {}
    return {f"{name}_images": len(records) for name, records in data.splits.items()}


def model_card(weights: str, exported: str, ckpt: dict, test_data: str | None, device: str = "cpu",
               trained_on: str | None = None) -> dict:
    """What a user needs to trust a shipped model: how it was trained (command, data and its generator seeds,
    epochs, wall time, device) and its metrics on held-out data, measured on the exported (shipped) weights."""
    import csv
    import platform

    import torch
    import yaml

    from detector.data.check import prepare_split
    from detector.evaluate import coco_evaluate, predict_records
    from detector.models import load_detector

    run = Path(weights).parent
    csv_path = run / "results.csv"
    rows = list(csv.DictReader(csv_path.read_text().splitlines())) if csv_path.exists() else []
    data_yaml = Path(ckpt.get("data", ""))
    data_yaml = data_yaml / "dataset.yaml" if data_yaml.is_dir() else data_yaml
    data_info = yaml.safe_load(data_yaml.read_text()) if data_yaml.suffix == ".yaml" and data_yaml.exists() else {}
    card = {
        "model": Path(exported).name, "model_name": ckpt["model_name"], "model_kwargs": ckpt.get("model_kwargs", {}),
        "classes": ckpt["classes"], "img_size": ckpt["img_size"], "command": ckpt.get("command", ""),
        "train_config": {k: v for k, v in ckpt.get("config", {}).items() if k not in ("resume", "command")},
        "data": {"path": str(ckpt.get("data", "")), "generator": {k: data_info.get(k) for k in ("preset", "seed", "size")},
                 **_split_sizes(ckpt.get("data", ""))},
        "epochs": ckpt.get("epoch", -1) + 1,
        "wall_time_s": round(sum(float(r["epoch_s"]) for r in rows), 1),
        "train_images_per_s": round(sum(float(r["images_per_s"]) for r in rows) / max(len(rows), 1), 1),
        "device": ckpt.get("device") or trained_on or "not recorded", "host": platform.processor() or platform.machine(),
        "torch": torch.__version__, "val_metrics_during_training": ckpt.get("metrics", {}),
    }
    if test_data:
        model, shipped = load_detector(exported, device)
        data, records = prepare_split(test_data, "val", log=lambda s: None)
        cat_ids = data.category_ids or list(range(1, len(data.classes) + 1))
        metrics, _ = coco_evaluate(records, data.classes, cat_ids,
                                   predict_records(model, records, shipped["img_size"], cat_ids, device))
        test_yaml = Path(test_data) / "dataset.yaml" if Path(test_data).is_dir() else Path(test_data)
        test_info = yaml.safe_load(test_yaml.read_text()) if test_yaml.suffix == ".yaml" else {}
        card["test"] = {"data": str(test_data), "images": len(records),
                        "generator": {k: test_info.get(k) for k in ("preset", "seed", "size")}, "metrics": metrics}
    return card


def add_model_parsers(sub: argparse._SubParsersAction) -> None:
    from detector.models import MODELS

    p = sub.add_parser("train", help="train a detector")
    p.add_argument("--model", default="tiny_ssd_plus", choices=sorted(MODELS))
    p.add_argument("--data", default="data/shapes", help="a data set (see `detector data check`)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--img-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (fp16 with loss scaling where bf16 is missing)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", help="a last.pt to continue from (model, data and schedule come from it)")
    p.add_argument("--out", default="runs/train")
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--data-path", default="auto", choices=("auto", "loader", "device"))
    p.add_argument("--skip-invalid", action="store_true", help="drop invalid boxes and images (reported)")
    p.add_argument("--devices", type=int, default=1, help="DDP over this many GPUs (or CPU processes) of this node, "
                   "through torchrun; --batch-size stays the global batch")
    p.add_argument("--sync-bn", action="store_true", help="with DDP on GPUs: BatchNorm over the global batch")
    p.add_argument("--model-kwargs", help='JSON of model hyper-parameters, e.g. \'{"cls_loss": "focal"}\'')
    p.add_argument("--backbone", help="resnet_ssd: resnet18/34/50 (the book's) or tv_resnet18/34/50 (torchvision's)")
    p.add_argument("--pretrained", help="resnet_ssd: a `detector classify train` checkpoint, a torchvision state dict, "
                   "or 'imagenet' (torchvision's weights from the torch hub cache)")
    p.add_argument("--freeze-stages", type=int, default=0, help="resnet_ssd: body parts kept fixed (1 = stem, ... 5)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="COCO mAP (pycocotools) of a checkpoint or of a predictions file")
    p.add_argument("--weights")
    p.add_argument("--predictions", help="COCO results JSON made elsewhere")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--out", help="folder for metrics.json, PR curves and the confusion matrix")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--skip-invalid", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="detect objects in images, draw them, write COCO results")
    p.add_argument("inputs", nargs="+", help="images, folders or globs")
    p.add_argument("--weights", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--conf", type=float, default=0.25)
    p.add_argument("--iou", type=float, default=0.45)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="a small checkpoint for shipping: weights and description only")
    p.add_argument("--weights", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--half", action="store_true", help="store weights in fp16 (loaded back as fp32)")
    p.add_argument("--card", action="store_true", help="also write the model card (OUT with .json)")
    p.add_argument("--test-data", help="held-out data set whose val split the card reports metrics on")
    p.add_argument("--device", default="cpu", help="where the card's evaluation runs")
    p.add_argument("--trained-on", help="the training device, for checkpoints that do not record it")
    p.add_argument("--note", action="append", help="a line for the card's notes (repeatable)")
    p.set_defaults(func=cmd_export)
