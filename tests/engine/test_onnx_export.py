"""``detector export --format onnx``: every exportable model's graph, run by ONNX Runtime, gives PyTorch's
detections (boxes within 1e-3 of the input size, the same labels, scores within 1e-4, compared as sets so that
tied scores may come in either order) on skimage's photographs and generated images, at batch 1 and in a batch;
the metadata comes back as the checkpoint's description; per-call thresholds reach the graph.

Random weights give near-uniform scores that test nothing, so the class heads are scaled with a fixed seed and
BatchNorm gets varied statistics: many detections pass the thresholds, with distinct scores.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from detector.core.geometry import fit_image
from detector.data.dataset import load_dataset
from detector.data.images import read_image
from detector.engine.checkpoint import save_checkpoint
from detector.models.registry import build_model, load_detector

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
skimage_data = pytest.importorskip("skimage.data")
linear_sum_assignment = pytest.importorskip("scipy.optimize").linear_sum_assignment

from detector.engine.onnx_export import ExportError, export_onnx  # after the skips: it needs onnxscript

CLASSES = ["a", "b", "c"]
SIZE = 128  # the random-weight models' input: small, so the tests stay quick


def confident(model):
    """Class heads scaled (x4) with new biases and BatchNorm statistics from a fixed seed: varied, confident scores."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for head in model.cls_heads:
            head.weight.mul_(4.0)
            head.bias.copy_(torch.randn(head.bias.shape, generator=g) * 2)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


def random_checkpoint(folder, name: str, **kwargs):
    torch.manual_seed(0)
    model = confident(build_model(name, len(CLASSES), **kwargs))
    path = folder / f"{name}.pt"
    save_checkpoint({"model": model.state_dict(), "model_name": name, "model_kwargs": kwargs, "classes": CLASSES,
                     "category_ids": [3, 5, 7], "img_size": SIZE, "epoch": 4, "metrics": {"AP": 0.5},
                     "command": "detector train ..."}, path)
    return path


def images(shapes_yaml, size: int) -> torch.Tensor:
    """skimage's astronaut, coffee and chelsea and the five first generated val images, resized as predict does:
    ``uint8 [8, 3, size, size]``."""
    photos = [f() for f in (skimage_data.astronaut, skimage_data.coffee, skimage_data.chelsea)]
    generated = [read_image(r.path) for r in load_dataset(shapes_yaml).splits["val"][:5]]
    return torch.stack([fit_image(torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1), size)[0]
                        for im in photos + generated])


def assert_same_detections(ours, theirs, size: int, at_least: int = 1):
    """Per image, the same detections as a set: a one-to-one matching with equal labels, boxes within
    ``1e-3 * size`` and scores within 1e-4."""
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert len(a["scores"]) == len(b["scores"]) >= at_least, (i, len(a["scores"]), len(b["scores"]))
        box = (a["boxes"][:, None] - b["boxes"][None]).abs().amax(-1) / (1e-3 * size)  # (N, N) in tolerances
        score = (a["scores"][:, None] - b["scores"][None]).abs() / 1e-4  # (N, N)
        cost = torch.maximum(box, score).masked_fill(a["labels"][:, None] != b["labels"][None], 1e9).numpy()
        rows, cols = linear_sum_assignment(cost)
        assert cost[rows, cols].max(initial=0) <= 1, f"image {i}: worst pair {cost[rows, cols].max():.3g} tolerances"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``name -> (checkpoint, onnx)``: the book's TinySSD and resnet_ssd, random confident weights, batch 1."""
    folder = tmp_path_factory.mktemp("export")
    out = {}
    for name, kwargs in (("tiny_ssd", {}), ("resnet_ssd", {"backbone": "resnet18"})):
        ckpt = random_checkpoint(folder, name, **kwargs)
        export_onnx(ckpt, folder / f"{name}.onnx", log=lambda s: None)
        out[name] = ckpt, folder / f"{name}.onnx"
    return out


