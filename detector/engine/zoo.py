"""Torchvision's COCO detectors as checkpoints of this project (the model zoo), and as the start of a fine-tuning.

    detector import torchvision:ssdlite320_mobilenet_v3_large --out models/ssdlite-coco.pt
    detector predict photo.jpg --weights torchvision:fasterrcnn_mobilenet_v3_large_320_fpn
    detector train --pretrained torchvision:ssdlite320_mobilenet_v3_large --data my-photos/

The weights come from torchvision's own weights API: the torch hub cache (``$TORCH_HOME/hub/checkpoints``), or a
download with a progress bar; or from a ``.pth`` state dict given as a file. Offline, without the file, one line
says which file to put where. The models are this project's (:mod:`detector.models.zoo_rcnn`,
:mod:`detector.models.zoo_ssd`): torchvision's weights copied into them. A checkpoint holds COCO's 80 classes
with their original category ids (torchvision's heads have 91 slots, background and the ids 1..90, ten unused:
``class_slots`` maps each class to its slot).
"""

from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from detector.core.errors import UsageError, in_cli, setting
from detector.engine.checkpoint import save_checkpoint
from detector.models.checkpoint import CheckpointError


@dataclass(frozen=True)
class ZooModel:
    builder: str  # torchvision.models.detection's function
    weights: str  # its weights enum
    model: str  # this project's model name
    box_ap: float  # torchvision's published COCO val2017 box AP (theirs, not measured here)
    size_mb: float  # the download


ZOO = {
    "torchvision:fasterrcnn_resnet50_fpn": ZooModel("fasterrcnn_resnet50_fpn", "FasterRCNN_ResNet50_FPN_Weights",
                                                    "faster_rcnn", 37.0, 159.7),
    "torchvision:fasterrcnn_resnet50_fpn_v2": ZooModel("fasterrcnn_resnet50_fpn_v2", "FasterRCNN_ResNet50_FPN_V2_Weights",
                                                       "faster_rcnn", 46.7, 167.1),
    "torchvision:fasterrcnn_mobilenet_v3_large_fpn": ZooModel("fasterrcnn_mobilenet_v3_large_fpn",
                                                              "FasterRCNN_MobileNet_V3_Large_FPN_Weights",
                                                              "faster_rcnn", 32.8, 74.2),
    "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn": ZooModel("fasterrcnn_mobilenet_v3_large_320_fpn",
                                                                  "FasterRCNN_MobileNet_V3_Large_320_FPN_Weights",
                                                                  "faster_rcnn", 22.8, 74.2),
    "torchvision:ssd300_vgg16": ZooModel("ssd300_vgg16", "SSD300_VGG16_Weights", "ssd300_vgg16", 25.1, 136.0),
    "torchvision:ssdlite320_mobilenet_v3_large": ZooModel("ssdlite320_mobilenet_v3_large",
                                                          "SSDLite320_MobileNet_V3_Large_Weights",
                                                          "ssdlite320_mobilenet_v3_large", 21.3, 13.4),
}
# the fresh parts of a fine-tuned zoo model: the class-specific predictors (an SSD's box head is class-agnostic)
FRESH = {"faster_rcnn": ("cls_score.", "bbox_pred."), "ssd300_vgg16": ("cls_heads.",),
         "ssdlite320_mobilenet_v3_large": ("cls_heads.",)}


def coco_classes(categories: list[str]) -> tuple[list[str], list[int]]:
    """torchvision's ``meta["categories"]`` (91 entries: background, then ids 1..90 with "N/A" gaps) ->
    COCO's 80 names and their category ids."""
    pairs = [(name, i) for i, name in enumerate(categories) if i > 0 and name != "N/A"]
    return [n for n, _ in pairs], [i for _, i in pairs]


