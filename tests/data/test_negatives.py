"""Background images (issue 29): images without objects train as negatives, from ``--negatives DIR`` or from
``detector data negatives``' crops of a data set's own photographs."""

import numpy as np
import pytest
import torch
from PIL import Image

from detector.cli.main import main
from detector.core.losses import cls_loss
from detector.data.check import prepare_split
from detector.data.negatives import background_records, write_background_crops
from detector.data.records import ImageRecord
from detector.engine.config import TrainConfig
from detector.engine.detect import train


def test_an_image_without_boxes_still_learns_background():
    # 2 images x 50 anchors, 1 class: image 0 has one positive, image 1 none; every anchor says "class 1"
    logits = torch.zeros(2, 50, 2)
    logits[..., 1] = torch.linspace(1.0, 3.0, 50)  # the hardest negatives are the last anchors
    targets = torch.zeros(2, 50, dtype=torch.long)
    targets[0, 0] = 1
    ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(2, 50)
    with_floor = cls_loss(logits, targets, "hnm", neg_pos_ratio=3.0, min_negatives=3.0)
    # image 0: its positive and its 3 hardest negatives; image 1: its 3 hardest negatives (the floor)
    expected = ce[0, 0] + ce[0, -3:].sum() + ce[1, -3:].sum()
    assert with_floor.item() == pytest.approx(expected.item(), rel=1e-6)
    without = cls_loss(logits, targets, "hnm", neg_pos_ratio=3.0, min_negatives=0.0)  # torchvision's SSD
    assert without.item() == pytest.approx((ce[0, 0] + ce[0, -3:].sum()).item(), rel=1e-6)


def test_background_crops_overlap_no_box(tmp_path):
    records = []
    rng = np.random.default_rng(1)
    for i in range(4):  # dark photographs with white objects
        image = np.full((120, 160, 3), 20, np.uint8)
        x, y = int(rng.integers(0, 100)), int(rng.integers(0, 60))
        image[y:y + 50, x:x + 50] = 255
        Image.fromarray(image).save(tmp_path / f"p{i}.png")
        records.append(ImageRecord(tmp_path / f"p{i}.png", 160, 120, np.array([[x, y, x + 50, y + 50]], np.float32),
                                   np.zeros(1, np.int64), image_id=i + 1))
    report = write_background_crops(records, tmp_path / "bg", count=12, seed=0)
    crops = sorted((tmp_path / "bg").glob("*.jpg"))
    assert report.written == len(crops) == 12
    for path in crops:
        crop = np.asarray(Image.open(path))
        assert crop.shape[0] >= 0.3 * 120 - 1 and crop.shape[1] >= 0.3 * 160 - 1
        assert crop.max() < 128, f"{path.name} shows part of an object"
    back = background_records(tmp_path / "bg")
    assert len(back) == 12 and all(len(r.boxes) == 0 for r in back)


def test_data_negatives_writes_crops_and_refuses_a_used_folder(shapes_yaml, tmp_path, capsys):
    out = tmp_path / "neg"
    assert main(["data", "negatives", str(shapes_yaml), "--out", str(out), "--count", "5"]) == 0
    assert len(list(out.glob("*.jpg"))) == 5
    assert f"--negatives {out}" in capsys.readouterr().out
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["data", "negatives", str(shapes_yaml), "--out", str(out), "--count", "5", "--seed", "3"]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing written over
    assert main(["data", "negatives", str(shapes_yaml), "--out", str(out), "--count", "5", "--seed", "3",
                 "--exist-ok"]) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} != before


def test_train_counts_negatives_in_the_log(shapes_yaml, tmp_path, capsys):
    neg = tmp_path / "neg"
    assert main(["data", "negatives", str(shapes_yaml), "--out", str(neg), "--count", "4"]) == 0
    cfg = TrainConfig(model="tiny_ssd_plus", data=str(shapes_yaml), epochs=1, batch_size=8, img_size=64, workers=0,
                      eval_every=1, out=str(tmp_path / "run"), device="cpu", negatives=str(neg))
    metrics = train(cfg)
    err = capsys.readouterr().err
    assert f"negatives: 4 background images from {neg}" in err
    _, records = prepare_split(shapes_yaml, "train", "skip")
    empty = sum(len(r.boxes) == 0 for r in records)  # the generated set's own images without shapes
    assert f"train: {len(records) + 4} images, {empty + 4} of them without objects (background)" in err
    assert np.isfinite(metrics["AP"])


def test_train_refuses_a_missing_or_empty_negatives_folder(shapes_yaml, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for folder, message in ((tmp_path / "nope", "no such folder"), (tmp_path / "empty", "no images in it")):
        code = main(["train", "--data", str(shapes_yaml), "--epochs", "1", "--img-size", "64", "--device", "cpu",
                     "--out", str(tmp_path / f"run-{folder.name}"), "--negatives", str(folder)])
        assert code == 1 and f"--negatives {folder}: {message}" in capsys.readouterr().err


def _dark_coco(folder, boxes_by_image, categories=({"id": 1, "name": "thing"},)):
    """A COCO set of dark 120x160 photographs whose annotated boxes are painted white."""
    import json

    images, annotations = [], []
    for i, boxes in enumerate(boxes_by_image, 1):
        image = np.full((120, 160, 3), 20, np.uint8)
        for (x, y, w, h), _ in boxes:
            image[y:y + h, x:x + w] = 255
        Image.fromarray(image).save(folder / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png", "width": 160, "height": 120})
        annotations += [{"id": len(annotations) + 1, "image_id": i, "category_id": c, "bbox": list(b), "iscrowd": 0}
                        for b, c in boxes]
    path = folder / "train.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": list(categories)}))
    return path


