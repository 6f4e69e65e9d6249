"""The model contract every detector here honours (torchvision's):

    model.train(); losses = model(images, targets)    # dict of named scalar losses, keys model.loss_names
    model.eval();  detections = model(images)         # list of dict(boxes, scores, labels), one per image
    detections = model(images, post={"score_threshold": CONF, "nms_threshold": IOU, "max_detections": 100})

``images``: ``Tensor[B, 3, H, W]`` or a list of ``Tensor[3, H, W]`` of different sizes, uint8 in 0..255 or float
in [0, 1], RGB; the model normalizes (and pads a list into one batch, see :func:`pad_images`).
``targets``: either a list of ``dict(boxes=Tensor[N, 4] xyxy pixels, labels=Tensor[N] in 0..C-1)``, one per
image, or the padded batch of the data loaders: ``dict(boxes=[B, G, 4], labels=[B, G], valid=[B, G])``.
Output boxes are xyxy in pixels of each input image (its own size, for a list); labels are data set classes ``0..C-1``.
``post``: postprocess settings for this call (keys of ``POST_KEYS``), over the model's defaults (its
constructor's keywords); the model itself is never changed, so one model can serve calls with other settings.
Every model keeps the detections scoring *at least* ``score_threshold`` (a score equal to it is kept; torchvision's
SSD and box head keep only those above it, the one place the zoo's models may differ from torchvision's).
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


def check_images(images: Tensor | list[Tensor]) -> None:
    """A batch ``Tensor[B, 3, H, W]`` or a non-empty list of ``Tensor[3, H, W]``; else a ValueError."""
    if isinstance(images, (list, tuple)) and images and all(isinstance(i, Tensor) and i.ndim == 3 and i.shape[0] == 3
                                                              and i.dtype == images[0].dtype for i in images):
        return
    if isinstance(images, (list, tuple)):
        raise ValueError("images must be a non-empty list of tensors [3, H, W] of one dtype, got "  # noqa: TRY004
                         f"{[tuple(i.shape) if isinstance(i, Tensor) else type(i).__name__ for i in images][:4]}")
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of shape [B, 3, H, W] or a list of [3, H, W], got {shape}")


def image_sizes(images: Tensor | list[Tensor]) -> list[tuple[int, int]]:
    """``(height, width)`` of each image of a batch or a list."""
    return [tuple(i.shape[-2:]) for i in images]


def pad_images(images: Tensor | list[Tensor], size_divisible: int = 1) -> Tensor:
    """A list of ``Tensor[3, H_i, W_i]`` -> ``Tensor[B, 3, H, W]``, each image at the top left, zeros below and
    to the right; H and W are the largest sizes rounded up to a multiple of ``size_divisible`` (torchvision's
    ``batch_images``). A batch tensor is padded the same way (returned as it is when nothing is to pad)."""
    check_images(images)
    H, W = (max(s[d] for s in image_sizes(images)) for d in (0, 1))
    H, W = -(-H // size_divisible) * size_divisible, -(-W // size_divisible) * size_divisible
    if isinstance(images, Tensor) and tuple(images.shape[-2:]) == (H, W):
        return images
    out = images[0].new_zeros((len(images), 3, H, W))
    for i, image in enumerate(images):  # ragged: one copy per image
        out[i, :, : image.shape[1], : image.shape[2]] = image
    return out


def normalize_images(images: Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> Tensor:
    """uint8 [0, 255] or float [0, 1] ``[..., 3, H, W]`` -> float normalized with ``mean`` and ``std`` (of
    [0, 1] values; ImageNet's by default)."""
    if not isinstance(images, Tensor) or images.ndim < 3 or images.shape[-3] != 3:
        check_images(images)  # names the problem
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    mean = torch.tensor(mean, dtype=torch.float32, device=x.device).view(3, 1, 1)
    std = torch.tensor(std, dtype=torch.float32, device=x.device).view(3, 1, 1)
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
