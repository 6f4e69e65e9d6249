"""ResNet bodies for the detectors, and their pretrained weights.

:func:`resnet_body` gives ``Sequential(stem, stage1, stage2, stage3, stage4)`` with the channels at strides 8,
16 and 32: the book's ResNets (``resnet18/34/50``, which ``detector classify train`` trains) or torchvision's
layout (``tv_resnet18/34/50``, for its ImageNet weights). :class:`FrozenParts` keeps body parts fixed;
:func:`load_backbone` loads a classifier checkpoint or torchvision's state dict into a detector's body.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import torch
from torch import nn

from detector.core.errors import UsageError, setting
from detector.models.backbones import BACKBONES
from detector.models.checkpoint import CheckpointError, load_checkpoint

TORCHVISION_FILES = {"tv_resnet18": "resnet18-f37072fd.pth", "tv_resnet34": "resnet34-b627a593.pth",
                     "tv_resnet50": "resnet50-0676ba61.pth"}  # torchvision's ImageNet weights, as the hub caches them


def resnet_body(backbone: str, frozen_bn: bool = False) -> tuple[nn.Sequential, tuple[int, int, int]]:
    """``(Sequential(stem, stage1, stage2, stage3, stage4), channels at strides 8, 16, 32)``. ``frozen_bn``:
    torchvision's FrozenBatchNorm2d (fixed statistics and affine, as its detection backbones), tv_* only."""
    if frozen_bn and backbone not in TORCHVISION_FILES:
        raise ValueError(f"frozen_bn needs a torchvision backbone (tv_resnet18/34/50), not {backbone!r}")
    if backbone in ("resnet18", "resnet34", "resnet50"):
        net = BACKBONES[backbone](num_classes=1, in_channels=3)
        return net.features, net.stage_channels
    if backbone in TORCHVISION_FILES:
        import torchvision

        norm = torchvision.ops.FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
        tv = getattr(torchvision.models, backbone.removeprefix("tv_"))(weights=None, norm_layer=norm)
        body = nn.Sequential(nn.Sequential(tv.conv1, tv.bn1, tv.relu, tv.maxpool), tv.layer1, tv.layer2, tv.layer3, tv.layer4)
        e = 4 if backbone == "tv_resnet50" else 1
        return body, (128 * e, 256 * e, 512 * e)
    raise UsageError(f"{setting('backbone', backbone)}: unknown; choose one of resnet18/34/50, tv_resnet18/34/50 or "
                     "tv_mobilenet_v3_large (Faster R-CNN)")


MOBILENET_SPLITS = (0, 2, 4, 7, 13, 14, 17)  # MobileNetV3-Large's features cut into parts at its strides


