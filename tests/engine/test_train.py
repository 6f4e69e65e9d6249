import csv
import json
import pickle

import pytest
import torch

import detector.engine.loop as engine_module
from detector.cli.main import main
from detector.engine.checkpoint import save_checkpoint
from detector.engine.config import TrainConfig, default_batch_size
from detector.engine.detect import TrainingError, train
from detector.models.checkpoint import CheckpointError, load_checkpoint
from detector.models.names import DETECTOR_MIN_INPUT
from detector.models.registry import MODELS, build_model


def config(shapes_yaml, out, **kw):
    base = {"model": "tiny_ssd_plus", "data": str(shapes_yaml), "epochs": 2, "batch_size": 8, "img_size": 64, "workers": 0,
                "eval_every": 1, "out": str(out), "device": "cpu", "data_path": "loader"}
    return TrainConfig(**{**base, **kw})


def test_train_writes_checkpoints_results_and_plot(shapes_yaml, tmp_path):
    metrics = train(config(shapes_yaml, tmp_path / "run"))
    run = tmp_path / "run"
    assert {"last.pt", "best.pt", "results.csv", "results.png"} <= {p.name for p in run.iterdir()}
    with open(run / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(r["AP"] != "" for r in rows)
    ckpt = load_checkpoint(run / "last.pt")
    assert float(rows[-1]["AP"]) == pytest.approx(metrics["AP"], abs=5e-5) == ckpt["metrics"]["AP"]
    assert ckpt["classes"] == ["circle", "triangle", "square", "star", "cross"] and ckpt["img_size"] == 64
    assert ckpt["model_name"] == "tiny_ssd_plus" and ckpt["epoch"] == 1


def test_default_batch_size_is_8_on_a_cpu_and_32_on_a_gpu():
    assert default_batch_size("cpu") == 8 and default_batch_size("cuda") == 32
    assert default_batch_size("cpu", world=3) == 9 and default_batch_size("cuda", world=8) == 32  # divides evenly


def test_train_without_batch_size_uses_the_devices_default_and_keeps_it(shapes_yaml, tmp_path, capsys):
    train(config(shapes_yaml, tmp_path / "run", batch_size=None, epochs=1))
    assert "batch size 8: the default on a CPU" in capsys.readouterr().err
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["config"]["batch_size"] == 8  # a resumed run keeps it, wherever it resumes


def test_resume_continues_exactly(shapes_yaml, tmp_path, monkeypatch):
    straight = train(config(shapes_yaml, tmp_path / "a", eval_every=5))
    del straight
    calls = {"n": 0}
    real_plot = engine_module.plot_training

    def interrupt_after_first_epoch(*args):
        calls["n"] += 1
        real_plot(*args)
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(engine_module, "plot_training", interrupt_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(config(shapes_yaml, tmp_path / "b", eval_every=5))
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 0
    train(TrainConfig(resume=str(tmp_path / "b" / "last.pt"), device="cpu", workers=0, data_path="loader"))
    a = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=f"{k} differs after resuming")


class NaNModel(torch.nn.Module):
    loss_names = ("loss_cls", "loss_box")

    def __init__(self, num_classes, img_size=None, letterbox=False):  # every builder takes the input geometry
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images, targets=None):
        return {"loss_cls": self.w * float("nan"), "loss_box": self.w}


def test_nan_loss_stops_with_a_message(shapes_yaml, tmp_path, monkeypatch):
    monkeypatch.setitem(MODELS, "tiny_ssd", NaNModel)  # a name the config accepts, built as the NaN model
    with pytest.raises(TrainingError, match=r"the loss is nan at epoch 1, step 1 .* try a lower learning rate \(now lr=0.003\)"):
        train(config(shapes_yaml, tmp_path / "nan", model="tiny_ssd"))


