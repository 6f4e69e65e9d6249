import numpy as np
import pytest

from detector.data.check import prepare_split
from detector.data.dataset import load_dataset
from detector.data.synth import SHAPES, render, synth_dataset


def test_render_is_deterministic_and_seed_dependent():
    a, b = render(3, "train", 5), render(3, "train", 5)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    c = render(4, "train", 5)
    assert not np.array_equal(a[0], c[0])
    d = render(3, "val", 5)  # another split is another stream
    assert not np.array_equal(a[0], d[0])


def test_shapes_statistics_over_many_images():
    counts, sides, labels = [], [], []
    for i in range(150):
        img, boxes, lab = render(0, "train", i, size=256)
        assert img.shape == (256, 256, 3) and img.dtype == np.uint8
        assert ((boxes >= 0) & (boxes <= 256)).all() and (boxes[:, 2:] > boxes[:, :2]).all()
        counts.append(len(boxes))
        sides += np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).tolist()
        labels += lab.tolist()
    assert min(counts) == 0 and max(counts) <= 8 and max(counts) >= 6
    sides = np.array(sides)
    assert (sides < 32).sum() > 50 and ((sides >= 32) & (sides < 96)).sum() > 50 and (sides >= 96).sum() > 20
    assert set(labels) == set(range(len(SHAPES)))


def test_bananas_preset_writes_the_books_layout(tmp_path):
    path = synth_dataset(tmp_path, "bananas", train=5, val=3, seed=2, workers=1)
    data = load_dataset(path)
    assert data.classes == ["banana"]
    assert all(len(r.boxes) == 1 for r in data.split("train"))
    book = load_dataset(tmp_path / "bananas_train")  # the CSV layout, read on its own
    assert [r.path.name for r in book.split("train")] == [r.path.name for r in data.split("train")]
    for a, b in zip(book.split("train"), data.split("train")):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.51)  # CSV is in whole pixels, as the book's


def test_written_set_passes_its_own_check(shapes_yaml):
    _, records = prepare_split(shapes_yaml, "val", log=lambda s: pytest.fail(s))
    assert len(records) == 6


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="preset"):
        synth_dataset(tmp_path, "zebras")
    with pytest.raises(ValueError, match="size"):
        synth_dataset(tmp_path, size=8)
