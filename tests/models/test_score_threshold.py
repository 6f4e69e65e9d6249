"""A score exactly at the threshold is kept, by every postprocess: the SSD family's (PyTorch and the ONNX graph)
and Faster R-CNN's box head. The class layers are zeroed, so every candidate of a one-class model scores
exactly 0.5 (equal logits of the class and the background); a threshold of 0.5 keeps them, one just above
drops them all."""

import pytest
import torch

from detector.engine.checkpoint import save_checkpoint
from detector.models.faster_rcnn import faster_rcnn
from detector.models.registry import build_model, load_detector

ABOVE = 0.5 + 1e-6


def zeroed(layers):
    with torch.no_grad():
        for layer in layers:
            layer.weight.zero_()
            layer.bias.zero_()


def one_class_ssd(name):
    torch.manual_seed(0)
    model = build_model(name, 1).eval()
    zeroed(model.cls_heads)
    return model


@pytest.mark.parametrize("name", ["tiny_ssd", "tiny_ssd_plus", "resnet_ssd"])
def test_ssd_keeps_a_score_equal_to_the_threshold(name):
    model = one_class_ssd(name)
    images = torch.randint(0, 256, (1, 3, 128, 128), dtype=torch.uint8)
    with torch.no_grad():
        (at,) = model(images, post={"score_threshold": 0.5, "max_detections": 5})
        (above,) = model(images, post={"score_threshold": ABOVE})
    assert len(at["scores"]) == 5 and (at["scores"] == 0.5).all()
    assert len(above["scores"]) == 0


def test_faster_rcnn_keeps_a_score_equal_to_the_threshold():
    torch.manual_seed(0)
    model = faster_rcnn(1).eval()
    zeroed([model.cls_score])
    images = torch.randint(0, 256, (1, 3, 128, 128), dtype=torch.uint8)
    with torch.no_grad():
        (at,) = model(images, post={"score_threshold": 0.5, "max_detections": 5})
        (above,) = model(images, post={"score_threshold": ABOVE})
    assert len(at["scores"]) == 5 and (at["scores"] == 0.5).all()
    assert len(above["scores"]) == 0


def test_the_onnx_graph_keeps_a_score_equal_to_the_threshold(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from detector.engine.onnx_export import export_onnx

    model = one_class_ssd("tiny_ssd")
    ckpt = tmp_path / "m.pt"
    save_checkpoint({"model": model.state_dict(), "model_name": "tiny_ssd", "model_kwargs": {}, "classes": ["a"],
                     "category_ids": [1], "img_size": 128, "epoch": 1, "metrics": {}, "command": "test"}, ckpt)
    export_onnx(ckpt, tmp_path / "m.onnx")
    graph, _ = load_detector(tmp_path / "m.onnx")
    images = torch.randint(0, 256, (1, 3, 128, 128), dtype=torch.uint8)
    (at,) = graph(images, post={"score_threshold": 0.5, "max_detections": 5})
    (above,) = graph(images, post={"score_threshold": ABOVE})
    assert len(at["scores"]) == 5 and (torch.as_tensor(at["scores"]) == 0.5).all()
    assert len(above["scores"]) == 0
