"""What :class:`~detector.api.Detector` returns: one image's detections (:class:`Results`) and the metrics of an
evaluation (:class:`Metrics`).

    r = det.predict("photo.jpg")[0]
    r.boxes, r.scores, r.labels          # [N, 4] xyxy pixels of the original image, [N], [N] in 0..C-1
    [r.names[c] for c in r.labels]       # class names
    r.plot().show(); r.save("out.jpg"); r.to_coco(image_id=1); r.to_json()
    m = det.val(data="data/shapes-test"); m.ap, m.ap50, m.per_class, m.to_dict()
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from detector.core.errors import UsageError
from detector.core.files import write_atomic
from detector.evaluation.coco import STAT_KEYS, format_table
from detector.evaluation.draw import class_colors, draw_boxes
from detector.evaluation.predict import coco_results, yolo_lines


def shown(image: np.ndarray, max_side: int | None = None, min_side: int | None = None) -> tuple[Image.Image, float]:
    """The RGB image as drawn (its longest side at most ``max_side`` and at least ``min_side``; as it is without
    them) and its scale from the original."""
    h, w = image.shape[:2]
    scale = 1.0
    if max_side is not None or min_side is not None:
        scale = min((max_side or max(h, w)) / max(h, w), max(1.0, (min_side or 0) / max(h, w)))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if scale < 1.0:  # shrunk from the array by OpenCV's area average: no full-size copy as a PIL image
        import cv2

        return Image.fromarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA)), scale
    pil = Image.fromarray(image)
    return (pil.resize(size, Image.Resampling.BILINEAR) if scale != 1.0 else pil), scale


@dataclass
class Results:
    """One image's (or one video frame's) detections, by decreasing score, in the original image's pixels."""

    boxes: np.ndarray  # (N, 4) float32 xyxy
    scores: np.ndarray  # (N,) float32
    labels: np.ndarray  # (N,) int64, classes 0..C-1
    names: list[str]  # the model's classes: names[labels[i]]
    orig_shape: tuple[int, int]  # (height, width)
    path: str | None = None  # the file it came from (None for arrays and PIL images given directly)
    frame: int | None = None  # the frame's index in a video
    category_ids: list[int] = field(default_factory=list)  # the model's COCO category id of each class
    image: np.ndarray | None = field(default=None, repr=False)  # RGB uint8 [H, W, 3], for plot() and save()
    fps: float | None = None  # a video's frame rate

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def classes(self) -> list[str]:
        """The class name of each detection."""
        return [self.names[c] for c in self.labels]

    def plot(self, line_width: int | None = None, max_side: int | None = None, min_side: int | None = None
             ) -> Image.Image:
        """The image with boxes, class names and scores drawn (a colour per class). ``max_side`` / ``min_side``:
        drawn on a copy whose longest side is at most / at least this (the boxes scaled with it; the app shows
        huge uploads at 1600 px and small ones at 640)."""
        if self.image is None:
            raise UsageError("plot() needs the image, which this result does not keep")
        pil, scale = shown(self.image, max_side, min_side)
        texts = [f"{self.names[c]} {s:.2f}" for c, s in zip(self.labels, self.scores)]
        return draw_boxes(pil, self.boxes * scale, texts, class_colors(self.labels),
                          width=line_width or max(2, round(max(pil.size) / 300)))

    def save(self, path: str | Path, quality: int = 92) -> Path:
        """Write :meth:`plot` to ``path`` (its suffix names the format) and return it."""
        path = Path(path)
        drawn, encoded = self.plot(), io.BytesIO()
        fmt = Image.registered_extensions().get(path.suffix.lower())
        if fmt is None:
            raise UsageError(f"{path}: end it in an image format's suffix (.jpg, .png, ...)")
        drawn.save(encoded, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
        return write_atomic(path, encoded.getvalue())  # whole or not at all (a full disk leaves nothing)

    def to_coco(self, image_id: int = 1, file_name: str | None = None) -> list[dict]:
        """The detections in the one JSON shape of a detection (``predictions.json``, ``/detect``, a video's
        frames, :meth:`to_json`): COCO results (``bbox`` [x, y, w, h] in pixels, ``category_id``, ``score``)
        that also name their class (``category``) and file (``file_name``, default :attr:`path`)."""
        ids = self.category_ids or list(range(1, len(self.names) + 1))
        det = {"boxes": self.boxes, "scores": self.scores, "labels": self.labels}
        return coco_results(det, ids, image_id, self.names, file_name if file_name is not None else self.path)

    def to_yolo(self) -> list[str]:
        """The detections as YOLO label lines ``class cx cy w h conf``, normalized to the image."""
        det = {"boxes": self.boxes, "scores": self.scores, "labels": self.labels}
        return yolo_lines(det, *self.orig_shape)

    def to_dict(self, image_id: int = 1) -> dict:
        """The image (its file, frame and size) and its detections in the one shape (:meth:`to_coco`)."""
        return {"path": self.path, "frame": self.frame, "width": self.orig_shape[1], "height": self.orig_shape[0],
                "detections": self.to_coco(image_id)}

    def to_json(self, image_id: int = 1) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(image_id))


