import json

import numpy as np
import pytest
from PIL import Image

from detector.cli.main import main
from detector.data.check import prepare_split, summarize
from detector.data.dataset import load_dataset
from detector.data.records import DataError


@pytest.fixture
def messy_coco(tmp_path):
    """One good image, one image whose file is corrupt, one missing, and boxes of every kind of trouble."""
    (tmp_path / "images").mkdir()
    Image.new("RGB", (100, 80)).save(tmp_path / "images" / "good.png")
    (tmp_path / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    boxes = {1: [10, 10, 20, 20],    # fine, small
             2: [90, 70, 30, 30],    # partly outside: clipped to (90, 70, 100, 80)
             3: [150, 10, 5, 5],     # entirely outside
             4: [5, 5, 0, 8],        # zero width
             5: [5, 5, "x", 8]}      # not a number
    anns = [{"id": i, "image_id": 1, "category_id": 1, "bbox": b} for i, b in boxes.items()]
    anns.append({"id": 6, "image_id": 2, "category_id": 1, "bbox": [1, 1, 2, 2]})
    doc = {"images": [{"id": 1, "file_name": "good.png", "width": 100, "height": 80},
                      {"id": 2, "file_name": "corrupt.png", "width": 100, "height": 80},
                      {"id": 3, "file_name": "missing.png", "width": 100, "height": 80}],
           "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}
    f = tmp_path / "train.json"
    f.write_text(json.dumps(doc))
    return f


def test_refuses_and_lists_every_problem_with_its_place(messy_coco):
    with pytest.raises(DataError) as e:
        prepare_split(messy_coco, "train", log=lambda s: None)
    msg = str(e.value)
    assert "annotation id 3: box (150, 10, 155, 15) lies entirely outside the 100x80 image" in msg
    assert "annotation id 4: box (5, 5, 5, 13) has zero or negative width" in msg
    assert "annotation id 5: box" in msg and "NaN" in msg
    assert "corrupt.png: not a readable image" in msg
    assert "missing.png: no such image" in msg
    assert "--skip-invalid" in msg


def test_skip_policy_drops_and_reports_counts(messy_coco):
    logged = []
    _data, records = prepare_split(messy_coco, "train", policy="skip", log=logged.append)
    assert [r.path.name for r in records] == ["good.png"]
    np.testing.assert_allclose(records[0].boxes, [[10, 10, 30, 30], [90, 70, 100, 80]])
    assert records[0].refs == ["annotation id 1", "annotation id 2"]
    assert any("clipped 1 boxes" in line for line in logged)
    assert any("skipped 4 invalid boxes and 2 unreadable images" in line for line in logged)


def test_check_command_exit_status_and_output(messy_coco, shapes_yaml, capsys):
    assert main(["data", "check", str(messy_coco)]) == 1
    out = capsys.readouterr().out
    assert "error:" in out and "fixed:" in out and "annotation id 2: box (90, 70, 120, 100) clipped" in out
    assert main(["data", "check", str(shapes_yaml)]) == 0
    out = capsys.readouterr().out
    assert "[train] 16 images" in out and "no problems found" in out and "small" in out


def test_size_mismatch_is_an_error(tmp_path):
    Image.new("RGB", (50, 50)).save(tmp_path / "a.png")
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 80}], "annotations": [],
           "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "t.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="a.png is 50x50 but annotated as 100x80"):
        prepare_split(tmp_path / "t.json", "train", log=lambda s: None)


def test_summary_counts_size_ranges(shapes_yaml):
    data = load_dataset(shapes_yaml)
    s = summarize(data.split("train"), data.classes)
    assert s["images"] == 16 and s["boxes"] == sum(s["per_class"].values()) == sum(s["sizes"].values())
    assert s["images_without_boxes"] == sum(len(r.boxes) == 0 for r in data.split("train"))


def cut(src, dst, keep):
    dst.write_bytes(src.read_bytes()[:keep])
    return dst


@pytest.fixture
def truncated_coco(tmp_path):
    """Four images that all pass a header read: a good PNG, a PNG cut just after its headers, a JPEG cut
    in half, and a PNG with its pixel data overwritten (bad CRC / zlib stream)."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    (tmp_path / "images").mkdir()
    good = tmp_path / "images" / "good.png"
    Image.fromarray(pixels).save(good)
    Image.fromarray(pixels).save(tmp_path / "whole.jpg", quality=90)
    cut(good, tmp_path / "images" / "header_only.png", good.read_bytes().index(b"IDAT") + 14)  # headers, 10 bytes of pixels
    cut(tmp_path / "whole.jpg", tmp_path / "images" / "half.jpg", (tmp_path / "whole.jpg").stat().st_size // 2)
    data = bytearray(good.read_bytes())
    data[60:400] = bytes(340)
    (tmp_path / "images" / "garbled.png").write_bytes(bytes(data))
    names = ["good.png", "header_only.png", "half.jpg", "garbled.png"]
    doc = {"images": [{"id": i + 1, "file_name": n, "width": 80, "height": 60} for i, n in enumerate(names)],
           "annotations": [], "categories": [{"id": 1, "name": "thing"}]}
    f = tmp_path / "train.json"
    f.write_text(json.dumps(doc))
    return f


@pytest.mark.parametrize("workers", ["1", "2"])
def test_check_decodes_every_image_and_names_the_broken_ones(truncated_coco, capsys, workers):
    assert main(["data", "check", str(truncated_coco), "--workers", workers]) == 1
    captured = capsys.readouterr()
    images = truncated_coco.parent / "images"
    errors = [line.strip() for line in captured.out.splitlines() if line.strip().startswith("error:")]
    assert [e.split(": ")[1] for e in errors] == [str(images / n) for n in ("header_only.png", "half.jpg", "garbled.png")]
    assert all("not a readable image" in e for e in errors)
    assert "[train] 1 image, " in captured.out and "0 boxes and 3 images would be dropped" in captured.out
    assert "decode: 4/4 images" in captured.err  # progress on stderr: a plain line when it is not a terminal


def test_header_only_check_is_fast_but_lets_truncated_images_through(truncated_coco, capsys):
    """The header path (what training's prepare_split uses) reads sizes only: all four pass it."""
    assert main(["data", "check", str(truncated_coco), "--headers-only"]) == 0
    assert "[train] 4 images" in capsys.readouterr().out
    _data, records = prepare_split(truncated_coco, "train", log=lambda s: None)
    assert len(records) == 4
