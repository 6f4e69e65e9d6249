"""``detector export --card`` on held-out data in a plain layout (a VOC folder of real photographs: no
``dataset.yaml``, no generator), as the shipped raccoon model's card was written."""

import json
from pathlib import Path

import pytest

from detector.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
RACCOON = ROOT.parent / "shared" / "datasets" / "raccoon"  # real photographs, beside the checkout (CI has it)


@pytest.mark.skipif(not RACCOON.is_dir(), reason="../shared/datasets/raccoon is not here")
def test_card_on_a_voc_folder_reports_its_val_split(tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert main(["export", "--weights", str(ROOT / "models" / "tinyssd-raccoon.pt"), "--out", str(out), "--half",
                 "--card", "--test-data", str(RACCOON)]) == 0
    assert "wrote the model card" in capsys.readouterr().out
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["test"]["images"] == 40 and "generator" not in card["test"]
    shipped = json.loads((ROOT / "models" / "tinyssd-raccoon.json").read_text())
    # the same weights, the same 40 photos: the shipped card's figures
    assert card["test"]["metrics"]["AP50"] == pytest.approx(shipped["test"]["metrics"]["AP50"], abs=1e-6)
    assert card["classes"] == ["raccoon"]
