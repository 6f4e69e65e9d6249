"""``detector data convert`` never writes over its source: an --out that is the source, inside it, or holds
it is refused before anything is written (with --link every image would become a link to itself; without
it the first image was deleted)."""

import hashlib

import pytest

from detector.cli.main import main
from detector.data.synth import synth_dataset


def snapshot(root):
    """Every file and link under ``root`` with the hash of its bytes (a link: its target)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p)] = "link -> " + str(p.readlink())
        elif p.is_file():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[str(p)] = "dir"
    return out


@pytest.fixture
def shapes(tmp_path):
    """A small data set in its own folder (the session one must not be at risk here)."""
    synth_dataset(tmp_path / "src", "shapes", train=3, val=2, seed=0, size=48, workers=1)
    return tmp_path / "src"


@pytest.mark.parametrize("link", [False, True])
@pytest.mark.parametrize("to", ["coco", "yolo", "voc"])
@pytest.mark.parametrize("where", ["same", "inside", "images", "parent"])
def test_convert_refuses_an_out_that_overlaps_the_source(shapes, capsys, link, to, where):
    out = {"same": shapes, "inside": shapes / "converted", "images": shapes / "train" / "images",
           "parent": shapes.parent}[where]
    before = snapshot(shapes.parent)
    args = ["data", "convert", str(shapes), "--to", to, "--out", str(out)] + (["--link"] if link else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {out} overlaps the source folder ") and err.count("\n") == 1
    assert "choose an --out folder outside" in err
    assert snapshot(shapes.parent) == before  # not one byte, file or link changed or added


def test_convert_refuses_through_a_symlinked_out_and_a_file_source(shapes, tmp_path, capsys):
    alias = tmp_path / "alias"
    alias.symlink_to(shapes, target_is_directory=True)
    before = snapshot(shapes)
    assert main(["data", "convert", str(shapes / "dataset.yaml"), "--to", "yolo", "--out", str(alias / "y")]) == 2
    assert "overlaps the source folder" in capsys.readouterr().err
    assert snapshot(shapes) == before


def test_convert_elsewhere_still_works_and_leaves_the_source_alone(shapes, tmp_path, capsys):
    before = snapshot(shapes)
    assert main(["data", "convert", str(shapes), "--to", "yolo", "--out", str(tmp_path / "y"), "--link"]) == 0
    assert snapshot(shapes) == before
    links = sorted((tmp_path / "y" / "images" / "train").iterdir())
    assert len(links) == 3 and all(p.is_symlink() and p.resolve().parent == (shapes / "train" / "images").resolve()
                                   for p in links)
    assert main(["data", "check", str(tmp_path / "y" / "data.yaml"), "--workers", "1"]) == 0
    assert "[train] 3 images" in capsys.readouterr().out
