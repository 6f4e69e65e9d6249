"""An exponential moving average of a model's weights (Ultralytics' ``ModelEMA``), for ``--ema-decay D``.

    ema = ModelEMA(model, decay=0.9999)   # a copy of the model, in eval mode, without gradients
    ema.update(model)                     # after every optimizer step
    ema.module                            # what is evaluated, and saved as the checkpoint's ``model``

After ``n`` updates the decay is ``D * (1 - exp(-n / tau))``: it ramps up from 0 over the first few ``tau``
steps, so the average follows the fast early changes and then smooths. Every floating-point entry of the state
dict is averaged (the weights and BatchNorm's running statistics); the others (``num_batches_tracked``) are copied.
A checkpoint of a run with EMA carries the average as ``model`` (so eval, predict, export and the app use it),
the raw weights as ``model_raw`` and the update count as ``ema_updates``: ``--resume`` goes on exactly.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from detector.engine.config import EMA_TAU


class ModelEMA:
    """The moving average of ``model``'s state with decay ``decay`` (ramped: see the module docstring)."""

    def __init__(self, model: nn.Module, decay: float, tau: float = EMA_TAU):
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, 0

    def decay_at(self, updates: int) -> float:
        return self.decay * (1 - math.exp(-updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step: ``ema = d * ema + (1 - d) * model`` for floating-point entries, a copy for the others."""
        self.updates += 1
        d = self.decay_at(self.updates)
        current = model.state_dict()
        for name, value in self.module.state_dict().items():
            if value.is_floating_point():
                value.mul_(d).add_(current[name].detach(), alpha=1 - d)
            else:
                value.copy_(current[name])

    def state(self, model: nn.Module) -> dict:
        """The checkpoint's weights: the average as ``model``, ``model``'s own as ``model_raw``, and the count."""
        return {"model": self.module.state_dict(), "model_raw": model.state_dict(), "ema_updates": self.updates}

    def load(self, ckpt: dict, model: nn.Module) -> None:
        """Restore the average and ``model``'s raw weights from a checkpoint written with :meth:`state`."""
        model.load_state_dict(ckpt["model_raw"])
        self.module.load_state_dict(ckpt["model"])
        self.updates = ckpt["ema_updates"]