def test_cli_train_eval_predict_export(shapes_yaml, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(shapes_yaml), "--epochs", "1", "--batch-size", "8", "--img-size", "64",
                 "--workers", "0", "--out", str(run), "--device", "cpu", "--data-path", "loader"]) == 0
    assert main(["eval", "--weights", str(run / "best.pt"), "--data", str(shapes_yaml), "--out", str(tmp_path / "ev"),
                 "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "AP @[.50:.95]" in out and "per class" in out
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert {"AP", "AP50", "ARl", "AP50_voc", "per_class"} <= set(metrics)
    assert (tmp_path / "ev" / "confusion_matrix.png").exists()

    # a predictions file made elsewhere, by hand from the val annotation file: every box found exactly but the
    # first, which is missed; a false positive scoring under every hit
    val_file = shapes_yaml.parent / "val" / "annotations.json"
    truth = json.loads(val_file.read_text())
    preds = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
             for a in truth["annotations"][1:]]
    preds.append({"image_id": truth["images"][0]["id"], "category_id": 1, "bbox": [0, 0, 3, 3], "score": 0.1})
    (tmp_path / "preds.json").write_text(json.dumps(preds))
    assert main(["eval", "--data", str(shapes_yaml), "--predictions", str(tmp_path / "preds.json"),
                 "--out", str(tmp_path / "ev2")]) == 0
    by_hand = json.loads((tmp_path / "ev2" / "metrics.json").read_text())
    present = {a["category_id"] for a in truth["annotations"]}
    first = truth["annotations"][0]["category_id"]
    n = sum(a["category_id"] == first for a in truth["annotations"])
    # AP 1 for each class with boxes (0 without), but the missed box's class: its recall reaches (n - 1) / n at
    # precision 1, so COCO's 101 recall points up to (n - 1) / n have precision 1, the others 0
    expected = {c["name"]: float(c["id"] in present) for c in truth["categories"]}
    expected[next(c["name"] for c in truth["categories"] if c["id"] == first)] = (int(100 * (n - 1) / n) + 1) / 101 if n > 1 else 0.0
    assert by_hand["per_class"] == pytest.approx(expected, abs=1e-12)
    assert by_hand["AR100"] == pytest.approx((len(present) - 1 + (n - 1) / n) / len(present), abs=1e-12)

    assert main(["export", "--weights", str(run / "best.pt"), "--out", str(tmp_path / "small.pt"), "--half"]) == 0
    small = load_checkpoint(tmp_path / "small.pt")
    assert "optimizer" not in small and next(iter(small["model"].values())).dtype == torch.float16

    images = shapes_yaml.parent / "val" / "images"
    (images / "zz_broken.jpg").write_bytes(b"not a jpeg")
    try:
        code = main(["predict", str(images), "--weights", str(tmp_path / "small.pt"), "--out", str(tmp_path / "pred"),
                     "--conf", "0.0"])
    finally:
        (images / "zz_broken.jpg").unlink()
    assert code == 1  # one image was unreadable: reported, the others done
    assert "zz_broken.jpg: not a readable image" in capsys.readouterr().err
    preds = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert len(list((tmp_path / "pred").glob("*.jpg"))) == 6
    assert all({"file_name", "bbox", "score", "category_id"} <= set(p) for p in preds)
    assert main(["predict", str(tmp_path / "nothing*.png"), "--weights", str(tmp_path / "small.pt"),
                 "--out", str(tmp_path / "p2")]) == 1


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_checkpoints_refuse_pickled_code_and_save_atomically(tmp_path):
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"model": Evil()}, f)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    good = tmp_path / "ok.pt"
    save_checkpoint({"model": {"w": torch.ones(2)}}, good)
    locked = tmp_path / "locked"
    locked.mkdir()
    save_checkpoint({"model": {"w": torch.ones(1)}}, locked / "last.pt")
    locked.chmod(0o500)
    try:
        if not (locked / "probe").exists():
            try:
                (locked / "probe").write_text("x")  # root ignores permissions: then skip that part
                (locked / "probe").unlink()
                writable = True
            except PermissionError:
                writable = False
            if not writable:
                with pytest.raises(CheckpointError, match="could not save"):
                    save_checkpoint({"model": {"w": torch.zeros(1)}}, locked / "last.pt")
                assert load_checkpoint(locked / "last.pt")["model"]["w"].item() == 1.0
    finally:
        locked.chmod(0o700)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_trains_and_writes_its_own_losses(name, shapes_yaml, tmp_path):
    size = max(64, DETECTOR_MIN_INPUT.get(name, 0))
    train(config(shapes_yaml, tmp_path / name, model=name, epochs=1, img_size=size))
    with open(tmp_path / name / "results.csv") as f:
        row = next(csv.DictReader(f))
    model_losses = build_model(name, 5).loss_names
    assert all(float(row[k]) > 0 for k in model_losses)
    assert float(row["loss"]) == pytest.approx(sum(float(row[k]) for k in model_losses), abs=1e-3)
