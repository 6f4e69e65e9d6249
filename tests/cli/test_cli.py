import pytest
from PIL import Image

from detector.cli.main import main


def test_anchors_command_draws_a_picture(tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.new("RGB", (120, 80), (255, 255, 255)).save(src)
    out = tmp_path / "sub" / "anchors.png"
    assert main(["anchors", str(src), "--fmap", "2", "3", "--sizes", "0.5", "0.25", "--ratios", "1", "2", "--out", str(out)]) == 0
    assert "18 anchors (2x3 cells x 3 per cell)" in capsys.readouterr().out
    drawn = Image.open(out)
    assert drawn.size == (120, 80)
    assert drawn.getcolors(10_000) and len(drawn.getcolors(10_000)) > 1  # something was drawn on white


def test_anchors_command_bad_input(tmp_path):
    with pytest.raises(SystemExit, match="no such file"):
        main(["anchors", str(tmp_path / "missing.png")])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(SystemExit, match="not a readable image"):
        main(["anchors", str(bad)])
    with pytest.raises(SystemExit, match="sizes must all be positive"):
        main(["anchors", "--sizes", "-0.1", "--out", str(tmp_path / "x.png")])


def test_data_commands_end_to_end(tmp_path, capsys):
    out = tmp_path / "bananas"
    assert main(["data", "synth", "--out", str(out), "--preset", "bananas", "--train", "4", "--val", "2",
                 "--workers", "1"]) == 0
    assert "use --data" in capsys.readouterr().out
    assert main(["data", "check", str(out)]) == 0
    assert main(["data", "convert", str(out), "--to", "yolo", "--out", str(tmp_path / "y")]) == 0
    assert main(["data", "check", str(tmp_path / "y" / "data.yaml")]) == 0
    assert "[train] 4 images, 4 boxes" in capsys.readouterr().out
    assert main(["data", "show", str(out), "--out", str(tmp_path / "show"), "--num", "3"]) == 0
    assert len(list((tmp_path / "show").glob("*.png"))) == 3
    assert main(["data", "check", str(tmp_path / "nothing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
