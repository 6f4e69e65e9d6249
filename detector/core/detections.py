"""Turning a flat list of kept detections of a whole batch into one dict per image."""

from __future__ import annotations

import torch
from torch import Tensor


def per_image(image: Tensor, boxes: Tensor, scores: Tensor, labels: Tensor, batch_size: int,
              max_detections: int) -> list[dict[str, Tensor]]:
    """Detections listed by decreasing score, with their image index ``image [N]`` -> one
    ``dict(boxes, scores, labels)`` per image, the best ``max_detections`` of each, by decreasing score."""
    order = torch.sort(image, stable=True).indices  # by image, keeping the score order within each
    image = image[order]
    counts = torch.bincount(image, minlength=batch_size)  # (B,)
    starts = torch.cumsum(counts, 0) - counts  # (B,)
    rank = torch.arange(image.numel(), device=image.device) - starts[image]  # (N,) position in its image
    keep = order[rank < max_detections]
    counts = counts.clamp(max=max_detections).tolist()
    return [{"boxes": b, "scores": s, "labels": l}
            for b, s, l in zip(boxes[keep].split(counts), scores[keep].split(counts), labels[keep].split(counts))]
