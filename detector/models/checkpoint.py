"""Reading checkpoints: plain dicts loaded with ``weights_only=True`` (they are written by
:func:`detector.engine.checkpoint.save_checkpoint`, atomically).

A detector checkpoint carries everything ``eval``, ``predict`` and the app need:
``model`` (state dict), ``model_name`` and ``model_kwargs`` (to rebuild it, with ``--anchors auto``'s fitted
``sizes`` and ``ratios``), ``classes``, ``category_ids``, ``img_size``, ``letterbox`` (how images are fitted to
it; absent means squashed), ``command`` (the training command), ``epoch``, ``metrics``; training adds
``optimizer``, ``scheduler``, ``scaler``, ``rng`` and ``best`` (the best key metric) for ``--resume``, and with
``--ema-decay`` the raw weights ``model_raw`` and ``ema_updates`` (``model`` is then the moving average).
"""

from __future__ import annotations

import pickle
import pickletools
from pathlib import Path

from detector.core.errors import InputError

CODE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ"}  # pickle opcodes that name a function or class to call


class CheckpointError(InputError, RuntimeError):
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
        if "unsupported global" in str(e).lower() or _pickle_naming_code(path):
            raise CheckpointError(f"{path}: refused: it holds objects other than tensors and plain data, which "
                                  "could run code when loaded") from None
        raise CheckpointError(f"{path}: not a checkpoint (neither a PyTorch file nor a pickle of one)") from None
    except Exception as e:  # noqa: BLE001 - torch.load raises many kinds on a corrupt file; all mean the same
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0].split(". ")[0][:200]
        raise CheckpointError(f"{path}: not a checkpoint, or a damaged one ({reason})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a detector checkpoint (expected a dict with a 'model' state)")
    damaged = _damaged_entry(path)
    if damaged:
        raise CheckpointError(f"{path}: damaged: its {damaged} does not match the checksum it was saved with (a "
                              "corrupted copy or disk); get the file again")
    return state


def _damaged_entry(path: Path) -> str | None:
    """The first part of a zip-format checkpoint (what ``torch.save`` writes) whose bytes fail the CRC-32 stored
    with them, or None (also for the older pickle format, which carries no checksums). torch.load does not check
    them: flipped bytes in a tensor load as wrong weights, which give wrong detections without a word."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return z.testzip()
    except zipfile.BadZipFile:
        return None


def _pickle_naming_code(path: Path) -> bool:
    """Whether ``path`` is one whole pickle (read to its STOP, nothing run) that names functions or classes:
    a genuine pickle carrying code, as opposed to random bytes, which torch's loader reports the same way."""
    try:
        with open(path, "rb") as f:
            ops = [op.name for op, _arg, _pos in pickletools.genops(f)]
    except Exception:  # noqa: BLE001 - not a pickle: any parse error means the same
        return False
    return bool(CODE_OPCODES.intersection(ops))


MAX_IMG_SIZE = 8192  # the largest input any model here is built for (--img-size's cap)


def checkpoint_problem(ckpt: dict) -> str | None:
    """What is wrong with a detector checkpoint's description (types and ranges of the fields a model is rebuilt
    from), or None: a file edited by hand, or by another program, is named in one line, not met in the middle of a
    detection."""
    if not isinstance(ckpt.get("model"), dict):
        return "'model' must be the weights (a state dict)"
    classes = ckpt.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        return "'classes' must be a non-empty list of names"
    ids = ckpt.get("category_ids")
    if ids is not None and (not isinstance(ids, list) or len(ids) != len(classes)
                            or not all(type(i) is int for i in ids)):
        return f"'category_ids' must be {len(classes)} integers, one per class"
    size = ckpt.get("img_size")
    if size is not None and (type(size) is not int or not 1 <= size <= MAX_IMG_SIZE):
        return f"'img_size' {size!r} must be a whole number of pixels, 1..{MAX_IMG_SIZE}"
    if not isinstance(ckpt.get("model_kwargs", {}), dict):
        return "'model_kwargs' must be a mapping of keywords"
    conf = ckpt.get("conf")
    if conf is not None and (type(conf) not in (int, float) or not 0 <= conf <= 1):
        return f"'conf' {conf!r} must be a number between 0 and 1"
    return None
