"""The detection chapter's core, pure functions over tensors (boxes are xyxy everywhere inside the package).
It imports nothing from the rest of the package.

    from detector.core import box_iou, encode, decode, nms, batched_nms
    from detector.core import generate_anchors, MultiLevelAnchors
    from detector.core import match_anchors, match_thresholds, sample_pos_neg
    from detector.core import assign_targets, postprocess

Modules: ``boxes`` (IoU, conversions, offset encode/decode, NMS), ``anchors`` (the book's multibox_prior, grid
anchors), ``matching`` (the book's assignment, torchvision's Matcher, sampling), ``ssd_ops`` (SSD targets and
postprocess), ``losses``, ``detections`` (per-image splitting), ``contract`` (what every model takes and returns),
``geometry`` (the model's input fit), ``errors`` (the library's one error root).

The names above load on first use, so ``detector.core.errors`` (the CLI's) imports no torch.
"""

import importlib

_HOMES = {"MultiLevelAnchors": "anchors", "generate_anchors": "anchors", "batched_nms": "boxes", "box_iou": "boxes",
          "decode": "boxes", "encode": "boxes", "nms": "boxes", "match_anchors": "matching",
          "match_thresholds": "matching", "sample_pos_neg": "matching", "assign_targets": "ssd_ops",
          "postprocess": "ssd_ops"}  # name -> its module

__all__ = ["MultiLevelAnchors", "assign_targets", "batched_nms", "box_iou", "decode", "encode", "generate_anchors",
           "match_anchors", "match_thresholds", "nms", "postprocess", "sample_pos_neg"]


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"detector.core.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'detector.core' has no attribute {name!r}")
