"""Reading checkpoints: plain dicts loaded with ``weights_only=True`` (they are written by
:func:`detector.engine.checkpoint.save_checkpoint`, atomically).

A detector checkpoint carries everything ``eval``, ``predict`` and the app need:
``model`` (state dict), ``model_name`` and ``model_kwargs`` (to rebuild it), ``classes``, ``category_ids``,
``img_size``, ``command`` (the training command), ``epoch``, ``metrics``; training adds ``optimizer``,
``scheduler``, ``scaler``, ``rng`` and ``best`` (the best key metric) for ``--resume``.
"""

from __future__ import annotations

import pickle
from pathlib import Path


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read; the message names the file."""


def load_checkpoint(path: Path | str, map_location="cpu") -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)``: a file that carries arbitrary pickled code is
    refused with a clear message rather than executed."""
    import torch  # here, so that the CLI can name CheckpointError without importing torch

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
