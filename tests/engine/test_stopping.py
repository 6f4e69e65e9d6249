"""--time (a wall-clock budget that sets the number of epochs and the schedule) and --patience (early stopping)."""

import csv

import pytest
import torch

from detector.cli.main import main
from detector.engine import loop
from detector.models.checkpoint import load_checkpoint


class Clock:
    """A fake ``time.perf_counter``: each epoch's batches take ``epoch_s`` seconds."""

    def __init__(self, epoch_s: float):
        self.now, self.epoch_s = 0.0, epoch_s

    def __call__(self) -> float:
        return self.now


def make_task(clock: Clock, scores: list[float] | None = None, steps: int = 4) -> loop.Task:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x, y = torch.randn(8, 3), torch.randn(8, 1)

    def batches(epoch):
        for _ in range(steps):
            clock.now += clock.epoch_s / steps
            yield {"images": x, "y": y}

    evals = iter(scores or [])
    return loop.Task(model=model, step_model=model, param_groups=loop.param_groups(model, 0.0), batches=batches,
                     steps_per_epoch=steps, losses=lambda m, b: {"mse": ((m(b["images"]) - b["y"]) ** 2).mean()},
                     loss_names=["mse"], evaluate=(lambda m: {"AP": next(evals)}) if scores else None,
                     metric_names=["AP"] if scores else [], batch_gen=torch.Generator().manual_seed(0))


def rows(out):
    with open(out / "results.csv") as f:
        return list(csv.DictReader(f))


def test_time_budget_sets_the_epochs_and_the_schedule_ends_at_its_floor(tmp_path, monkeypatch):
    clock = Clock(epoch_s=100.0)
    monkeypatch.setattr(loop.time, "perf_counter", clock)
    out = tmp_path / "run"
    loop.fit(make_task(clock), epochs=3, lr=0.1, out=out, device=torch.device("cpu"), eval_every=100,
             stopping=loop.Stopping(hours=1000 / 3600))  # 1,000 s at 100 s an epoch: 10 epochs, not 3
    done = rows(out)
    assert [int(r["epoch"]) for r in done] == list(range(1, 11))
    assert float(done[-1]["lr"]) == pytest.approx(0.1 / 100, rel=1e-3)  # the cosine reached its end at epoch 10
    assert float(done[2]["lr"]) > 0.05  # epoch 3 of 10, not the end of a 3-epoch schedule
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["config"]["epochs"] == 10 and ckpt["epoch"] == 9 and ckpt["elapsed_s"] == pytest.approx(1000.0)


def test_time_budget_shorter_than_the_epochs_stops_early(tmp_path, monkeypatch):
    clock = Clock(epoch_s=100.0)
    monkeypatch.setattr(loop.time, "perf_counter", clock)
    out = tmp_path / "run"
    loop.fit(make_task(clock, scores=[0.1] * 20), epochs=50, lr=0.1, out=out, device=torch.device("cpu"),
             eval_every=10, stopping=loop.Stopping(hours=250 / 3600))
    done = rows(out)
    assert len(done) == 2 and done[-1]["AP"] != ""  # the last epoch is evaluated, whatever eval_every says


def test_patience_stops_after_that_many_epochs_without_a_better_metric(tmp_path, monkeypatch):
    clock = Clock(epoch_s=1.0)
    monkeypatch.setattr(loop.time, "perf_counter", clock)
    out = tmp_path / "run"
    scores = [0.1, 0.3, 0.2, 0.3, 0.25, 0.9, 0.9]
    loop.fit(make_task(clock, scores=scores), epochs=7, lr=0.1, out=out, device=torch.device("cpu"), eval_every=1,
             stopping=loop.Stopping(patience=3))
    assert [float(r["AP"]) for r in rows(out)] == [0.1, 0.3, 0.2, 0.3, 0.25]  # best at epoch 2, 3 epochs no better
    assert load_checkpoint(out / "best.pt")["epoch"] == 1
    last = load_checkpoint(out / "last.pt")
    assert last["epoch"] == 4 and last["best_epoch"] == 1 and last["config"]["epochs"] == 5


def test_without_either_the_run_keeps_its_epochs(tmp_path, monkeypatch):
    clock = Clock(epoch_s=1e6)  # slow epochs change nothing without --time
    monkeypatch.setattr(loop.time, "perf_counter", clock)
    out = tmp_path / "run"
    loop.fit(make_task(clock, scores=[0.5, 0.4, 0.3, 0.2]), epochs=4, lr=0.1, out=out, device=torch.device("cpu"),
             eval_every=1)
    assert len(rows(out)) == 4


def test_time_and_patience_reach_the_cli_and_a_resumed_run(shapes_yaml, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data", str(shapes_yaml), "--model", "tiny_ssd", "--img-size", "64", "--batch-size", "8",
                 "--workers", "0", "--device", "cpu", "--epochs", "40", "--time", "0.00001", "--patience", "3",
                 "--out", str(out)])
    assert code == 0
    ckpt = load_checkpoint(out / "last.pt")  # 0.036 s of budget: the first epoch spends it
    assert ckpt["epoch"] == 0 and ckpt["config"]["epochs"] == 1 and ckpt["config"]["time"] == 0.00001
    assert ckpt["config"]["patience"] == 3 and "--time 1e-05 h: 1 epochs fit" in capsys.readouterr().err
