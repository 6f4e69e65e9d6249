"""A 20000x20000 PNG of a few KB (400 megapixels, 1.2 GB once decoded as RGB) is refused by every command
from its header, with one line naming the file and its size, exit 1 and no traceback, and never decoded."""

import json

import pytest
from PIL import Image, ImageFile

from detector.cli.main import main
from detector.data import images

SIDE = 20_000


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A folder with a data set (train.json and val.json) of one 20000x20000 image, and the image itself."""
    root = tmp_path_factory.mktemp("big")
    (root / "images").mkdir()
    Image.new("1", (SIDE, SIDE)).save(root / "images" / "big.png")
    doc = {"images": [{"id": 1, "file_name": "big.png", "width": SIDE, "height": SIDE}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 100, 100]}],
           "categories": [{"id": 1, "name": "thing"}]}
    for split in ("train", "val"):
        (root / f"{split}.json").write_text(json.dumps(doc))
    (root / "preds").mkdir()
    (root / "preds" / "preds.json").write_text("[]")  # not beside the annotation files: a folder of JSONs is COCO
    return root


@pytest.fixture
def no_decoding(monkeypatch):
    """Any decode (OpenCV or PIL) fails the test: the cap must act on the header alone."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(images, "_cv2", refuse)
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def commands(root, tmp):
    png = str(root / "images" / "big.png")
    return {
        "check": ["data", "check", str(root), "--workers", "1"],
        "train": ["train", "--data", str(root), "--out", str(tmp / "run"), "--device", "cpu", "--epochs", "1"],
        # eval with --weights reads the images (scoring a --predictions file needs none, so no cap applies there)
        "eval": ["eval", "--data", str(root), "--weights", "models/tinyssd-shapes.pt", "--device", "cpu"],
        "predict": ["predict", png, "--weights", "models/tinyssd-shapes.pt", "--out", str(tmp / "p"), "--device", "cpu"],
        "anchors": ["anchors", png, "--out", str(tmp / "a.png")],
    }


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("name", ["check", "train", "eval", "predict", "anchors"])
def test_every_command_refuses_an_image_over_the_cap_from_its_header(big, tmp_path, capsys, no_decoding, name):
    code, text = run(commands(big, tmp_path)[name], capsys)
    assert code == 1, text
    assert "Traceback" not in text and "DecompressionBomb" not in text
    line = next(ln for ln in text.splitlines() if "big.png" in ln and "megapixels" in ln)
    assert f"{SIDE}x{SIDE} is 400 megapixels, over the cap of 100,000,000 pixels; pass --max-pixels N" in line
    assert not (tmp_path / "run" / "last.pt").exists() and not (tmp_path / "a.png").exists()


def test_the_cap_is_a_flag(big, tmp_path, capsys):
    """Under a raised cap the header passes; a lower one refuses a small image too (check: exit 1)."""
    Image.new("RGB", (40, 30)).save(tmp_path / "small.png")
    assert main(["anchors", str(tmp_path / "small.png"), "--out", str(tmp_path / "a.png"), "--max-pixels", "1200"]) == 0
    assert main(["anchors", str(tmp_path / "small.png"), "--out", str(tmp_path / "a.png"), "--max-pixels", "1199"]) == 1
    assert "small.png: 40x30 is 1,200 pixels, over the cap of 1,199 pixels" in capsys.readouterr().err
    assert main(["data", "check", str(big), "--headers-only", "--max-pixels", str(SIDE * SIDE)]) == 0
    assert "no problems found" in capsys.readouterr().out
