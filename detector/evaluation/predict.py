"""Inference, one path for ``detector predict``, ``detector eval``, training's val AP and the app.

:func:`resize_for_model` is the one resize rule (squash to the square input, or letterbox: keep the aspect and
pad with the mean colour, as the checkpoint's ``letterbox`` says); :func:`run_model` runs a batch and maps the
boxes back to each original image's pixels, undoing the padding offset and the scale; :func:`detect_images` does both for images in memory and :func:`predict_records`
for a data set's records (decoded and resized in DataLoader workers). :func:`coco_results` writes detections
in COCO's results format.

    detector predict --weights models/tinyssd-shapes.pt photos/ more/*.jpg --out runs/predict
"""

from __future__ import annotations

import glob
import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from detector.core.errors import InputError
from detector.data.images import IMAGE_SUFFIXES, MAX_PIXELS, list_images, read_image
from detector.data.records import ImageRecord
from detector.data.transforms import MEAN_RGB, letterbox_geometry
from detector.evaluation.draw import class_colors, draw_boxes
from detector.evaluation.ground_truth import image_ids


def resizes_itself(model: nn.Module) -> bool:
    """Whether ``model`` takes images of any size and resizes them itself, keeping the aspect ratio
    (torchvision's transform: a Faster R-CNN with ``min_size``); such a model gets the original images."""
    return getattr(model, "min_size", None) is not None


def resize_for_model(image: np.ndarray, size: int | None, letterbox: bool = False) -> np.ndarray:
    """RGB ``uint8 [H, W, 3]`` -> ``[size, size, 3]``: area averaging when the image is at least twice the
    input (so small details do not alias), bilinear otherwise. ``letterbox``: the longest side to ``size``, the
    aspect kept, centred on the mean colour (:func:`~detector.data.transforms.letterbox_geometry`).
    ``size=None``: the image as it is."""
    if size is None:
        return image
    h, w = image.shape[:2]
    interpolation = cv2.INTER_AREA if max(h, w) >= 2 * size else cv2.INTER_LINEAR
    if not letterbox:
        return cv2.resize(image, (size, size), interpolation=interpolation)
    new_h, new_w, top, left = letterbox_geometry(h, w, size)
    out = np.empty((size, size, 3), np.uint8)
    out[:] = MEAN_RGB
    out[top:top + new_h, left:left + new_w] = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    return out


def to_original(boxes: torch.Tensor, given: tuple[int, int], orig: tuple[int, int], letterbox: bool = False) -> torch.Tensor:
    """Boxes ``[N, 4]`` xyxy in pixels of the model's input (``given`` (h, w)) -> pixels of the original image
    (``orig`` (h, w)): the inverse of :func:`resize_for_model`. With ``letterbox``, the padding offset is taken off
    and each axis divided by the scale that was applied to it (``new_w / w``, ``new_h / h``: one scale up to the
    rounding of the sides), and the boxes are clipped to the original image (the padding is not in it)."""
    (S_h, S_w), (h, w) = given, orig
    if not letterbox:
        return boxes * torch.tensor([w / S_w, h / S_h, w / S_w, h / S_h])
    new_h, new_w, top, left = letterbox_geometry(h, w, S_w)
    scale = torch.tensor([w / new_w, h / new_h, w / new_w, h / new_h])
    out = (boxes - torch.tensor([left, top, left, top], dtype=boxes.dtype)) * scale
    return torch.minimum(out.clamp(min=0), torch.tensor([w, h, w, h], dtype=out.dtype))


