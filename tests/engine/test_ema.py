"""The moving average of the weights: its arithmetic on a worked example, and its place in the checkpoint."""

import pytest
import torch
from torch import nn

from detector.engine.ema import ModelEMA


class Two(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, 2.0]))
        self.register_buffer("steps", torch.tensor(0))


def test_two_steps_by_hand():
    """decay 0.5, tau 1: d1 = 0.5 (1 - e^-1) = 0.316060, d2 = 0.5 (1 - e^-2) = 0.432332.
    Step 1, w = (3, 4): ema = d1 (1, 2) + (1 - d1) (3, 4) = (2.367879, 3.367879).
    Step 2, w = (5, 0): ema = d2 (2.367879, 3.367879) + (1 - d2) (5, 0) = (3.862049, 1.456043)."""
    model = Two()
    ema = ModelEMA(model, decay=0.5, tau=1)
    assert ema.decay_at(1) == pytest.approx(0.3160603) and ema.decay_at(2) == pytest.approx(0.4323324)
    with torch.no_grad():
        model.w.copy_(torch.tensor([3.0, 4.0]))
    model.steps += 7
    ema.update(model)
    torch.testing.assert_close(ema.module.w.data, torch.tensor([2.367879, 3.367879]))
    assert ema.module.steps.item() == 7  # integer buffers are copied, not averaged
    with torch.no_grad():
        model.w.copy_(torch.tensor([5.0, 0.0]))
    ema.update(model)
    torch.testing.assert_close(ema.module.w.data, torch.tensor([3.862049, 1.456043]))
    assert ema.updates == 2 and not ema.module.w.requires_grad and not ema.module.training
    assert model.w.tolist() == [5.0, 0.0]  # the model itself is untouched


def test_batchnorm_statistics_are_averaged_and_the_state_round_trips():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = ModelEMA(model, decay=0.9, tau=1)
    model.train()
    model(torch.randn(8, 3))  # moves the running statistics
    ema.update(model)
    d = ema.decay_at(1)
    torch.testing.assert_close(ema.module[1].running_mean, (1 - d) * model[1].running_mean)  # it started at 0
    assert ema.module[1].num_batches_tracked.item() == 1
    state = ema.state(model)
    assert set(state) == {"model", "model_raw", "ema_updates"} and state["ema_updates"] == 1
    other_model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    other = ModelEMA(other_model, decay=0.9, tau=1)
    other.load(state, other_model)
    for a, b in zip(other.module.state_dict().values(), ema.module.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(other_model.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    assert other.updates == 1
