"""``detector predict`` and ``detector eval`` take an exported ``.onnx`` wherever they take a checkpoint and give
the same files and the same AP; ``detector export --format onnx`` from the command line, with its model card."""

import json
from pathlib import Path

import pytest

from detector.cli.main import main

pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parents[2]


def test_eval_of_the_onnx_equals_eval_of_the_checkpoint(shipped_onnx, shapes_yaml, tmp_path, capsys):
    metrics = {}
    for weights in shipped_onnx:
        out = tmp_path / weights.suffix[1:]
        assert main(["eval", "--weights", str(weights), "--data", str(shapes_yaml), "--device", "cpu", "--workers",
                     "0", "--out", str(out)]) == 0
        metrics[weights.suffix] = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    pt, onnx = metrics[".pt"], metrics[".onnx"]
    assert pt["AP50"] > 0.1  # the trained model finds the generated shapes: the comparison means something
    assert pt.keys() == onnx.keys()
    for key in pt:
        assert onnx[key] == pytest.approx(pt[key], abs=1e-4), key


def test_predict_with_the_onnx_writes_the_same_files(shipped_onnx, shapes_yaml, tmp_path, capsys):
    images = shapes_yaml.parent / "val" / "images"
    runs = {}
    for weights in shipped_onnx:
        out = tmp_path / weights.suffix[1:]
        assert main(["predict", str(images), "--weights", str(weights), "--device", "cpu", "--conf", "0.05",
                     "--iou", "0.3", "--max-det", "20", "--save-txt", "--out", str(out)]) == 0
        runs[weights.suffix] = out
    capsys.readouterr()
    pt, onnx = runs[".pt"], runs[".onnx"]
    names = sorted(p.relative_to(pt) for p in pt.rglob("*"))
    assert names == sorted(p.relative_to(onnx) for p in onnx.rglob("*")) and len(names) > 5
    want, got = (json.loads((r / "predictions.json").read_text()) for r in (pt, onnx))
    assert len(want) == len(got) > 6
    key = lambda p: (p["file_name"], p["category_id"], -p["score"])
    for a, b in zip(sorted(want, key=key), sorted(got, key=key)):
        assert (a["file_name"], a["category_id"]) == (b["file_name"], b["category_id"])
        assert b["score"] == pytest.approx(a["score"], abs=1e-4)
        assert b["bbox"] == pytest.approx(a["bbox"], abs=0.1)  # 1e-3 of the input, in the original image's pixels
    assert main(["predict", str(images), "--weights", str(shipped_onnx[1]), "--img-size", "128"]) == 2
    assert "takes 256 px, the size it was exported at" in capsys.readouterr().err


def test_a_missing_onnx_package_is_one_line(shapes_yaml, tmp_path, monkeypatch, capsys):
    from detector.models import onnx_backend

    monkeypatch.setattr(onnx_backend, "find_spec", lambda name: None)
    shipped = str(ROOT / "models" / "tinyssd-shapes.pt")
    assert main(["export", "--weights", shipped, "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 1
    assert capsys.readouterr().err == ("error: ONNX export needs onnx and onnxscript (not installed here): "
                                       "pip install -e '.[onnx]'\n")
    (tmp_path / "m.onnx").write_bytes(b"x")
    assert main(["eval", "--weights", str(tmp_path / "m.onnx"), "--data", str(shapes_yaml)]) == 1
    assert capsys.readouterr().err == ("error: running m.onnx needs onnxruntime (not installed here): "
                                       "pip install -e '.[onnx]'\n")


@pytest.mark.slow
def test_export_command_writes_the_graph_and_its_card(shapes_yaml, tmp_path, capsys):
    pytest.importorskip("onnxscript")
    from detector.models.registry import load_detector

    shipped = ROOT / "models" / "tinyssd-shapes.pt"
    out = tmp_path / "m.onnx"  # the format from the suffix
    assert main(["export", "--weights", str(shipped), "--out", str(out), "--img-size", "192", "--half", "--card",
                 "--test-data", str(shapes_yaml)]) == 0
    said = capsys.readouterr()
    assert "exporting tiny_ssd_plus at 192 px, batch 1" in said.err and f"wrote {out}" in said.out
    _, info = load_detector(out)
    assert info["img_size"] == 192 and info["half"] and not info["dynamic_batch"]
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["model"] == "m.onnx" and card["test"]["images"] == 6 and card["test"]["metrics"]["AP50"] > 0


def test_the_card_states_the_false_alarm_rate_on_photographs_without_the_classes(tmp_path, capsys):
    """export --card --negatives DIR: the card says on how many images without the model's classes it fired, at each
    threshold, measured on the exported file; nothing is written when the folder cannot be read."""
    import json

    from PIL import Image

    from detector.cli.main import main

    shipped = Path(__file__).resolve().parents[2] / "models" / "tinyssd-shapes.pt"
    negatives = tmp_path / "no-shapes"
    negatives.mkdir()
    for k in range(4):
        Image.new("RGB", (96, 64), (40 * k, 120, 200)).save(negatives / f"{k}.png")
    assert main(["export", "--weights", str(shipped), "--out", str(tmp_path / "m.pt"), "--card", "--negatives",
                 str(negatives)]) == 0
    card = json.loads((tmp_path / "m.json").read_text())["false_alarms"]
    assert card["images"] == 4 and set(card["thresholds"]) == {"0.25", "0.5"} and card["folder"] == str(negatives)
    assert all(0 <= v <= 1 for v in card["thresholds"].values())
    assert main(["export", "--weights", str(shipped), "--out", str(tmp_path / "n.pt"), "--card", "--negatives",
                 str(tmp_path / "nowhere")]) == 1
    assert not (tmp_path / "n.pt").exists()


def test_a_calibrated_threshold_kept_in_the_file_is_where_every_surface_starts(tmp_path):
    """export --conf 0.4 keeps the model's own score threshold in the checkpoint and in the ONNX graph's metadata:
    Detector.info.defaults, predict without conf, detector predict and the app's sliders all start there."""
    import json

    import numpy as np
    from PIL import Image

    from detector import Detector
    from detector.app.catalog import ModelCache, describe_checkpoint
    from detector.app.ui import model_settings
    from detector.cli.main import main

    shipped = Path(__file__).resolve().parents[2] / "models" / "tinyssd-shapes.pt"
    for name in ("m.pt", "m.onnx"):
        out = tmp_path / name
        assert main(["export", "--weights", str(shipped), "--out", str(out), "--conf", "0.4", "--card"]) == 0
        det = Detector(out, device="cpu")
        assert det.info.defaults.conf == 0.4 and json.loads(out.with_suffix(".json").read_text())[
            "inference_defaults"]["conf"] == 0.4
        photo = Path(__file__).resolve().parents[2] / "models" / "examples" / "raccoon-41.jpg"
        image = np.asarray(Image.open(photo).convert("RGB"))
        assert (det.predict(image)[0].scores >= 0.4).all()
        entry = describe_checkpoint(out)
        entry.label = name
        assert model_settings({name: entry}, ModelCache("cpu"), name)["conf"] == 0.4
    assert main(["export", "--weights", str(shipped), "--out", str(tmp_path / "x.pt"), "--conf", "1.5"]) == 2
