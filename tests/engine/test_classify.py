import csv
from dataclasses import replace

import pytest
import torch
from PIL import Image

from detector.cli.main import main
from detector.data.check import prepare_split
from detector.data.classify import box_crops, load_classification
from detector.engine.checkpoint import save_checkpoint
from detector.engine.classify import load_pretrained, train_classifier
from detector.engine.config import ClassifyConfig
from detector.engine.loop import param_groups
from detector.models import recipes
from detector.models.backbones import BACKBONES
from detector.models.checkpoint import CheckpointError, load_checkpoint


def test_detection_boxes_become_labelled_crops(shapes_yaml):
    _, records = prepare_split(shapes_yaml, "train", log=lambda s: None)
    items = box_crops(records)
    assert len(items) == sum(len(r.boxes) for r in records)
    _path, _label, (x1, y1, x2, y2) = items[0]
    box = records[0].boxes[0] if len(records[0].boxes) else None
    if box is not None:
        assert x1 <= box[0] and y1 <= box[1] and x2 >= box[2] and y2 >= box[3]  # context added, inside the image
        assert 0 <= x1 and x2 <= records[0].width
    classes, train, val = load_classification(str(shapes_yaml), 32)
    x, _y = train[0]
    assert classes == ["circle", "triangle", "square", "star", "cross"] and x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert val is not None and len(val) == sum(len(r.boxes) for r in prepare_split(shapes_yaml, "val", log=print)[1])


def test_image_folder_layout(tmp_path):
    for c, color in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (tmp_path / c).mkdir()
        for i in range(10):
            Image.new("RGB", (20, 16), color).save(tmp_path / c / f"{i}.png")
    classes, train, val = load_classification(str(tmp_path), 24)
    assert classes == ["blue", "red"] and len(train) + len(val) == 20 and len(val) == 2
    assert train[0][0].shape == (3, 24, 24)


def test_train_classifier_then_finetune_with_pretrained_body(shapes_yaml, tmp_path):
    m = train_classifier(ClassifyConfig(model="resnet18", data=str(shapes_yaml), epochs=1, batch_size=8, img_size=32,
                                        workers=0, device="cpu", out=str(tmp_path / "a")))
    val_boxes = sum(len(r.boxes) for r in prepare_split(str(shapes_yaml), "val", log=lambda s: None)[1])
    assert m["images"] == val_boxes and m["top1"] * val_boxes == pytest.approx(round(m["top1"] * val_boxes))
    ckpt = load_checkpoint(tmp_path / "a" / "best.pt")
    assert ckpt["task"] == "classify" and ckpt["model_name"] == "resnet18"
    assert main(["classify", "eval", "--weights", str(tmp_path / "a" / "best.pt"), "--data", str(shapes_yaml),
                 "--workers", "0"]) == 0

    # fine-tuning: the body comes from the checkpoint, the head starts fresh
    net = BACKBONES["resnet18"](3, 3)
    report = load_pretrained(net, str(tmp_path / "a" / "best.pt"))
    assert report["fresh_names"] == ["head.2.weight", "head.2.bias"] and report["loaded"] > 50
    torch.testing.assert_close(net.state_dict()["features.0.0.weight"], ckpt["model"]["features.0.0.weight"])
    groups = param_groups(net, 5e-4, {"head.": 10.0})
    assert {g["lr_scale"] for g in groups} == {1.0, 10.0}
    head = {id(p) for p in net.head.parameters()}
    assert all(g["lr_scale"] == 10.0 for g in groups for p in g["params"] if id(p) in head)


def test_pretrained_shape_mismatch_is_a_clear_error(tmp_path):
    save_checkpoint({"model": BACKBONES["resnet18"](10, 1).state_dict(), "model_name": "resnet18"}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"features.0.0.weight: \(64, 1, 7, 7\) in the checkpoint, \(64, 3, 7, 7\)"):
        load_pretrained(BACKBONES["resnet18"](10, 3), str(tmp_path / "c.pt"))


def test_classify_cli_errors(tmp_path, capsys):
    assert main(["classify", "train", "--model", "alexnet", "--img-size", "32", "--data", str(tmp_path)]) == 2
    assert "--img-size 32: too small for alexnet, which needs at least 65 px" in capsys.readouterr().err
    assert main(["classify", "train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_recipe_min_steps_raise_the_epochs_of_a_small_set_unless_epochs_are_given(shapes_yaml, tmp_path, monkeypatch,
                                                                                   capsys):
    monkeypatch.setitem(recipes.RECIPES, "lenet", replace(recipes.RECIPES["lenet"], epochs=1, min_steps=5))
    crops = len(load_classification(str(shapes_yaml), 28)[1])
    steps = crops // 16  # batches an epoch (drop_last)
    assert steps >= 1
    want = -(-5 // steps)
    assert recipes.RECIPES["lenet"].epochs_for(1, steps) == want and recipes.RECIPES["lenet"].epochs_for(9, steps) == 9

    def epochs_run(out, **given) -> int:
        train_classifier(ClassifyConfig(model="lenet", data=str(shapes_yaml), batch_size=16, workers=0, device="cpu",
                                        out=str(tmp_path / out), **given))
        with open(tmp_path / out / "results.csv") as f:
            return len(list(csv.DictReader(f)))

    assert epochs_run("raised") == want > 1
    err = capsys.readouterr().err
    assert f"epochs: {want} instead of 1: the recipe asks for at least 5 steps" in err
    assert epochs_run("given", epochs=1) == 1  # --epochs given: the user's count
    assert load_checkpoint(tmp_path / "raised" / "last.pt")["config"]["epochs"] == want  # --resume keeps it
