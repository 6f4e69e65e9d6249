"""Hard negatives (``train --hard-negatives W``): the background images a model fires on are drawn W+1 times as
often in the next epochs, the epoch's length and its images with objects kept."""

import numpy as np
import pytest
import torch
from PIL import Image

from detector.data.records import ImageRecord
from detector.engine.mining import FIRES_AT, HardNegatives, mining_step


def record(path, boxes: int) -> ImageRecord:
    b = np.array([[1, 1, 10, 10]] * boxes, np.float32).reshape(-1, 4)
    return ImageRecord(path, 32, 32, b, np.zeros(boxes, np.int64), image_id=1)


def test_the_epoch_keeps_its_length_and_its_objects_and_draws_the_firing_ones_more():
    records = [record(f"obj{k}.png", 1) for k in range(4)] + [record(f"bg{k}.png", 0) for k in range(6)]
    miner = HardNegatives(records, weight=3.0, seed=0)
    assert miner.records(5) == records  # nothing fires yet: the records as given
    miner.fires = np.array([True, False, False, False, False, False])  # bg0 fires
    counts = {}
    for epoch in range(400):
        epoch_records = miner.records(epoch)
        assert len(epoch_records) == 10 and epoch_records[:4] == records[:4]  # objects: all, in their places
        for r in epoch_records[4:]:
            counts[r.path] = counts.get(r.path, 0) + 1
    share = counts["bg0.png"] / sum(counts.values())
    assert share == pytest.approx(4 / 9, abs=0.03)  # weight 1 + 3 against five of weight 1
    assert miner.records(7) == miner.records(7)  # seeded by the run's seed and the epoch


def test_it_looks_when_due_and_scores_with_the_model_in_eval_mode(tmp_path):
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"{k}.png")
        Image.new("RGB", (40, 30), (k * 80, 0, 0)).save(paths[-1])  # red 0, 80, 160: only the last over 100

    class FiresOnRed(torch.nn.Module):  # a detector that fires on images whose red is over 100
        num_classes = 1

        def forward(self, images, targets=None, post=None, size=None):
            assert not self.training
            return [{"boxes": torch.tensor([[0.0, 0, 5, 5]]), "scores": torch.tensor([0.9 if im[0].float().mean() > 100
                                                                                     else 0.1]),
                     "labels": torch.tensor([0])} for im in images]

    model = FiresOnRed().train()
    miner = HardNegatives([record(str(p), 0) for p in paths] + [record("obj.png", 1)], weight=2.0, seed=0)
    said = []
    step = mining_step(miner, model, torch.device("cpu"), every=2, main=True, share=lambda x: x, say=said.append)
    assert step(0) == miner.base and not said  # not at the first epoch
    step(1)  # a resumed run's first epoch looks
    assert miner.fires.tolist() == [False, False, True] and model.training  # put back in training mode
    assert said == [(f"hard negatives: 1 of 3 background images fire (a detection at {FIRES_AT} or more): drawn 3x "
                     "as often until the next look")]
    step(3)
    assert len(said) == 1 and miner.due(4, 2)  # every 2 epochs
