"""torchvision's two COCO SSDs on this project's SSD (:mod:`detector.models.ssd`) and core: the SSD paper's
network (``ssd300_vgg16``: VGG16 with its L2-normed conv4_3, dilated fc6/fc7 and four extra layers) and
SSDlite (``ssdlite320_mobilenet_v3_large``: MobileNetV3-Large, four depthwise extra layers, depthwise heads).

    model = ssd300_vgg16(num_classes=20)                       # new: the paper's layout, for training
    model = from_torchvision(torchvision_ssd)                  # the same network with torchvision's weights

Their default boxes are the project's anchors (:class:`detector.core.anchors.MultiLevelAnchors`): per level the
sizes ``[s_k, sqrt(s_k * s_k+1)]`` and the ratios ``[1, a, 1/a, ...]`` of the SSD paper, with its two
extensions (centres every ``step`` of the input, widths and heights clipped to the image). Matching
(torchvision's SSDMatcher: :func:`detector.core.matching.match_ssd`), the offsets ((10, 10, 5, 5)), hard
negative mining and the per-class top-k postprocess are the core's, with torchvision's settings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.ops.misc import Conv2dNormActivation

from detector.models.ssd import SSD


class L2Norm(nn.Module):
    """The SSD paper's conv4_3 normalization: each position's channel vector to unit length, times a learned
    per-channel scale (20 at start)."""

    def __init__(self, channels: int, scale: float = 20.0):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x: Tensor) -> Tensor:
        return self.weight.view(1, -1, 1, 1) * F.normalize(x)  # (B, C, H, W)


def default_boxes(scales: Sequence[float], aspect_ratios: Sequence[Sequence[float]]) -> tuple[list, list]:
    """The SSD paper's default boxes as the book's sizes and ratios, per level: sizes ``[s_k, sqrt(s_k s_k+1)]``,
    ratios ``[1, a, 1/a for each a]`` (torchvision's ``DefaultBoxGenerator`` order)."""
    sizes = [[scales[k], math.sqrt(scales[k] * scales[k + 1])] for k in range(len(aspect_ratios))]
    ratios = [[1.0, *[r for a in level for r in (a, 1 / a)]] for level in aspect_ratios]
    return sizes, ratios


SSD300 = {  # torchvision's ssd300_vgg16, as this project's SSD keywords
    "img_size": 300, "resize": "bilinear", "image_mean": (0.48235, 0.45882, 0.40784), "image_std": (1 / 255,) * 3,
    "anchor_steps": [s / 300 for s in (8, 16, 32, 64, 100, 300)], "anchor_clip": True, "matcher": "ssd",
    "cls_loss": "hnm", "box_loss": "smooth_l1", "min_negatives": 0.0, "score_threshold": 0.01, "nms_threshold": 0.45,
    "pre_nms_top_k": 400, "max_detections": 200, "per_class_top_k": True, "clip_before_nms": True}
SSD300_SCALES, SSD300_RATIOS = (0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05), ([2], [2, 3], [2, 3], [2, 3], [2], [2])
SSDLITE = {  # torchvision's ssdlite320_mobilenet_v3_large
    "img_size": 320, "resize": "bilinear", "image_mean": (0.5, 0.5, 0.5), "image_std": (0.5, 0.5, 0.5),
    "anchor_clip": True, "matcher": "ssd", "cls_loss": "hnm", "box_loss": "smooth_l1", "min_negatives": 0.0,
    "score_threshold": 0.001, "nms_threshold": 0.55, "pre_nms_top_k": 300, "max_detections": 300,
    "per_class_top_k": True, "clip_before_nms": True, "head": "ssdlite"}
SSDLITE_SCALES = tuple(0.2 + 0.75 * k / 5 for k in range(6)) + (1.0,)  # min_ratio 0.2, max_ratio 0.95, then 1
SSDLITE_RATIOS = ([2, 3],) * 6


def vgg16_blocks() -> tuple[nn.ModuleList, list[int]]:
    """SSD300's six blocks: VGG16 to conv4_3 (the third max-pool with ceil mode), then pool4 to conv5_3 with
    pool5 (3x3, stride 1) and the dilated fc6 and fc7, then four extra layers (conv8_2 .. conv11_2)."""
    features = torchvision.models.vgg16(weights=None).features
    pools = [i for i, layer in enumerate(features) if isinstance(layer, nn.MaxPool2d)]
    features[pools[2]].ceil_mode = True
    fc = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(512, 1024, 3, padding=6, dilation=6),
                       nn.ReLU(inplace=True), nn.Conv2d(1024, 1024, 1), nn.ReLU(inplace=True))
    extra = [(1024, 256, 512, 2, 1), (512, 128, 256, 2, 1), (256, 128, 256, 1, 0), (256, 128, 256, 1, 0)]
    blocks = [nn.Sequential(*features[:pools[3]]), nn.Sequential(*features[pools[3]:-1], fc)]
    blocks += [nn.Sequential(nn.Conv2d(c_in, mid, 1), nn.ReLU(inplace=True),
                             nn.Conv2d(mid, c_out, 3, stride=stride, padding=pad), nn.ReLU(inplace=True))
               for c_in, mid, c_out, stride, pad in extra]
    return nn.ModuleList(blocks), [512, 1024, 512, 256, 256, 256]


