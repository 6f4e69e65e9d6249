"""``detector import``: torchvision's Faster R-CNN from a ``.pth`` file into a checkpoint of this project."""

import numpy as np
import torch
import torchvision

from detector.cli.main import main
from detector.engine.zoo import coco_classes
from detector.evaluation.predict import run_model
from detector.models.registry import load_detector


def test_import_from_a_state_dict_file(tmp_path, capsys):
    torch.manual_seed(0)
    tv = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    torch.save(tv.state_dict(), tmp_path / "frcnn.pth")
    out = tmp_path / "frcnn-coco.pt"
    assert main(["import", "torchvision:fasterrcnn_resnet50_fpn", "--out", str(out),
                 "--weights-file", str(tmp_path / "frcnn.pth")]) == 0
    model, ckpt = load_detector(out)
    assert len(ckpt["classes"]) == 80 and ckpt["classes"][0] == "person" and ckpt["category_ids"][-1] == 90
    assert ckpt["category_ids"][:12] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13]  # 12 is one of COCO's gaps
    assert model.min_size == 800 and model.num_classes == 80 and model.head_classes == 90
    for ours, theirs in ((model.cls_score.weight, tv.roi_heads.box_predictor.cls_score.weight),
                         (model.body[4][2].conv3.weight, tv.backbone.body.layer4[2].conv3.weight)):
        torch.testing.assert_close(ours, theirs)
    image = torch.randint(0, 256, (1, 3, 96, 128), dtype=torch.uint8)
    det = run_model(model, image, post={"score_threshold": 0.0})[0]
    assert det["boxes"].shape[1] == 4 and (det["labels"] < 80).all() and np.isfinite(det["boxes"]).all()


def test_coco_classes_from_torchvision_meta():
    meta = torchvision.models.detection.FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]
    names, ids = coco_classes(meta)
    assert len(names) == 80 and "N/A" not in names and names[ids.index(90)] == "toothbrush"