@pytest.mark.parametrize("name", ["tiny_ssd", "resnet_ssd"])
def test_random_confident_weights_give_pytorchs_detections(exported, shapes_yaml, name):
    ckpt, onnx_path = exported[name]
    torch_model, _ = load_detector(ckpt)
    onnx_model, info = load_detector(onnx_path)
    assert not info["dynamic_batch"] and info["img_size"] == SIZE
    x = images(shapes_yaml, SIZE)
    with torch.no_grad():
        want = torch_model(x)
        assert all(len(d["scores"].unique()) > 20 for d in want)  # confident and varied, not a tie
        assert_same_detections(onnx_model(x), want, SIZE, at_least=50)  # batch 1 graph: one run per image
        post = {"score_threshold": 0.3, "nms_threshold": 0.3, "max_detections": 7}
        assert_same_detections(onnx_model(x[:3], post=post), torch_model(x[:3], post=post), SIZE, at_least=1)


def test_the_shipped_model_gives_pytorchs_detections_at_batch_1_and_8(shipped_onnx, shapes_yaml):
    shipped, onnx_path = shipped_onnx
    torch_model, ckpt = load_detector(shipped)
    onnx_model, info = load_detector(onnx_path)
    assert info["dynamic_batch"] and info["img_size"] == ckpt["img_size"] == 256
    x = images(shapes_yaml, 256)
    with torch.no_grad():
        want = torch_model(x)
        assert_same_detections(onnx_model(x), want, 256, at_least=5)  # one run of batch 8
        for i in (0, 5):
            assert_same_detections(onnx_model(x[i:i + 1]), want[i:i + 1], 256, at_least=5)


def test_metadata_is_the_checkpoints_description(exported):
    ckpt_path, onnx_path = exported["tiny_ssd"]
    _, info = load_detector(onnx_path)
    model, ckpt = load_detector(ckpt_path)
    for key in ("model_name", "model_kwargs", "classes", "category_ids", "img_size", "epoch", "metrics", "command"):
        assert info[key] == ckpt[key], key
    assert info["post_defaults"] == {k: model.post_defaults[k] for k in ("score_threshold", "nms_threshold",
                                                                         "max_detections")}
    assert info["pre_nms_top_k"] == 400 and info["format"] == "onnx" and info["source"] == "tiny_ssd.pt"


def test_the_graph_runs_alone_with_its_default_thresholds(exported, shapes_yaml):
    _, onnx_path = exported["tiny_ssd"]
    model, info = load_detector(onnx_path)
    x = images(shapes_yaml, SIZE)[:1]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]  # the thresholds are overridable initializers
    boxes, scores, labels, index = session.run(None, {"images": (x.float() / 255).numpy()})
    (want,) = model(x)
    assert (index == 0).all() and len(scores) == len(want["scores"]) == info["post_defaults"]["max_detections"]
    np.testing.assert_allclose(scores, want["scores"].numpy(), atol=1e-6)
    assert boxes.shape == (len(scores), 4) and labels.dtype == np.int64


def test_half_stores_fp16_weights_and_keeps_the_detections_close(exported, shapes_yaml, tmp_path):
    import onnx

    from detector.engine.onnx_export import fp16_storage

    _, onnx_path = exported["tiny_ssd"]
    proto = fp16_storage(onnx.load(str(onnx_path)))  # what export_onnx(half=True) does after tracing
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(tmp_path / "half.onnx"))
    assert (tmp_path / "half.onnx").stat().st_size < 0.6 * onnx_path.stat().st_size
    half, _ = load_detector(tmp_path / "half.onnx")
    full, _ = load_detector(onnx_path)
    x = images(shapes_yaml, SIZE)[:2]
    for a, b in zip(half(x), full(x)):  # fp16 rounding of the weights: close, not equal
        n = min(len(a["scores"]), len(b["scores"]), 10)
        assert n == 10
        torch.testing.assert_close(a["scores"][:n], b["scores"][:n], atol=5e-3, rtol=0)


def test_faster_rcnn_is_refused_in_one_line(tmp_path):
    path = tmp_path / "frcnn.pt"
    save_checkpoint({"model": {}, "model_name": "faster_rcnn", "classes": ["a"], "img_size": 64}, path)
    with pytest.raises(ExportError, match="faster_rcnn cannot be exported to ONNX: torch's exporter cannot trace"):
        export_onnx(path, tmp_path / "frcnn.onnx")
    assert not (tmp_path / "frcnn.onnx").exists()