@torch.no_grad()
def run_model(model: nn.Module, images: torch.Tensor | list[torch.Tensor], orig_sizes: Sequence[tuple[int, int]],
              device: torch.device | str = "cpu", post: dict | None = None, conf: float = 0.0,
              amp_dtype: torch.dtype | None = None, letterbox: bool = False) -> list[dict[str, np.ndarray]]:
    """Detections of ``images`` (``uint8 [B, 3, S, S]`` resized by :func:`resize_for_model` from originals of
    ``orig_sizes`` (h, w), letterboxed or not, or a list of ``uint8 [3, H, W]`` for a model that resizes itself):
    one dict of numpy ``boxes [N, 4]`` (xyxy in the original's pixels), ``scores [N]`` (at least ``conf``) and
    ``labels [N]`` per image. ``post``: the postprocess settings of this call (see the model contract)."""
    batch = images.to(device, non_blocking=True) if torch.is_tensor(images) else [im.to(device) for im in images]
    with torch.autocast(torch.device(device).type, dtype=amp_dtype, enabled=amp_dtype is not None):
        detections = model(batch, post=post)
    letterbox = letterbox and torch.is_tensor(images)  # a model that resizes itself gets the originals
    out = []
    for det, given, orig in zip(detections, images, orig_sizes):
        keep = det["scores"] >= conf
        boxes = to_original(det["boxes"][keep].float().cpu(), tuple(given.shape[-2:]), tuple(orig), letterbox)
        out.append({"boxes": boxes.numpy(),
                    "scores": det["scores"][keep].float().cpu().numpy(), "labels": det["labels"][keep].cpu().numpy()})
    return out


def detect_images(model: nn.Module, images: Sequence[np.ndarray], size: int, device: torch.device | str = "cpu",
                  post: dict | None = None, conf: float = 0.0, letterbox: bool = False) -> list[dict[str, np.ndarray]]:
    """:func:`run_model` on RGB ``uint8 [H, W, 3]`` images of any sizes, resized (or letterboxed) to ``size``
    (or given as they are, as a list, to a model that resizes itself)."""
    size = None if resizes_itself(model) else size
    tensors = [torch.from_numpy(np.ascontiguousarray(resize_for_model(im, size, letterbox))).permute(2, 0, 1)
               for im in images]
    batch = tensors if size is None else torch.stack(tensors)
    return run_model(model, batch, [im.shape[:2] for im in images], device, post, conf, letterbox=letterbox)


class ResizedRecords(Dataset):
    """Records -> ``(image uint8 [3, S, S], (h, w))``, decoded and resized by :func:`resize_for_model` (``size``
    None: the image as it is)."""

    def __init__(self, records: list[ImageRecord], size: int, max_pixels: int | None = MAX_PIXELS,
                 letterbox: bool = False):
        self.records, self.size, self.max_pixels, self.letterbox = records, size, max_pixels, letterbox

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        r = self.records[index]
        image = read_image(r.path, self.max_pixels)  # raises OSError naming the file
        if image.shape[:2] != (r.height, r.width) and r.height and r.width:
            raise OSError(f"{r.path}: decoded as {image.shape[1]}x{image.shape[0]}, annotated as {r.width}x{r.height}")
        resized = resize_for_model(image, self.size, self.letterbox)
        resized = torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1).contiguous()
        return resized, image.shape[:2]


def _stack(samples: list) -> tuple[torch.Tensor | list[torch.Tensor], list[tuple[int, int]]]:
    images = [s[0] for s in samples]
    same = all(im.shape == images[0].shape for im in images)
    return (torch.stack(images) if same else images), [tuple(s[1]) for s in samples]


def predict_records(model: nn.Module, records: list[ImageRecord], size: int, category_ids: list[int],
                    device: torch.device | str = "cpu", batch_size: int = 32, workers: int = 0,
                    amp_dtype: torch.dtype | None = None, ids: list[int] | None = None,
                    post: dict | None = None, max_pixels: int | None = MAX_PIXELS,
                    letterbox: bool = False) -> list[dict]:
    """Run ``model`` on every record; COCO results with boxes in pixels of the original images and the data
    set's category ids. ``ids``: the records' image ids when they are a part of a larger set (default:
    :func:`image_ids` of ``records``); ``letterbox``: the checkpoint's input geometry."""
    model.eval()
    ids = image_ids(records) if ids is None else ids
    size = None if resizes_itself(model) else size
    loader = DataLoader(ResizedRecords(records, size, max_pixels, letterbox), batch_size=batch_size, shuffle=False,
                        num_workers=workers, collate_fn=_stack, pin_memory=torch.cuda.is_available())
    results, k = [], 0
    for images, sizes in loader:
        for det in run_model(model, images, sizes, device, post, amp_dtype=amp_dtype, letterbox=letterbox):
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


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and globs -> image paths. Raises :class:`InputError` naming
    an input that matches nothing."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths += list_images(p)
        elif p.is_file():
            paths.append(p)
        else:
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            matches = [m for m in matches if m.suffix.lower() in IMAGE_SUFFIXES and m.is_file()]
            if not matches:
                raise InputError(f"{item}: no such image, folder or matching files")
            paths += matches
    return paths


