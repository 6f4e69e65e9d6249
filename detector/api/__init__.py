"""The Python API: one object per model, which the CLI and the app are thin layers over.

    from detector import Detector
    det = Detector("models/tinyssd-shapes.pt")
    for r in det.predict("photos/", conf=0.3, stream=True):
        print(r.path, r.classes, r.scores)

:class:`Detector` (train, val, predict, export), :class:`Results` (one image's detections), :class:`Metrics`
(an evaluation), :class:`ModelInfo` (what a model is), :func:`evaluate` (a predictions file against a data set).
Data sets: :mod:`detector.api.data`; the zoo: :mod:`detector.api.zoo`; classifiers: :mod:`detector.api.classify`;
the book's figures: :mod:`detector.api.book`; settings: :mod:`detector.api.settings`. Errors are
:class:`~detector.core.errors.DetectorError` with the CLI's one-line messages (naming keywords, not flags).

The names load on first use, so that ``detector --help`` (which reads :mod:`detector.api.settings`) imports no
torch.
"""

from typing import TYPE_CHECKING

from detector.core.errors import DetectorError, InputError, UsageError

if TYPE_CHECKING:  # what the names are, for readers and documentation tools; loaded lazily below
    from detector.api.detector import Detector
    from detector.api.info import InferenceDefaults, ModelInfo, describe
    from detector.api.results import Metrics, Results
    from detector.api.scoring import evaluate
    from detector.api.shipping import export_model
    from detector.api.sources import load_image

_LAZY = {"Detector": "detector.api.detector", "Results": "detector.api.results", "Metrics": "detector.api.results",
         "ModelInfo": "detector.api.info", "InferenceDefaults": "detector.api.info", "describe": "detector.api.info",
         "evaluate": "detector.api.scoring", "export_model": "detector.api.shipping",
         "load_image": "detector.api.sources"}

__all__ = ["Detector", "DetectorError", "InferenceDefaults", "InputError", "Metrics", "ModelInfo", "Results",
           "UsageError", "describe", "evaluate", "export_model", "load_image"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        from detector.core.errors import torch_pair

        torch_pair()  # a torchvision that does not match torch: one line, before anything imports it
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'detector.api' has no attribute {name!r}")
