"""The device-resident path: a data set that fits in device memory is decoded once, resized to the model's
input, and kept there as uint8; every batch is augmented on the device, so a GPU is not starved by a few
CPU cores. Same code on the CPU (it is tested there).

Batched augmentation (:func:`augment_batch`), the same recipe as the albumentations train preset:
zoom-out or SSD's IoU-constrained crop (one view box per image, resampled with ``roi_align``), horizontal
flip, brightness / contrast / saturation jitter. Batches have the same keys as the DataLoader path's.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import cv2
import torch
from torch import Tensor
from torchvision.ops import roi_align

from detector.core.boxes import box_area, box_iou
from detector.data.images import MAX_PIXELS, read_image
from detector.data.records import ImageRecord
from detector.data.transforms import MEAN_RGB, MIN_IOUS, MIN_VISIBILITY

CROP_TRIES = 32  # candidate crops per image, all drawn and tested at once
ZOOM_OUT = (0.5, 1.75)  # probability, largest canvas side relative to the image
JITTER = 0.3  # brightness, contrast, saturation factors in [1 - JITTER, 1 + JITTER]


class DeviceData:
    """``records`` decoded to ``uint8 [N, 3, size, size]`` on ``device`` (stretched to size, as the eval
    preset's resize), with boxes normalized to [0, 1] in ``[N, G, 4]`` and a ``[N, G]`` valid mask."""

    def __init__(self, records: list[ImageRecord], size: int, device: torch.device | str = "cpu", threads: int = 4,
                 max_pixels: int | None = MAX_PIXELS):
        self.size, self.device = size, torch.device(device)
        need = len(records) * 3 * size * size
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if need > 0.5 * free:
                raise MemoryError(f"{len(records)} images at {size}px need {need / 2**30:.1f} GiB; only "
                                  f"{free / 2**30:.1f} GiB free on {self.device}: use the DataLoader path")

        def load(r: ImageRecord) -> Tensor:
            image = cv2.resize(read_image(r.path, max_pixels), (size, size), interpolation=cv2.INTER_AREA)
            return torch.from_numpy(image).permute(2, 0, 1)  # (3, S, S)

        with ThreadPoolExecutor(threads) as pool:
            images = list(pool.map(load, records))
        G = max([len(r.boxes) for r in records] + [1])
        boxes = torch.zeros(len(records), G, 4)
        labels = torch.full((len(records), G), -1, dtype=torch.long)
        for i, r in enumerate(records):
            n = len(r.boxes)
            scale = torch.tensor([r.width, r.height, r.width, r.height], dtype=torch.float32)
            boxes[i, :n], labels[i, :n] = torch.from_numpy(r.boxes) / scale, torch.from_numpy(r.labels)
        self.images = torch.stack(images).to(self.device)  # (N, 3, S, S) uint8
        self.boxes, self.labels = boxes.to(self.device), labels.to(self.device)  # (N, G, 4), (N, G)
        self.valid = self.labels >= 0  # (N, G)
        self.image_ids = torch.tensor([r.image_id for r in records])
        self.orig_sizes = torch.tensor([(r.height, r.width) for r in records])

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, batch_size: int, shuffle: bool = True, augment: bool = True, drop_last: bool = False,
                generator: torch.Generator | None = None) -> Iterator[dict[str, Tensor]]:
        """One epoch of batches. ``generator`` (on the data's device) makes order and augmentation repeatable."""
        n = len(self)
        order = torch.randperm(n, generator=generator, device=self.device) if shuffle else torch.arange(n, device=self.device)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            idx = order[start : start + batch_size]
            images, boxes, valid = self.images[idx], self.boxes[idx], self.valid[idx]
            if augment:
                images, boxes, valid = augment_batch(images, boxes, valid, generator)
            labels = torch.where(valid, self.labels[idx], -1)
            yield {"images": images, "boxes": boxes * self.size, "labels": labels, "valid": valid,
                   "image_ids": self.image_ids[idx.cpu()], "orig_sizes": self.orig_sizes[idx.cpu()]}


