"""The detection chapter's core, pure functions over tensors (boxes are xyxy everywhere inside the package).
It imports nothing from the rest of the package.

    from detector.core import box_iou, encode, decode, nms, batched_nms
    from detector.core import generate_anchors, MultiLevelAnchors
    from detector.core import match_anchors, match_thresholds, sample_pos_neg
    from detector.core import assign_targets, postprocess

Modules: ``boxes`` (IoU, conversions, offset encode/decode, NMS), ``anchors`` (the book's multibox_prior, grid
anchors), ``matching`` (the book's assignment, torchvision's Matcher, sampling), ``ssd_ops`` (SSD targets and
postprocess), ``losses``, ``detections`` (per-image splitting), ``contract`` (what every model takes and returns).
"""

from detector.core.anchors import MultiLevelAnchors, generate_anchors
from detector.core.boxes import batched_nms, box_iou, decode, encode, nms
from detector.core.matching import match_anchors, match_thresholds, sample_pos_neg
from detector.core.ssd_ops import assign_targets, postprocess

__all__ = ["MultiLevelAnchors", "assign_targets", "batched_nms", "box_iou", "decode", "encode", "generate_anchors",
           "match_anchors", "match_thresholds", "nms", "postprocess", "sample_pos_neg"]
