"""What a model is, typed: :class:`ModelInfo` (``Detector.info``), read from a checkpoint, an exported ``.onnx``
graph or the zoo, without the weights.

    det = Detector("models/tinyssd-shapes.pt")
    det.info.name, det.info.classes, det.info.img_size          # tiny_ssd_plus, [...], 256
    det.info.defaults                                           # InferenceDefaults(conf=0.25, iou=0.45, max_det=100)
    describe("models/tinyssd-raccoon.onnx").metrics             # without building the model

The inference defaults are the ones every surface starts from (``Detector.predict``, ``detector predict``, the
app's sliders and ``/detect``): the model's own score threshold where it has one (``conf`` in the checkpoint),
else the project's (:data:`~detector.core.thresholds.CONF`); its NMS IoU and its maximum detections (its
constructor's, ``post_defaults``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from detector.core.thresholds import CONF

FORMATS = ("new", "pt", "onnx")  # a registry name not trained yet, a checkpoint (zoo models too), an ONNX graph


@dataclass(frozen=True)
class InferenceDefaults:
    """A model's own settings for inference, where every surface starts."""

    conf: float = CONF  # the score a detection needs to be reported
    iou: float | None = None  # NMS IoU (None: not known before the model exists)
    max_det: int | None = None  # detections per image at most

    def as_dict(self) -> dict:
        return {"conf": self.conf, "iou": self.iou, "max_det": self.max_det}


@dataclass(frozen=True)
class ModelInfo:
    """A model's description: architecture, classes, input geometry, inference defaults, metrics, format."""

    name: str  # the architecture: a key of the model table (tiny_ssd_plus, faster_rcnn, ...)
    keywords: dict = field(default_factory=dict)  # the builder's keywords (model_kwargs)
    classes: list[str] = field(default_factory=list)  # what it detects: labels 0..C-1
    category_ids: list[int] = field(default_factory=list)  # the COCO category id of each class
    img_size: int | None = None  # its square input size in pixels
    letterbox: bool = False  # images fitted keeping their aspect ratio (padded), else squashed
    resize: str = "opencv"  # how images are resized to the input: OpenCV's area rule, or torchvision's bilinear
    defaults: InferenceDefaults = field(default_factory=InferenceDefaults)
    metrics: dict = field(default_factory=dict)  # what training (or its source) measured
    format: str = "new"  # one of FORMATS
    source: str = ""  # the file or name it came from
    epoch: int | None = None  # the last epoch trained (0-based; -1: imported)
    command: str = ""  # the command that made it
    dynamic_batch: bool = False  # an ONNX graph that takes any batch size

    @property
    def trained(self) -> bool:
        return self.format != "new"


def _int_or_none(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def info_from_checkpoint(ckpt: dict, source: str, model=None) -> ModelInfo:
    """A :class:`ModelInfo` of a checkpoint dict (or an ONNX graph's metadata, ``format: "onnx"``); ``model``: the
    model built from it, whose postprocess defaults (NMS IoU, maximum detections) are the inference defaults.
    Nothing of the weights is kept."""
    post = dict(getattr(model, "post_defaults", None) or ckpt.get("post_defaults") or {})
    classes = [str(c) for c in ckpt.get("classes", [])]
    ids = ckpt.get("category_ids") or list(range(1, len(classes) + 1))
    conf = ckpt.get("conf")
    defaults = InferenceDefaults(conf=float(conf) if isinstance(conf, (int, float)) else CONF,
                                 iou=float(post["nms_threshold"]) if "nms_threshold" in post else None,
                                 max_det=int(post["max_detections"]) if "max_detections" in post else None)
    img_size = getattr(model, "img_size", None) or ckpt.get("img_size")
    return ModelInfo(
        name=str(ckpt.get("model_name", "?")), keywords=dict(ckpt.get("model_kwargs") or {}), classes=classes,
        category_ids=[int(i) for i in ids], img_size=_int_or_none(img_size),
        letterbox=bool(ckpt.get("letterbox", False)),
        resize=str(getattr(model, "resize", None) or ckpt.get("resize") or "opencv"), defaults=defaults,
        metrics=dict(ckpt.get("metrics") or {}), format="onnx" if ckpt.get("format") == "onnx" else "pt",
        source=source, epoch=_int_or_none(ckpt.get("epoch")), command=str(ckpt.get("command", "")),
        dynamic_batch=bool(ckpt.get("dynamic_batch", False)))


def new_model_info(name: str, keywords: dict) -> ModelInfo:
    """The description of a new model of the table, before training: its name and keywords."""
    return ModelInfo(name=name, keywords=dict(keywords), source=name)


def describe(path: str | Path) -> ModelInfo:
    """The :class:`ModelInfo` of a checkpoint (``.pt``) or an exported ``.onnx`` graph, read without building the
    model (its inference defaults come from what the file records: an ONNX graph's, a checkpoint's ``conf``);
    a :class:`~detector.models.checkpoint.CheckpointError` naming the file when it is not one."""
    import os

    from detector.core.errors import UsageError

    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise UsageError(f"describe({path!r}): give the path of a .pt or .onnx file")
    if Path(path).suffix.lower() == ".onnx":
        from detector.models.registry import load_detector

        model, meta = load_detector(path)
        return info_from_checkpoint(meta, str(path), model)
    from detector.models.checkpoint import load_checkpoint

    return info_from_checkpoint(load_checkpoint(path), str(path))