def _uniform(shape: tuple, lo: float, hi: float, like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(shape, generator=generator, device=like.device) * (hi - lo) + lo


def sample_views(boxes: Tensor, valid: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One view box per image, normalized xyxy ``[B, 4]``: a zoom-out canvas (larger than the image) or an SSD
    crop (a box with its centre inside and IoU at least the drawn constraint), else the whole image."""
    B, dev = boxes.shape[0], boxes.device
    # SSD crops: CROP_TRIES candidates per image, the first acceptable one wins
    wh = _uniform((B, CROP_TRIES, 2), 0.3, 1.0, boxes, generator)  # (B, T, 2)
    ok_aspect = (wh[..., 0] / wh[..., 1] >= 0.5) & (wh[..., 0] / wh[..., 1] <= 2)  # (B, T)
    xy = torch.rand((B, CROP_TRIES, 2), generator=generator, device=dev) * (1 - wh)  # (B, T, 2)
    crops = torch.cat((xy, xy + wh), dim=-1)  # (B, T, 4)
    iou = box_iou(crops, boxes)  # (B, T, G)
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2  # (B, G, 2)
    inside = ((centre[:, None] > crops[..., None, :2]) & (centre[:, None] < crops[..., None, 2:])).all(-1)  # (B, T, G)
    choice = torch.randint(len(MIN_IOUS), (B,), generator=generator, device=dev)  # (B,)
    min_iou = torch.tensor([2.0 if m is None else m for m in MIN_IOUS], device=dev)[choice]  # None: never crop
    good = (inside & valid[:, None] & (iou >= min_iou[:, None, None])).any(-1) & ok_aspect  # (B, T)
    first = good.float().argmax(dim=1)  # (B,) first acceptable candidate
    whole = torch.tensor([0.0, 0.0, 1.0, 1.0], device=dev).expand(B, 4)
    views = torch.where(good.any(1)[:, None], crops[torch.arange(B, device=dev), first], whole)  # (B, 4)
    # zoom-out: the image on a canvas of side r (in image units) at a random place
    p, r_max = ZOOM_OUT
    zoom = torch.rand(B, generator=generator, device=dev) < p  # (B,)
    r = _uniform((B, 1), 1.0, r_max, boxes, generator)  # (B, 1)
    offset = torch.rand((B, 2), generator=generator, device=dev) * (r - 1)  # (B, 2) image position on canvas
    canvas = torch.cat((-offset, r - offset), dim=1)  # (B, 4)
    return torch.where(zoom[:, None], canvas, views)


def augment_batch(images: Tensor, boxes: Tensor, valid: Tensor, generator: torch.Generator | None = None):
    """Augment a batch on its device.

    Args:
        images (uint8 [B, 3, S, S]), boxes (float [B, G, 4], normalized xyxy), valid (bool [B, G]).

    Returns:
        images (uint8 [B, 3, S, S]), boxes (normalized, clipped), valid (boxes mostly cut away become invalid).
    """
    B, _, H, W = images.shape
    dev = images.device
    views = sample_views(boxes, valid, generator)  # (B, 4) normalized
    mean = torch.tensor(MEAN_RGB, dtype=torch.float32, device=dev)[:, None, None]  # (3, 1, 1)
    rois = torch.cat((torch.arange(B, device=dev, dtype=torch.float32)[:, None], views * torch.tensor([W, H, W, H], device=dev)), 1)
    out = roi_align(images.float() - mean, rois, (H, W), spatial_scale=1.0, sampling_ratio=2, aligned=True) + mean

    vwh = views[:, 2:] - views[:, :2]  # (B, 2)
    moved = (boxes - views[:, None, :2].repeat(1, 1, 2)) / vwh[:, None].repeat(1, 1, 2)  # (B, G, 4)
    clipped = moved.clamp(0, 1)
    visible = box_area(clipped) / box_area(moved).clamp(min=1e-12)  # (B, G)
    valid = valid & (visible >= MIN_VISIBILITY) & (box_area(clipped) > 0)

    flip = torch.rand(B, generator=generator, device=dev) < 0.5  # (B,)
    out = torch.where(flip[:, None, None, None], out.flip(-1), out)
    flipped = torch.stack((1 - clipped[..., 2], clipped[..., 1], 1 - clipped[..., 0], clipped[..., 3]), -1)
    boxes = torch.where(flip[:, None, None], flipped, clipped)

    b, c, s = (_uniform((B, 1, 1, 1), 1 - JITTER, 1 + JITTER, out, generator) for _ in range(3))
    gray = (out * torch.tensor([0.299, 0.587, 0.114], device=dev)[:, None, None]).sum(1, keepdim=True)  # (B, 1, S, S)
    out = gray + (out - gray) * s  # saturation
    out = out.mean((1, 2, 3), keepdim=True) + (out - out.mean((1, 2, 3), keepdim=True)) * c  # contrast
    out = (out * b).clamp_(0, 255).round_().to(torch.uint8)  # brightness
    return out, torch.where(valid[..., None], boxes, 0.0), valid
