"""torchvision's COCO Faster R-CNNs on this project's Faster R-CNN (:mod:`detector.models.faster_rcnn`):
``fasterrcnn_resnet50_fpn`` (v1 and v2) and the MobileNetV3-Large ones (``fasterrcnn_mobilenet_v3_large_fpn``,
``..._320_fpn``: the FPN on the body's two stride-32 maps, five anchor sizes per level, a 0.05 objectness
threshold in the RPN).

    model = from_torchvision(torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=...))
"""

from __future__ import annotations

import itertools

import torch
import torchvision
from torch import nn

from detector.models.faster_rcnn import FasterRCNN
from detector.models.resnet_body import MOBILENET_SPLITS

TORCHVISION_LAYOUT = {  # torchvision's fasterrcnn_resnet50_fpn (v1) as this model's keywords
    "backbone": "tv_resnet50", "anchor_sizes": (32, 64, 128, 256, 512), "rpn_pre_nms_top_n": (2000, 1000),
    "rpn_post_nms_top_n": (2000, 1000), "min_size": 800, "max_size": 1333, "size_divisible": 32,
    "frozen_bn": True, "fpn_from_stage": 1, "roi_levels": 4, "roi_aligned": False, "anchor_style": "torchvision"}
TORCHVISION_V2 = {"fpn_norm": True, "rpn_conv_depth": 2, "box_head_convs": 4, "box_head_fcs": 1}
TORCHVISION_MOBILENET = {  # fasterrcnn_mobilenet_v3_large(_320)_fpn: the FPN on its two stride-32 maps
    "backbone": "tv_mobilenet_v3_large", "anchor_sizes": ((32, 64, 128, 256, 512),) * 3, "frozen_bn": True,
    "fpn_from_stage": 4, "roi_levels": 2, "roi_aligned": False, "anchor_style": "torchvision", "size_divisible": 32}


def _copy_weights(source: nn.Module, target: nn.Module, name: str) -> None:
    """Copy ``source``'s state into ``target`` tensor by tensor, in order (the two name them differently)."""
    src, dst = list(source.state_dict().items()), list(target.state_dict().items())
    src = [(k, v) for k, v in src if not k.endswith("num_batches_tracked")]
    dst = [(k, v) for k, v in dst if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst) or any(a.shape != b.shape for (_, a), (_, b) in zip(src, dst)):
        raise ValueError(f"from_torchvision: the {name} does not fit ({len(src)} tensors there, {len(dst)} here)")
    with torch.no_grad():
        for (_, a), (_, b) in zip(src, dst):
            b.copy_(a)


def _body_parts(tv_model: nn.Module) -> tuple[str, list[nn.Module]]:
    """``(layout, torchvision's body cut as ours is)``: ResNet-50 (stem, layer1..4) or MobileNetV3-Large."""
    body = getattr(getattr(tv_model, "backbone", None), "body", None)
    if body is not None and hasattr(body, "layer1"):
        blocks = [len(getattr(body, f"layer{i}", [])) for i in range(1, 5)]
        if blocks == [3, 4, 6, 3] and hasattr(body.layer1[0], "conv3"):
            return "resnet50", [nn.Sequential(body.conv1, body.bn1)] + [getattr(body, f"layer{i}") for i in range(1, 5)]
    if body is not None and len(list(body.children())) == MOBILENET_SPLITS[-1]:
        features = list(body.children())
        if type(features[1]).__name__ == "InvertedResidual":
            return "mobilenet", [nn.Sequential(*features[a:b]) for a, b in itertools.pairwise(MOBILENET_SPLITS)]
    raise ValueError("from_torchvision takes torchvision's fasterrcnn_resnet50_fpn(_v2) or "
                     f"fasterrcnn_mobilenet_v3_large(_320)_fpn, not {type(tv_model).__name__} with this body")


def from_torchvision(tv_model: nn.Module, **kwargs) -> FasterRCNN:
    """Our FasterRCNN with the configuration and every weight of torchvision's ``fasterrcnn_resnet50_fpn``,
    ``fasterrcnn_resnet50_fpn_v2``, ``fasterrcnn_mobilenet_v3_large_fpn`` or ``..._320_fpn``; in eval mode its
    detections are torchvision's (labels shifted: torchvision's label ``l`` is our ``l - 1``, or the class
    whose ``class_slots`` entry is ``l - 1``). ``kwargs`` override keywords of the built model."""
    from torchvision.models.detection.faster_rcnn import FasterRCNN as TVFasterRCNN
    from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, TwoMLPHead

    if not isinstance(tv_model, TVFasterRCNN):
        raise ValueError(f"from_torchvision takes a torchvision Faster R-CNN, not {type(tv_model).__name__}")  # noqa: TRY004
    layout, parts = _body_parts(tv_model)
    head = tv_model.roi_heads.box_head
    if not isinstance(head, (TwoMLPHead, FastRCNNConvFCHead)):
        raise ValueError(f"from_torchvision: unknown box head {type(head).__name__}")  # noqa: TRY004
    v2 = isinstance(head, FastRCNNConvFCHead)
    rpn, roi, tr = tv_model.rpn, tv_model.roi_heads, tv_model.transform
    if layout == "mobilenet":
        config = dict(TORCHVISION_MOBILENET)
    else:
        config = dict(TORCHVISION_LAYOUT, **(TORCHVISION_V2 if v2 else {}))
    config.update(
        rpn_pre_nms_top_n=(rpn._pre_nms_top_n["training"], rpn._pre_nms_top_n["testing"]),
        rpn_post_nms_top_n=(rpn._post_nms_top_n["training"], rpn._post_nms_top_n["testing"]),
        rpn_batch_size_per_image=rpn.fg_bg_sampler.batch_size_per_image, rpn_score_threshold=rpn.score_thresh,
        box_batch_size_per_image=roi.fg_bg_sampler.batch_size_per_image,
        box_positive_fraction=roi.fg_bg_sampler.positive_fraction,
        score_threshold=roi.score_thresh, nms_threshold=roi.nms_thresh, max_detections=roi.detections_per_img,
        min_size=tr.min_size[-1], max_size=tr.max_size, size_divisible=tr.size_divisible,
        representation=roi.box_predictor.cls_score.in_features)
    frozen = [not any(p.requires_grad for p in part.parameters()) for part in parts]
    first_bn = next(m for m in parts[0].modules() if "BatchNorm" in type(m).__name__)
    config.update(frozen_bn=isinstance(first_bn, torchvision.ops.FrozenBatchNorm2d),  # its weights: frozen, else not
                  freeze_stages=(frozen + [False]).index(False))  # the parts it trains no more
    config.update(kwargs)
    slots = roi.box_predictor.cls_score.out_features - 1
    model = FasterRCNN(len(config.get("class_slots") or range(slots)), **config)
    model.config = config  # the keywords that rebuild it (a checkpoint's model_kwargs)
    if model.head_classes != slots:
        raise ValueError(f"from_torchvision: class_slots reach slot {model.head_classes - 1}, torchvision has {slots}")
    pairs = list(zip(parts, model.body)) + [(tv_model.backbone.fpn, model.fpn), (rpn.head, model.rpn.head),
                                            (head, model.box_head),
                                            (roi.box_predictor, nn.ModuleList([model.cls_score, model.bbox_pred]))]
    for i, (source, target) in enumerate(pairs):
        _copy_weights(source, target, f"part {i} ({type(source).__name__})")
    return model.eval()
