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


@pytest.mark.parametrize("words, config_name", [(["train"], "TrainConfig"), (["classify", "train"], "ClassifyConfig")])
def test_training_flags_come_from_the_config(words, config_name, capsys):
    """Every flag's default is the config field's default (one place), and a flag set on the command line
    reaches the config."""
    import dataclasses

    from detector.cli.common import config_from_args
    from detector.cli.main import build_parser
    from detector.engine import config

    cls = getattr(config, config_name)
    parser = build_parser()
    assert config_from_args(cls, parser.parse_args(words)) == cls()
    flags = [f for f in dataclasses.fields(cls) if f.metadata["cli"]]
    assert {"model", "epochs", "lr", "img_size", "model_kwargs"} <= {f.name for f in flags}
    args = parser.parse_args([*words, "--epochs", "3", "--lr", "0.5", "--amp", "--model-kwargs", '{"a": 1}'])
    cfg = config_from_args(cls, args, command="x")
    assert (cfg.epochs, cfg.lr, cfg.amp, cfg.model_kwargs, cfg.command) == (3, 0.5, True, {"a": 1}, "x")
    with pytest.raises(SystemExit):
        parser.parse_args([*words, "--help"])
    shown = capsys.readouterr().out
    for f in flags:
        assert "--" + f.name.replace("_", "-") in shown
        assert f.metadata["help"].split()[0] in shown


@pytest.mark.parametrize("words", [["train"], ["classify", "train"]])
@pytest.mark.parametrize("value, message", [("[1]", "must be a JSON object"), ("{x", "is not JSON")])
def test_bad_model_kwargs_is_a_usage_error(words, value, message, capsys):
    assert main([*words, "--model-kwargs", value]) == 2
    err = capsys.readouterr().err
    assert f"--model-kwargs {message}" in err and "Traceback" not in err
