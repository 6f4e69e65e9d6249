"""Writing checkpoints atomically (read back by :func:`detector.models.checkpoint.load_checkpoint`), and what a
resumed run takes from its checkpoint."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from detector.models.checkpoint import CheckpointError, load_checkpoint

RESUME_KEEPS = ("model", "data", "epochs", "batch_size", "lr", "weight_decay", "warmup_epochs", "img_size", "seed",
                "eval_every", "model_kwargs", "out")  # a resumed run keeps these; device, workers, amp may change


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


def resumed_config(cfg, cls):
    """``(cfg, checkpoint)``: with ``cfg.resume``, the saved run's settings replace those in ``RESUME_KEEPS``."""
    if not cfg.resume:
        return cfg, None
    ckpt = load_checkpoint(cfg.resume)
    saved = ckpt.get("config", {})
    return cls(**{**asdict(cfg), **{k: saved[k] for k in RESUME_KEEPS if k in saved}, "resume": cfg.resume}), ckpt
