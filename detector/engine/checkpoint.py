"""Writing checkpoints atomically (read back by :func:`detector.models.checkpoint.load_checkpoint`), and what a
resumed run takes from its checkpoint: its folder, its settings, and ``--epochs`` to extend it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from detector.core.errors import setting
from detector.engine.config import ClassifyConfig, ConfigError
from detector.models.checkpoint import CheckpointError, load_checkpoint
from detector.models.recipes import FINETUNE

RESUME_KEEPS = ("model", "data", "epochs", "batch_size", "lr", "weight_decay", "warmup_epochs", "img_size", "seed",
                "eval_every", "model_kwargs", "letterbox", "multi_scale", "mosaic", "mixup", "ema_decay", "ema_tau",
                "anchors", "optimizer", "momentum", "schedule", "init", "negatives")
# a resumed run keeps RESUME_KEEPS (device, workers, amp may change); a classifier run saved before the
# per-network recipes (detector.models.recipes) lacks the last four keys and trained with these:
BEFORE_RECIPES = {k: getattr(FINETUNE, k) for k in ("optimizer", "momentum", "schedule", "init")}


def save_checkpoint(state: dict, path: Path | str) -> None:
    """Write ``state`` to ``path`` atomically: a temp file in the same folder, then a rename. A failed write
    (no space, no permission) raises :class:`CheckpointError` and leaves any previous ``path`` intact."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a checkpoint is an ordinary file
        os.replace(tmp, path)
        tmp = None
    except (OSError, RuntimeError) as e:  # RuntimeError: torch's zip writer ("PytorchStreamWriter failed ...")
        reason = e.strerror if isinstance(e, OSError) and e.strerror else (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(f"{path}: could not save the checkpoint ({reason}); the previous one is kept"
                              f"{_free_space(path.parent)}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _free_space(folder: Path) -> str:
    """``" (12.3 MiB free on the disk)"`` for a save error's message, or ``""`` when it cannot be known."""
    try:
        return f" ({shutil.disk_usage(folder).free / 2**20:.1f} MiB free on the disk)"
    except OSError:
        return ""


def resumed_config(cfg, cls, say: Callable[[str], None] = print):
    """``(cfg, checkpoint)``: with ``cfg.resume``, the run goes on in the checkpoint's own folder (whatever the
    current directory and ``--out``) with the saved settings of ``RESUME_KEEPS``; flags given for those are
    ignored, with a note. ``--epochs N`` given (``"epochs" in cfg.given``) changes the schedule's length: the
    cosine goes on to epoch N; N must be larger than the epochs done (:class:`ConfigError` otherwise)."""
    if not cfg.resume:
        return cfg, None
    ckpt = load_checkpoint(cfg.resume)
    _check_resumable(ckpt, cfg.resume, cls)
    saved, done, run = ckpt.get("config", {}), ckpt["epoch"] + 1, Path(cfg.resume).parent
    kept = {k: saved[k] for k in RESUME_KEEPS if k in saved}
    if cls is ClassifyConfig:
        kept = {**{k: v for k, v in BEFORE_RECIPES.items() if k not in saved}, **kept}
    if "epochs" in cfg.given:
        if cfg.epochs <= done:
            raise ConfigError(f"{setting('epochs', cfg.epochs)} with {setting('resume', cfg.resume)}: the run has done {done} of its "
                              f"{kept.get('epochs', '?')} epochs; give more than {done} to extend it, or leave "
                              f"{setting('epochs')} out to finish it")
        if cfg.epochs != kept.get("epochs"):
            say(f"{setting('epochs', cfg.epochs)}: the schedule now ends at epoch {cfg.epochs} instead of "
                f"{kept.get('epochs', '?')} (the cosine goes on to the new total)")
        kept["epochs"] = cfg.epochs
    ignored = [f"--{k.replace('_', '-')} {getattr(cfg, k)}" for k in RESUME_KEEPS
               if k != "epochs" and k in cfg.given and k in kept and getattr(cfg, k) != kept[k]]
    if "out" in cfg.given and Path(cfg.out).resolve() != run.resolve():
        ignored.append(f"--out {cfg.out}")
    if ignored:
        say(f"note: with {setting('resume')} the run keeps its own settings and folder ({run}); ignored: {', '.join(ignored)}")
    return cls(**{**asdict(cfg), **kept, "out": str(run), "resume": cfg.resume}), ckpt


def _check_resumable(ckpt: dict, path: str, cls) -> None:
    if "optimizer" not in ckpt or "rng" not in ckpt:
        raise CheckpointError(f"{path}: an exported model (weights only, no optimizer state): it cannot be resumed; "
                              f"{setting('resume')} takes the last.pt of a training run")
    task = "classify" if cls is ClassifyConfig else "detect"
    if ckpt.get("task", "detect") != task:
        command = "detector classify train" if task == "detect" else "detector train"
        raise CheckpointError(f"{path}: not a checkpoint of this kind of run; resume it with `{command} --resume`")
