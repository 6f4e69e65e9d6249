"""Hard negatives at the image level: the background images (``--negatives``, or images without boxes) that the
model fires on are drawn more often in the next epochs.

    detector train --data DS --negatives DIR --hard-negatives 3      # a firing background image: 4x as often

Every ``--eval-every`` epochs (and at a resumed run's first epoch) the model, in eval mode, scores each background
image; those with a detection at the app's default threshold (0.25) or more fire. Until the next look, each
epoch's background places are drawn from the background images with weight ``1 + hard_negatives`` for the ones
that fire and 1 for the others (with replacement, seeded by the run's seed and the epoch): the epoch keeps its
length (and the learning-rate schedule its steps); the images with objects are all in every epoch, as before.
Under torchrun, rank 0 scores and every rank draws the same.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from detector.core.thresholds import CONF
from detector.data.images import read_image
from detector.data.records import ImageRecord
from detector.evaluation.predict import detect_images

FIRES_AT = CONF  # a background image with a detection at or above this fires (the app's default threshold)
BATCH = 16  # images per model call when scoring


class HardNegatives:
    """The background images of ``records`` and which of them the model fired on at its last look."""

    def __init__(self, records: list[ImageRecord], weight: float, seed: int, max_pixels: int | None = None):
        self.base, self.weight, self.seed, self.max_pixels = list(records), float(weight), seed, max_pixels
        self.background = [i for i, r in enumerate(records) if len(r.boxes) == 0]  # their places in the epoch
        self.fires = np.zeros(len(self.background), dtype=bool)
        self.looked = False

    def due(self, epoch: int, every: int) -> bool:
        """Whether to look before ``epoch``: every ``every`` epochs, and at the first epoch of a resumed run."""
        return bool(self.background) and epoch > 0 and (epoch % every == 0 or not self.looked)

    @torch.no_grad()
    def look(self, model: torch.nn.Module, device: torch.device) -> int:
        """Score every background image with ``model`` (in eval mode, put back as it was); returns how many fire."""
        was_training = model.training
        model.eval()
        try:
            best = []
            for start in range(0, len(self.background), BATCH):
                chunk = [self.base[i] for i in self.background[start:start + BATCH]]
                images = [read_image(r.path, self.max_pixels) for r in chunk]
                found = detect_images(model, images, device, {"score_threshold": FIRES_AT}, FIRES_AT)
                best += [float(d["scores"].max()) if len(d["scores"]) else 0.0 for d in found]
        finally:
            model.train(was_training)
        self.fires = np.asarray(best) >= FIRES_AT
        self.looked = True
        return int(self.fires.sum())

    def records(self, epoch: int) -> list[ImageRecord]:
        """The epoch's records: the images with objects in their places, the background places drawn (see the
        module's docstring); the records as given while nothing fires."""
        if not self.fires.any():
            return self.base
        rng = np.random.default_rng([self.seed, epoch, 1009])
        weights = 1.0 + self.weight * self.fires
        drawn = rng.choice(len(self.background), size=len(self.background), p=weights / weights.sum())
        out = list(self.base)
        for place, k in zip(self.background, drawn):
            out[place] = self.base[self.background[k]]
        return out


def mining_step(miner: HardNegatives, model: torch.nn.Module, device: torch.device, every: int, main: bool,
                share: Callable, say: Callable[[str], None]) -> Callable[[int], list[ImageRecord]]:
    """``epoch -> that epoch's records``, looking when due: on the main process, its result shared with every
    process (``share``: rank 0's object on every rank)."""

    def records(epoch: int) -> list[ImageRecord]:
        if miner.due(epoch, every):
            if main:
                miner.look(model, device)
            miner.fires, miner.looked = np.asarray(share(miner.fires.tolist()), dtype=bool), True
            say(f"hard negatives: {int(miner.fires.sum())} of {len(miner.background)} background images fire (a "
                f"detection at {FIRES_AT} or more): drawn {miner.weight + 1:g}x as often until the next look")
        return miner.records(epoch)

    return records
