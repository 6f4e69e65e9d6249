"""The settings of the modes that use a trained model, on the same :func:`~detector.engine.config.opt`
mechanism as training's: ``detector predict`` / ``Detector.predict`` (:class:`PredictConfig`), ``detector eval`` /
``Detector.val`` (:class:`EvalConfig`) and ``detector export`` / ``Detector.export`` (:class:`ExportConfig`). The
CLI's flags are generated from their fields; the API's keywords are their fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from detector.core.errors import setting
from detector.core.thresholds import CONF, MAX_DET
from detector.data.images import MAX_PIXELS
from detector.engine.config import ConfigError, check_fields, check_flags, opt


@dataclass
class PredictConfig:
    """``detector predict``, ``Detector.predict`` and the app: which detections are reported. The settings left
    at None are the model's own (its NMS IoU, its maximum detections, its input size)."""

    conf: float | None = opt(None, f"keep detections scoring at least this (default: the model's own, else {CONF})")
    iou: float | None = opt(None, "NMS IoU threshold (default: the model's own)")
    max_det: int | None = opt(None, f"at most this many detections per image (1-{MAX_DET}), the best after --classes "
                              "(default: the model's own)")
    classes: list[str] | None = opt(None, "keep only detections of these classes", nargs="+", metavar="NAME")  # noqa: RUF009
    img_size: int | None = opt(None, "the model's input size (default: its own)")
    max_pixels: int = opt(MAX_PIXELS, "refuse images with more pixels (width x height), read from the header "
                          "before decoding")
    max_frames: int | None = opt(None, "videos: refuse one of more frames than this (default: no limit)")
    vid_stride: int = opt(1, "videos: detect in every Nth frame (the video written holds those frames, at 1/N of "
                          "the frame rate; for slower models)")
    skip_bad_frames: bool = opt(False, "videos: keep the frames that decode when others fail (a warning), instead "
                                "of an error")

    def check(self) -> None:
        if isinstance(self.classes, str):
            self.classes = [self.classes]  # one name
        if self.classes is not None and not (isinstance(self.classes, (list, tuple)) and
                                             all(isinstance(c, str) for c in self.classes)):
            raise ConfigError(f"{setting('classes', self.classes)}: must be class names (text)")
        check_flags(conf=self.conf, iou=self.iou, max_det=self.max_det, img_size=self.img_size,
                    max_pixels=self.max_pixels, max_frames=self.max_frames, vid_stride=self.vid_stride)
        check_fields(self)

    def post(self) -> dict:
        """The model's postprocess settings of a call (the contract's ``post``): only those given."""
        return {k: v for k, v in (("nms_threshold", self.iou), ("max_detections", self.max_det)) if v is not None}


@dataclass
class EvalConfig:
    """``detector eval`` and ``Detector.val``: which split is scored, how it is read, where the plots go."""

    data: str = opt("", "the ground truth: a data set, or one COCO annotation file (with --predictions, no images "
                    "are needed)", required=True)
    split: str | None = opt(None, "the split to score (default: all of a lone COCO file, else val)")
    out: str | None = opt(None, "folder for metrics.json, PR curves and the confusion matrix")
    batch_size: int = opt(32, "images per model call")
    workers: int = opt(2, "DataLoader worker processes")
    skip_invalid: bool = opt(False, "drop invalid boxes and images (reported) instead of refusing the data")
    max_pixels: int = opt(MAX_PIXELS, "refuse images with more pixels (width x height), read from the header")
    negatives: str | None = opt(None, "a folder of images without the model's classes (subfolders too): the share of "
                                "them with a detection at or above each threshold (false alarms) is reported too")

    def check(self) -> None:
        check_fields(self)
        check_flags(batch_size=self.batch_size, workers=self.workers, max_pixels=self.max_pixels)


@dataclass
class ExportConfig:
    """``detector export`` and ``Detector.export``: the file written, its format and its card."""

    out: str = opt("", "a .pt or .pth file, or a .onnx file (--format onnx)", required=True)
    format: str | None = opt(None, "pt: a PyTorch checkpoint; onnx: the network and its postprocess (decode, "
                             "thresholds, top-k, NMS) in one ONNX graph, run by predict, eval and the app with "
                             "onnxruntime (default: from --out's suffix)", choices=("pt", "onnx"))
    img_size: int | None = opt(None, "onnx: the graph's fixed input size (default: the checkpoint's)")
    dynamic_batch: bool = opt(False, "onnx: any batch size (without it the graph takes batch 1; predict, eval and "
                              "the app then run it one image at a time)")
    half: bool = opt(False, "store weights in fp16 (computed in fp32: a .pt is loaded back as fp32, an .onnx casts "
                     "them in the graph)")
    card: bool = opt(False, "also write the model card (OUT with .json)")
    conf: float | None = opt(None, "the model's own score threshold, kept in the file: where predict, the app and "
                             "/detect start (default: the checkpoint's, else 0.25)")
    test_data: str | None = opt(None, "held-out data set whose val split the card reports metrics on")
    negatives: str | None = opt(None, "a folder of images without the model's classes: the card states the share "
                                "of them it fires on (false alarms; with --card)")
    device: str = opt("cpu", "where the card's evaluation runs")
    trained_on: str | None = opt(None, "the training device, for checkpoints that do not record it")
    note: list[str] | None = opt(None, "a line for the card's notes (repeatable)", action="append")  # noqa: RUF009

    def check(self) -> None:
        if isinstance(self.note, str):
            self.note = [self.note]  # one line
        check_fields(self)
        check_flags(img_size=self.img_size, device=self.device, conf=self.conf)
