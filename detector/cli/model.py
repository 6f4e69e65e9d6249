"""``detector train``, ``detector eval``, ``detector predict`` and ``detector export`` (a checkpoint or ONNX).

    detector train --model tiny_ssd_plus --data data/shapes --epochs 60 --out runs/shapes
    detector eval --weights runs/shapes/best.pt --data data/shapes --out runs/shapes/eval
    detector eval --data data/shapes --predictions preds.json
    detector predict --weights models/tinyssd-shapes.pt photos/ more/*.jpg --out runs/predict
    detector export --weights runs/shapes/best.pt --out models/tinyssd-shapes.pt --half
    detector export --weights runs/shapes/best.pt --format onnx --out models/tinyssd-shapes.onnx --dynamic-batch

The train flags come from :class:`detector.engine.config.TrainConfig`. Torch is imported inside the commands,
so ``detector --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from detector.cli.common import (
    add_config_arguments,
    add_devices_argument,
    add_max_pixels_argument,
    make_out_folder,
    new_run_folder,
    run_training,
)
from detector.core.errors import InputError, UsageError
from detector.data.images import ImageError
from detector.data.records import DataError
from detector.engine.config import ConfigError, TrainConfig, check_flags, check_img_size


def cmd_train(args: argparse.Namespace) -> int:
    from detector.engine.detect import train

    def backbone(cfg: TrainConfig) -> None:
        if args.backbone or args.freeze_stages:
            if cfg.model not in ("resnet_ssd", "faster_rcnn"):
                raise UsageError(f"--backbone and --freeze-stages need --model resnet_ssd or faster_rcnn, not {cfg.model}")
            cfg.model_kwargs.update({"backbone": args.backbone or "resnet18", "freeze_stages": args.freeze_stages})

    return run_training(args, TrainConfig, train, lambda m: f"val AP {m['AP']:.4f}, AP50 {m['AP50']:.4f}", backbone)


def _eval_split(args: argparse.Namespace) -> tuple[str, object, list]:
    """``(split, data, checked records)`` of ``--data``: ``--split``, or a lone COCO file whole, or ``val``.
    Scoring a predictions file needs no images where the annotations give the image sizes."""
    from detector.data.check import prepare_split
    from detector.data.dataset import load_dataset

    data = load_dataset(args.data)
    split = args.split
    if split is None:
        lone_coco = Path(args.data).suffix.lower() == ".json" and len(data.splits) == 1
        split = next(iter(data.splits)) if lone_coco else "val"
    data, records = prepare_split(args.data, split, "skip" if args.skip_invalid else "refuse",
                                  log=lambda s: print(s, file=sys.stderr), data=data, read_images=not args.predictions,
                                  max_pixels=args.max_pixels)
    return split, data, records


def cmd_eval(args: argparse.Namespace) -> int:
    from detector.data.records import default_category_ids
    from detector.engine.loop import resolve_device
    from detector.evaluation.coco import coco_evaluate, confusion_matrix, format_table
    from detector.evaluation.ground_truth import ground_truth
    from detector.evaluation.plots import plot_confusion, plot_pr_curves
    from detector.evaluation.predict import predict_records
    from detector.evaluation.results import read_results
    from detector.models.registry import load_detector

    if not args.weights and not args.predictions:
        raise UsageError("give --weights (a checkpoint to run) or --predictions (a COCO results JSON)")
    check_flags(device=args.device, batch_size=args.batch_size, workers=args.workers)
    if args.out and (error := make_out_folder(Path(args.out))) is not None:
        raise InputError(error)
    split, data, records = _eval_split(args)
    gt = ground_truth(data, split, records)
    category_ids = default_category_ids(data.classes, data.category_ids)
    if args.predictions:
        results = read_results(args.predictions)
    else:
        device = resolve_device(args.device)
        model, ckpt = load_detector(args.weights, device)
        if ckpt["classes"] != data.classes:
            raise DataError(f"{args.weights} was trained on classes {ckpt['classes']}, the data has {data.classes}")
        results = predict_records(model, records, category_ids, device, args.batch_size, args.workers,
                                  ids=[im["id"] for im in gt["images"]], max_pixels=args.max_pixels)
    metrics, ev = coco_evaluate(gt, data.classes, category_ids, results, source=args.predictions or args.weights)
    print(format_table(metrics))
    if args.out:
        out = Path(args.out)
        with open(out / "metrics.json", "w") as f:
            json.dump(metrics, f, indent=2)
        if ev is not None:
            plot_pr_curves(ev, data.classes, out)
        plot_confusion(confusion_matrix(gt, results, category_ids), data.classes, out / "confusion_matrix.png")
        print(f"wrote {out / 'metrics.json'}, PR curves and the confusion matrix")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from detector.engine.loop import resolve_device
    from detector.evaluation.predict import expand_inputs, output_stems, predict_paths
    from detector.evaluation.video import is_video
    from detector.models.registry import load_detector

    check_flags(device=args.device, conf=args.conf, iou=args.iou,
                **{k: v for k, v in (("max_det", args.max_det), ("img_size", args.img_size)) if v is not None})
    paths = expand_inputs(args.inputs)
    device = resolve_device(args.device)
    model, ckpt = load_detector(args.weights, device)
    if args.img_size is not None:
        check_img_size(ckpt["model_name"], args.img_size)
        if ckpt.get("format") == "onnx" and args.img_size != ckpt["img_size"]:
            raise ConfigError(f"--img-size {args.img_size}: {args.weights} takes {ckpt['img_size']} px, the size "
                              "it was exported at (export it again with --img-size to change it)")
    class_ids = class_indices(args.classes, ckpt["classes"]) if args.classes else None
    out = Path(args.out) if args.out else new_run_folder(Path("runs/predict"))
    if (error := make_out_folder(out)) is not None:
        raise InputError(error)
    post = {"nms_threshold": args.iou, "max_detections": args.max_det}
    videos, paths = [p for p in paths if is_video(p)], [p for p in paths if not is_video(p)]
    errors = predict_videos(model, {**ckpt, "size": args.img_size}, videos, out, args, post,
                            class_ids, device)
    for path, stem in zip(paths, output_stems(paths)):
        if stem != path.stem:
            print(f"note: {path} is drawn as {stem}.jpg: an earlier input is also named {path.stem}", file=sys.stderr)
    results, image_errors = [], []
    if paths or not videos:
        results, image_errors = predict_paths(model, ckpt, paths, out, args.conf, device, post=post,
                                              size=args.img_size, classes=class_ids, save_txt=args.save_txt,
                                              max_pixels=args.max_pixels)
    errors += image_errors
    for e in errors:
        print(f"skipped: {e}", file=sys.stderr)
    if paths:
        labels = " and labels/ (YOLO txt)" if args.save_txt else ""
        print(f"{len(results)} detections in {len(paths) - len(image_errors)} images; wrote the drawn images, "
              f"predictions.json{labels} to {out}")
    return 1 if errors else 0


def predict_videos(model, ckpt: dict, videos: list[Path], out: Path, args: argparse.Namespace, post: dict,
                   class_ids: list[int] | None, device) -> list[str]:
    """Each video drawn to ``OUT/NAME.webm`` with its per-frame ``OUT/NAME.json``; returns the errors."""
    from detector.evaluation.predict import output_stems
    from detector.evaluation.video import VideoError, detect_video

    errors = []
    for stem, video in zip(output_stems(videos), videos):
        try:
            r = detect_video(model, ckpt, video, out / stem, args.conf, post, device, max_pixels=args.max_pixels,
                             only=class_ids)
        except (VideoError, ImageError) as e:
            errors.append(str(e))
            continue
        print(f"{video}: {r['objects']} detections in {r['frames']} frames ({r['width']}x{r['height']}, "
              f"{r['frames_per_s']} frames/s); wrote {r['video']} and {r['json']}")
    return errors


def class_indices(names: list[str], classes: list[str]) -> list[int]:
    """``--classes`` names -> the model's class indices; a :class:`ConfigError` listing its classes otherwise."""
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise ConfigError(f"--classes {' '.join(unknown)}: not a class of this model; its classes: {', '.join(classes)}")
    return [classes.index(n) for n in names]


