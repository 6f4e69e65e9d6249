"""One "run, filter, cut" path: classes are filtered before ``max_det`` cuts, and the API, ``detector predict``
and the app's Detect handler give the same detections for the same settings."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector import Detector
from detector.app.catalog import ModelCache, describe_checkpoint
from detector.app.detect import run_detect
from detector.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
SHAPES = ROOT / "models" / "tinyssd-shapes.pt"


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A generated shapes image with many shapes of several classes."""
    from detector.data.synth import render

    path = tmp_path_factory.mktemp("one") / "shapes.png"
    Image.fromarray(render(3, "val", 7, size=256)[0]).save(path)
    return path


CASES = [(None, None), (None, 1), (["star"], None), (["star"], 1), (["cross", "circle"], 2), (["cross"], 50)]


@pytest.mark.parametrize(("classes", "max_det"), CASES)
def test_api_cli_and_app_agree(photo, tmp_path, classes, max_det):
    det = Detector(SHAPES, device="cpu")
    every = det.predict(photo, conf=0.05)[0]
    r = det.predict(photo, conf=0.05, classes=classes, max_det=max_det)[0]
    wanted = classes or det.names
    expected = [i for i, c in enumerate(every.classes) if c in wanted][: max_det or 100]  # filter, then cut
    assert r.classes == [every.classes[i] for i in expected]
    np.testing.assert_allclose(r.scores, every.scores[expected], atol=1e-6)
    if classes and max_det:
        assert len(r) == min(max_det, len(expected))  # never fewer because other classes took the places

    args = ["predict", str(photo), "--weights", str(SHAPES), "--conf", "0.05", "--out", str(tmp_path / "cli"),
            "--device", "cpu"]
    args += ["--classes", *classes] if classes else []
    args += ["--max-det", str(max_det)] if max_det else []
    assert main(args) == 0
    cli = json.loads((tmp_path / "cli" / "predictions.json").read_text())
    assert [p["category"] for p in cli] == r.classes
    np.testing.assert_allclose([p["score"] for p in cli], r.scores, atol=1e-5)

    entry = describe_checkpoint(SHAPES)
    app = run_detect([str(photo)], entry, ModelCache("cpu"), conf=0.05, iou=det.model.post_defaults["nms_threshold"],
                     max_det=max_det or 100, classes=classes, downloads=tmp_path)
    (found,) = app.detections
    assert [det.names[c] for c in found.labels] == r.classes
    np.testing.assert_allclose(found.boxes, r.boxes, atol=1e-4)
