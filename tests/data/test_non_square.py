"""Boxes on NON-SQUARE images (160 wide, 96 high), with literal expected values: a swap of width and height,
or of x and y, would pass every test on square images and fail here."""

import numpy as np
import pytest
import torch
from PIL import Image

from detector.data.dataset import load_dataset
from detector.data.device import DeviceData
from detector.data.records import ImageRecord
from detector.data.yolo import write_yolo

W, H = 160, 96


def yolo_set(root, label_text):
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    Image.new("RGB", (W, H)).save(root / "images" / "train" / "a.png")
    (root / "labels" / "train" / "a.txt").write_text(label_text)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nnames: [a, b]\n")
    return root / "data.yaml"


def test_yolo_box_and_polygon_lines_on_a_non_square_image(tmp_path):
    f = yolo_set(tmp_path, "1 0.5 0.25 0.25 0.5\n"            # cx 80, cy 24, w 40, h 48
                           "0 0.1 0.2 0.5 0.2 0.3 0.75\n"     # a triangle: x in 16..80, y in 19.2..72
                           "1 0.25 0.5 0.75 0.5 0.5 0.125 0.5 0.875\n")  # a diamond: x 40..120, y 12..84
    (record,) = load_dataset(f).split("train")
    assert (record.width, record.height) == (W, H) and record.labels.tolist() == [1, 0, 1]
    np.testing.assert_allclose(record.boxes, [[60, 0, 100, 48], [16, 19.2, 80, 72], [40, 12, 120, 84]], atol=1e-4)


def test_write_yolo_on_a_non_square_image_and_back(tmp_path):
    (tmp_path / "images" / "train").mkdir(parents=True)
    path = tmp_path / "images" / "train" / "a.png"
    Image.new("RGB", (W, H)).save(path)
    record = ImageRecord(path, W, H, [[16, 24, 80, 72], [0, 0, 160, 12]], [0, 1])
    write_yolo(tmp_path, {"train": [record]}, ["a", "b"])
    assert (tmp_path / "labels" / "train" / "a.txt").read_text() == (
        "0 0.300000 0.500000 0.400000 0.500000\n"   # cx 48/160, cy 48/96, w 64/160, h 48/96
        "1 0.500000 0.062500 1.000000 0.125000\n")  # cx 80/160, cy 6/96, w 160/160, h 12/96
    (back,) = load_dataset(tmp_path / "data.yaml").split("train")
    np.testing.assert_allclose(back.boxes, record.boxes, atol=1e-4)


@pytest.mark.parametrize("size", [64, 48])
def test_device_data_maps_boxes_onto_the_stretched_non_square_image(tmp_path, size):
    """A white rectangle at (40, 24, 120, 72) of a black 160x96 image: stretched to size x size, the box is
    (0.25, 0.25, 0.75, 0.75) of the input, and the white pixels are exactly inside it."""
    pixels = np.zeros((H, W, 3), np.uint8)
    pixels[24:72, 40:120] = 255
    Image.fromarray(pixels).save(tmp_path / "a.png")
    record = ImageRecord(tmp_path / "a.png", W, H, [[40, 24, 120, 72]], [1], image_id=7)
    data = DeviceData([record], size, "cpu")
    torch.testing.assert_close(data.boxes[0, 0], torch.tensor([0.25, 0.25, 0.75, 0.75]))
    assert data.orig_sizes.tolist() == [[H, W]]  # (h, w), as the DataLoader path's orig_size
    (batch,) = data.batches(1, shuffle=False, augment=False)
    q = size // 4
    torch.testing.assert_close(batch["boxes"][0, 0], torch.tensor([q, q, 3 * q, 3 * q], dtype=torch.float32))
    x1, y1, x2, y2 = (int(v) for v in batch["boxes"][0, 0].tolist())
    image = batch["images"][0]  # (3, S, S)
    assert image.shape == (3, size, size)
    assert (image[:, y1 + 1 : y2 - 1, x1 + 1 : x2 - 1] == 255).all()  # inside the mapped box: the rectangle
    inside = torch.zeros(size, size, dtype=torch.bool)
    inside[y1 - 1 : y2 + 1, x1 - 1 : x2 + 1] = True
    assert (image[:, ~inside] == 0).all()  # outside it (and a pixel of resampling margin): black
    assert batch["labels"].tolist() == [[1]] and batch["image_ids"].tolist() == [7]
