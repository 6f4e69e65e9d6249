"""The training-recipe options end to end on small data: --letterbox, --anchors auto and --ema-decay through train,
eval and predict; --resume with EMA; --multi-scale with mosaic and mixup; what the data paths accept."""

import itertools
import json

import pytest
import torch
from PIL import Image

import detector.engine.detect as detect_module
import detector.engine.loop as engine_module
from detector.cli.main import main
from detector.data.check import prepare_split
from detector.data.multiscale import epoch_sizes
from detector.engine.config import TrainConfig, multi_scale_sizes
from detector.engine.detect import train, train_batches
from detector.models.checkpoint import load_checkpoint
from detector.models.registry import load_detector


def config(data, out, **kw):
    base = {"model": "tiny_ssd_plus", "data": str(data), "epochs": 2, "batch_size": 8, "img_size": 64, "workers": 0,
            "eval_every": 1, "out": str(out), "device": "cpu", "data_path": "loader"}
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def wide_yaml(shapes_yaml, tmp_path_factory):
    """The shapes set with every image stretched to 96 x 48 (and its boxes with it): not square, so letterboxing
    and squashing differ."""
    import shutil

    root = tmp_path_factory.mktemp("wide") / "shapes"
    shutil.copytree(shapes_yaml.parent, root)
    for split in ("train", "val"):
        ann = root / split / "annotations.json"
        doc = json.loads(ann.read_text())
        for im in doc["images"]:
            path = root / split / "images" / im["file_name"]
            Image.open(path).resize((96, 48)).save(path)
            im["height"] = 48
        for a in doc["annotations"]:
            x, y, w, h = a["bbox"]
            a["bbox"], a["area"] = [x, y / 2, w, h / 2], w * h / 2
        ann.write_text(json.dumps(doc))
    return root / shapes_yaml.name


def test_multi_scale_sizes():
    assert multi_scale_sizes(256, 0.5) == [128, 160, 192, 224, 256, 288, 320, 352, 384]
    assert multi_scale_sizes(320, 0.1) == [288, 320, 352]  # 320 * 0.9 is 288.00000000000006 in floats
    assert multi_scale_sizes(64, 0.5, min_size=64) == [64, 96]
    assert multi_scale_sizes(70, 0.01) == []


def test_letterbox_fitted_anchors_and_ema_through_train_eval_and_predict(wide_yaml, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(wide_yaml), "--epochs", "1", "--batch-size", "8", "--img-size", "64",
                 "--workers", "0", "--out", str(run), "--device", "cpu", "--data-path", "loader", "--eval-every", "1",
                 "--letterbox", "--anchors", "auto", "--ema-decay", "0.9"]) == 0
    assert "--anchors auto: 6" in capsys.readouterr().err  # the report: the training boxes and the coverage
    best = load_checkpoint(run / "best.pt")
    assert best["letterbox"] is True and best["ema_updates"] == 2  # 16 images, batches of 8
    assert set(best["model"]) == set(best["model_raw"])
    fit = best["anchor_fit"]
    assert fit["before"]["boxes"] == fit["after"]["boxes"] > 0
    assert best["model_kwargs"] == ({"sizes": fit["sizes"], "ratios": fit["ratios"]} if fit["used"] == "fitted" else {})
    model, _ = load_detector(run / "best.pt")  # rebuilt with the fitted anchors, loaded with the averaged weights
    assert model.anchor_gen.sizes == [tuple(s) for s in best["model_kwargs"].get("sizes", model.anchor_gen.sizes)]

    # detector eval on best.pt scores exactly what training's val AP scored: the same weights (the average) and
    # the same letterboxed input, through the one inference path
    assert main(["eval", "--weights", str(run / "best.pt"), "--data", str(wide_yaml), "--out", str(tmp_path / "ev"),
                 "--workers", "0", "--batch-size", "8"]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["AP"] == pytest.approx(best["metrics"]["AP"], abs=1e-12)
    assert metrics["AP50"] == pytest.approx(best["metrics"]["AP50"], abs=1e-12)
    images = wide_yaml.parent / "val" / "images"
    assert main(["predict", str(images), "--weights", str(run / "best.pt"), "--out", str(tmp_path / "p"),
                 "--conf", "0"]) == 0
    preds = json.loads((tmp_path / "p" / "predictions.json").read_text())
    assert preds and all(0 <= p["bbox"][1] and p["bbox"][1] + p["bbox"][3] <= 48.01 for p in preds)


def test_resume_with_ema_continues_exactly(shapes_yaml, tmp_path, monkeypatch):
    train(config(shapes_yaml, tmp_path / "a", eval_every=5, ema_decay=0.9, ema_tau=3))
    calls = {"n": 0}
    real_plot = engine_module.plot_training

    def interrupt_after_first_epoch(*args):
        calls["n"] += 1
        real_plot(*args)
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(engine_module, "plot_training", interrupt_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(config(shapes_yaml, tmp_path / "b", eval_every=5, ema_decay=0.9, ema_tau=3))
    train(TrainConfig(resume=str(tmp_path / "b" / "last.pt"), device="cpu", workers=0, data_path="loader"))
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert a["ema_updates"] == b["ema_updates"] == 4 and b["config"]["ema_decay"] == 0.9
    assert b["config"]["ema_tau"] == 3  # kept: with the default 2000 the resumed average would differ from a's
    for key in ("model", "model_raw"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}.{k} differs after resuming"
    assert not all(torch.equal(a["model"][k], a["model_raw"][k]) for k in a["model"])  # the average is not the raw


def test_multi_scale_batches_with_mosaic_and_mixup_train(shapes_yaml, tmp_path, monkeypatch):
    seen = []
    real = detect_module.batch_losses

    def recording(model, batch):
        seen.append((batch["input_size"], tuple(batch["images"].shape)))
        return real(model, batch)

    monkeypatch.setattr(detect_module, "batch_losses", recording)
    train(config(shapes_yaml, tmp_path / "ms", epochs=1, batch_size=4, seed=1, multi_scale=0.5, mosaic=0.5, mixup=0.5))
    drawn = list(itertools.islice(epoch_sizes([64, 96], seed=1, epoch=0), 4))
    assert [s for s, _ in seen] == drawn and len(set(drawn)) == 2  # both sizes in one epoch
    assert [shape for _, shape in seen] == [(4, 3, 64, 64)] * 4  # resized on the device, inside the losses
    ckpt = load_checkpoint(tmp_path / "ms" / "last.pt")
    assert ckpt["img_size"] == 64 and ckpt["config"]["multi_scale"] == 0.5 and ckpt["letterbox"] is False


def test_the_mixes_and_letterbox_take_the_loader_path(shapes_yaml):
    """On a GPU `--data-path auto` would pick the device-resident path, which has no letterbox, mosaic or mixup:
    with them it takes the DataLoader path (and `--data-path device` with them is refused by check())."""
    _, records = prepare_split(shapes_yaml, "train", log=lambda s: None)
    cfg = config(shapes_yaml, "unused", data_path="auto", letterbox=True)
    _, gen = train_batches(records, cfg, torch.device("cuda"))  # only the device's type is read here
    assert gen.device.type == "cpu"
