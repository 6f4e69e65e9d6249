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


def test_epochs_given_beats_the_recipes_time_budget_and_says_so(tmp_path, caplog, monkeypatch):
    """A recipe's ``time`` (hours, the epochs fitted to it) would silently outrun ``--epochs 2``: the flag wins, in
    one line; ``--time`` given keeps the budget; the API's keywords go the same way."""
    import logging

    from detector import Detector

    recipe = tmp_path / "r.yaml"
    recipe.write_text("time: 1.25\nepochs: 400\nlr: 0.01\n")
    from detector.core.errors import cli_terms

    # an earlier CLI call in this process (setup_cli_logging) stops the library's records at its own handler
    monkeypatch.setattr(logging.getLogger("detector"), "propagate", True)
    with caplog.at_level(logging.INFO, logger="detector"), cli_terms():
        cfg = cfg_of("--config", str(recipe), "--epochs", "2")
    assert (cfg.epochs, cfg.time, cfg.lr) == (2, None, 0.01)
    assert "--epochs given: the recipe's time budget (1.25 h) is not used; --time keeps it" in caplog.text
    assert cfg_of("--config", str(recipe)).time == 1.25  # not given: the recipe's budget
    assert cfg_of("--config", str(recipe), "--epochs", "2", "--time", "0.5").time == 0.5

    seen = {}
    det = Detector("tiny_ssd")
    import detector.engine.detect as engine_detect

    def fake_train(config):  # what the API hands the engine, without training
        seen["cfg"] = config
        raise RuntimeError("stop here")

    original, engine_detect.train = engine_detect.train, fake_train
    try:
        with pytest.raises(RuntimeError, match="stop here"):
            det.train(config=recipe, data="d", epochs=2)
    finally:
        engine_detect.train = original
    assert (seen["cfg"].epochs, seen["cfg"].time) == (2, None)
