"""Inference, one path for ``detector predict``, ``detector eval``, training's val AP and the app.

The model owns its input geometry (:mod:`detector.core.geometry`): it takes images of any size and returns
boxes in each image's own pixels, so nothing here resizes. :func:`run_model` runs a batch and keeps what
scores at least ``conf``; :func:`detect_images` runs images in memory and :func:`predict_records` a data set's
records (decoded in DataLoader workers). :func:`coco_results` writes detections in COCO's results format.

    detector predict --weights models/tinyssd-shapes.pt photos/ more/*.jpg --out runs/predict
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from detector.core.errors import InputError, UsageError
from detector.core.thresholds import MAX_DET
from detector.data.images import IMAGE_SUFFIXES, MAX_PIXELS, VIDEO_SUFFIXES, read_image
from detector.data.records import ImageRecord
from detector.evaluation.ground_truth import image_ids
from detector.models.checkpoint import CheckpointError


@torch.no_grad()
def run_model(model: nn.Module, images: torch.Tensor | list[torch.Tensor], device: torch.device | str = "cpu",
              post: dict | None = None, conf: float = 0.0, amp_dtype: torch.dtype | None = None,
              size: int | None = None) -> list[dict[str, np.ndarray]]:
    """Detections of ``images`` (``uint8 [B, 3, H, W]`` or a list of ``uint8 [3, H_i, W_i]``, RGB, any sizes):
    one dict of numpy ``boxes [N, 4]`` (xyxy in the image's pixels), ``scores [N]`` (at least ``conf``) and
    ``labels [N]`` per image. ``post``: the postprocess settings of this call (see the model contract);
    ``size``: the model's input size for this call (default: its own)."""
    batch = images.to(device, non_blocking=True) if torch.is_tensor(images) else [im.to(device) for im in images]
    extra = {"size": size} if size is not None else {}
    with torch.autocast(torch.device(device).type, dtype=amp_dtype, enabled=amp_dtype is not None):
        detections = model(batch, post=post, **extra)
    out = []
    n = getattr(model, "num_classes", None)
    for det in detections:
        labels = det["labels"]
        if labels.numel() and (int(labels.min()) < 0 or (n is not None and int(labels.max()) >= n)):
            raise CheckpointError(f"{type(model).__name__} returned labels {int(labels.min())}..{int(labels.max())} "
                                  f"outside its {n} classes; its weights or code are not the detector's contract")
        keep = det["scores"] >= conf
        out.append({"boxes": det["boxes"][keep].float().cpu().numpy(),
                    "scores": det["scores"][keep].float().cpu().numpy(), "labels": det["labels"][keep].cpu().numpy()})
    return out


def detect(model: nn.Module, images: Sequence[np.ndarray], device: torch.device | str = "cpu", *, conf: float,
           iou: float | None = None, classes: Sequence[int] | None = None, max_det: int | None = None,
           size: int | None = None) -> list[dict[str, np.ndarray]]:
    """The one "run, filter, cut" path of predict, video, the app, ``/detect`` and the API: RGB ``uint8
    [H, W, 3]`` images of any sizes through ``model`` (NMS at ``iou``, default: the model's own), detections
    scoring at least ``conf``, only ``classes`` (indices; all when None), then the ``max_det`` best (default:
    the model's own maximum). Classes are filtered before the cut, so ``max_det`` counts kept detections."""
    post = {"nms_threshold": iou, "score_threshold": conf}
    if classes is None:
        post["max_detections"] = max_det  # the model cuts (None: at its own maximum)
    else:
        post["max_detections"] = MAX_DET  # every candidate, then the filter, then the cut below
    found = detect_images(model, images, device, post, conf, size=size)
    if classes is None:
        return found
    cut = max_det or getattr(model, "post_defaults", {}).get("max_detections", MAX_DET)
    out = []
    for det in found:
        keep = np.flatnonzero(np.isin(det["labels"], list(classes)))  # in score order (the model's)
        keep = keep[np.argsort(-det["scores"][keep], kind="stable")][:cut]
        out.append({k: v[keep] for k, v in det.items()})
    return out


def as_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB ``uint8 [H, W, 3]`` -> ``uint8 [3, H, W]`` (the model contract's layout); a read-only array is copied."""
    array = np.ascontiguousarray(image)
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array).permute(2, 0, 1)


def detect_images(model: nn.Module, images: Sequence[np.ndarray], device: torch.device | str = "cpu",
                  post: dict | None = None, conf: float = 0.0, size: int | None = None) -> list[dict[str, np.ndarray]]:
    """:func:`run_model` on RGB ``uint8 [H, W, 3]`` images of any sizes."""
    return run_model(model, [as_tensor(im) for im in images], device, post, conf, size=size)


class RecordImages(Dataset):
    """Records -> ``image uint8 [3, H, W]``, decoded in the worker (the model fits it to its input)."""

    def __init__(self, records: list[ImageRecord], max_pixels: int | None = MAX_PIXELS):
        self.records, self.max_pixels = records, max_pixels

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> torch.Tensor:
        r = self.records[index]
        image = read_image(r.path, self.max_pixels)  # raises ImageError naming the file
        if image.shape[:2] != (r.height, r.width) and r.height and r.width:
            raise InputError(f"{r.path}: decoded as {image.shape[1]}x{image.shape[0]}, annotated as "
                             f"{r.width}x{r.height}")
        return as_tensor(image).contiguous()


def _as_list(samples: list[torch.Tensor]) -> list[torch.Tensor]:
    return samples


def predict_records(model: nn.Module, records: list[ImageRecord], category_ids: list[int],
                    device: torch.device | str = "cpu", batch_size: int = 32, workers: int = 0,
                    amp_dtype: torch.dtype | None = None, ids: list[int] | None = None,
                    post: dict | None = None, max_pixels: int | None = MAX_PIXELS) -> list[dict]:
    """Run ``model`` on every record, in order; COCO results with boxes in pixels of the original images and
    the data set's category ids. ``ids``: the records' image ids when they are a part of a larger set (default:
    :func:`image_ids` of ``records``)."""
    model.eval()
    ids = image_ids(records) if ids is None else ids
    loader = DataLoader(RecordImages(records, max_pixels), batch_size=batch_size, shuffle=False,
                        num_workers=workers, collate_fn=_as_list, pin_memory=torch.cuda.is_available())
    results, k = [], 0
    for images in loader:
        for det in run_model(model, images, device, post, amp_dtype=amp_dtype):
            results += coco_results(det, category_ids, ids[k])
            k += 1
    return results


def coco_results(det: dict[str, np.ndarray], category_ids: list[int], image_id: int,
                 classes: list[str] | None = None, file_name: str | None = None) -> list[dict]:
    """One image's detections as COCO results (``bbox`` xywh in pixels); with ``file_name`` and ``classes``,
    each result also names its file and class."""
    results = []
    for (x1, y1, x2, y2), s, c in zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist()):
        r = {"image_id": image_id}
        if file_name is not None:
            r["file_name"] = file_name
        r["category_id"] = category_ids[c]
        if classes is not None:
            r["category"] = classes[c]
        r["bbox"] = [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)]
        r["score"] = round(s, 5)
        results.append(r)
    return results