def hub_folder() -> Path:
    """Where torchvision's weights API keeps its downloads."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def zoo_entry(name: str) -> ZooModel:
    if name not in ZOO:
        raise UsageError(f"unknown zoo model {name!r}; choose one of {', '.join(sorted(ZOO))}")
    return ZOO[name]


def _reachable(url: str, timeout: float = 10.0) -> bool:
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
    except Exception:  # noqa: BLE001 - offline, proxy, DNS: all mean it cannot be downloaded now
        return False
    return True


def _torchvision_model(name: str, weights_file: str | None):
    """``(weights enum member, torchvision's model with the COCO weights)``: from the hub cache, a download
    (torchvision shows its progress bar), or ``weights_file``."""
    import torchvision.models.detection as tvd

    entry = zoo_entry(name)
    weights = getattr(tvd, entry.weights).COCO_V1
    builder = getattr(tvd, entry.builder)
    if weights_file is None:
        file = hub_folder() / weights.url.rsplit("/", 1)[-1]
        if not file.is_file() and (os.environ.get("DETECTOR_OFFLINE") or not _reachable(weights.url)):
            how = (f"detector import torchvision:{entry.builder} --weights-file PATH --out model.pt" if in_cli() else
                   f"import_zoo('torchvision:{entry.builder}', 'model.pt', weights_file=PATH) "
                   "(detector.api.zoo), then Detector('model.pt')")
            raise CheckpointError(f"could not get torchvision's {entry.builder} weights (no network?): put "
                                  f"{file.name} in {file.parent} (from {weights.url}), or import a copy you have: "
                                  f"{how}")
        try:
            return weights, builder(weights=weights, weights_backbone=None)
        except Exception as e:  # noqa: BLE001 - a broken download or cache file: one line, naming it
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise CheckpointError(f"{file}: torchvision's {entry.builder} weights could not be loaded ({reason}); "
                                  "delete it to download it again") from None
    path = Path(weights_file).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{setting('weights_file', path)}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read is the same to the user
        raise CheckpointError(f"{path}: not a readable state dict ({str(e).splitlines()[0][:200]})") from None
    model = builder(weights=None, weights_backbone=None, num_classes=len(weights.meta["categories"]))
    try:
        model.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
    except Exception as e:  # noqa: BLE001 - wrong keys or shapes
        raise CheckpointError(f"{path}: not the weights of torchvision's {entry.builder} "
                              f"({str(e).strip().splitlines()[0][:200]})") from None
    return weights, model


def import_torchvision(name: str, out: str | Path, weights_file: str | None = None) -> dict:
    """Write ``out``, a checkpoint of this project holding torchvision's model ``name`` (a key of ``ZOO``)."""
    ckpt = zoo_checkpoint(name, weights_file)
    save_checkpoint(ckpt, out)
    return ckpt


def zoo_checkpoint(name: str, weights_file: str | None = None) -> dict:
    """A checkpoint (in memory) of this project holding torchvision's model ``name`` (a key of ``ZOO``), its
    weights from torchvision's weights API (or ``weights_file``); a :class:`CheckpointError` in one line
    offline."""
    entry = zoo_entry(name)
    weights, tv = _torchvision_model(name, weights_file)
    classes, ids = coco_classes(weights.meta["categories"])
    slots = [i - 1 for i in ids]
    if entry.model == "faster_rcnn":
        from detector.models.zoo_rcnn import from_torchvision

        v1 = entry.builder == "fasterrcnn_resnet50_fpn"
        mobile = "mobilenet" in entry.builder
        # as torchvision builds them around their COCO weights: FrozenBatchNorm2d bodies (v1's and MobileNet's),
        # the first body parts fixed
        model = from_torchvision(tv, class_slots=slots, frozen_bn=v1 or mobile, freeze_stages=3 if mobile else 2)
        img_size = model.min_size
    else:
        from detector.models.zoo_ssd import from_torchvision

        model = from_torchvision(tv, class_slots=slots)
        img_size = model.img_size
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in model.config.items() if k != "name"}
    return {"model": model.state_dict(), "model_name": entry.model, "model_kwargs": kwargs, "classes": classes,
            "category_ids": ids, "img_size": img_size, "epoch": -1, "command": f"detector import {name}",
            "metrics": {"coco_val2017_box_ap_torchvision": entry.box_ap / 100}, "source": weights.url}
