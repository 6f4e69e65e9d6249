"""The recipes of the shipped models (``recipes/*.yaml``) reproduce their cards' training configurations, and
``--config`` sits between the defaults and the flags given."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from detector.cli.common import config_from_args
from detector.cli.main import build_parser
from detector.core.errors import UsageError
from detector.engine.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
NOT_COMPARED = {"out", "data", "device", "workers", "given", "command", "config"}  # where it ran, not what


def cfg_of(*argv: str) -> TrainConfig:
    args = build_parser().parse_args(["train", *argv])
    args.argv = ["train", *argv]
    return config_from_args(TrainConfig, args)


@pytest.mark.parametrize("name", ["shapes", "bananas", "raccoon"])
def test_each_shipped_models_recipe_reproduces_its_card(name):
    card = json.loads((ROOT / "models" / f"tinyssd-{name}.json").read_text())["train_config"]
    cfg = asdict(cfg_of("--config", str(ROOT / "recipes" / f"tinyssd-{name}.yaml")))
    for key, value in card.items():
        if key in NOT_COMPARED or (key == "epochs" and card.get("time")):  # a time budget fitted the epochs
            continue
        assert cfg[key] == value, (name, key, cfg[key], value)
    assert Path(cfg["data"]).name == Path(card["data"]).name


def test_flags_given_override_the_recipe_and_the_recipe_the_defaults(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("epochs: 7\nlr: 0.01\nweight_decay: 0.001\n")
    cfg = cfg_of("--config", str(recipe), "--epochs", "3")
    assert (cfg.epochs, cfg.lr, cfg.weight_decay, cfg.img_size) == (3, 0.01, 0.001, TrainConfig().img_size)
    assert {"epochs", "lr"} <= set(cfg.given)


@pytest.mark.parametrize(("text", "message"), [
    ("epochs: 7\ncolour: red\n", "no setting colour"),
    ("- 1\n- 2\n", "must be a mapping of settings"),
    ("epochs: [1\n", "not YAML"),
])
def test_a_bad_recipe_is_one_line_naming_the_file(tmp_path, text, message):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text)
    with pytest.raises(UsageError, match=message) as e:
        cfg_of("--config", str(recipe))
    assert str(recipe) in str(e.value)