def expand_glob(pattern: str) -> list[str]:
    """The files ``pattern`` matches; ``**`` matches any folders below (none too), walked without following links
    to folders, so a link that loops back cannot make it endless."""
    if "**" not in pattern:
        return glob.glob(pattern)
    base = pattern.split("**", 1)[0] or "."
    patterns = {pattern, pattern.replace("**/", "")}
    found = []
    for root, _dirs, files in os.walk(base, followlinks=False):
        for name in files:
            path = os.path.join(root, name) if root != "." or base != "." else name
            if any(fnmatch.fnmatch(path, p) for p in patterns):
                found.append(path)
    return found


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (their images and videos, sorted) and globs -> paths. Raises :class:`InputError` naming an
    input that matches nothing (a folder without images or videos too)."""
    media = (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES)
    paths: list[Path] = []
    for item in inputs:
        if not str(item).strip():
            raise UsageError(f"an empty path {str(item)!r}: give an image, a folder, a glob or a video")
        p = Path(item)
        if p.is_dir():  # a broken link is kept: reading it says so, rather than it being passed over unsaid
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in media and (f.is_file() or f.is_symlink()))
            if not found:
                raise InputError(f"{item}: a folder with no images or videos ({', '.join(media)})")
            paths += found
        elif p.is_file():
            paths.append(p)
        else:
            matches = sorted(Path(m) for m in expand_glob(str(item)))
            matches = [m for m in matches if m.suffix.lower() in media and m.is_file()]
            if not matches:
                raise InputError(f"{item}: no such image, folder or matching files")
            paths += matches
    return paths


class OutputNames:
    """One distinct output name per input, as they come: its stem, or ``stem_2``, ``stem_3``, ... when an earlier
    input took it (``a.jpg`` and ``a.png``, or ``x/a.jpg`` and ``y/a.jpg``), so no output overwrites another."""

    def __init__(self):
        self.taken: set[str] = set()

    def __call__(self, path: Path | str) -> str:
        base = Path(path).stem
        stem, k = base, 1
        while stem in self.taken:
            k += 1
            stem = f"{base}_{k}"
        self.taken.add(stem)
        return stem


def output_stems(paths: list[Path]) -> list[str]:
    """:class:`OutputNames` of every path, in order."""
    name = OutputNames()
    return [name(p) for p in paths]


def yolo_lines(det: dict[str, np.ndarray], height: int, width: int) -> list[str]:
    """One image's detections as YOLO label lines ``class cx cy w h conf``, the box normalized to the image."""
    lines = []
    for (x1, y1, x2, y2), s, c in zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist()):
        cx, cy, w, h = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height
        lines.append(f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f} {s:.5f}")
    return lines
