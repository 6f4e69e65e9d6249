"""detector: object detection from D2L's Computer Vision chapter, made production-grade.

    from detector import Detector
    det = Detector("models/tinyssd-shapes.pt")
    results = det.predict("photo.jpg")              # see detector.api

The package's folders are its layers; imports point down only:

    cli, app  ->  api  ->  engine  ->  evaluation  ->  models, data  ->  core

The core (boxes are xyxy everywhere inside the package):

    from detector.core import box_iou, encode, decode, nms, batched_nms
    from detector.core import generate_anchors, MultiLevelAnchors
    from detector.core import match_anchors, match_thresholds, sample_pos_neg
    from detector.core import assign_targets, postprocess
"""

__version__ = "0.1.0"

_API = ("Detector", "Results", "Metrics", "evaluate", "DetectorError")  # loaded on first use: `detector --help` stays fast


def __getattr__(name: str):
    if name in _API:
        import detector.api

        return getattr(detector.api, name)
    raise AttributeError(f"module 'detector' has no attribute {name!r}")