@dataclass
class Metrics:
    """An evaluation's numbers, pycocotools' (the 12 statistics, ``STAT_KEYS``) and VOC's AP50."""

    stats: dict  # STAT_KEYS, AP50_voc, AP50_voc07, per_class
    images: int = 0  # how many images were scored

    @property
    def evaluated(self) -> bool:
        """False when there was nothing to evaluate (training on a data set without a val split)."""
        return "AP" in self.stats

    @property
    def ap(self) -> float | None:
        """AP at IoU 0.50:0.95 (COCO's primary metric); None when nothing was evaluated."""
        return float(self.stats["AP"]) if self.evaluated else None

    @property
    def ap50(self) -> float | None:
        return float(self.stats["AP50"]) if self.evaluated else None

    @property
    def ap75(self) -> float | None:
        return float(self.stats["AP75"]) if self.evaluated else None

    @property
    def false_alarms(self) -> dict[str, float]:
        """With ``negatives=``: the share of those images with a detection at or above each threshold (by the
        threshold as text, ``"0.5"``); empty without."""
        return dict(self.stats.get("false_alarms", {}).get("thresholds", {}))

    @property
    def per_class(self) -> dict[str, float]:
        """AP at IoU 0.50:0.95 of each class."""
        return dict(self.stats.get("per_class", {}))

    def to_dict(self) -> dict:
        return dict(self.stats)

    def table(self) -> str:
        """The statistics as the CLI prints them."""
        if not self.evaluated:
            raise UsageError("no metrics: nothing was evaluated (the data set has no val split)")
        table = format_table(self.stats)
        if "false_alarms" in self.stats:
            table += "\n" + false_alarm_text(self.stats["false_alarms"])
        return table

    def __getitem__(self, key: str):
        return self.stats[key]

    def __repr__(self) -> str:
        if not self.evaluated:
            return "Metrics(nothing evaluated: no val split)"
        return "Metrics(" + ", ".join(f"{k}={self.stats[k]:.4f}" for k in STAT_KEYS[:3]) + f", images={self.images})"


class ResultsList(list):
    """What ``predict(..., stream=False)`` returns: the :class:`Results`; ``skipped``: the messages of the
    unreadable files this call skipped (``errors="skip"``); ``writer``: what was written with ``out=`` (None
    without)."""

    def __init__(self, results, skipped: list[str], writer=None):
        super().__init__(results)
        self.skipped, self.writer = skipped, writer


class Prediction:
    """What ``predict(..., stream=True)`` returns: an iterator of :class:`Results`, one at a time; ``skipped``
    fills as unreadable files are skipped (``errors="skip"``); ``writer`` counts what ``out=`` has written."""

    def __init__(self, results, skipped: list[str], writer=None):
        self._results, self.skipped, self.writer = iter(results), skipped, writer

    def __iter__(self):
        return self

    def __next__(self) -> Results:
        return next(self._results)

    def close(self) -> None:
        """Stop early: what ``out=`` has written is finished (the video being written, predictions.json)."""
        close = getattr(self._results, "close", None)
        if close is not None:
            close()


def false_alarm_text(fa: dict) -> str:
    """One line: ``false alarms on 250 images without its classes (DIR): 12.4% at 0.25, 4.8% at 0.5``."""
    rates = ", ".join(f"{100 * r:.1f}% at {t}" for t, r in fa["thresholds"].items())
    return (f"false alarms on {fa['images']} images without its classes ({fa['folder']}): {rates}; at most 5% at "
            f"{fa['conf_for_5_percent']:g} or more")
