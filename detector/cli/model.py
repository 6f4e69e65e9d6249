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
import json
import sys
from pathlib import Path

from detector.cli.common import (
    add_config_arguments,
    add_devices_argument,
    make_out_folder,
    new_run_folder,
    run_training,
    settings_from_args,
)
from detector.core.errors import InputError, UsageError
from detector.core.files import write_atomic
from detector.core.progress import progress
from detector.engine.config import DEVICE_HELP, TrainConfig, check_flags
from detector.engine.modes import EvalConfig, ExportConfig, PredictConfig


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
    from detector.evaluation.predict import expand_inputs

    check_flags(device=args.device)
    det = Detector(args.weights, device=args.device)
    settings = settings_from_args(PredictConfig, args)
    det.predict_config(**settings)  # every setting checked before any output is made
    inputs = expand_inputs(args.inputs)  # and every input found
    if args.out:
        check_out_not_inputs(Path(args.out), inputs, args.inputs)
    out = Path(args.out) if args.out else new_run_folder(Path("runs/predict"))
    if (error := make_out_folder(out)) is not None:
        raise InputError(error)
    writer = PredictionWriter(out, args.save_txt, det)
    stream = det.predict(args.inputs, stream=True, errors="skip", batch=8, **settings)
    try:  # unreadable images are skipped, each said in a line ("skipped: ..."), the others go on
        for r in progress(stream, "predict", unit="images"):
            writer.add(r)
    finally:
        writer.close()
    errors = stream.skipped + writer.errors
    if writer.images or not writer.videos:
        labels = " and labels/ (YOLO txt)" if args.save_txt else ""
        print(f"{writer.detections} detections in {writer.images} images; wrote the drawn images, "
              f"predictions.json{labels} to {out}")
    return 1 if errors else 0


def check_out_not_inputs(out: Path, inputs: list[Path], given: list[str]) -> None:
    """``--out`` must not be where inputs are (their drawings, named as they are, would replace them) nor an
    input folder: a :class:`UsageError` naming the input."""
    target = out.resolve()
    for item in [*given, *map(str, inputs)]:
        p = Path(item)
        folder = p if p.is_dir() else p.parent
        if folder.resolve() == target:
            raise UsageError(f"--out {out} is where {item} is read from: its drawings would be written over the "
                             "inputs; choose another --out")


class PredictionWriter:
    """What ``detector predict`` writes as results stream in: each image drawn (``OUT/NAME.jpg``, names unique),
    ``OUT/predictions.json`` (COCO results naming their file and class), ``OUT/labels/NAME.txt`` (YOLO) with
    ``save_txt``, and each video as ``OUT/NAME.webm`` with ``OUT/NAME.json``."""

    def __init__(self, out: Path, save_txt: bool, det):
        from detector.evaluation.predict import OutputNames

        self.out, self.save_txt, self.det = out, save_txt, det
        self.name = OutputNames()
        self.results: list[dict] = []
        self.images = self.detections = 0
        self.video, self.video_path, self.videos, self.errors = None, None, 0, []
        if save_txt:
            (out / "labels").mkdir(exist_ok=True)

    def add(self, r) -> None:
        if r.frame is not None:
            self._add_frame(r)
            return
        self._end_video()
        stem = self.name(r.path or f"image{self.images + 1}")
        if r.path and stem != Path(r.path).stem:
            print(f"note: {r.path} is drawn as {stem}.jpg: an earlier input is also named {Path(r.path).stem}",
                  file=sys.stderr)
        r.save(self.out / f"{stem}.jpg")
        if self.save_txt:
            write_atomic(self.out / "labels" / f"{stem}.txt", "".join(line + "\n" for line in r.to_yolo()))
        self.images += 1
        self.detections += len(r)
        self.results += r.to_coco(image_id=self.images)

    def _add_frame(self, r) -> None:
        from detector.evaluation.video import VideoOutput

        if r.path != self.video_path:
            self._end_video()
            h, w = r.orig_shape
            self.video = VideoOutput(self.out / self.name(r.path), r.path, r.fps, w, h, r.names,
                                     r.category_ids)
            self.video_path = r.path
        self.video.add(r)

    def _end_video(self) -> None:
        if self.video is None:
            return
        s = self.video.close()
        self.videos += 1
        print(f"{self.video_path}: {s['objects']} detections in {s['frames']} frames ({s['width']}x{s['height']}, "
              f"{s['frames_per_s']} frames/s); wrote {s['video']} and {s['json']}")
        self.video = self.video_path = None

    def close(self) -> None:
        self._end_video()
        if self.images or not self.videos:
            write_atomic(self.out / "predictions.json", json.dumps(self.results))


def cmd_export(args: argparse.Namespace) -> int:
    from detector.api import export_model

    out = export_model(args.weights, **settings_from_args(ExportConfig, args))
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
