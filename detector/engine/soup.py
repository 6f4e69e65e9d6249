"""A uniform model soup (Wortsman et al., 2022, "Model soups"): the mean of the weights of several runs of one
recipe that start from the same weights (a fine-tune with other seeds). The runs land near each other, so their
mean is a model of its own, usually better than each of them and steadier than any one run; it costs nothing at
inference. No run is picked by its val score: every run of the recipe goes in.

    soup = average_checkpoints(["runs/s0/last.pt", "runs/s1/last.pt"])
    save_checkpoint(soup, "runs/soup/last.pt")    # then export, eval, predict as any checkpoint

The soup keeps the first run's description (model, keywords, classes, size, command, config), drops what only
resumes a run (optimizer, scheduler, RNG, the raw weights under an EMA) and its val metrics (they were the first
run's), and names its ingredients under ``soup``. Integer entries (BatchNorm's step count) are the first run's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from detector.models.checkpoint import CheckpointError, load_checkpoint

SAME = ("model_name", "model_kwargs", "classes", "img_size", "letterbox")  # what every ingredient must share
KEEPS = (*SAME, "category_ids", "command", "data", "pretrained", "epoch", "device", "config", "inference_defaults")


def average_checkpoints(paths: Sequence[str | Path]) -> dict:
    """A checkpoint whose floating-point weights are the mean of those of ``paths`` (two or more runs of one
    model); :class:`CheckpointError` in one line naming the file that does not fit."""
    if len(paths) < 2:
        raise CheckpointError(f"a soup averages two checkpoints or more; got {len(paths)}")
    states = [load_checkpoint(p) for p in paths]
    first, name = states[0], Path(paths[0]).name
    for path, state in zip(paths[1:], states[1:]):
        for key in SAME:
            if state.get(key) != first.get(key):
                raise CheckpointError(f"{path}: its {key} ({state.get(key)!r}) is not {name}'s "
                                      f"({first.get(key)!r}); a soup averages runs of one model")
        weights = {k: tuple(v.shape) for k, v in state["model"].items()}
        if weights != {k: tuple(v.shape) for k, v in first["model"].items()}:
            raise CheckpointError(f"{path}: its weights' names or shapes are not {name}'s; a soup averages "
                                  "runs of one model")
    model = {}
    for key, value in first["model"].items():
        if value.is_floating_point():
            model[key] = torch.stack([s["model"][key].float() for s in states]).mean(0).to(value.dtype)
        else:
            model[key] = value.clone()
    soup = {k: first[k] for k in KEEPS if k in first}
    return {**soup, "model": model, "metrics": {}, "soup": [str(p) for p in paths]}
