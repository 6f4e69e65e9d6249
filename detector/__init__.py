"""detector: object detection from D2L's Computer Vision chapter, made production-grade.

The package's folders are its layers; imports point down only:

    cli, app  ->  engine  ->  evaluation  ->  models, data  ->  core

The core (boxes are xyxy everywhere inside the package):

    from detector.core import box_iou, encode, decode, nms, batched_nms
    from detector.core import generate_anchors, MultiLevelAnchors
    from detector.core import match_anchors, match_thresholds, sample_pos_neg
    from detector.core import assign_targets, postprocess
"""

__version__ = "0.1.0"
