"""The ONNX Runtime backend on hand-made graphs (no export needed): the flat outputs split per image, the
metadata read back as a checkpoint's description, and one clear error per unusable file."""

import json
import re

import numpy as np
import pytest
import torch

from detector.models import onnx_backend
from detector.models.checkpoint import CheckpointError
from detector.models.onnx_backend import FORMAT_KEY, FORMAT_VERSION, providers_for, split_by_image
from detector.models.registry import load_detector

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # after the skip

BOXES = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [0, 0, 1, 1]], np.float32)  # by decreasing score, images 0, 1, 0
SCORES, LABELS, INDEX = np.array([0.9, 0.8, 0.7], np.float32), np.array([2, 0, 1]), np.array([0, 1, 0])
META = {FORMAT_KEY: FORMAT_VERSION, "model_name": "tiny_ssd", "classes": json.dumps(["a", "b", "c"]),
        "category_ids": json.dumps([3, 5, 7]), "img_size": "16", "dynamic_batch": "true",
        "post_defaults": json.dumps({"score_threshold": 0.01, "nms_threshold": 0.45, "max_detections": 100})}


def fixed_graph(path, metadata: dict | None = META):
    """A graph with the export's inputs and outputs that answers ``BOXES``, ``SCORES``, ... whatever it is given."""
    consts = {"boxes": BOXES, "scores": SCORES, "labels": LABELS, "batch_index": INDEX}
    nodes = [helper.make_node("Constant", [], [k], value=numpy_helper.from_array(v)) for k, v in consts.items()]
    types = {"boxes": TensorProto.FLOAT, "scores": TensorProto.FLOAT, "labels": TensorProto.INT64,
             "batch_index": TensorProto.INT64}
    graph = helper.make_graph(nodes, "fixed", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                             ["batch", 3, 16, 16])],
                              [helper.make_tensor_value_info(k, t, None) for k, t in types.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def test_outputs_are_split_per_image_by_decreasing_score(tmp_path):
    model, info = load_detector(fixed_graph(tmp_path / "m.onnx"))
    assert info["classes"] == ["a", "b", "c"] and info["category_ids"] == [3, 5, 7] and info["img_size"] == 16
    first, second, third = model(torch.zeros(3, 3, 16, 16, dtype=torch.uint8))
    torch.testing.assert_close(first["boxes"], torch.tensor(BOXES[[0, 2]]))
    torch.testing.assert_close(first["scores"], torch.tensor([0.9, 0.7]))
    assert first["labels"].tolist() == [2, 1] and second["labels"].tolist() == [0] and len(third["scores"]) == 0
    assert third["boxes"].shape == (0, 4)


def test_split_of_nothing_gives_empty_images():
    empty = {"boxes": np.zeros((0, 4), np.float32), "scores": np.zeros(0, np.float32),
             "labels": np.zeros(0, np.int64), "batch_index": np.zeros(0, np.int64)}
    assert [len(d["scores"]) for d in split_by_image(empty, 2)] == [0, 0]


def test_the_wrapper_fits_any_size_and_refuses_what_the_graph_cannot_take(tmp_path):
    model, _ = load_detector(fixed_graph(tmp_path / "m.onnx"))
    big, _, _ = model(torch.zeros(3, 3, 32, 48, dtype=torch.uint8))  # fitted to 16 x 16, boxes back in its pixels
    scale = torch.tensor([48 / 16, 32 / 16, 48 / 16, 32 / 16])
    torch.testing.assert_close(big["boxes"], torch.tensor(BOXES[[0, 2]]) * scale)
    with pytest.raises(ValueError, match="takes 16 px, the size it was exported at"):
        model(torch.zeros(1, 3, 16, 16), size=32)
    with pytest.raises(ValueError, match="computes no losses"):
        model(torch.zeros(1, 3, 16, 16), [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}])
    with pytest.raises(RuntimeError, match="inference only"):
        model.train()


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such model file"),
    (b"\x08\x07garbage" * 50, "not an ONNX model, or a damaged one"),
    ({}, "not one written by `detector export --format onnx`"),
    ({**META, "classes": "[a"}, "metadata is incomplete or malformed"),
    ({FORMAT_KEY: FORMAT_VERSION}, "metadata is incomplete or malformed"),
])
def test_an_unusable_file_is_one_line_naming_it(tmp_path, content, message):
    path = tmp_path / "bad.onnx"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        fixed_graph(path, content)
    with pytest.raises(CheckpointError, match=message) as e:
        load_detector(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_missing_onnxruntime_says_how_to_install_it(tmp_path, monkeypatch):
    real = onnx_backend.find_spec
    monkeypatch.setattr(onnx_backend, "find_spec", lambda n: None if n == "onnxruntime" else real(n))
    with pytest.raises(CheckpointError, match=r"needs onnxruntime \(not installed here\): pip install -e '\.\[onnx\]'"):
        load_detector(fixed_graph(tmp_path / "m.onnx"))


def test_cuda_provider_only_when_asked_for_and_available():
    both = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers_for("cuda", both) == both
    assert providers_for("cuda:1", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert providers_for("cpu", both) == ["CPUExecutionProvider"]


@pytest.mark.parametrize(("change", "message"), [
    ({"labels": np.array([2, 0, 3])}, "labels 0..3 outside its 3 classes"),
    ({"labels": np.array([-1, 0, 1])}, "labels -1..1 outside its 3 classes"),
    ({"batch_index": np.array([0, 1, -1])}, "image indices -1..1 outside a batch of 3"),
    ({"boxes": BOXES * np.array([1, 1, np.nan, 1], np.float32)}, "not finite"),
    ({"scores": np.array([np.inf, 0.8, 0.7], np.float32)}, "not finite"),
    ({"boxes": BOXES[:, [2, 1, 0, 3]]}, "corners are reversed"),
    ({"scores": np.array([1.5, 0.8, 0.7], np.float32)}, "scores outside [0, 1]"),
])
def test_outputs_a_graph_should_not_give_are_refused(change, message):
    """A graph whose outputs break the contract (labels, images, boxes or scores out of range) is named in one
    line: a label -1 would otherwise be named after the last class (Python's negative index)."""
    from detector.models.onnx_backend import outputs_problem

    out = {"boxes": BOXES, "scores": SCORES, "labels": LABELS, "batch_index": INDEX, **change}
    assert message in outputs_problem(out, 3, 3)
    assert outputs_problem({"boxes": BOXES, "scores": SCORES, "labels": LABELS, "batch_index": INDEX}, 3, 3) is None


@pytest.mark.parametrize(("meta", "message"), [
    ({"post_defaults": "{}"}, "'post_defaults' must give"),
    ({"img_size": "0"}, "'img_size' 0 must be 1..8192"),
    ({"img_size": "60000"}, "'img_size' 60000 must be 1..8192"),
    ({"category_ids": "[1, 2]"}, "'category_ids' must be 3 integers"),
])
def test_metadata_out_of_range_is_refused_on_load(tmp_path, meta, message):
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_detector(fixed_graph(tmp_path / "m.onnx", {**META, **meta}))
