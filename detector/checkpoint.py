"""Checkpoints: plain dicts, written atomically, loaded with ``weights_only=True``.

A detector checkpoint carries everything ``eval``, ``predict`` and the app need:
``model`` (state dict), ``model_name`` and ``model_kwargs`` (to rebuild it), ``classes``, ``category_ids``,
``img_size``, ``command`` (the training command), ``epoch``, ``metrics``; training adds ``optimizer``,
``scheduler``, ``scaler``, ``rng`` and ``best`` (the best key metric) for ``--resume``.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import torch


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read; the message names the file."""


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


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)``: a file that carries arbitrary pickled code is
    refused with a clear message rather than executed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: refused: it holds objects other than tensors and plain data, which could "
                              f"run code when loaded ({str(e).splitlines()[0][:200]})") from None
    except Exception as e:  # noqa: BLE001 - torch.load raises many kinds on a corrupt file; all mean the same
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a detector checkpoint (expected a dict with a 'model' state)")
    return state
