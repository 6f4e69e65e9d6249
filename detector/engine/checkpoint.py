"""Writing checkpoints atomically (read back by :func:`detector.models.checkpoint.load_checkpoint`), and what a
resumed run takes from its checkpoint."""

from __future__ import annotations

import os
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
    except OSError as e:
        raise CheckpointError(f"{path}: could not save the checkpoint ({e.strerror or e}); the previous one is kept") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)



def resumed_config(cfg, cls):
    """``(cfg, checkpoint)``: with ``cfg.resume``, the saved run's settings replace those in ``RESUME_KEEPS``."""
    if not cfg.resume:
        return cfg, None
    ckpt = load_checkpoint(cfg.resume)
    saved = ckpt.get("config", {})
    return cls(**{**asdict(cfg), **{k: saved[k] for k in RESUME_KEEPS if k in saved}, "resume": cfg.resume}), ckpt
