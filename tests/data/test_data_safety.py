"""Nothing lost: commands never write over what they read, names that would collide are made unique (and said),
and every input file keeps its hash."""

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from detector.cli.main import main
from detector.data.check import prepare_split

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = str(ROOT / "models" / "tinyssd-shapes.pt")


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def coco_with_twins(folder: Path) -> Path:
    """A COCO set whose images share a stem (``a.jpg``, ``a.png``) and one with a space in its name."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = ["a.jpg", "a.png", "with space.png"]
    for name in names:
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(folder / name)
    doc = {"images": [{"id": i + 1, "file_name": n, "width": 60, "height": 40} for i, n in enumerate(names)],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 10]},
                           {"id": 2, "image_id": 2, "category_id": 1, "bbox": [20, 5, 8, 9]},
                           {"id": 3, "image_id": 2, "category_id": 1, "bbox": [30, 20, 5, 5]},
                           {"id": 4, "image_id": 3, "category_id": 1, "bbox": [3, 3, 6, 6]}],
           "categories": [{"id": 1, "name": "thing"}]}
    (folder / "train.json").write_text(json.dumps(doc))
    return folder / "train.json"


def test_convert_keeps_every_images_boxes_when_stems_collide(tmp_path, capsys):
    src = coco_with_twins(tmp_path / "src")
    before = hashes(src.parent)
    counts = {}
    for fmt in ("voc", "yolo"):
        assert main(["data", "convert", str(src), "--to", fmt, "--out", str(tmp_path / fmt)]) == 0
        said = capsys.readouterr()
        assert "is written as a_2.png (an earlier image is also a.*)" in said.err
        assert "is written as with_space.png (white space in VOC's lists)" in said.err
        target = said.out.split("--data ")[-1].strip()
        _, records = prepare_split(target, "train")
        counts[fmt] = sorted(len(r.boxes) for r in records)
    assert counts["voc"] == counts["yolo"] == [1, 1, 2]  # each image with its own boxes: nothing overwritten
    assert hashes(src.parent) == before  # the source untouched


def test_predict_and_export_refuse_to_write_over_their_inputs(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (64, 48), (90, 90, 90)).save(photos / "cat.jpg")
    weights = tmp_path / "w.pt"
    weights.write_bytes(Path(SHIPPED).read_bytes())
    before = hashes(tmp_path)
    assert main(["predict", str(photos), "--weights", str(weights), "--out", str(photos), "--device", "cpu"]) == 2
    assert main(["export", "--weights", str(weights), "--out", str(weights), "--half"]) == 2
    assert hashes(tmp_path) == before


def test_train_never_writes_over_an_earlier_run(tmp_path, monkeypatch, capsys):
    from detector.data.synth import synth_dataset

    data = synth_dataset(tmp_path / "d", "shapes", train=8, val=2, seed=0, size=64, workers=1)
    monkeypatch.chdir(tmp_path)
    args = ["train", "--data", str(data), "--epochs", "1", "--batch-size", "8", "--img-size", "64", "--workers", "0",
            "--device", "cpu", "--data-path", "loader"]
    assert main(args) == 0 and (tmp_path / "runs" / "train" / "last.pt").exists()
    (tmp_path / "runs" / "train" / ".last.pt.abc.tmp").write_bytes(b"half a checkpoint")  # a killed save's
    first = hashes(tmp_path / "runs" / "train")
    assert main(args) == 0  # the default --out: the next free name
    assert "runs/train holds an earlier run: this one goes to runs/train2" in capsys.readouterr().err
    assert (tmp_path / "runs" / "train2" / "last.pt").exists()
    assert main([*args, "--out", "runs/train"]) == 2  # given: refused
    assert hashes(tmp_path / "runs" / "train") == first
    assert main([*args, "--out", "runs/train", "--exist-ok"]) == 0
    assert "removed 1 unfinished file(s) a killed save left" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "train" / ".last.pt.abc.tmp").exists()


def test_a_full_disk_is_one_line_and_leaves_the_previous_outputs_whole(tmp_path, monkeypatch, capsys):
    import errno

    from detector.core import files
    from detector.data.synth import synth_dataset

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (64, 48), (90, 90, 90)).save(photos / "cat.jpg")
    data = synth_dataset(tmp_path / "d", "shapes", train=2, val=4, seed=0, size=64, workers=1)
    pred, ev = tmp_path / "pred", tmp_path / "eval"
    assert main(["predict", str(photos), "--weights", SHIPPED, "--out", str(pred), "--device", "cpu"]) == 0
    assert main(["eval", "--weights", SHIPPED, "--data", str(data), "--out", str(ev), "--device", "cpu"]) == 0
    capsys.readouterr()
    before = hashes(tmp_path)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    for args in (["predict", str(photos), "--weights", SHIPPED, "--out", str(pred), "--device", "cpu"],
                 ["eval", "--weights", SHIPPED, "--data", str(data), "--out", str(ev), "--device", "cpu"]):
        assert main(args) == 1, args
        err = capsys.readouterr().err
        assert "could not be written (No space left on device)" in err and "Traceback" not in err, err
        assert err.count("\n") == 1, err
    assert hashes(tmp_path) == before  # the earlier outputs whole, no .tmp left, the inputs untouched


def test_writers_replace_links_in_their_out_and_never_write_through_them(tmp_path, capsys):
    import os

    from detector.data.synth import synth_dataset

    data = synth_dataset(tmp_path / "d", "shapes", train=2, val=1, seed=0, size=64, workers=1)
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.png"):
        Image.new("RGB", (8, 8), (1, 2, 3)).save(outside / name)
    before = hashes(outside)
    neg = tmp_path / "neg"
    neg.mkdir()
    (neg / "bg0000.jpg").symlink_to(outside / "a.jpg")  # links named as the first outputs
    os.link(outside / "b.jpg", neg / "bg0001.jpg")
    assert main(["data", "negatives", str(data), "--out", str(neg), "--count", "2", "--exist-ok"]) == 0
    syn = tmp_path / "syn" / "train" / "images"
    syn.mkdir(parents=True)
    (syn / "000000.jpg").symlink_to(outside / "c.jpg")
    assert main(["data", "synth", "--out", str(tmp_path / "syn"), "--train", "1", "--val", "0", "--size", "64",
                 "--exist-ok"]) == 0
    shown = tmp_path / "shown"
    shown.mkdir()
    (shown / "000_000000.png").symlink_to(outside / "d.png")
    assert main(["data", "show", str(data), "--out", str(shown), "--num", "1"]) == 0
    assert hashes(outside) == before  # nothing outside the outputs changed
    for written in (neg / "bg0000.jpg", neg / "bg0001.jpg", syn / "000000.jpg", shown / "000_000000.png"):
        assert not written.is_symlink() and written.stat().st_nlink == 1 and written.stat().st_size > 100
