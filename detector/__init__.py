"""detector: object detection from D2L's Computer Vision chapter, made production-grade.

The core (boxes are xyxy everywhere inside the package):

    from detector.boxes import box_iou, encode, decode, nms, batched_nms
    from detector.anchors import generate_anchors, MultiLevelAnchors
    from detector.matching import match_anchors, match_thresholds, sample_pos_neg
    from detector.ssd import assign_targets, postprocess
"""

__version__ = "0.1.0"
