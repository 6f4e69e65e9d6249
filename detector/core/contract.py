"""The model contract every detector here honours (torchvision's):

    model.train(); losses = model(images, targets)    # dict of named scalar losses
    model.eval();  detections = model(images)         # list of dict(boxes, scores, labels), one per image
    detections = model(images, post={"score_threshold": 0.25, "nms_threshold": 0.45, "max_detections": 100})

``images``: ``Tensor[B, 3, H, W]``, uint8 in 0..255 or float in [0, 1], RGB; the model normalizes.
``targets``: either a list of ``dict(boxes=Tensor[N, 4] xyxy pixels, labels=Tensor[N] in 0..C-1)``, one per
image, or the padded batch of the data loaders: ``dict(boxes=[B, G, 4], labels=[B, G], valid=[B, G])``.
Output boxes are xyxy in pixels of the input images; labels are data set classes ``0..C-1``.
``post``: postprocess settings for this call (keys of ``POST_KEYS``), over the model's defaults (its
constructor's keywords); the model itself is never changed, so one model can serve calls with other settings.
"""

from __future__ import annotations

import torch
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
POST_KEYS = ("score_threshold", "nms_threshold", "max_detections")  # what every detector's ``post`` takes


def post_settings(defaults: dict, post: dict | None) -> dict:
    """A model's postprocess settings for one call: ``defaults`` with the non-None values of ``post``."""
    if not post:
        return defaults
    unknown = set(post) - set(POST_KEYS)
    if unknown:
        raise ValueError(f"unknown postprocess settings {sorted(unknown)}; known: {list(POST_KEYS)}")
    return {**defaults, **{k: v for k, v in post.items() if v is not None}}


def check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of shape [B, 3, H, W], got {shape}")


def normalize_images(images: Tensor) -> Tensor:
    """uint8 [0, 255] or float [0, 1] ``[B, 3, H, W]`` -> float normalized with ImageNet's mean and std."""
    check_images(images)
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def pad_targets(targets: list[dict]) -> tuple[Tensor, Tensor, Tensor]:
    """One ``dict(boxes [N, 4], labels [N])`` per image -> ``(boxes [B, G, 4], labels [B, G], valid [B, G])``,
    G the largest N (at least 1); padding rows are zero boxes with label -1 and valid False."""
    G = max([len(t["boxes"]) for t in targets] + [1])
    boxes = torch.zeros(len(targets), G, 4)
    labels = torch.full((len(targets), G), -1, dtype=torch.long)
    valid = torch.zeros(len(targets), G, dtype=torch.bool)
    for i, t in enumerate(targets):  # ragged and small: one copy per image
        n = len(t["boxes"])
        boxes[i, :n] = torch.as_tensor(t["boxes"], dtype=torch.float32).reshape(-1, 4)
        labels[i, :n], valid[i, :n] = torch.as_tensor(t["labels"]), True
    return boxes, labels, valid


def padded_targets(targets: list[dict] | dict, batch_size: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Targets in either form -> ``(boxes [B, G, 4], labels [B, G], valid [B, G])`` on ``device``."""
    if isinstance(targets, dict):
        boxes, labels = targets["boxes"], targets["labels"]
        valid = targets.get("valid", labels >= 0)
    else:
        if len(targets) != batch_size:
            raise ValueError(f"got {len(targets)} targets for {batch_size} images")
        boxes, labels, valid = pad_targets(targets)
    if boxes.shape[0] != batch_size:
        raise ValueError(f"targets hold {boxes.shape[0]} images, the batch {batch_size}")
    return boxes.to(device, torch.float32), labels.to(device, torch.long), valid.to(device)
