"""The library's voice: messages through ``logging`` (logger ``detector``, which the CLI sets up) and progress
that suits where the output goes: a tqdm bar on a terminal, a plain log line every so many items in a file or a
pipe (so a log of ``detector train > log.txt`` holds lines, not thousands of carriage-return updates).

    for image in progress(images, desc="predict", unit="images"):
        ...
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

logger = logging.getLogger("detector")


_QUIET = {"on": False}  # a script's call asked for silence (verbose=False): no bars either


def on_terminal() -> bool:
    """Whether progress bars can be drawn: standard error is a terminal (and no call asked for silence)."""
    return sys.stderr.isatty() and not _QUIET["on"]


@contextmanager
def voice(verbose: bool = True) -> Iterator[None]:
    """The library's voice for the length of a script's call (``Detector.train``): with ``verbose``, its lines on
    standard error (a line per epoch; a bar on a terminal) unless the script has set up logging itself (then
    they go there); without, nothing (no bars, no lines but warnings)."""
    added, level, quiet = None, logger.level, _QUIET["on"]
    if verbose:
        if not logger.handlers and not logging.getLogger().handlers:  # nothing set up: ours, for this call
            added = _Stderr()
            added.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(added)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
    else:
        logger.setLevel(logging.WARNING)
        _QUIET["on"] = True
    try:
        yield
    finally:
        if added is not None:
            logger.removeHandler(added)
        logger.setLevel(level)
        _QUIET["on"] = quiet


def progress(items: Iterable, desc: str, total: int | None = None, enabled: bool = True, unit: str = "items",
             every: int = 100, leave: bool = True) -> Iterator:
    """``items``, with progress shown: a tqdm bar on a terminal, else ``desc: N/TOTAL unit`` logged every
    ``every`` items and at the end; nothing when not ``enabled``."""
    if not enabled:
        yield from items
        return
    if on_terminal():
        from tqdm import tqdm

        yield from tqdm(items, desc=desc, total=total, unit=f" {unit}", leave=leave, dynamic_ncols=True, file=sys.stderr)
        return
    count = 0
    for item in items:
        yield item
        count += 1
        if count % every == 0:
            logger.info("%s: %d%s %s", desc, count, f"/{total}" if total else "", unit)
    if count % every:
        logger.info("%s: %d%s %s", desc, count, f"/{total}" if total else "", unit)


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 image``, ``2 images``; ``words`` for an irregular plural (``box``, ``boxes``)."""
    return f"{n} {word}" if n == 1 else f"{n} {words or word + 's'}"


def setup_cli_logging(level: int = logging.INFO) -> None:
    """What the ``detector`` command shows: the library's messages on standard error, one plain line each. The
    handler writes to the ``sys.stderr`` of the moment (so captured output captures it too)."""
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    logger.disabled = False  # a library's logging.config.dictConfig may have disabled the existing loggers


class _Stderr(logging.StreamHandler):
    """A stream handler on whatever ``sys.stderr`` is when a record comes."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)
