from pathlib import Path

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


def test_anchors_command_bad_input(tmp_path, capsys):
    assert main(["anchors", str(tmp_path / "missing.png")]) == 1
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert main(["anchors", str(bad)]) == 1
    assert "bad.png: not an image" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # a flag's value: argparse's usage error
        main(["anchors", "--sizes", "-0.1", "--out", str(tmp_path / "x.png")])
    assert exit_.value.code == 2 and "--sizes: must be a finite number above 0, got -0.1" in capsys.readouterr().err


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


TRAIN_WORDS = [["train"], ["classify", "train"]]


@pytest.mark.parametrize("words", TRAIN_WORDS, ids=["train", "classify"])
@pytest.mark.parametrize("flags, message", [
    (["--batch-size", "0"], "--batch-size 0: must be at least 1"),
    (["--eval-every", "0"], "--eval-every 0: must be at least 1"),
    (["--epochs", "-1"], "--epochs -1: must be at least 1"),
    (["--epochs", "0"], "--epochs 0: must be at least 1"),
    (["--workers", "-1"], "--workers -1: must be at least 0"),
    (["--lr", "0"], "--lr 0.0: must be a positive number"),
    (["--lr", "-0.1"], "--lr -0.1: must be a positive number"),
    (["--lr", "nan"], "--lr nan: must be a positive number"),
    (["--device", "tpu"], "--device tpu: not a device; use auto, cpu, cuda, cuda:N (N the GPU's index) or mps"),
    (["--devices", "0"], "--devices 0: must be at least 1"),
    (["--batch-size", "0", "--lr", "0"], "--batch-size 0: must be at least 1; --lr 0.0: must be a positive number"),
])
def test_bad_training_flag_values_are_usage_errors(words, flags, message, tmp_path, capsys):
    assert main([*words, *flags, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {message}\n"  # one line, no traceback
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.parametrize("words, message", [
    (["train"], "--img-size 7: too small for tiny_ssd_plus, which needs at least 64 px"),
    (["train", "--model", "resnet_ssd"], "--img-size 7: too small for resnet_ssd, which needs at least 33 px"),
    (["classify", "train"], "--img-size 7: too small for resnet18, which needs at least 8 px"),
    (["classify", "train", "--model", "alexnet"], "--img-size 7: too small for alexnet, which needs at least 65 px"),
])
def test_too_small_img_size_names_the_minimum(words, message, tmp_path, capsys):
    assert main([*words, "--img-size", "7", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


@pytest.mark.parametrize("words", TRAIN_WORDS, ids=["train", "classify"])
def test_out_under_a_file_is_one_line_exit_1(words, tmp_path, capsys):
    (tmp_path / "somefile.txt").write_text("x")
    out = tmp_path / "somefile.txt" / "run"
    assert main([*words, "--data", str(tmp_path / "none"), "--device", "cpu", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err == (f"error: --out {out}: cannot write the run folder there (Not a directory); choose a folder you "
                   "can write to\n")


@pytest.mark.parametrize("words", TRAIN_WORDS, ids=["train", "classify"])
def test_cuda_without_cuda_is_a_clear_error(words, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main([*words, "--device", "cuda", "--data", str(tmp_path), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err == "error: --device cuda: CUDA is not available on this machine; use --device cpu (or auto)\n"
    assert not (tmp_path / "run" / "run.lock").exists()  # the lock went with the failed run


# ------------------------------------------------------------------------------------- predict, export, eval
@pytest.fixture
def shipped(tmp_path):
    """A shipped (exported) two-class TinySSD checkpoint with random weights, and two images named ``a``."""
    import numpy as np
    import torch

    from detector.engine.checkpoint import save_checkpoint
    from detector.models.registry import build_model

    torch.manual_seed(0)  # the same random weights whatever ran before
    path = tmp_path / "model.pt"
    save_checkpoint({"model": build_model("tiny_ssd_plus", 2).state_dict(), "model_name": "tiny_ssd_plus",
                     "classes": ["cat", "dog"], "category_ids": [1, 2], "img_size": 64}, path)
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)).save(images / "a.jpg")
    Image.fromarray(rng.integers(0, 255, (60, 40, 3), dtype=np.uint8)).save(images / "a.png")
    return path, images


def test_predict_names_numbered_runs_filters_and_writes_yolo_labels(shipped, tmp_path, monkeypatch, capsys):
    import json

    weights, images = shipped
    monkeypatch.chdir(tmp_path)
    common = ["predict", str(images), "--weights", str(weights), "--device", "cpu", "--conf", "0"]
    assert main([*common, "--max-det", "3", "--save-txt"]) == 0
    captured = capsys.readouterr()
    assert f"note: {images / 'a.png'} is drawn as a_2.jpg: an earlier input is also named a" in captured.err
    assert captured.out.strip().endswith("wrote the drawn images, predictions.json and labels/ (YOLO txt) to runs/predict")
    run = tmp_path / "runs" / "predict"
    assert sorted(p.name for p in run.iterdir()) == ["a.jpg", "a_2.jpg", "labels", "predictions.json"]
    assert Image.open(run / "a.jpg").size == (80, 48) and Image.open(run / "a_2.jpg").size == (40, 60)
    preds = json.loads((run / "predictions.json").read_text())
    per_image = {f: sum(p["file_name"] == f for p in preds) for f in (str(images / "a.jpg"), str(images / "a.png"))}
    assert per_image == {str(images / "a.jpg"): 3, str(images / "a.png"): 3}  # --max-det 3
    for stem, (w, h), name in (("a", (80, 48), "a.jpg"), ("a_2", (40, 60), "a.png")):
        lines = (run / "labels" / f"{stem}.txt").read_text().splitlines()
        mine = [p for p in preds if p["file_name"] == str(images / name)]
        assert len(lines) == 3
        for line, p in zip(lines, mine):
            c, cx, cy, bw, bh, conf = line.split()
            x, y, pw, ph = p["bbox"]
            assert int(c) == p["category_id"] - 1 and float(conf) == pytest.approx(p["score"], abs=1e-5)
            assert [float(cx), float(cy), float(bw), float(bh)] == pytest.approx(
                [(x + pw / 2) / w, (y + ph / 2) / h, pw / w, ph / h], abs=5e-4)  # COCO's bbox: 0.01 px

    # a second run without --out: a new folder, runs/predict2; --classes keeps only those; --img-size overrides
    assert main([*common, "--classes", "dog", "--img-size", "96"]) == 0
    assert capsys.readouterr().out.strip().endswith("to runs/predict2")
    preds = json.loads((tmp_path / "runs" / "predict2" / "predictions.json").read_text())
    assert preds and {p["category"] for p in preds} == {"dog"}


@pytest.mark.parametrize("flags, message", [
    (["--classes", "dog", "horse"], "--classes horse: not a class of this model; its classes: cat, dog"),
    (["--img-size", "32"], "--img-size 32: too small for tiny_ssd_plus, which needs at least 64 px"),
    (["--max-det", "0"], "--max-det 0: must be at least 1"),
    (["--conf", "2"], "--conf 2.0: must be between 0 and 1"),
    (["--device", "tpu"], "--device tpu: not a device; use auto, cpu, cuda, cuda:N (N the GPU's index) or mps"),
])
def test_predict_usage_errors(shipped, tmp_path, flags, message, capsys):
    weights, images = shipped
    assert main(["predict", str(images), "--weights", str(weights), "--out", str(tmp_path / "p"), *flags]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not (tmp_path / "p").exists()


def test_predict_out_under_a_file_and_export_suffixes(shipped, tmp_path, capsys):
    weights, images = shipped
    (tmp_path / "somefile.txt").write_text("x")
    out = tmp_path / "somefile.txt" / "run"
    assert main(["predict", str(images), "--weights", str(weights), "--device", "cpu", "--out", str(out)]) == 1
    assert capsys.readouterr().err == (f"error: --out {out}: cannot write there (Not a directory); choose a folder "
                                       "you can write to\n")
    for name, flags, message in (
            ("small", [], "end it in .pt or .pth (a PyTorch checkpoint) or .onnx (--format onnx)"),
            ("small.onnx", ["--format", "pt"], "--format pt writes a .pt or .pth file"),
            ("small.pt", ["--format", "onnx"], "--format onnx writes a .onnx file")):
        assert main(["export", "--weights", str(weights), "--out", str(tmp_path / name), *flags]) == 2
        assert capsys.readouterr().err == f"error: --out {tmp_path / name}: {message}\n"
        assert not (tmp_path / name).exists()
    assert main(["export", "--weights", str(weights), "--out", str(tmp_path / "small.pth")]) == 0


@pytest.mark.parametrize("words, message", [
    (["eval", "--weights", "w.pt", "--data", "d", "--batch-size", "0"], "--batch-size 0: must be at least 1"),
    (["eval", "--weights", "w.pt", "--data", "d", "--workers", "-2"], "--workers -2: must be at least 0"),
    (["classify", "eval", "--weights", "w.pt", "--data", "d", "--device", "tpu"], "--device tpu: not a device"),
])
def test_other_commands_check_their_values(words, message, capsys):
    assert main(words) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1


def test_resume_from_random_bytes_says_not_a_checkpoint(tmp_path, capsys):
    import random

    junk = tmp_path / "last.pt"
    junk.write_bytes(random.Random(1).randbytes(2048))
    assert main(["train", "--resume", str(junk), "--device", "cpu"]) == 1
    assert capsys.readouterr().err == f"error: {junk}: not a checkpoint (neither a PyTorch file nor a pickle of one)\n"


@pytest.mark.parametrize("command", [["predict", "x.jpg", "--weights", "models/tinyssd-shapes.pt"],
                                     ["demo", "--port", "7999"]])
def test_a_torchvision_that_does_not_match_torch_is_one_line(tmp_path, command):
    """A torchvision built for another torch (a CUDA one beside a CPU torch) fails in its own import with
    "operator torchvision::nms does not exist": the command says so in one line, naming both and what to install."""
    import os
    import subprocess
    import sys

    fake = tmp_path / "torchvision"
    fake.mkdir()
    (fake / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "detector", *command], cwd=root, capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: torch ") and " and torchvision " in line and "do not work together" in line
    assert "pip install 'torch==" in line and "'torchvision==" in line