def ssd300_vgg16(num_classes: int, **kwargs) -> SSD:
    """The SSD paper's SSD300 (torchvision's ``ssd300_vgg16`` layout); ``kwargs`` override its settings."""
    blocks, channels = vgg16_blocks()
    sizes, ratios = default_boxes(SSD300_SCALES, SSD300_RATIOS)
    norms = nn.ModuleList([L2Norm(512), *[nn.Identity() for _ in range(5)]])
    return SSD(num_classes, blocks, channels, level_norms=norms, **{"sizes": sizes, "ratios": ratios, **SSD300, **kwargs})


def mobilenet_blocks() -> tuple[nn.ModuleList, list[int]]:
    """SSDlite's six blocks: MobileNetV3-Large (reduced tail) up to the expansion of its last strided block
    (stride 16, 672 channels), the rest of it (stride 32, 480), then four extra blocks (1x1, depthwise 3x3
    stride 2, 1x1; ReLU6), all with BatchNorm at eps 0.001, momentum 0.03."""
    norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
    features = torchvision.models.mobilenet_v3_large(weights=None, norm_layer=norm, reduced_tail=True).features
    c4 = [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)][-1]  # 13
    blocks = [nn.Sequential(*features[:c4], features[c4].block[0]), nn.Sequential(features[c4].block[1:], *features[c4 + 1:])]
    channels = [features[c4].block[0].out_channels, features[-1].out_channels]  # 672, 480
    for c_out in (512, 256, 256, 128):
        mid = c_out // 2
        blocks.append(nn.Sequential(
            Conv2dNormActivation(channels[-1], mid, 1, norm_layer=norm, activation_layer=nn.ReLU6),
            Conv2dNormActivation(mid, mid, 3, stride=2, groups=mid, norm_layer=norm, activation_layer=nn.ReLU6),
            Conv2dNormActivation(mid, c_out, 1, norm_layer=norm, activation_layer=nn.ReLU6)))
        channels.append(c_out)
    return nn.ModuleList(blocks), channels


def ssdlite320_mobilenet_v3_large(num_classes: int, **kwargs) -> SSD:
    """SSDlite320 over MobileNetV3-Large (torchvision's layout); ``kwargs`` override its settings."""
    blocks, channels = mobilenet_blocks()
    sizes, ratios = default_boxes(SSDLITE_SCALES, SSDLITE_RATIOS)
    return SSD(num_classes, blocks, channels, **{"sizes": sizes, "ratios": ratios, **SSDLITE, **kwargs})


def copy_modules(pairs: list[tuple[nn.Module, nn.Module]]) -> None:
    """Copy each source module's tensors into its target, in order (the two name them differently)."""
    for i, (source, target) in enumerate(pairs):
        src = [v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")]
        dst = [v for k, v in target.state_dict().items() if not k.endswith("num_batches_tracked")]
        if len(src) != len(dst) or any(a.shape != b.shape for a, b in zip(src, dst)):
            raise ValueError(f"from_torchvision: part {i} ({type(source).__name__}) does not fit ({len(src)} tensors "
                             f"there, {len(dst)} here)")
        with torch.no_grad():
            for a, b in zip(src, dst):
                b.copy_(a)


def from_torchvision(tv_model: nn.Module, **kwargs) -> SSD:
    """Our SSD with the layout and every weight of torchvision's ``ssd300_vgg16`` or
    ``ssdlite320_mobilenet_v3_large``: in eval mode its detections are torchvision's (torchvision's label ``l``
    is our ``l - 1``, or the class whose ``class_slots`` entry is ``l - 1``). ``kwargs`` override keywords."""
    from torchvision.models.detection.ssd import SSD as TVSSD
    from torchvision.models.detection.ssd import SSDFeatureExtractorVGG
    from torchvision.models.detection.ssdlite import SSDLiteFeatureExtractorMobileNet

    if not isinstance(tv_model, TVSSD):
        raise ValueError(f"from_torchvision takes torchvision's ssd300_vgg16 or ssdlite320_mobilenet_v3_large, not "  # noqa: TRY004
                         f"{type(tv_model).__name__}")
    backbone, head = tv_model.backbone, tv_model.head
    slots = head.classification_head.num_columns - 1
    settings = {"score_threshold": tv_model.score_thresh, "nms_threshold": tv_model.nms_thresh,
                "max_detections": tv_model.detections_per_img, "pre_nms_top_k": tv_model.topk_candidates,
                "iou_threshold": tv_model.proposal_matcher.high_threshold, **kwargs}
    num_classes = len(settings.get("class_slots") or range(slots))
    if isinstance(backbone, SSDFeatureExtractorVGG):
        model, name = ssd300_vgg16(num_classes, **settings), "ssd300_vgg16"
        pairs = [(backbone.features, model.blocks[0]), *zip(backbone.extra, model.blocks[1:])]
        with torch.no_grad():
            model.level_norms[0].weight.copy_(backbone.scale_weight)
    elif isinstance(backbone, SSDLiteFeatureExtractorMobileNet):
        model, name = ssdlite320_mobilenet_v3_large(num_classes, **settings), "ssdlite320_mobilenet_v3_large"
        pairs = [*zip(backbone.features, model.blocks[:2]), *zip(backbone.extra, model.blocks[2:])]
    else:
        raise ValueError(f"from_torchvision: unknown SSD backbone {type(backbone).__name__}")  # noqa: TRY004
    if model.head_classes != slots:
        raise ValueError(f"from_torchvision: class_slots reach slot {model.head_classes - 1}, torchvision has {slots}")
    pairs += [(head.classification_head.module_list, model.cls_heads), (head.regression_head.module_list,
                                                                          model.box_heads)]
    copy_modules(pairs)
    model.config = {"name": name, **{k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}}
    return model.eval()
