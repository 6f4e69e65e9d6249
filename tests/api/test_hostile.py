"""What the hostile pass of 2026-12-06 found in the API (docs/safety.md: the pass's table), each now a test:
inputs that predict would have drawn over, checkpoints edited or damaged, PIL modes, settings a script can give
of any type, the data API's arguments."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detector import Detector
from detector.api import describe
from detector.api.data import check_data, convert_data, make_negatives, show_data, synth_data
from detector.core.errors import DetectorError, UsageError
from detector.models.checkpoint import CheckpointError

ROOT = Path(__file__).resolve().parents[2]
SHAPES = ROOT / "models" / "tinyssd-shapes.pt"


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "set" / "val" / "images"
    folder.mkdir(parents=True)
    for k in range(3):
        Image.fromarray(np.full((40, 50, 3), 60 * k, np.uint8)).save(folder / f"{k}.jpg")
    return folder


@pytest.mark.parametrize("source", [
    "{root}/**/*.jpg",  # a recursive glob: the folders it matches, not its own parent
    "{root}/val/image[s]/*.jpg",  # a glob with brackets
    "generator",  # the caller's own iterator: checked as it is read
])
def test_predict_never_draws_over_its_inputs(photos, source):
    before = digests(photos)
    given = (str(p) for p in sorted(photos.glob("*.jpg"))) if source == "generator" else \
        source.format(root=photos.parents[1])
    with pytest.raises(UsageError, match="is where .* is read from"):
        list(Detector(SHAPES, device="cpu").predict(given, out=photos, stream=True))
    assert digests(photos) == before


def test_a_broken_link_in_a_folder_is_named_not_passed_over(photos):
    (photos / "gone.jpg").symlink_to(photos / "nowhere.jpg")
    det = Detector(SHAPES, device="cpu")
    with pytest.raises(DetectorError, match="gone.jpg: a broken symbolic link"):
        det.predict(photos)
    done = det.predict(photos, errors="skip")
    assert len(done) == 3 and len(done.skipped) == 1 and "gone.jpg" in done.skipped[0]


def resave(tmp_path, **changes) -> Path:
    ckpt = torch.load(SHAPES, weights_only=True)
    ckpt.update(changes)
    path = tmp_path / "edited.pt"
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize(("changes", "message"), [
    ({"img_size": -3}, "'img_size' -3 must be a whole number of pixels"),
    ({"img_size": "big"}, "'img_size' 'big' must be a whole number"),
    ({"model": [1, 2]}, "'model' must be the weights"),
    ({"category_ids": ["a", "b", "c", "d", "e"]}, "'category_ids' must be 5 integers"),
    ({"classes": "circle"}, "'classes' must be a non-empty list of names"),
    ({"classes": 5}, "'classes' must be a non-empty list of names"),
    ({"conf": "high"}, "'conf' 'high' must be a number between 0 and 1"),
])
def test_an_edited_checkpoint_is_one_line_before_anything_runs(tmp_path, changes, message):
    with pytest.raises(CheckpointError) as e:
        Detector(resave(tmp_path, **changes), device="cpu")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_damaged_checkpoint_is_refused_not_run_with_wrong_weights(tmp_path):
    data = bytearray(SHAPES.read_bytes())
    data[500_000:500_400] = bytes(b ^ 0xFF for b in data[500_000:500_400])  # inside a tensor's bytes
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged: its .* does not match the checksum"):
        Detector(bad, device="cpu")


def test_pil_modes_that_were_black_or_refused():
    det = Detector(SHAPES, device="cpu")
    rgb = Image.fromarray(np.tile(np.arange(0, 250, 5, dtype=np.uint8)[:, None, None], (1, 64, 3)))
    from detector.api.sources import as_rgb

    grey_i = rgb.convert("L").convert("I")  # 8-bit values held in 32 bits: not 16-bit
    assert as_rgb(grey_i).max() == np.asarray(rgb.convert("L")).max() > 200
    la = rgb.convert("LA").convert("La")  # premultiplied alpha: PIL has no La -> RGB
    assert as_rgb(la).shape == (50, 64, 3)
    assert len(det.predict([grey_i, la])) == 2


@pytest.mark.parametrize(("call", "message"), [
    (lambda: Detector(SHAPES, device=None), "device=None: must be text"),
    (lambda: Detector(""), "model='': give a model's name"),
    (lambda: Detector(SHAPES).predict(np.zeros((8, 8, 3), np.uint8), out=5), "out=5: a folder"),
    (lambda: Detector(SHAPES).predict(torch.zeros(3, 8, 8)), "a torch tensor [3, 8, 8]: give it as a numpy array"),
    (lambda: Detector(SHAPES).predict(np.zeros((64, 64, 3), np.uint8), max_pixels=100),
     "64x64 is 4,096 pixels, over the cap of 100"),
    (lambda: Detector("tiny_ssd").train(data="d", model_kwargs={"img_size": 64}), "img_size is a setting of its own"),
    (lambda: Detector("tiny_ssd").train(data="d", epochs=None), "epochs=None: must be given"),
    (lambda: Detector("tiny_ssd").train(data="d", device=None), "device=None: must be given"),
    (lambda: describe(5), "describe(5): give the path"),
    (lambda: check_data(None), "path=None: give a path"),
    (lambda: check_data(ROOT, workers="2"), "workers='2': must be a whole number"),
    (lambda: check_data(ROOT, max_pixels=0), "max_pixels=0: must be at least 1"),
    (lambda: convert_data(ROOT, to="yolo", out=None), "out=None: give a path"),
    (lambda: synth_data("x", train=2.5, val=2), "train=2.5: must be a whole number"),
    (lambda: synth_data("x", train=0, val=0), "nothing to generate"),
    (lambda: show_data(ROOT, out="x", size=0), "size=0: the model's input side"),
    (lambda: show_data(ROOT, out="x", num="3"), "num='3': must be a whole number"),
    (lambda: make_negatives(ROOT, out="x", count=0), "count=0: must be at least 1"),
])
def test_settings_of_any_type_are_one_line(call, message):
    with pytest.raises(DetectorError) as e:
        call()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_predict_with_labels_where_a_file_is(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "labels").write_text("a file")
    with pytest.raises(DetectorError, match="labels: cannot hold the labels"):
        Detector(SHAPES).predict(np.zeros((32, 32, 3), np.uint8), out=tmp_path / "out", save_txt=True)


def test_a_new_models_geometry_keywords_train_it_and_the_metrics_count_the_val_images(shapes_yaml, tmp_path):
    det = Detector("tiny_ssd", img_size=96)
    m = det.train(data=shapes_yaml, epochs=1, batch_size=4, workers=0, out=tmp_path / "run")
    assert det.info.img_size == 96 and m.images == 6 and m.evaluated
