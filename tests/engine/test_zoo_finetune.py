"""Fine-tuning from a zoo model (``--pretrained torchvision:NAME``), offline: seeded COCO weights planted in a
temporary torch hub cache; every tensor but the class predictors is loaded, the log says so, the loss falls."""

import csv

import torch

from detector.cli.main import main
from detector.data.synth import synth_dataset
from detector.models.checkpoint import load_checkpoint

NAME = "torchvision:ssdlite320_mobilenet_v3_large"


def test_finetune_ssdlite_from_coco(hub, tmp_path, capsys):
    planted = hub(NAME)
    data = synth_dataset(tmp_path / "shapes", "shapes", train=16, val=4, seed=0, size=96, workers=1)
    run = tmp_path / "run"
    assert main(["train", "--pretrained", NAME, "--data", str(data), "--epochs", "4", "--batch-size", "8",
                 "--lr", "1e-3", "--workers", "0", "--device", "cpu", "--data-path", "loader", "--eval-every", "4",
                 "--out", str(run)]) == 0
    err = capsys.readouterr().err
    assert "fine-tuning recipe: img-size 320 (flags override)" in err  # lr and epochs were given
    assert "pretrained: " in err and "tensors from torchvision:ssdlite320_mobilenet_v3_large (COCO); fresh for " \
                                     "this data's 5 classes: cls_heads" in err
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["model_name"] == "ssdlite320_mobilenet_v3_large" and ckpt["img_size"] == 320
    assert "class_slots" not in ckpt["model_kwargs"] and ckpt["classes"] == ["circle", "triangle", "square", "star",
                                                                             "cross"]
    with open(run / "results.csv") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert losses[-1] < losses[0], losses
    # the body came from COCO and moved only by fine-tuning; the class heads were built fresh for 5 classes
    first = planted.backbone.features[0][0][0].weight
    assert ckpt["model"]["cls_heads.0.1.weight"].shape[0] == 6 * 6  # 6 anchors x (5 classes + background)
    assert (ckpt["model"]["blocks.0.0.0.weight"] - first).abs().max() < 0.05 * first.abs().max()
    assert torch.isfinite(ckpt["model"]["box_heads.0.1.weight"]).all()