EXPORT_SUFFIXES = {"pt": (".pt", ".pth"), "onnx": (".onnx",)}  # --format -> what --out may end in


def export_format(args: argparse.Namespace) -> str:
    """``--format``, or the one ``--out``'s suffix names; a :class:`ConfigError` for flags that do not fit it."""
    suffix = Path(args.out).suffix.lower()
    fmt = args.format or next((f for f, s in EXPORT_SUFFIXES.items() if suffix in s), None)
    if fmt is None:
        raise ConfigError(f"--out {args.out}: end it in .pt or .pth (a PyTorch checkpoint) or .onnx (--format onnx)")
    if suffix not in EXPORT_SUFFIXES[fmt]:
        raise ConfigError(f"--out {args.out}: --format {fmt} writes a {' or '.join(EXPORT_SUFFIXES[fmt])} file")
    if fmt == "pt" and (args.img_size is not None or args.dynamic_batch):
        raise ConfigError("--img-size and --dynamic-batch apply to --format onnx; a checkpoint keeps its own")
    if args.img_size is not None:
        check_flags(img_size=args.img_size)
    return fmt


def cmd_export(args: argparse.Namespace) -> int:
    from detector.engine.export import export_checkpoint, model_card

    fmt = export_format(args)
    if fmt == "onnx":
        ckpt = export_onnx(args)
    else:
        ckpt = export_checkpoint(args.weights, args.out, args.half)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 2**20:.2f} MiB)")
    if args.card:
        card = model_card(args.weights, args.out, ckpt, args.test_data, args.device, args.trained_on)
        card["notes"] = args.note or []
        card_path = Path(args.out).with_suffix(".json")
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        print(f"wrote the model card {card_path}")
    return 0


