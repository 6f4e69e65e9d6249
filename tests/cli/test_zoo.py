"""The zoo offline: torchvision's weights API reading seeded weights planted in a temporary torch hub cache under
torchvision's own file names; ``detector import``, ``Detector("torchvision:NAME")`` and ``predict --weights
torchvision:NAME`` give torchvision's detections with COCO's names; a cache without the file is one line."""

import json
import os

import numpy as np
import pytest
import torch

from detector import Detector
from detector.cli.main import main
from detector.engine.zoo import hub_folder

skimage_data = pytest.importorskip("skimage.data")
NEW = ["torchvision:fasterrcnn_mobilenet_v3_large_320_fpn", "torchvision:fasterrcnn_mobilenet_v3_large_fpn",
       "torchvision:ssd300_vgg16", "torchvision:ssdlite320_mobilenet_v3_large"]


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
    assert len(det.names) == 80 and det.names[0] == "person" and det.info.category_ids[-1] == 90
    image = skimage_data.coffee()
    if hasattr(tv, "roi_heads"):  # every detection on both sides: the comparison picks its own cut
        tv.roi_heads.detections_per_img = 10_000
    else:
        tv.detections_per_img = 10_000
    with torch.no_grad():
        theirs = tv([torch.from_numpy(image).permute(2, 0, 1).float() / 255])[0]
    ids = det.info.category_ids
    real = np.isin(theirs["labels"].numpy(), ids)  # torchvision's unused COCO slots left out
    t = above_a_gap(theirs["scores"].numpy()[real], 20)
    keep = real & (theirs["scores"].numpy() > t)
    ours = det.predict(image, conf=t, max_det=1000)[0]
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
    assert f"put ssdlite320_mobilenet_v3_large_coco-a79551df.pth in {hub_folder()} (from https://" in err
    assert "detector import torchvision:ssdlite320_mobilenet_v3_large --weights-file PATH" in err
    assert not (tmp_path / "z.pt").exists() and os.environ["DETECTOR_OFFLINE"] == "1"
