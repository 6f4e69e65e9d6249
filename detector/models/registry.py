"""The detector table: a plain dict from name to builder, and rebuilding a model from a checkpoint.

Every builder takes ``num_classes`` and keyword hyper-parameters, among them the model's input geometry
(``img_size``, ``letterbox``: see :mod:`detector.core.geometry`), and returns a module that honours
``detector.core.contract``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from detector.core.errors import UsageError, setting
from detector.models.checkpoint import CheckpointError, checkpoint_problem, load_checkpoint
from detector.models.faster_rcnn import faster_rcnn
from detector.models.onnx_backend import load_onnx_detector
from detector.models.resnet_ssd import resnet_ssd
from detector.models.tiny_ssd import tiny_ssd, tiny_ssd_plus
from detector.models.zoo_ssd import ssd300_vgg16, ssdlite320_mobilenet_v3_large

MODELS = {
    "tiny_ssd": tiny_ssd,  # the book's network, anchors and loss
    "tiny_ssd_plus": tiny_ssd_plus,  # the same network with small-object anchors, hard negative mining, smooth L1
    "resnet_ssd": resnet_ssd,  # the same heads and core on a ResNet body (model_kwargs: backbone, freeze_stages)
    "faster_rcnn": faster_rcnn,  # RPN + RoI heads on a ResNet or MobileNetV3 body, FPN by default (backbone, fpn, ...)
    "ssd300_vgg16": ssd300_vgg16,  # the SSD paper's SSD300 on VGG16 (torchvision's layout and settings)
    "ssdlite320_mobilenet_v3_large": ssdlite320_mobilenet_v3_large,  # SSDlite on MobileNetV3-Large (torchvision's)
}


def build_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    if name not in MODELS:
        raise UsageError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    try:
        return MODELS[name](num_classes, **kwargs)
    except TypeError as e:
        if "unexpected keyword argument" not in str(e):
            raise  # a bug, not the user's keywords
        bad = str(e).split("unexpected keyword argument")[-1].strip()
        raise UsageError(f"{setting('model_kwargs')}: {name} takes no keyword {bad}") from None
    except ValueError as e:  # the constructor's check of a keyword's value
        raise UsageError(f"{setting('model_kwargs')}: {name}: {e}") from None


def model_settings(ckpt: dict) -> dict:
    """The keywords that rebuild a checkpoint's model: its ``model_kwargs`` and its input geometry (``img_size``,
    ``letterbox``: kept beside them in the checkpoint, where older files also have them)."""
    geometry = {k: ckpt[k] for k in ("img_size", "letterbox") if k in ckpt}
    return {**geometry, **ckpt.get("model_kwargs", {})}


def load_detector(path: Path | str, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint describes, load its weights, put it in eval mode on ``device``. A ``.onnx``
    file (``detector export --format onnx``) gives an ONNX Runtime session behind the same contract, and its
    metadata in place of the checkpoint (:func:`detector.models.onnx_backend.load_onnx_detector`)."""
    if Path(path).suffix.lower() == ".onnx":
        return load_onnx_detector(path, device)
    return model_from_checkpoint(load_checkpoint(path), device, str(path))


def model_from_checkpoint(ckpt: dict, device: str | torch.device = "cpu", source: str = "checkpoint") -> tuple[nn.Module, dict]:
    """:func:`load_detector` of a checkpoint already in memory (``source`` names it in errors)."""
    if (problem := checkpoint_problem(ckpt)) is not None:
        raise CheckpointError(f"{source}: not a checkpoint this version can use ({problem})")
    try:
        model = build_model(ckpt["model_name"], len(ckpt["classes"]), **model_settings(ckpt))
        state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["model"].items()}  # fp16 files too
        model.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError, TypeError, AttributeError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise CheckpointError(f"{source}: does not describe a model this version can build ({reason})") from None
    # channels_last: the convolutions run about 2x faster on the CPU (measured on TinySSD), and no slower on a GPU
    return model.to(device, memory_format=torch.channels_last).eval(), ckpt
