"""``detector train``, ``detector eval``, ``detector predict`` and ``detector export``: thin layers over
:class:`detector.api.Detector`, with the same settings (:mod:`detector.engine.config`) and messages.

    detector train --model tiny_ssd_plus --data data/shapes --epochs 60 --out runs/shapes
    detector train --config recipes/tinyssd-shapes.yaml --epochs 5      # a recipe file; flags override it
    detector eval --weights runs/shapes/best.pt --data data/shapes --out runs/shapes/eval
    detector eval --data data/shapes --predictions preds.json
    detector predict --weights models/tinyssd-shapes.pt photos/ more/*.jpg clip.mp4 --out runs/predict
    detector export --weights runs/shapes/best.pt --out models/tinyssd-shapes.onnx --dynamic-batch

Torch is imported inside the commands, so ``detector --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from detector.api.settings import (
    DEVICE_HELP,
    EvalConfig,
    ExportConfig,
    PredictConfig,
    TrainConfig,
    check_flags,
)
from detector.cli.common import (
    add_config_arguments,
    add_devices_argument,
    new_run_folder,
    run_training,
    settings_from_args,
)
from detector.core.errors import UsageError
from detector.core.progress import progress


def cmd_train(args: argparse.Namespace) -> int:
    from detector.api import Detector

    def train(cfg: TrainConfig) -> dict:
        return Detector(cfg.model, device="cpu").train(config=cfg).to_dict()

    return run_training(args, TrainConfig, train, lambda m: f"val AP {m['AP']:.4f}, AP50 {m['AP50']:.4f}")


def cmd_eval(args: argparse.Namespace) -> int:
    from detector.api import Detector, evaluate

    settings = settings_from_args(EvalConfig, args)
    EvalConfig(**settings).check()  # the flags first, before anything is read
    if args.predictions and args.weights:
        raise UsageError("give --weights (a model to run) or --predictions (its results), not both")
    if args.predictions:
        metrics = evaluate(predictions=args.predictions, **settings)
    elif args.weights:
        check_flags(device=args.device)
        metrics = Detector(args.weights, device=args.device).val(**settings)
    else:
        raise UsageError("give --weights (a checkpoint to run) or --predictions (a COCO results JSON)")
    print(metrics.table())
    if args.out:
        print(f"wrote {Path(args.out) / 'metrics.json'}, PR curves and the confusion matrix")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from detector.api import Detector

    check_flags(device=args.device)
    det = Detector(args.weights, device=args.device)
    settings = settings_from_args(PredictConfig, args)
    det.predict_config(**settings)  # every setting checked before any output is made
    if args.out is not None and not args.out.strip():
        raise UsageError("--out '': give a folder for the drawings and predictions.json (or leave --out out for a "
                         "new runs/predict)")
    out = Path(args.out) if args.out else new_run_folder(Path("runs/predict"))
    stream = det.predict(args.inputs, stream=True, errors="skip", batch=8, out=out, save_txt=args.save_txt,
                         **settings)  # every input found, --out checked, before anything is written
    try:  # unreadable images are skipped, each said in a line ("skipped: ..."), the others go on
        for _ in progress(stream, "predict", unit="images"):
            pass
    finally:
        stream.close()
    writer = stream.writer
    if writer.images or not (writer.videos or stream.skipped):
        labels = " and labels/ (YOLO txt)" if args.save_txt else ""
        print(f"{writer.detections} detections in {writer.images} images; wrote the drawn images, "
              f"predictions.json{labels} to {out}")
    for v in writer.videos:
        print(f"{v.source}: {v.objects} detections in {v.frames} frames ({v.width}x{v.height}, "
              f"{v.frames_per_s} frames/s); wrote {v.video} and {v.json}")
    return 1 if stream.skipped else 0


def cmd_export(args: argparse.Namespace) -> int:
    from detector.api import Detector, export_model

    out = export_model(args.weights, load=Detector, **settings_from_args(ExportConfig, args))
    print(f"wrote {out} ({out.stat().st_size / 2**20:.2f} MiB)")
    if args.card:
        print(f"wrote the model card {out.with_suffix('.json')}")
    return 0


def add_model_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a detector")
    add_config_arguments(p, TrainConfig)
    add_devices_argument(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="COCO mAP (pycocotools) of a checkpoint or of a predictions file")
    p.add_argument("--weights", help="a checkpoint or .onnx file to run")
    p.add_argument("--predictions", help="COCO results JSON made elsewhere")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_config_arguments(p, EvalConfig)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="detect objects in images and videos, draw them, write COCO results")
    p.add_argument("inputs", nargs="+", help="images, folders, globs or videos")
    p.add_argument("--weights", required=True, help="a checkpoint, an .onnx file or torchvision:NAME")
    p.add_argument("--out", help="the folder for the drawings, predictions.json and labels/ (default: a new "
                   "runs/predict, runs/predict2, ...)")
    p.add_argument("--save-txt", action="store_true", help="also OUT/labels/NAME.txt per image, YOLO format: "
                   "class cx cy w h conf, normalized to the image")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_config_arguments(p, PredictConfig)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="a model for shipping: a small checkpoint (weights and description only) or an "
                       "ONNX graph with its postprocess")
    p.add_argument("--weights", required=True)
    add_config_arguments(p, ExportConfig)
    p.set_defaults(func=cmd_export)
