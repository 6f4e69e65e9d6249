import pytest
import torch

from detector.data.check import prepare_split
from detector.data.device import DeviceData
from detector.data.loader import DetectionDataset, collate, make_loader


def test_collate_pads_boxes_and_marks_them():
    img = torch.zeros(3, 8, 8, dtype=torch.uint8)
    samples = [(img, {"boxes": torch.tensor([[0.0, 0, 2, 2], [1, 1, 3, 3]]), "labels": torch.tensor([1, 0]),
                      "image_id": 5, "orig_size": (10, 20)}),
               (img, {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
                      "image_id": 6, "orig_size": (30, 40)})]
    batch = collate(samples)
    assert batch["images"].shape == (2, 3, 8, 8)
    assert batch["boxes"].shape == (2, 2, 4) and batch["labels"].tolist() == [[1, 0], [-1, -1]]
    assert batch["valid"].tolist() == [[True, True], [False, False]]
    assert batch["image_ids"].tolist() == [5, 6] and batch["orig_sizes"].tolist() == [[10, 20], [30, 40]]
    empty = collate([samples[1]])
    assert empty["boxes"].shape == (1, 1, 4) and not empty["valid"].any()


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_epoch_is_the_same_whatever_the_workers(shapes_yaml, workers):
    _, records = prepare_split(shapes_yaml, "train", log=lambda s: None)
    ref = DetectionDataset(records, 64, train=True, seed=1)
    ds = DetectionDataset(records, 64, train=True, seed=1)
    ds.set_epoch(3)
    ref.set_epoch(3)
    batches = list(make_loader(ds, batch_size=5, shuffle=False, workers=workers))
    assert sum(len(b["images"]) for b in batches) == len(records)
    first = collate([ref[i] for i in range(5)])
    assert torch.equal(batches[0]["images"], first["images"]) and torch.equal(batches[0]["boxes"], first["boxes"])
    assert batches[0]["images"].dtype == torch.uint8 and batches[0]["images"].shape[1:] == (3, 64, 64)
    ds.set_epoch(4)
    assert not torch.equal(collate([ds[i] for i in range(5)])["images"], first["images"])


def test_eval_dataset_keeps_every_box(shapes_yaml):
    _, records = prepare_split(shapes_yaml, "val", log=lambda s: None)
    ds = DetectionDataset(records, 48)
    for i, r in enumerate(records):
        _, t = ds[i]
        assert len(t["boxes"]) == len(r.boxes)
        torch.testing.assert_close(t["boxes"], torch.from_numpy(r.boxes) * 48 / 96, atol=1e-4, rtol=0)


def test_unreadable_image_names_the_file(shapes_yaml):
    _, records = prepare_split(shapes_yaml, "val", log=lambda s: None)
    bad = records[0].path.parent / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    from dataclasses import replace
    ds = DetectionDataset([replace(records[0], path=bad)], 48)
    with pytest.raises(OSError, match="broken.jpg: not a readable image"):
        ds[0]
    bad.unlink()


def test_device_data_batches(shapes_yaml):
    _, records = prepare_split(shapes_yaml, "train", log=lambda s: None)
    data = DeviceData(records, 64)
    assert data.images.shape == (16, 3, 64, 64) and data.images.dtype == torch.uint8
    plain = list(data.batches(6, shuffle=False, augment=False))
    assert [len(b["images"]) for b in plain] == [6, 6, 4]
    b = plain[0]
    for i in range(6):  # without augmentation, boxes are the records' boxes scaled to the input
        n = len(records[i].boxes)
        torch.testing.assert_close(b["boxes"][i, :n], torch.from_numpy(records[i].boxes) * 64 / 96, atol=1e-4, rtol=0)
        assert b["valid"][i].sum() == n and (b["labels"][i, :n] == torch.from_numpy(records[i].labels)).all()
    g = torch.Generator().manual_seed(0)
    aug = list(data.batches(6, generator=g, drop_last=True))
    assert len(aug) == 2 and all((x["labels"] >= 0).eq(x["valid"]).all() for x in aug)
