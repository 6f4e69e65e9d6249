"""Progress suits where the output goes: a bar on a terminal, plain lines in a file or a pipe (no carriage
returns), and the CLI's messages through the ``detector`` logger."""

import io

from detector.core import progress as progress_module
from detector.core.progress import logger, progress, setup_cli_logging


def test_plain_lines_every_n_items_off_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(progress_module, "on_terminal", lambda: False)
    setup_cli_logging()
    assert list(progress(range(250), "predict", unit="images", every=100)) == list(range(250))
    err = capsys.readouterr().err
    assert err.splitlines() == ["predict: 100 images", "predict: 200 images", "predict: 250 images"]
    assert "\r" not in err
    assert list(progress(range(3), "x", enabled=False)) == [0, 1, 2] and capsys.readouterr().err == ""


def test_a_bar_on_a_terminal(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(progress_module, "on_terminal", lambda: True)
    monkeypatch.setattr(progress_module.sys, "stderr", stream)
    assert list(progress(range(5), "decode", total=5, unit="images")) == list(range(5))
    assert "decode: 100%" in stream.getvalue()


def test_the_cli_logger_writes_plain_lines_to_the_current_stderr(capsys):
    setup_cli_logging()
    setup_cli_logging()  # twice: still one handler
    logger.info("epoch 1/2: loss 1.0")
    logger.warning("skipped: a.png: not a readable image")
    assert capsys.readouterr().err.splitlines() == ["epoch 1/2: loss 1.0", "skipped: a.png: not a readable image"]
    assert sum(isinstance(h, progress_module._Stderr) for h in logger.handlers) == 1