def output_stems(paths: list[Path]) -> list[str]:
    """One distinct output name per input, in order: its stem, or ``stem_2``, ``stem_3``, ... when an earlier
    input took it (``a.jpg`` and ``a.png``, or ``x/a.jpg`` and ``y/a.jpg``), so no output overwrites another."""
    taken, stems = set(), []
    for path in paths:
        stem, k = path.stem, 1
        while stem in taken:
            k += 1
            stem = f"{path.stem}_{k}"
        taken.add(stem)
        stems.append(stem)
    return stems


def yolo_lines(det: dict[str, np.ndarray], height: int, width: int) -> list[str]:
    """One image's detections as YOLO label lines ``class cx cy w h conf``, the box normalized to the image."""
    lines = []
    for (x1, y1, x2, y2), s, c in zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist()):
        cx, cy, w, h = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height
        lines.append(f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f} {s:.5f}")
    return lines


def predict_paths(model: nn.Module, ckpt: dict, paths: list[Path], out: Path, conf: float = 0.25,
                  device: torch.device | str = "cpu", progress: bool = True, post: dict | None = None,
                  size: int | None = None, classes: list[int] | None = None,
                  save_txt: bool = False, max_pixels: int | None = MAX_PIXELS) -> tuple[list[dict], list[str]]:
    """Detect, draw (``OUT/NAME.jpg``, names from :func:`output_stems`) and collect COCO results for ``paths``
    (``OUT/predictions.json``); returns ``(results, errors)``: an unreadable image, or one over ``max_pixels``
    (read from its header, never decoded), is reported in ``errors`` and skipped, the others go on. ``size``: the
    input size (default: the checkpoint's; its ``letterbox`` says how images are fitted to it); ``classes``: keep
    only these class indices; ``save_txt``: also ``OUT/labels/NAME.txt`` (:func:`yolo_lines`, empty: nothing
    found)."""
    from PIL import Image
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    if save_txt:
        (out / "labels").mkdir(exist_ok=True)
    names, cat_ids, size = ckpt["classes"], ckpt["category_ids"], size or ckpt["img_size"]
    results, errors = [], []
    for k, (path, stem) in enumerate(zip(tqdm(paths, desc="predict", disable=not progress), output_stems(paths))):
        try:
            image = read_image(path, max_pixels)
        except OSError as e:
            errors.append(str(e))
            continue
        (det,) = detect_images(model, [image], size, device, post, conf, letterbox=ckpt.get("letterbox", False))
        if classes is not None:
            keep = np.isin(det["labels"], classes)
            det = {key: v[keep] for key, v in det.items()}
        texts = [f"{names[c]} {s:.2f}" for c, s in zip(det["labels"], det["scores"])]
        drawn = draw_boxes(Image.fromarray(image), det["boxes"], texts, class_colors(det["labels"]))
        drawn.save(out / f"{stem}.jpg", quality=92)
        if save_txt:
            lines = yolo_lines(det, *image.shape[:2])
            (out / "labels" / f"{stem}.txt").write_text("".join(line + "\n" for line in lines))
        results += coco_results(det, cat_ids, k + 1, names, str(path))
    with open(out / "predictions.json", "w") as f:
        json.dump(results, f)
    return results, errors
