"""SSD over a ResNet body: the same heads, anchors and core as TinySSD, with the feature maps of a ResNet.

Levels: the body's stages at strides 8, 16 and 32, a down-sampling block (stride 64) and a global max pool,
the five levels of TinySSD (at 256 px: 32, 16, 8, 4 and 1 cells).

    model = resnet_ssd(5, backbone="resnet18")                 # the book's ResNet-18 body
    load_backbone(model, "runs/cls-resnet18/best.pt")          # a classifier from `detector classify train`
    model = resnet_ssd(5, backbone="tv_resnet50")              # torchvision's ResNet-50 layout
    load_backbone(model, "~/.cache/torch/hub/checkpoints/resnet50-0676ba61.pth")   # its ImageNet weights

Backbones: ``resnet18``, ``resnet34``, ``resnet50`` (``detector.models.backbones``, which ``detector classify train``
trains) and ``tv_resnet18``, ``tv_resnet34``, ``tv_resnet50`` (torchvision's, for its ImageNet weights).
"""

from __future__ import annotations

from torch import nn

from detector.models.resnet_body import FrozenParts, resnet_body
from detector.models.ssd import SMALL_OBJECT_SIZES, SSD, down_sample_blk

EXTRA_CHANNELS = 256  # the stride-64 block
BODY_PREFIX = {0: "blocks.0.0", 1: "blocks.0.1", 2: "blocks.0.2", 3: "blocks.1", 4: "blocks.2"}  # body part -> name here


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
