"""Mosaic and mixup: a worked example with literal boxes and pixels, and the dataset's mixed samples."""

import numpy as np
import pytest
import torch

from detector.data.check import prepare_split
from detector.data.loader import DetectionDataset
from detector.data.mosaic import MOSAIC_CENTRE, draw_mixup, draw_mosaic, mixup, mosaic
from detector.data.transforms import MEAN_RGB


def test_mosaic_worked_example():
    """Canvas 100 px, centre (60, 40). Each image is scaled to a longest side of 100 and placed with a corner on the
    centre; its boxes move with it, are clipped to what shows, and are dropped under 35% visible."""
    images = [np.full((h, w, 3), c, np.uint8) for (h, w), c in
              (((50, 100), 10), ((200, 200), 20), ((100, 50), 30), ((100, 100), 40))]
    boxes = [np.array([[50, 20, 90, 45], [0, 0, 30, 30]]),  # top left, at (-40, -10): kept whole; cut to nothing
             np.array([[0, 100, 40, 200], [100, 0, 200, 100]]),  # top right, halved, at (60, -60): 80% shows; outside
             np.array([[10, 40, 50, 100], [0, 0, 20, 20]]),  # bottom left, at (10, 40): a third shows; whole
             np.array([[20, 30, 40, 90]])]  # bottom right, at (60, 40): half shows
    labels = [np.array([0, 9]), np.array([1, 9]), np.array([9, 2]), np.array([3])]
    image, out_boxes, out_labels = mosaic(images, boxes, labels, size=100, centre=(60, 40))

    np.testing.assert_array_equal(out_boxes, [[10, 10, 50, 35], [60, 0, 80, 40], [10, 40, 30, 60],
                                              [80, 70, 100, 100]])
    assert out_labels.tolist() == [0, 1, 2, 3] and out_boxes.dtype == np.float32 and image.shape == (100, 100, 3)
    assert (image[:40, :60] == 10).all() and (image[:40, 60:] == 20).all()
    assert (image[40:, 10:60] == 30).all() and (image[40:, 60:] == 40).all()
    assert (image[40:, :10] == MEAN_RGB).all()  # the bottom-left image is 50 wide: the rest is the mean colour


def test_mixup_blends_and_keeps_both_sets_of_boxes():
    a, b = np.full((8, 8, 3), 100, np.uint8), np.full((8, 8, 3), 200, np.uint8)
    image, boxes, labels = mixup(a, np.array([[1, 1, 4, 4]]), np.array([2]), b, np.zeros((0, 4)),
                                 np.zeros(0, np.int64), ratio=0.25)
    assert (image == 175).all() and image.dtype == np.uint8
    assert boxes.tolist() == [[1, 1, 4, 4]] and labels.tolist() == [2]
    _, boxes, labels = mixup(a, np.array([[1, 1, 4, 4]]), np.array([2]), b, np.array([[0, 0, 8, 8]]), np.array([0]),
                             ratio=0.5)
    assert boxes.tolist() == [[1, 1, 4, 4], [0, 0, 8, 8]] and labels.tolist() == [2, 0]


def test_draws_are_seeded_and_in_range():
    first = draw_mosaic(np.random.default_rng(5), n=10, size=200)
    assert first == draw_mosaic(np.random.default_rng(5), n=10, size=200)
    others, (cx, cy) = first
    assert len(others) == 3 and all(0 <= i < 10 for i in others)
    assert MOSAIC_CENTRE[0] * 200 <= cx <= MOSAIC_CENTRE[1] * 200 and MOSAIC_CENTRE[0] * 200 <= cy <= MOSAIC_CENTRE[1] * 200
    other, seed, ratio = draw_mixup(np.random.default_rng(5), n=10)
    assert 0 <= other < 10 and 0.3 < ratio < 0.7 and (other, seed, ratio) == draw_mixup(np.random.default_rng(5), 10)


@pytest.mark.parametrize("mix", [{"mosaic": 1.0}, {"mixup": 1.0}, {"mosaic": 0.5, "mixup": 0.5}])
def test_mixed_samples_are_well_formed_and_repeatable(shapes_yaml, mix):
    _, records = prepare_split(shapes_yaml, "train", log=lambda s: None)
    data = DetectionDataset(records, 64, train=True, seed=3, **mix)
    data.set_epoch(2)
    counts = []
    for index in range(6):
        image, target = data[index]
        boxes = target["boxes"]
        assert image.shape == (3, 64, 64) and image.dtype == torch.uint8
        assert len(boxes) == len(target["labels"]) and ((target["labels"] >= 0) & (target["labels"] < 5)).all()
        assert ((boxes >= 0) & (boxes <= 64)).all() and (boxes[:, 2:] > boxes[:, :2]).all()
        again, target_again = data[index]
        assert torch.equal(image, again) and torch.equal(boxes, target_again["boxes"])
        counts.append(len(boxes))
    plain = DetectionDataset(records, 64, train=True, seed=3)
    plain.set_epoch(2)
    assert sum(counts) > sum(len(plain[i][1]["boxes"]) for i in range(6))  # mixes bring in other images' boxes


def test_off_is_todays_pipeline(shapes_yaml):
    _, records = prepare_split(shapes_yaml, "train", log=lambda s: None)
    for a, b in zip(DetectionDataset(records, 64, train=True, seed=1, mosaic=0.0, mixup=0.0),
                    DetectionDataset(records, 64, train=True, seed=1)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1]["boxes"], b[1]["boxes"])
