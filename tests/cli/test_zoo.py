"""The zoo offline: torchvision's weights API reading seeded weights planted in a temporary torch hub cache under
torchvision's own file names; ``detector import``, ``Detector("torchvision:NAME")`` and ``predict --weights
torchvision:NAME`` give torchvision's detections with COCO's names; a cache without the file is one line."""

import json
import os

import numpy as np
import pytest
import torch
import torchvision

from detector import Detector
from detector.cli.main import main
from detector.engine.zoo import ZOO, hub_folder

skimage_data = pytest.importorskip("skimage.data")
NEW = ["torchvision:fasterrcnn_mobilenet_v3_large_320_fpn", "torchvision:fasterrcnn_mobilenet_v3_large_fpn",
       "torchvision:ssd300_vgg16", "torchvision:ssdlite320_mobilenet_v3_large"]


def seeded(name: str):
    """torchvision's model with the COCO layout (91 outputs) and weights that make varied, confident detections."""
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
            tv.backbone.features[0].weight.div_(100.0)
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
    """An empty torch hub cache of this test's own; ``plant(name)`` puts seeded weights in it, as a download would."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("DETECTOR_OFFLINE", "1")  # nothing is downloaded: what is not in the cache is missing

    def plant(name: str):
        """Plant the weights; returns torchvision's own model loaded from them, as a user of torchvision has it."""
        weights = getattr(torchvision.models.detection, ZOO[name].weights).COCO_V1
        hub_folder().mkdir(parents=True, exist_ok=True)
        torch.save(seeded(name).state_dict(), hub_folder() / weights.url.rsplit("/", 1)[-1])
        return getattr(torchvision.models.detection, ZOO[name].builder)(weights=weights, weights_backbone=None).eval()

    return plant


def rows(boxes, scores, ids):
    """Detections as rows (score, category id, box) sorted: compared as sets (tied scores may come in any order)."""
    table = np.concatenate([np.asarray(scores)[:, None], np.asarray(ids)[:, None], np.asarray(boxes)], 1)
    key = np.round(table, 2)  # near-equal scores sorted by their boxes
    return table[np.lexsort(key.T[::-1])]


def above_a_gap(scores, at_least: int) -> float:
    """A score threshold between two distinct scores that keeps at least ``at_least`` detections."""
    s = np.sort(np.asarray(scores))[::-1]
    k = at_least
    while k < len(s) and s[k] >= s[k - 1] - 1e-5:
        k += 1
    return float((s[k - 1] + s[k]) / 2) if k < len(s) else 0.0


@pytest.mark.parametrize("name", NEW)
def test_import_and_detect_as_torchvision_does(hub, tmp_path, name):
    tv = hub(name)
    out = tmp_path / "zoo.pt"
    assert main(["import", name, "--out", str(out)]) == 0
    det = Detector(out, device="cpu")
    assert len(det.names) == 80 and det.names[0] == "person" and det.info["category_ids"][-1] == 90
    image = skimage_data.coffee()
    if hasattr(tv, "roi_heads"):  # every detection on both sides: the comparison picks its own cut
        tv.roi_heads.detections_per_img = 10_000
    else:
        tv.detections_per_img = 10_000
    with torch.no_grad():
        theirs = tv([torch.from_numpy(image).permute(2, 0, 1).float() / 255])[0]
    ids = det.info["category_ids"]
    real = np.isin(theirs["labels"].numpy(), ids)  # torchvision's unused COCO slots left out
    t = above_a_gap(theirs["scores"].numpy()[real], 20)
    keep = real & (theirs["scores"].numpy() > t)
    ours = det.predict(image, conf=t, max_det=10_000)[0]
    assert len(ours) == keep.sum() >= 20
    np.testing.assert_allclose(rows(ours.boxes, ours.scores, [ids[c] for c in ours.labels]),
                               rows(theirs["boxes"].numpy()[keep], theirs["scores"].numpy()[keep],
                                    theirs["labels"].numpy()[keep]), atol=1e-3)
    assert Detector(name, device="cpu").names == det.names  # straight from the cache, without a file


def test_predict_and_the_api_take_a_zoo_name(hub, tmp_path, capsys):
    name = "torchvision:ssdlite320_mobilenet_v3_large"
    hub(name)
    image = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray(skimage_data.chelsea()).save(image)
    assert main(["predict", str(image), "--weights", name, "--conf", "0.5", "--out", str(tmp_path / "p"),
                 "--device", "cpu"]) == 0
    results = json.loads((tmp_path / "p" / "predictions.json").read_text())
    assert results and all(r["category"] in Detector(name).names for r in results)


def test_a_cache_without_the_file_is_one_line(hub, tmp_path, capsys):
    code = main(["import", "torchvision:ssdlite320_mobilenet_v3_large", "--out", str(tmp_path / "z.pt")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert f"put ssdlite320_mobilenet_v3_large_coco-a79551df.pth in {hub_folder()}" in err
    assert not (tmp_path / "z.pt").exists() and os.environ["DETECTOR_OFFLINE"] == "1"
