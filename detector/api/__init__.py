"""The Python API: one object per model, which the CLI and the app are thin layers over.

    from detector import Detector
    det = Detector("models/tinyssd-shapes.pt")
    for r in det.predict("photos/", conf=0.3, stream=True):
        print(r.path, r.classes, r.scores)

:class:`Detector` (train, val, predict, export), :class:`Results` (one image's detections), :class:`Metrics`
(an evaluation), :func:`evaluate` (a predictions file against a data set). Errors are
:class:`~detector.core.errors.DetectorError` with the CLI's one-line messages.
"""

from detector.api.detector import Detector
from detector.api.results import Metrics, Results
from detector.api.scoring import evaluate
from detector.api.shipping import export_model
from detector.core.errors import DetectorError, InputError, UsageError

__all__ = ["Detector", "DetectorError", "InputError", "Metrics", "Results", "UsageError", "evaluate", "export_model"]
