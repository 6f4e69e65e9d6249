"""Torchvision's COCO detectors as checkpoints of this project (the model zoo).

    detector import torchvision:fasterrcnn_resnet50_fpn --out models/frcnn-r50-coco.pt
    detector import torchvision:fasterrcnn_resnet50_fpn_v2 --out models/frcnn-r50v2-coco.pt --weights-file f.pth

The weights come from torchvision's own weights API (its download, or the torch hub cache) or from a ``.pth``
state dict given as a file; :func:`detector.models.faster_rcnn.from_torchvision` copies them into our model.
The checkpoint holds COCO's 80 classes with their original category ids (torchvision's head has 90 slots, the
ids 1..90, ten of them unused: ``class_slots`` maps each class to its slot).
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import torch

from detector.core.errors import UsageError
from detector.engine.checkpoint import save_checkpoint
from detector.models.checkpoint import CheckpointError

ZOO = {  # name -> (torchvision builder, its weights enum)
    "torchvision:fasterrcnn_resnet50_fpn": ("fasterrcnn_resnet50_fpn", "FasterRCNN_ResNet50_FPN_Weights"),
    "torchvision:fasterrcnn_resnet50_fpn_v2": ("fasterrcnn_resnet50_fpn_v2", "FasterRCNN_ResNet50_FPN_V2_Weights"),
}


def coco_classes(categories: list[str]) -> tuple[list[str], list[int]]:
    """torchvision's ``meta["categories"]`` (91 entries: background, then ids 1..90 with "N/A" gaps) ->
    COCO's 80 names and their category ids."""
    pairs = [(name, i) for i, name in enumerate(categories) if i > 0 and name != "N/A"]
    return [n for n, _ in pairs], [i for _, i in pairs]


def _hub_folder() -> Path:
    return Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"


def _torchvision_model(name: str, weights_file: str | None):
    import torchvision.models.detection as tvd

    builder, enum = ZOO[name]
    weights = getattr(tvd, enum).COCO_V1
    if weights_file is None:
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # torch hub's "Downloading ..." before it fails
                return builder, weights, getattr(tvd, builder)(weights=weights, weights_backbone=None)
        except Exception:  # noqa: BLE001 - offline, proxy, disk: all mean the file is not there
            file = weights.url.rsplit("/", 1)[-1]
            raise CheckpointError(f"could not get torchvision's {builder} weights (no network?): put {file} in "
                                  f"{_hub_folder()} or pass --weights-file PATH ({weights.url})") from None
    path = Path(weights_file).expanduser()
    if not path.is_file():
        raise CheckpointError(f"--weights-file {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read is the same to the user
        raise CheckpointError(f"{path}: not a readable state dict ({str(e).splitlines()[0][:200]})") from None
    model = getattr(tvd, builder)(weights=None, weights_backbone=None, num_classes=len(weights.meta["categories"]))
    try:
        model.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
    except Exception as e:  # noqa: BLE001 - wrong keys or shapes
        raise CheckpointError(f"{path}: not the weights of torchvision's {builder} "
                              f"({str(e).strip().splitlines()[0][:200]})") from None
    return builder, weights, model


def import_torchvision(name: str, out: str | Path, weights_file: str | None = None) -> dict:
    """Write ``out``, a checkpoint of this project holding torchvision's model ``name`` (a key of ``ZOO``)."""
    ckpt = zoo_checkpoint(name, weights_file)
    save_checkpoint(ckpt, out)
    return ckpt


def zoo_checkpoint(name: str, weights_file: str | None = None) -> dict:
    """A checkpoint (in memory) of this project holding torchvision's model ``name`` (a key of ``ZOO``), its
    weights from torchvision's weights API (or ``weights_file``); a :class:`CheckpointError` in one line
    offline."""
    from detector.models.zoo_rcnn import from_torchvision

    if name not in ZOO:
        raise UsageError(f"unknown zoo model {name!r}; choose one of {', '.join(sorted(ZOO))}")
    builder, weights, tv = _torchvision_model(name, weights_file)
    classes, ids = coco_classes(weights.meta["categories"])
    v1 = builder == "fasterrcnn_resnet50_fpn"
    # as torchvision builds it around its COCO weights: v1's body in FrozenBatchNorm2d, stem and stage 1 fixed
    model = from_torchvision(tv, class_slots=[i - 1 for i in ids], frozen_bn=v1, freeze_stages=2)
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in model.config.items()}
    ckpt = {"model": model.state_dict(), "model_name": "faster_rcnn", "model_kwargs": kwargs, "classes": classes,
            "category_ids": ids, "img_size": model.min_size, "epoch": -1,
            "command": f"detector import {name}", "metrics": {"coco_val2017_box_ap_torchvision": weights.meta["_metrics"]
                                                             ["COCO-val2017"]["box_map"] / 100},
            "source": weights.url}
    return ckpt
