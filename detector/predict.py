"""Prediction on image files: ``detector predict --weights W IMAGES_OR_FOLDERS... --out DIR``.

Each image is resized to the model's input (as in evaluation), detections are mapped back to its pixels,
drawn, and all of them written to ``DIR/predictions.json`` (COCO results format, with ``file_name``).
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from detector.data.images import IMAGE_SUFFIXES, list_images, read_image


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and globs -> image paths. Raises ``FileNotFoundError`` naming
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
                raise FileNotFoundError(f"{item}: no such image, folder or matching files")
            paths += matches
    return paths


@torch.no_grad()
def detect(model: nn.Module, image: np.ndarray, size: int, device: torch.device | str = "cpu",
           conf: float = 0.25) -> dict[str, np.ndarray]:
    """Detections on one RGB ``uint8 [H, W, 3]`` image, boxes in its pixels, scores at least ``conf``."""
    h, w = image.shape[:2]
    shrink = max(h, w) >= 2 * size  # much larger than the input: area averaging, so small details do not alias
    resized = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    x = torch.from_numpy(resized).permute(2, 0, 1)[None]
    (det,) = model(x.to(device))
    keep = det["scores"] >= conf
    scale = torch.tensor([w / size, h / size, w / size, h / size], device=det["boxes"].device)
    return {"boxes": (det["boxes"][keep] * scale).cpu().numpy(), "scores": det["scores"][keep].cpu().numpy(),
            "labels": det["labels"][keep].cpu().numpy()}


def coco_results(det: dict[str, np.ndarray], classes: list[str], category_ids: list[int], image_id: int,
                 file_name: str) -> list[dict]:
    """One image's detections as COCO results (``bbox`` xywh in pixels), with ``file_name`` and class name."""
    return [{"image_id": image_id, "file_name": file_name, "category_id": category_ids[c], "category": classes[c],
             "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)], "score": round(s, 5)}
            for (x1, y1, x2, y2), s, c in zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist())]


def set_nms_threshold(model: nn.Module, iou: float | None) -> None:
    """Set the NMS IoU of a model that has the SSD postprocess settings (``model.post``)."""
    if iou is not None and hasattr(model, "post"):
        model.post["nms_threshold"] = float(iou)


def predict_paths(model: nn.Module, ckpt: dict, paths: list[Path], out: Path, conf: float = 0.25,
                  device: torch.device | str = "cpu", progress: bool = True) -> tuple[list[dict], list[str]]:
    """Detect, draw and collect COCO results for ``paths``; returns ``(results, errors)``: an unreadable image
    is reported in ``errors`` and skipped, the others go on."""
    from PIL import Image
    from tqdm import tqdm

    from detector.draw import PALETTE, draw_boxes

    out.mkdir(parents=True, exist_ok=True)
    classes, cat_ids, size = ckpt["classes"], ckpt["category_ids"], ckpt["img_size"]
    results, errors = [], []
    for k, path in enumerate(tqdm(paths, desc="predict", disable=not progress)):
        try:
            image = read_image(path)
        except OSError as e:
            errors.append(str(e))
            continue
        det = detect(model, image, size, device, conf)
        texts = [f"{classes[c]} {s:.2f}" for c, s in zip(det["labels"], det["scores"])]
        colors = [PALETTE[c % len(PALETTE)] for c in det["labels"]]
        draw_boxes(Image.fromarray(image), det["boxes"], texts, colors).save(out / f"{path.stem}.jpg", quality=92)
        results += coco_results(det, classes, cat_ids, k + 1, str(path))
    with open(out / "predictions.json", "w") as f:
        json.dump(results, f)
    return results, errors
