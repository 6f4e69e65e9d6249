"""The uniform model soup: its weights are the runs' mean, it loads and runs as any checkpoint, and runs of
other models are refused in one line naming the file; the experiments script writes the soup and the runs' rows."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from detector import Detector
from detector.engine.checkpoint import save_checkpoint
from detector.engine.soup import average_checkpoints
from detector.models.checkpoint import CheckpointError, load_checkpoint
from detector.models.registry import build_model

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["a", "b"]


def run(folder: Path, seed: int, classes=CLASSES, rows: int = 0, **kwargs) -> Path:
    """A run's last.pt (a tiny_ssd at 64 px with the weights of ``seed``, an optimizer state) and results.csv."""
    torch.manual_seed(seed)
    model = build_model("tiny_ssd", len(classes), img_size=64, **kwargs)
    folder.mkdir(parents=True)
    save_checkpoint({"model": model.state_dict(), "model_name": "tiny_ssd", "model_kwargs": kwargs,
                     "classes": list(classes), "img_size": 64, "epoch": 9, "metrics": {"AP": 0.1 * seed},
                     "optimizer": {"state": {}}, "command": f"detector train --seed {seed}"}, folder / "last.pt")
    if rows:
        lines = ["epoch,loss,epoch_s"] + [f"{e},{1.0 / e},{10 + seed}" for e in range(1, rows + 1)]
        (folder / "results.csv").write_text("\n".join(lines) + "\n")
    return folder / "last.pt"


def test_the_soup_is_the_mean_of_the_weights_and_runs_as_a_checkpoint(tmp_path):
    paths = [run(tmp_path / f"s{seed}", seed) for seed in (0, 1, 2)]
    states = [load_checkpoint(p)["model"] for p in paths]
    soup = average_checkpoints(paths)
    for key, value in soup["model"].items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (states[0][key] + states[1][key] + states[2][key]) / 3)
        else:  # BatchNorm's step count: the first run's
            assert torch.equal(value, states[0][key])
    assert soup["soup"] == [str(p) for p in paths] and soup["metrics"] == {}
    assert "optimizer" not in soup and soup["command"] == "detector train --seed 0"
    assert not torch.equal(soup["model"]["cls_heads.0.weight"], states[0]["cls_heads.0.weight"])
    save_checkpoint(soup, tmp_path / "soup.pt")
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    assert len(Detector(tmp_path / "soup.pt", device="cpu").predict(image, conf=0.0)[0]) > 0


def test_a_soup_of_one_run_twice_detects_what_the_run_does(tmp_path):
    path = run(tmp_path / "s0", 0)
    save_checkpoint(average_checkpoints([path, path]), tmp_path / "soup.pt")
    image = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    own, soup = (Detector(p, device="cpu").predict(image, conf=0.0)[0] for p in (path, tmp_path / "soup.pt"))
    assert len(own.boxes) > 0
    np.testing.assert_allclose(soup.boxes, own.boxes, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(soup.scores, own.scores, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("other", "named"), [
    ({"classes": ["a", "c"]}, "its classes"),
    ({"cls_loss": "focal"}, "its model_kwargs"),
])
def test_runs_of_other_models_are_refused_naming_the_file(tmp_path, other, named):
    first = run(tmp_path / "s0", 0)
    second = run(tmp_path / "s1", 1, **other)
    with pytest.raises(CheckpointError, match=f"^{second}: {named} .* a soup averages runs of one model$"):
        average_checkpoints([first, second])
    with pytest.raises(CheckpointError, match="two checkpoints or more; got 1"):
        average_checkpoints([first])


def test_the_script_writes_the_soup_and_the_runs_rows(tmp_path):
    paths = [run(tmp_path / f"s{seed}", seed, rows=3) for seed in (0, 1)]
    script = [sys.executable, str(ROOT / "experiments" / "soup.py")]
    done = subprocess.run([*script, *map(str, paths), "--out", str(tmp_path / "soup")], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((tmp_path / "soup" / "results.csv").read_text().splitlines()))
    assert [r["epoch_s"] for r in rows] == ["10", "10", "10", "11", "11", "11"]
    assert load_checkpoint(tmp_path / "soup" / "last.pt")["soup"] == [str(p) for p in paths]
    bad = subprocess.run([*script, str(paths[0]), str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x")],
                         check=False, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: {tmp_path / 'missing.pt'}: no such checkpoint"
    assert not (tmp_path / "x").exists()
