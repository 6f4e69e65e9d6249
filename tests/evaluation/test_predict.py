"""The one inference path: boxes come back in each original image's pixels, through every caller."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from detector.core.geometry import fit_images, to_original
from detector.data.records import ImageRecord
from detector.evaluation.predict import detect_images, output_stems, predict_records

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "tinyssd-shapes.pt"


def fake_detector(model: nn.Module, classes=("a", "b"), category_ids=(5, 9)):
    """A :class:`~detector.api.Detector` whose model is ``model`` (a fake that honours the contract)."""
    from dataclasses import replace

    from detector.api import Detector

    det = Detector(SHIPPED, device="cpu")
    det.model = model
    det.info = replace(det.info, classes=list(classes), category_ids=list(category_ids), name="fake",
                       img_size=model.img_size)
    return det


def cli_predict(det, paths, out: Path, save_txt: bool = False, **settings) -> list[dict]:
    """What ``detector predict`` writes for ``paths`` (``Detector.predict(..., out=...)``); returns predictions.json."""
    import json

    det.predict(paths, out=out, save_txt=save_txt, **settings)
    return json.loads((out / "predictions.json").read_text())


class FixedBox(nn.Module):
    """A detector that owns its geometry as the real ones do (fits each image to ``img_size``, maps boxes back)
    and finds one box at (W/4, H/2, 3W/4, H) of its fitted input, class 1, score 0.9. It records the ``post``
    it got, the shapes of the images it was handed and of its fitted input."""

    label = 1

    def __init__(self, img_size: int = 64, letterbox: bool = False):
        super().__init__()
        self.img_size, self.letterbox, self.posts, self.given, self.shapes = img_size, letterbox, [], [], []

    def find(self, x):
        H, W = x.shape[-2:]
        return torch.tensor([[0.25 * W, 0.5 * H, 0.75 * W, 1.0 * H]])

    def forward(self, images, targets=None, post=None, size=None):
        self.posts.append(post)
        self.given += [tuple(im.shape) for im in images]
        x, frames = fit_images(images, size or self.img_size, self.letterbox)
        self.shapes.append(tuple(x.shape[-2:]))
        return [{"boxes": to_original(self.find(im), frame), "scores": torch.tensor([0.9]),
                 "labels": torch.tensor([self.label])} for im, frame in zip(x, frames)]


# (height, width) of non-square images, so a swapped width and height cannot pass
SIZES = [(96, 160), (160, 96)]
EXPECTED = {(96, 160): [40.0, 48.0, 120.0, 96.0], (160, 96): [24.0, 80.0, 72.0, 160.0]}  # x1, y1, x2, y2


def test_detect_images_maps_boxes_to_each_originals_pixels():
    model = FixedBox()
    images = [np.zeros((h, w, 3), np.uint8) for h, w in SIZES]
    out = detect_images(model, images, post={"nms_threshold": 0.3})
    for det, size in zip(out, SIZES):
        np.testing.assert_allclose(det["boxes"], [EXPECTED[size]], atol=1e-4)
        assert det["labels"].tolist() == [1] and det["scores"].tolist() == pytest.approx([0.9])
    assert model.posts == [{"nms_threshold": 0.3}]
    assert model.given == [(3, 96, 160), (3, 160, 96)]  # the originals: the model fits them itself
    assert detect_images(model, images[:1], conf=0.95)[0]["boxes"].shape == (0, 4)  # below conf: dropped


@pytest.mark.parametrize("label", [-1, 2])
def test_a_label_outside_the_models_classes_is_an_error_not_another_class(label):
    from detector.models.checkpoint import CheckpointError

    model = FixedBox()
    model.num_classes, model.label = 2, label  # -1 would otherwise be named after the last class
    with pytest.raises(CheckpointError, match=f"FixedBox returned labels {label}..{label} outside its 2 classes"):
        detect_images(model, [np.zeros((64, 64, 3), np.uint8)])


def test_eval_and_predict_take_the_same_path(tmp_path):
    records, paths = [], []
    for k, (h, w) in enumerate(SIZES):
        path = tmp_path / f"im{k}.png"
        Image.fromarray(np.full((h, w, 3), 40 * k, np.uint8)).save(path)
        records.append(ImageRecord(path, w, h, np.zeros((0, 4)), [], image_id=k + 7))
        paths.append(path)
    model = FixedBox()
    results = predict_records(model, records, category_ids=[5, 9], batch_size=2)
    assert model.given == [(3, 96, 160), (3, 160, 96)]
    assert [r["image_id"] for r in results] == [7, 8] and {r["category_id"] for r in results} == {9}
    for r, size in zip(results, SIZES):
        x1, y1, x2, y2 = EXPECTED[size]
        assert r["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1])
    predicted = cli_predict(fake_detector(FixedBox()), paths, tmp_path / "out")
    assert [r["bbox"] for r in predicted] == [r["bbox"] for r in results]
    assert [r["file_name"] for r in predicted] == [str(p) for p in paths] and predicted[0]["category"] == "b"
    assert [r["image_id"] for r in predicted] == [1, 2]  # COCO ids start at 1


def test_predict_names_labels_size_and_classes(tmp_path):
    (tmp_path / "x").mkdir()
    paths = [tmp_path / "a.png", tmp_path / "a.jpg", tmp_path / "x" / "a.png", tmp_path / "a_2.png"]
    for path, (h, w) in zip(paths, [SIZES[0], SIZES[1], SIZES[0], SIZES[1]]):
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(path)
    assert output_stems(paths) == ["a", "a_2", "a_3", "a_2_2"]  # no output overwrites another
    model = FixedBox()
    results = cli_predict(fake_detector(model), paths, tmp_path / "out", save_txt=True, img_size=80, max_det=7,
                          iou=0.5, conf=0.25)
    assert model.shapes == [(80, 80)] * 4
    assert model.posts == [{"nms_threshold": 0.5, "score_threshold": 0.25, "max_detections": 7}] * 4
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("*.jpg")) == ["a.jpg", "a_2.jpg", "a_2_2.jpg", "a_3.jpg"]
    # (96, 160): box (40, 48, 120, 96) -> centre (80, 72), size 80 x 48, over 160 x 96
    assert (out / "labels" / "a.txt").read_text() == "1 0.500000 0.750000 0.500000 0.500000 0.90000\n"
    # (160, 96): box (24, 80, 72, 160) -> centre (48, 120), size 48 x 80, over 96 x 160
    assert (out / "labels" / "a_2.txt").read_text() == "1 0.500000 0.750000 0.500000 0.500000 0.90000\n"
    assert len(results) == 4
    kept = cli_predict(fake_detector(FixedBox()), paths[:1], tmp_path / "out2", save_txt=True, classes=["a"])
    assert kept == [] and (tmp_path / "out2" / "labels" / "a.txt").read_text() == ""  # class 1 filtered out


class LiteralBox(FixedBox):
    """Finds the box ``BOX`` (pixels of its fitted input) in every image."""

    def __init__(self, box, letterbox: bool = False):
        super().__init__(64, letterbox)
        self.box = torch.tensor([box], dtype=torch.float32)

    def find(self, x):
        return self.box


def test_letterbox_maps_literal_boxes_back():
    """200 x 100 (w x h) at 64: scale 0.32, the image is 64 x 32 at rows 16..48; a box (8, 20, 24, 40) of the input
    is ((8 - 0) / 0.32, (20 - 16) / 0.32, ...) = (25, 12.5, 75, 75) in the original. Transposed, the padding is
    on the left."""
    wide, tall = np.zeros((100, 200, 3), np.uint8), np.zeros((200, 100, 3), np.uint8)
    (det,) = detect_images(LiteralBox([8, 20, 24, 40], letterbox=True), [wide])
    np.testing.assert_allclose(det["boxes"], [[25, 12.5, 75, 75]], atol=1e-4)
    (det,) = detect_images(LiteralBox([24, 8, 40, 24], letterbox=True), [tall])
    np.testing.assert_allclose(det["boxes"], [[25, 25, 75, 75]], atol=1e-4)
    (det,) = detect_images(LiteralBox([0, 0, 64, 64], letterbox=True), [wide])
    np.testing.assert_allclose(det["boxes"], [[0, 0, 200, 100]], atol=1e-4)  # the padding is not in the image
    (det,) = detect_images(LiteralBox([8, 20, 24, 40]), [wide])  # without: x / 0.32, y / 0.64
    np.testing.assert_allclose(det["boxes"], [[25, 31.25, 75, 62.5]], atol=1e-4)


class ColourFinder(FixedBox):
    """Finds the one rectangle of colour ``COLOUR`` in each fitted input (letterboxed to 128)."""

    COLOUR, label = (250, 10, 10), 0

    def __init__(self):
        super().__init__(128, letterbox=True)

    def find(self, im):
        ys, xs = torch.nonzero((im.permute(1, 2, 0) == torch.tensor(self.COLOUR, dtype=torch.uint8)).all(-1),
                               as_tuple=True)
        return torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32)


def test_letterbox_round_trip_through_every_caller(tmp_path):
    """A rectangle drawn at literal pixels of a 256 x 96 image, found by the model in the letterboxed 128 x 128
    input (scale 0.5, 40 rows of the mean colour above), comes back at those pixels from detect_images,
    predict_records (eval, training's val AP) and predict_paths (predict)."""
    from detector.core.geometry import MEAN_RGB, fit_image
    from detector.evaluation.predict import as_tensor

    image = np.full((96, 256, 3), 90, np.uint8)
    image[30:70, 40:140] = ColourFinder.COLOUR  # (x1, y1, x2, y2) = (40, 30, 140, 70)
    boxed = fit_image(as_tensor(image), 128, letterbox=True)[0].permute(1, 2, 0).numpy()
    assert boxed.shape == (128, 128, 3) and (boxed[:40] == MEAN_RGB).all() and (boxed[88:] == MEAN_RGB).all()
    assert (boxed[55:75, 20:70] == ColourFinder.COLOUR).all() and (boxed[40:88] != MEAN_RGB).any(-1).all()
    model = ColourFinder()
    (det,) = detect_images(model, [image])
    np.testing.assert_allclose(det["boxes"], [[40, 30, 140, 70]], atol=1e-4)

    path = tmp_path / "wide.png"
    Image.fromarray(image).save(path)
    results = predict_records(model, [ImageRecord(path, 256, 96, np.zeros((0, 4)), [], image_id=3)],
                              category_ids=[7])
    assert results[0]["bbox"] == pytest.approx([40, 30, 100, 40])  # COCO xywh
    predicted = cli_predict(fake_detector(ColourFinder(), ["a"], [7]), [path], tmp_path / "out", conf=0.5)
    assert predicted[0]["bbox"] == pytest.approx([40, 30, 100, 40])


def test_a_recursive_glob_ends_on_a_folder_that_links_to_itself(tmp_path):
    from detector.evaluation.predict import expand_glob

    (tmp_path / "photos" / "sub").mkdir(parents=True)
    for p in (tmp_path / "photos" / "a.jpg", tmp_path / "photos" / "sub" / "b.jpg"):
        p.write_bytes(b"")
    (tmp_path / "photos" / "sub" / "loop").symlink_to(tmp_path / "photos", target_is_directory=True)
    found = sorted(Path(p).relative_to(tmp_path).as_posix() for p in expand_glob(f"{tmp_path}/photos/**/*.jpg"))
    assert found == ["photos/a.jpg", "photos/sub/b.jpg"]  # each once; the link not followed


class Brightness(nn.Module):
    """Finds one box per image whose width is the image's mean grey level: which image a result came from."""

    def forward(self, images, targets=None, post=None, size=None):
        return [{"boxes": torch.tensor([[0.0, 0.0, float(im.float().mean()), 1.0]]), "scores": torch.tensor([0.9]),
                 "labels": torch.tensor([0])} for im in images]


@pytest.mark.parametrize("workers", [0, 2])
def test_predict_records_keeps_the_records_order_over_many_batches(tmp_path, workers):
    """Thirteen images over five batches of 3 (with worker processes too): each result carries its own image's id."""
    records = []
    for k in range(13):
        path = tmp_path / f"{k}.png"
        Image.new("RGB", (8 + k, 6), (10 * k + 5,) * 3).save(path)
        records.append(ImageRecord(str(path), 8 + k, 6, np.zeros((0, 4)), np.zeros(0), image_id=1000 - k))
    results = predict_records(Brightness(), records, [7], batch_size=3, workers=workers)
    assert [r["image_id"] for r in results] == [1000 - k for k in range(13)]
    assert [round(r["bbox"][2]) for r in results] == [10 * k + 5 for k in range(13)]


def test_coco_results_are_xywh_with_two_decimals_and_five_for_scores():
    from detector.evaluation.predict import coco_results

    det = {"boxes": np.array([[10.123456, 20.98765, 50.5555, 80.0049]]), "scores": np.array([0.8765432]),
           "labels": np.array([1])}
    (r,) = coco_results(det, [5, 9], image_id=3, classes=["a", "b"], file_name="x.jpg")
    assert r == {"image_id": 3, "file_name": "x.jpg", "category_id": 9, "category": "b",
                 "bbox": [10.12, 20.99, 40.43, 59.02], "score": 0.87654}


def test_an_image_decoded_at_another_size_than_annotated_is_named_with_both(tmp_path):
    from detector.core.errors import InputError
    from detector.evaluation.predict import RecordImages

    Image.new("RGB", (64, 48)).save(tmp_path / "a.png")
    record = ImageRecord(tmp_path / "a.png", 100, 80, np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    with pytest.raises(InputError, match=r"a.png: decoded as 64x48, annotated as 100x80"):
        RecordImages([record])[0]
