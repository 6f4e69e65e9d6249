"""One path, one behaviour: every shipped model (checkpoint and ONNX graph) and every zoo architecture (seeded
weights, offline) gives the same detections through ``Detector.predict``, ``detector predict`` and the app's
handlers (the Detect tab at the sliders' values, ``/detect``), at the model's own settings and with overrides;
the app's sliders start at, and follow, the chosen model's own settings; classes are filtered before ``max_det``
cuts."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector import Detector
from detector.app.catalog import ModelCache, ModelEntry, describe_checkpoint
from detector.app.detect import api_detect, run_detect
from detector.app.ui import build_app, model_settings
from detector.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
SHAPES = MODELS / "tinyssd-shapes.pt"
ZOO = ["torchvision:fasterrcnn_resnet50_fpn", "torchvision:fasterrcnn_resnet50_fpn_v2",
       "torchvision:fasterrcnn_mobilenet_v3_large_fpn", "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn",
       "torchvision:ssd300_vgg16", "torchvision:ssdlite320_mobilenet_v3_large"]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """One image per kind of model, where it finds objects at its own settings."""
    from skimage import data

    from detector.api.data import synth_sample

    folder = tmp_path_factory.mktemp("one-path")
    paths = {"shapes": folder / "shapes.png", "bananas": folder / "bananas.png", "photo": folder / "coffee.png"}
    Image.fromarray(synth_sample(7, "val", 3)[0]).save(paths["shapes"])
    Image.fromarray(synth_sample(2, "val", 0, preset="bananas")[0]).save(paths["bananas"])
    Image.fromarray(data.coffee()).save(paths["photo"])  # seeded zoo models fill their maximum here
    paths["raccoon"] = MODELS / "examples" / "raccoon-145.jpg"
    return paths


def overrides(det: Detector) -> dict:
    """Settings other than the model's own: a lower threshold, another IoU, a small maximum."""
    own = det.info.defaults
    return {"conf": round(own.conf / 2, 3), "iou": 0.3 if own.iou != 0.3 else 0.6, "max_det": 3}


def same(a_boxes, a_scores, a_classes, b_boxes, b_scores, b_classes, box_atol: float = 1e-4) -> None:
    """The same detections in the same order: classes, scores (1e-5, or the JSON's rounding) and boxes."""
    assert list(a_classes) == list(b_classes)
    np.testing.assert_allclose(np.asarray(a_scores, float).reshape(-1), np.asarray(b_scores, float).reshape(-1),
                               atol=max(1e-5, box_atol / 100))
    np.testing.assert_allclose(np.asarray(a_boxes, float).reshape(-1, 4), np.asarray(b_boxes, float).reshape(-1, 4),
                               atol=box_atol)


def xyxy(coco: list[dict]) -> np.ndarray:
    return np.array([[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in coco)]).reshape(-1, 4)


def every_surface(source: str, entry: ModelEntry, image: Path, tmp_path: Path, every_override: bool = True) -> None:
    """The model ``source`` through the API, the CLI and the app (the Detect tab, ``/detect``), at its own settings
    and with overrides (without ``every_override``: on the API and the Detect tab only, the CLI's and
    ``/detect``'s flags being the same code for every model)."""
    det = Detector(source, device="cpu")
    cache = ModelCache("cpu")
    sliders = model_settings({entry.label: entry}, cache, entry.label)  # where the app's fields start
    assert sliders == det.info.defaults.as_dict()
    assert sliders["iou"] is not None and sliders["max_det"] is not None
    given = overrides(det)
    for k, settings in enumerate([{}, given]):
        api = det.predict(image, **settings)[0]
        if not settings:
            assert len(api) > 0, f"{source} finds nothing in {image.name} at its own settings: a test of nothing"
        else:
            assert len(api) <= 3

        if settings and not every_override:
            app = run_detect([str(image)], entry, cache, **settings, downloads=tmp_path)
            same(app.results[0].boxes, app.results[0].scores, app.results[0].classes, api.boxes, api.scores,
                 api.classes)
            continue
        out = tmp_path / f"cli-{k}"
        flags = [f for name, v in settings.items() for f in (f"--{name.replace('_', '-')}", str(v))]
        assert main(["predict", str(image), "--weights", source, "--device", "cpu", "--out", str(out), *flags]) == 0
        cli = json.loads((out / "predictions.json").read_text())
        same(xyxy(cli), [r["score"] for r in cli], [r["category"] for r in cli], api.boxes, api.scores, api.classes,
             box_atol=0.011)

        app_settings = {**sliders, **settings}  # the sliders: at the model's own, or moved by the user
        app = run_detect([str(image)], entry, cache, app_settings["conf"], app_settings["iou"],
                         app_settings["max_det"], downloads=tmp_path)
        (found,) = app.results
        same(found.boxes, found.scores, found.classes, api.boxes, api.scores, api.classes)

        reply = api_detect(str(image), entry, cache, **settings)  # /detect: what is not sent is the model's own
        same(xyxy(reply["detections"]), [r["score"] for r in reply["detections"]],
             [r["category"] for r in reply["detections"]], api.boxes, api.scores, api.classes, box_atol=0.011)


