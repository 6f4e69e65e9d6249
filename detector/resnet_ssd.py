"""SSD over a ResNet body: the same heads, anchors and core as TinySSD, with the feature maps of a ResNet.

Levels: the body's stages at strides 8, 16 and 32, a down-sampling block (stride 64) and a global max pool,
the five levels of TinySSD (at 256 px: 32, 16, 8, 4 and 1 cells).

    model = resnet_ssd(5, backbone="resnet18")                 # the book's ResNet-18 body
    load_backbone(model, "runs/cls-resnet18/best.pt")          # a classifier from `detector classify train`
    model = resnet_ssd(5, backbone="tv_resnet50")              # torchvision's ResNet-50 layout
    load_backbone(model, "~/.cache/torch/hub/checkpoints/resnet50-0676ba61.pth")   # its ImageNet weights

Backbones: ``resnet18``, ``resnet34``, ``resnet50`` (``detector.backbones``, which ``detector classify train``
trains) and ``tv_resnet18``, ``tv_resnet34``, ``tv_resnet50`` (torchvision's, for its ImageNet weights).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from detector.backbones import BACKBONES
from detector.checkpoint import CheckpointError, load_checkpoint
from detector.tiny_ssd import SMALL_OBJECT_SIZES, SSD, down_sample_blk

EXTRA_CHANNELS = 256  # the stride-64 block
TORCHVISION_FILES = {"tv_resnet18": "resnet18-f37072fd.pth", "tv_resnet34": "resnet34-b627a593.pth",
                     "tv_resnet50": "resnet50-0676ba61.pth"}  # torchvision's ImageNet weights, as the hub caches them
BODY_PREFIX = {0: "blocks.0.0", 1: "blocks.0.1", 2: "blocks.0.2", 3: "blocks.1", 4: "blocks.2"}  # body part -> name here


def resnet_body(backbone: str) -> tuple[nn.Sequential, tuple[int, int, int]]:
    """``(Sequential(stem, stage1, stage2, stage3, stage4), channels at strides 8, 16, 32)``."""
    if backbone in ("resnet18", "resnet34", "resnet50"):
        net = BACKBONES[backbone](num_classes=1, in_channels=3)
        return net.features, net.stage_channels
    if backbone in TORCHVISION_FILES:
        import torchvision

        tv = getattr(torchvision.models, backbone.removeprefix("tv_"))(weights=None)
        body = nn.Sequential(nn.Sequential(tv.conv1, tv.bn1, tv.relu, tv.maxpool), tv.layer1, tv.layer2, tv.layer3, tv.layer4)
        e = 4 if backbone == "tv_resnet50" else 1
        return body, (128 * e, 256 * e, 512 * e)
    raise ValueError(f"unknown backbone {backbone!r}; choose one of resnet18/34/50 or tv_resnet18/34/50")


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


class ResNetSSD(FrozenParts, SSD):
    """SSD on a ResNet body. ``freeze_stages``: how many body parts stay fixed (1 = the stem, 2 = the stem and
    the first stage, ... 5 = the whole body); their BatchNorm statistics are frozen too."""

    def __init__(self, num_classes: int, backbone: str = "resnet18", freeze_stages: int = 0, **kwargs):
        body, (c3, c4, c5) = resnet_body(backbone)
        blocks = nn.ModuleList([nn.Sequential(body[0], body[1], body[2]), body[3], body[4],
                                down_sample_blk(c5, EXTRA_CHANNELS), nn.AdaptiveMaxPool2d((1, 1))])
        defaults = {"sizes": SMALL_OBJECT_SIZES, "cls_loss": "hnm", "box_loss": "smooth_l1"}
        super().__init__(num_classes, blocks, [c3, c4, c5, EXTRA_CHANNELS, EXTRA_CHANNELS], **{**defaults, **kwargs})
        if not 0 <= freeze_stages <= 5:
            raise ValueError(f"freeze_stages must be 0..5 (stem and four stages), got {freeze_stages}")
        self.backbone, self.freeze_stages = backbone, freeze_stages
        self.freeze([body[i] for i in range(freeze_stages)])

    @staticmethod
    def body_key(part: int) -> str:
        """The name prefix, in this model, of body part ``part`` (0 = stem, 1..4 = stages)."""
        return BODY_PREFIX[part]


def resnet_ssd(num_classes: int, **kwargs) -> ResNetSSD:
    return ResNetSSD(num_classes, **kwargs)


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
        raise CheckpointError(f"--pretrained imagenet needs a torchvision backbone (tv_resnet18/34/50), not {backbone}")
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