@pytest.mark.parametrize("name", ["tinyssd-shapes", "tinyssd-bananas", "tinyssd-raccoon"])
def test_the_shipped_onnx_files_are_their_checkpoints(name, shapes_yaml):
    """models/X.onnx (the app's default backend) must stay the export of models/X.pt: re-export after retraining."""
    models = Path(__file__).resolve().parents[2] / "models"
    torch_model, ckpt = load_detector(models / f"{name}.pt")
    onnx_model, info = load_detector(models / f"{name}.onnx")
    assert info["source"] == f"{name}.pt" and info["dynamic_batch"]
    assert {k: info[k] for k in ("classes", "category_ids", "img_size")} == {k: ckpt[k] for k in
                                                                          ("classes", "category_ids", "img_size")}
    x = images(shapes_yaml, ckpt["img_size"])
    # compared at a low threshold (through the graph's threshold input): at its own 0.01 the raccoon model, trained
    # against false alarms, rightly finds next to nothing on a generated shape or skimage's photographs
    post = {"score_threshold": 0.001}
    with torch.no_grad():
        ours, theirs = onnx_model(x, post=post), torch_model(x, post=post)
    assert sum(len(d["scores"]) for d in theirs) >= 8
    assert_same_detections(ours, theirs, ckpt["img_size"], at_least=0)


def test_a_zoo_ssdlite_exports_with_parity(hub, tmp_path, shapes_yaml):
    """torchvision's SSDlite through the zoo (seeded COCO weights, 80 classes in 90 slots, per-class top-k,
    boxes clipped before NMS, its own normalization and bilinear resize): the graph gives PyTorch's detections."""
    from detector.engine.zoo import import_torchvision

    hub("torchvision:ssdlite320_mobilenet_v3_large")
    ckpt = tmp_path / "ssdlite.pt"
    import_torchvision("torchvision:ssdlite320_mobilenet_v3_large", ckpt)
    export_onnx(ckpt, tmp_path / "ssdlite.onnx", dynamic_batch=True, log=lambda s: None)
    torch_model, _ = load_detector(ckpt)
    onnx_model, info = load_detector(tmp_path / "ssdlite.onnx")
    assert info["resize"] == "bilinear" and info["img_size"] == 320 and len(info["classes"]) == 80
    x = images(shapes_yaml, 320)
    post = {"score_threshold": 0.2}
    with torch.no_grad():
        want = torch_model(x, post=post)
        assert all(len(d["scores"].unique()) > 20 for d in want)
        assert_same_detections(onnx_model(x, post=post), want, 320, at_least=20)
        photo = [torch.from_numpy(skimage_data.coffee()).permute(2, 0, 1)]  # any size: fitted by both the same way
        assert_same_detections(onnx_model(photo, post=post), torch_model(photo, post=post), 400, at_least=20)


def test_merge_nms_exports_with_parity(shapes_yaml, tmp_path):
    """A model built with ``nms_merge``: the graph's merged boxes are PyTorch's, at its defaults and at other
    thresholds, and they are not plain NMS's boxes (the same detections and scores, moved boxes)."""
    ckpt = random_checkpoint(tmp_path, "tiny_ssd", nms_merge=True)
    export_onnx(ckpt, tmp_path / "merge.onnx", log=lambda s: None)
    torch_model, _ = load_detector(ckpt)
    onnx_model, info = load_detector(tmp_path / "merge.onnx")
    assert info["model_kwargs"] == {"nms_merge": True}
    x = images(shapes_yaml, SIZE)[:4]
    with torch.no_grad():
        want = torch_model(x)
        assert_same_detections(onnx_model(x), want, SIZE, at_least=20)
        post = {"score_threshold": 0.3, "nms_threshold": 0.3, "max_detections": 7}
        assert_same_detections(onnx_model(x, post=post), torch_model(x, post=post), SIZE, at_least=1)
        torch_model.nms_merge = False
        plain = torch_model(x)
    for merged, alone in zip(want, plain, strict=True):
        assert torch.equal(merged["scores"], alone["scores"]) and torch.equal(merged["labels"], alone["labels"])
    assert max(float((m["boxes"] - a["boxes"]).abs().max()) for m, a in zip(want, plain)) > 1  # pixels