def test_crops_keep_out_boxes_dropped_as_invalid_and_say_what_was_skipped(tmp_path, capsys):
    # each photograph's left half is an object of an unknown category (dropped as invalid, still an object)
    data = tmp_path / "data"
    data.mkdir()
    coco = _dark_coco(data, [[((0, 0, 80, 120), 99)], [((0, 0, 80, 120), 99)], [((100, 10, 20, 20), 1)]])
    (data / "3.png").write_bytes((data / "3.png").read_bytes()[:60])  # truncated: cannot be decoded
    out = tmp_path / "bg"
    assert main(["data", "negatives", str(coco), "--out", str(out), "--count", "6"]) == 0
    said = capsys.readouterr().out
    assert "skipped 1 photograph that could not be decoded" in said and "3.png" in said
    crops = sorted(out.glob("*.jpg"))
    assert len(crops) == 6
    assert all(np.asarray(Image.open(p)).max() < 128 for p in crops), "a crop shows part of an object"


def test_a_split_without_free_regions_is_an_error_and_a_short_one_says_so(tmp_path, capsys):
    covered = tmp_path / "covered"
    covered.mkdir()
    coco = _dark_coco(covered, [[((0, 0, 160, 120), 1)]])
    out = tmp_path / "none"
    assert main(["data", "negatives", str(coco), "--out", str(out), "--count", "3"]) == 1
    assert "no crop free of boxes" in capsys.readouterr().err
    assert not out.exists()  # no empty folder left for train --negatives to trip on
    most = tmp_path / "most"
    most.mkdir()
    coco = _dark_coco(most, [[((0, 0, 160, 80), 1)]])  # only the bottom third is free: few crops fit there
    assert main(["data", "negatives", str(coco), "--out", str(tmp_path / "few"), "--count", "100"]) == 0
    written = len(list((tmp_path / "few").glob("*.jpg")))
    assert 0 < written < 100 and f"only {written} of the 100 asked" in capsys.readouterr().out
    # one crop asked of the same photograph: found (the search is not cut at 200 tries per crop)
    assert main(["data", "negatives", str(coco), "--out", str(tmp_path / "one"), "--count", "1"]) == 0
    assert len(list((tmp_path / "one").glob("*.jpg"))) == 1


def test_a_crop_that_cannot_be_written_is_an_error_naming_it(shapes_yaml, tmp_path, capsys):
    out = tmp_path / "neg"
    (out / "bg0000.jpg").mkdir(parents=True)  # a folder in the way of the first crop
    assert main(["data", "negatives", str(shapes_yaml), "--out", str(out), "--count", "2", "--exist-ok"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and f"cannot write {out / 'bg0000.jpg'}" in err


def test_negatives_are_read_from_subfolders_and_copies_of_data_images_are_refused(shapes_yaml, tmp_path, capsys):
    import shutil

    neg = tmp_path / "neg"
    (neg / "indoor").mkdir(parents=True)
    for i, name in enumerate(("a.png", "indoor/b.png", "indoor/c.jpg")):
        Image.fromarray(np.full((64, 64, 3), 40 * i, np.uint8)).save(neg / name)
    assert [p.relative_to(neg).as_posix() for p in (r.path for r in background_records(neg))] == [
        "a.png", "indoor/b.png", "indoor/c.jpg"]
    _, val = prepare_split(shapes_yaml, "val", "skip")
    shutil.copy(val[0].path, neg / "indoor" / "copy.jpg")  # a val photograph would leak into training
    code = main(["train", "--data", str(shapes_yaml), "--epochs", "1", "--img-size", "64", "--device", "cpu",
                 "--out", str(tmp_path / "run"), "--negatives", str(neg)])
    err = capsys.readouterr().err
    assert code == 1 and "1 of its images are images of the data set itself" in err and str(val[0].path) in err


def test_linked_subfolders_count_once_and_skip_invalid_skips_truncated_images(tmp_path, capsys):
    photos, neg = tmp_path / "photos", tmp_path / "neg"
    photos.mkdir()
    neg.mkdir()
    for i in range(3):
        Image.fromarray(np.full((64, 64, 3), 50 * i, np.uint8)).save(photos / f"{i}.png")
    Image.fromarray(np.full((64, 64, 3), 9, np.uint8)).save(neg / "own.png")
    (neg / "more").symlink_to(photos, target_is_directory=True)
    (neg / "loop").symlink_to(neg, target_is_directory=True)  # a loop: read once, not forever
    assert len(background_records(neg)) == 4
    good = (photos / "0.png").read_bytes()
    (photos / "0.png").write_bytes(good[: len(good) // 2])  # a truncated PNG: its header still reads
    records = background_records(neg, skip_invalid=True)
    assert len(records) == 3 and all("0.png" not in str(r.path) for r in records)
    assert "skipped 1 unreadable image (skip_invalid=True)" in capsys.readouterr().out
