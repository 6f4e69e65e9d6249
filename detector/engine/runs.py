"""A training run and its folder: what :func:`detector.engine.detect.train` and
:func:`detector.engine.classify.train_classifier` do before their first step.

    with training_run(cfg, TrainConfig) as run:   # process group, --resume's config, checked values, the lock
        ...                                       # run.cfg, run.ckpt, run.ranks, run.device_name, run.say

The lock: ``OUT/run.lock`` holds the owner's pid, host and start time, and an exclusive ``flock`` on it lasts
as long as the owner's process. A second run on the same ``--out`` gets an error naming the lock and the owner.
A lock file whose owner has died (killed, machine restarted: the flock went with the process) is taken over
with a note. The lock is removed at the end, also on Ctrl-C and errors. Under torchrun only rank 0 takes it
and tells the other ranks whether it got it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from detector.core.errors import setting
from detector.core.files import remove_stale_tmp
from detector.engine.checkpoint import resumed_config
from detector.engine.config import ConfigError
from detector.engine.distributed import Dist, broadcast_from_main, process_group
from detector.engine.loop import TrainingError, log

LOCK_NAME = "run.lock"
RUN_FILES = ("last.pt", "best.pt", "results.csv")  # what says a folder holds a run


def earlier_run(folder: Path) -> list[str]:
    """The run files already in ``folder``."""
    return [f for f in RUN_FILES if (folder / f).exists()]


def choose_out(cfg, say: Callable[[str], None]) -> None:
    """A new run never writes over an earlier one without being told: with ``--out`` not given, the default
    folder's next free name (``runs/train2``, ...; said); given, a folder holding a run is refused unless
    ``--exist-ok``. ``--resume`` continues in its own folder."""
    if cfg.resume:
        return
    out = Path(cfg.out)
    earlier = earlier_run(out)
    if not earlier or cfg.exist_ok:
        return
    if "out" not in cfg.given:
        k = 2
        while earlier_run(out.with_name(f"{out.name}{k}")):
            k += 1
        cfg.out = str(out.with_name(f"{out.name}{k}"))
        say(f"{out} holds an earlier run: this one goes to {cfg.out} (give {setting('out')} to choose)")
        return
    raise ConfigError(f"{setting('out', out)} holds an earlier run ({', '.join(earlier)}); choose another {setting('out')}, pass "
                      f"{setting('exist_ok', True)} to replace it, or {setting('resume', str(out / 'last.pt'))} to continue it")


def _quiet(*_args, **_kwargs) -> None:
    pass


def _owner(fd: int) -> dict:
    """The pid/host record in an open lock file (``{}`` when empty or unreadable)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        owner = json.loads(os.read(fd, 4096).decode() or "{}")
        return owner if isinstance(owner, dict) else {}
    except (OSError, ValueError):
        return {}


def take_lock(folder: Path, say: Callable[[str], None] = log) -> int:
    """Make ``folder`` and hold its lock; returns the lock file's descriptor (for :func:`release_lock`).
    Raises :class:`TrainingError` when the folder cannot be made or another live run holds the lock."""
    path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _owner(fd)
                os.close(fd)
                raise TrainingError(
                    f"{path}: another run (pid {owner.get('pid', '?')} on {owner.get('host', '?')}, started "
                    f"{owner.get('started', '?')}) is writing to {folder}; wait for it to end or choose another "
                    f"{setting('out')}") from None
            if os.path.exists(path) and os.path.samestat(os.fstat(fd), os.stat(path)):
                break
            os.close(fd)  # its owner removed that file as we locked it: lock the new one
        stale = _owner(fd)
        if stale:
            say(f"note: {path}: took over the lock left by pid {stale.get('pid', '?')} on {stale.get('host', '?')} "
                "(that run ended without removing it)")
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(me).encode())
        return fd
    except OSError as e:
        raise TrainingError(f"{setting('out', folder)}: cannot write the run folder there ({e.strerror or e}); choose a "
                            "folder you can write to") from None


def release_lock(fd: int, folder: Path) -> None:
    """Remove the lock file (while still holding it, so no one locks a file about to vanish), then let go."""
    try:
        (folder / LOCK_NAME).unlink(missing_ok=True)
    finally:
        os.close(fd)


@contextmanager
def locked_folder(folder: Path, ranks: Dist, say: Callable[[str], None] = log) -> Iterator[None]:
    """Hold ``folder``'s lock for the ``with`` block (rank 0 takes it; every rank raises if it could not)."""
    fd, error = None, None
    if ranks.main:
        try:
            fd = take_lock(folder, say)
        except TrainingError as e:
            error = str(e)
    error = broadcast_from_main(error, ranks)
    if error:
        raise TrainingError(error)
    try:
        yield
    finally:
        if fd is not None:
            release_lock(fd, folder)


@dataclass
class Run:
    cfg: object  # the config, with --resume's saved settings
    ckpt: dict | None  # the checkpoint resumed from
    ranks: Dist
    device_name: str
    say: Callable[[str], None]  # log on rank 0, nothing elsewhere


@contextmanager
def training_run(cfg, cls: type) -> Iterator[Run]:
    """Check ``cfg``, join the process group (under torchrun), apply ``--resume`` (its run folder, its saved
    settings, ``--epochs``), check again and hold the run folder's lock for the ``with`` block."""
    cfg.check()
    with process_group(cfg.device) as (ranks, device_name):
        say = log if ranks.main else _quiet
        cfg, ckpt = resumed_config(cfg, cls, say)
        cfg.check()
        choose_out(cfg, say)
        with locked_folder(Path(cfg.out), ranks, say):
            stale = remove_stale_tmp(cfg.out) if ranks.main else []
            if stale:
                say(f"removed {len(stale)} unfinished file(s) a killed save left in {cfg.out}: "
                    f"{', '.join(p.name for p in stale[:3])}")
            yield Run(cfg, ckpt, ranks, device_name, say)