SHIPPED = [("tinyssd-shapes", "shapes"), ("tinyssd-bananas", "bananas"), ("tinyssd-raccoon", "raccoon")]


@pytest.mark.parametrize("suffix", [".pt", ".onnx"])
@pytest.mark.parametrize(("stem", "kind"), SHIPPED)
def test_a_shipped_model_answers_the_same_everywhere(images, tmp_path, stem, kind, suffix):
    path = MODELS / f"{stem}{suffix}"
    entry = describe_checkpoint(path)
    entry.label = path.name
    every_surface(str(path), entry, images[kind], tmp_path)


@pytest.mark.parametrize("name", ZOO)
def test_a_zoo_model_answers_the_same_everywhere(hub, monkeypatch, images, tmp_path, name):
    from detector.app import catalog

    hub(name)
    monkeypatch.setattr(catalog, "onnx_runtime_installed", lambda: False)  # PyTorch in the app too (ONNX: test_demo)
    entry = catalog.zoo_entries()[f"COCO: {name.removeprefix('torchvision:')}"]
    every_surface(name, entry, images["photo"], tmp_path, every_override=False)


def test_the_sliders_start_at_and_follow_the_chosen_models_own_settings(tmp_path):
    from detector.app.catalog import discover_models

    entries = discover_models([MODELS], runs_dir=None)
    a, b = "tinyssd-shapes.pt", "tinyssd-raccoon.onnx"
    cache = ModelCache("cpu")
    own = {label: cache.get(entries[label].path).info.defaults for label in (a, b)}
    demo = build_app(entries, a, cache, [])
    fields = {c.elem_id: c for c in demo.blocks.values() if getattr(c, "elem_id", None)}
    assert fields["conf"].value == own[a].conf and fields["iou"].value == own[a].iou
    assert fields["max-det"].value == own[a].max_det and fields["nms-iou"].value == own[a].iou
    (on_model,) = [f.fn for f in demo.fns.values() if getattr(f, "name", "") == "on_model"]
    _card, _classes, conf, iou, max_det, nms_iou = on_model(b)
    assert (conf["value"], iou["value"], max_det["value"], nms_iou["value"]) == (
        own[b].conf, own[b].iou, own[b].max_det, own[b].iou)


@pytest.fixture(scope="module")
def shapes_photo(tmp_path_factory) -> Path:
    """A generated shapes image with many shapes of several classes."""
    from detector.data.synth import render

    path = tmp_path_factory.mktemp("one") / "shapes.png"
    Image.fromarray(render(3, "val", 7, size=256)[0]).save(path)
    return path


CASES = [(None, None), (None, 1), (["star"], None), (["star"], 1), (["cross", "circle"], 2), (["cross"], 50)]


@pytest.mark.parametrize(("classes", "max_det"), CASES)
def test_classes_are_filtered_before_max_det_cuts_on_every_surface(shapes_photo, tmp_path, classes, max_det):
    det = Detector(SHAPES, device="cpu")
    every = det.predict(shapes_photo, conf=0.05)[0]
    r = det.predict(shapes_photo, conf=0.05, classes=classes, max_det=max_det)[0]
    wanted = classes or det.names
    expected = [i for i, c in enumerate(every.classes) if c in wanted][: max_det or det.info.defaults.max_det]
    assert r.classes == [every.classes[i] for i in expected]
    np.testing.assert_allclose(r.scores, every.scores[expected], atol=1e-6)
    if classes and max_det:
        assert len(r) == min(max_det, len(expected))  # never fewer because other classes took the places

    args = ["predict", str(shapes_photo), "--weights", str(SHAPES), "--conf", "0.05", "--out", str(tmp_path / "cli"),
            "--device", "cpu"]
    args += ["--classes", *classes] if classes else []
    args += ["--max-det", str(max_det)] if max_det else []
    assert main(args) == 0
    cli = json.loads((tmp_path / "cli" / "predictions.json").read_text())
    assert [p["category"] for p in cli] == r.classes
    np.testing.assert_allclose([p["score"] for p in cli], r.scores, atol=1e-5)

    entry = describe_checkpoint(SHAPES)
    app = run_detect([str(shapes_photo)], entry, ModelCache("cpu"), conf=0.05, max_det=max_det, classes=classes,
                     downloads=tmp_path)
    (found,) = app.results
    assert found.classes == r.classes
    np.testing.assert_allclose(found.boxes, r.boxes, atol=1e-4)