def export_onnx(args: argparse.Namespace) -> dict:
    """``--format onnx``: the graph written to ``--out``; returns the source checkpoint (for the card)."""
    from detector.models.checkpoint import load_checkpoint
    from detector.models.onnx_backend import require

    require("onnx", "onnxscript", what="ONNX export")  # before torch's exporter is imported
    from detector.engine.onnx_export import export_onnx as export

    ckpt = load_checkpoint(args.weights)
    if args.img_size is not None:
        check_img_size(ckpt.get("model_name", ""), args.img_size)
    export(args.weights, args.out, args.img_size, args.dynamic_batch, args.half, log=lambda s: print(s, file=sys.stderr))
    return ckpt


def add_model_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a detector")
    add_config_arguments(p, TrainConfig)
    add_devices_argument(p)
    p.add_argument("--backbone", help="resnet_ssd/faster_rcnn: resnet18/34/50 (the book's) or tv_resnet18/34/50 "
                   "(torchvision's)")
    p.add_argument("--freeze-stages", type=int, default=0, help="resnet_ssd/faster_rcnn: body parts kept fixed "
                   "(1 = stem, ... 5)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="COCO mAP (pycocotools) of a checkpoint or of a predictions file")
    p.add_argument("--weights")
    p.add_argument("--predictions", help="COCO results JSON made elsewhere")
    p.add_argument("--data", required=True, help="the ground truth: a data set, or one COCO annotation file "
                   "(with --predictions, no images are needed)")
    p.add_argument("--split", help="the split to score (default: all of a lone COCO file, else val)")
    p.add_argument("--out", help="folder for metrics.json, PR curves and the confusion matrix")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--skip-invalid", action="store_true")
    add_max_pixels_argument(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="detect objects in images, draw them, write COCO results")
    p.add_argument("inputs", nargs="+", help="images, folders or globs")
    p.add_argument("--weights", required=True)
    p.add_argument("--out", help="the folder for the drawings, predictions.json and labels/ (default: a new "
                   "runs/predict, runs/predict2, ...)")
    p.add_argument("--conf", type=float, default=0.25, help="keep detections scoring at least this")
    p.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold")
    p.add_argument("--max-det", type=int, help="at most this many detections per image (default: the model's)")
    p.add_argument("--classes", nargs="+", metavar="NAME", help="keep only detections of these classes")
    p.add_argument("--img-size", type=int, help="the model's input size (default: the checkpoint's)")
    p.add_argument("--save-txt", action="store_true", help="also OUT/labels/NAME.txt per image, YOLO format: "
                   "class cx cy w h conf, normalized to the image")
    p.add_argument("--device", default="auto")
    add_max_pixels_argument(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="a model for shipping: a small checkpoint (weights and description only) or an "
                       "ONNX graph with its postprocess")
    p.add_argument("--weights", required=True)
    p.add_argument("--out", required=True, help="a .pt or .pth file, or a .onnx file (--format onnx)")
    p.add_argument("--format", choices=sorted(EXPORT_SUFFIXES), help="pt: a PyTorch checkpoint; onnx: the network "
                   "and its postprocess (decode, thresholds, top-k, NMS) in one ONNX graph, run by predict, eval and "
                   "the app with onnxruntime (default: from --out's suffix)")
    p.add_argument("--img-size", type=int, help="onnx: the graph's fixed input size (default: the checkpoint's)")
    p.add_argument("--dynamic-batch", action="store_true", help="onnx: any batch size (without it the graph takes "
                   "batch 1; predict, eval and the app then run it one image at a time)")
    p.add_argument("--half", action="store_true", help="store weights in fp16 (computed in fp32: a .pt is loaded back "
                   "as fp32, an .onnx casts them in the graph)")
    p.add_argument("--card", action="store_true", help="also write the model card (OUT with .json)")
    p.add_argument("--test-data", help="held-out data set whose val split the card reports metrics on")
    p.add_argument("--device", default="cpu", help="where the card's evaluation runs")
    p.add_argument("--trained-on", help="the training device, for checkpoints that do not record it")
    p.add_argument("--note", action="append", help="a line for the card's notes (repeatable)")
    p.set_defaults(func=cmd_export)
