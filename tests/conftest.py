import os

# Under pytest-xdist (the suite's default, -n 2 in pyproject.toml) each worker gets its share of the cores: a
# worker's torch, ONNX Runtime and the commands the tests start run on one thread each unless OMP_NUM_THREADS is
# given, so two workers do not fight over the cores.
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "2"))))

import pytest

from detector.data.synth import synth_dataset


@pytest.fixture(scope="session")
def shapes_yaml(tmp_path_factory):
    """A small generated shapes data set: 16 train and 6 val images at 96 px."""
    return synth_dataset(tmp_path_factory.mktemp("shapes"), "shapes", train=16, val=6, seed=0, size=96, workers=1)


@pytest.fixture(scope="session")
def shipped_onnx(tmp_path_factory):
    """``models/tinyssd-shapes.pt`` (trained tiny_ssd_plus, 256 px) exported to ONNX with a dynamic batch axis."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from pathlib import Path

    from detector.engine.onnx_export import export_onnx

    shipped = Path(__file__).resolve().parents[1] / "models" / "tinyssd-shapes.pt"
    out = tmp_path_factory.mktemp("onnx") / "tinyssd-shapes.onnx"
    export_onnx(shipped, out, dynamic_batch=True, log=lambda s: None)
    return shipped, out


# ------------------------------------------------------------------------------- the zoo, offline
def seeded_zoo_model(name: str):
    """torchvision's zoo model ``name`` (a key of ``detector.engine.zoo.ZOO``) with the COCO layout (91 outputs)
    and seeded weights that make varied, confident detections (the body's maps near 1)."""
    import torch
    import torchvision

    from detector.engine.zoo import ZOO

    entry = ZOO[name]
    torch.manual_seed(0)
    tv = getattr(torchvision.models.detection, entry.builder)(weights=None, weights_backbone=None, num_classes=91)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in tv.backbone.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, generator=g)
                if entry.model == "faster_rcnn":
                    m.weight.mul_(0.9)  # the body's maps near 1 (Kaiming alone: near 100, and huge RPN offsets)
        if entry.builder == "ssd300_vgg16":
            tv.backbone.features[0].weight.div_(100.0)  # its input is in 0..255 (std 1/255)
        if entry.model == "faster_rcnn":
            layers = [tv.rpn.head.cls_logits, tv.roi_heads.box_predictor.cls_score]
        else:
            layers = [m[-1] if isinstance(m, torch.nn.Sequential) else m for m in tv.head.classification_head.module_list]
        for layer in layers:
            layer.weight.mul_(0.2 if entry.builder == "ssd300_vgg16" else 3.0)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g))
    return tv.eval()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache of this test's own; ``plant(name)`` puts seeded weights in it under torchvision's
    file name, as a download would, and returns torchvision's own model loaded from them."""
    import torch
    import torchvision

    from detector.engine.zoo import ZOO, hub_folder

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("DETECTOR_OFFLINE", "1")  # nothing is downloaded: what is not in the cache is missing

    def plant(name: str):
        weights = getattr(torchvision.models.detection, ZOO[name].weights).COCO_V1
        hub_folder().mkdir(parents=True, exist_ok=True)
        torch.save(seeded_zoo_model(name).state_dict(), hub_folder() / weights.url.rsplit("/", 1)[-1])
        return getattr(torchvision.models.detection, ZOO[name].builder)(weights=weights, weights_backbone=None).eval()

    return plant