def detection_body(backbone: str, frozen_bn: bool = False) -> tuple[nn.Sequential, list[int], list[int]]:
    """A detector's body in parts, with each part's output channels and stride: a ResNet (stem, stages 1-4:
    strides 4, 4, 8, 16, 32), or torchvision's MobileNetV3-Large (``tv_mobilenet_v3_large``: six parts at strides
    2, 4, 8, 16, 32, 32, cut where torchvision's detection extractor returns its maps; the last two are its FPN
    inputs). ``frozen_bn``: FrozenBatchNorm2d (torchvision's detection bodies) instead of BatchNorm2d."""
    if backbone == "tv_mobilenet_v3_large":
        import torchvision

        norm = torchvision.ops.FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
        features = torchvision.models.mobilenet_v3_large(weights=None, norm_layer=norm).features
        cuts = MOBILENET_SPLITS
        parts = nn.Sequential(*[nn.Sequential(*features[a:b]) for a, b in itertools.pairwise(cuts)])
        channels = [features[b - 1].out_channels for b in cuts[1:]]
        return parts, channels, [2, 4, 8, 16, 32, 32]
    body, (c3, c4, c5) = resnet_body(backbone, frozen_bn)
    return body, [64, c3 // 2, c3, c4, c5], [4, 4, 8, 16, 32]


class FrozenParts:
    """For models with a ResNet body: ``freeze(parts)`` stops those parts learning, and ``train()`` keeps them
    in eval mode, so their BatchNorm statistics stay as loaded."""

    def freeze(self, parts: list[nn.Module]) -> None:
        self._frozen = list(parts)
        for part in self._frozen:
            part.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        for part in getattr(self, "_frozen", []):
            part.eval()
        return self


def _torchvision_key(key: str) -> tuple[int, str] | None:
    """torchvision ResNet name -> (body part, name inside it); None for its classifier (``fc``)."""
    if key.startswith(("conv1.", "bn1.")):
        return 0, ("0." if key.startswith("conv1.") else "1.") + key.split(".", 1)[1]
    if key.startswith("layer"):
        stage, rest = key.split(".", 1)
        return int(stage.removeprefix("layer")), rest
    return None


def resolve_pretrained(path: str, backbone: str) -> Path:
    """``imagenet`` means torchvision's weights for ``backbone`` in the torch hub cache; anything else is a path."""
    if path != "imagenet":
        return Path(path).expanduser()
    if backbone not in TORCHVISION_FILES:
        raise CheckpointError(f"{setting('pretrained', 'imagenet')} needs a torchvision backbone (tv_resnet18/34/50), not {backbone}")
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    found = sorted(hub.glob(TORCHVISION_FILES[backbone].split("-")[0] + "-*.pth"))
    if not found:
        raise CheckpointError(f"no {TORCHVISION_FILES[backbone]} in {hub}: nothing is downloaded at run time; put "
                              "torchvision's ImageNet weights there (or pass the file's path)")
    return found[0]


def load_backbone(model: nn.Module, path: str) -> dict:
    """Load a pretrained body into ``model`` (any model with ``backbone`` and ``body_key``, e.g. ResNetSSD and
    FasterRCNN): a classifier checkpoint from ``detector classify train`` (for the
    book's ResNets) or torchvision's ImageNet state dict (for ``tv_*``). Shapes are checked; returns a report
    of what was loaded and what starts fresh."""
    file = resolve_pretrained(path, model.backbone)
    if model.backbone in TORCHVISION_FILES:
        try:
            source = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any failure to read is the same to the user
            raise CheckpointError(f"{file}: not a readable state dict ({str(e).splitlines()[0][:200]})") from None
        source = source.get("model", source) if isinstance(source, dict) else source
        mapped = {}
        for k, v in source.items():
            part = _torchvision_key(k)
            if part is not None:
                mapped[f"{model.body_key(part[0])}.{part[1]}"] = v
    else:
        ckpt = load_checkpoint(file)
        if ckpt.get("task") != "classify":
            raise CheckpointError(f"{file}: not a classifier checkpoint (made by `detector classify train`)")
        if ckpt.get("model_name") != model.backbone:
            raise CheckpointError(f"{file}: holds a {ckpt.get('model_name')}, the detector's backbone is {model.backbone}")
        mapped = {}
        for k, v in ckpt["model"].items():
            if k.startswith("features."):
                _, i, rest = k.split(".", 2)
                mapped[f"{model.body_key(int(i))}.{rest}"] = v
    target = model.state_dict()
    unknown = [k for k in mapped if k not in target]
    wrong = [f"{k}: {tuple(v.shape)} in the file, {tuple(target[k].shape)} here" for k, v in mapped.items()
             if k in target and v.shape != target[k].shape]
    if unknown or wrong:
        raise CheckpointError(f"{file}: does not fit the {model.backbone} body: " + "; ".join((wrong + unknown)[:5]))
    model.load_state_dict({**target, **{k: v.to(target[k].dtype) for k, v in mapped.items()}})
    body_keys = [k for k in target if k.startswith(tuple(model.body_key(i) + "." for i in range(5)))]
    return {"file": str(file), "loaded": len(mapped), "body_tensors": len(body_keys),
            "fresh": len(target) - len(mapped), "missing_in_body": [k for k in body_keys if k not in mapped]}
