"""What a training run does with its folder and its checkpoints: writes that fail, files that are not
checkpoints, the run folder of ``--resume``, ``--epochs`` on resume, and the lock that keeps two runs apart."""

import csv
import json
import os
import pickle
import random
import socket

import pytest
import torch

import detector.engine.checkpoint as checkpoint_module
import detector.engine.loop as loop_module
from detector.cli.main import main
from detector.engine.checkpoint import save_checkpoint
from detector.engine.runs import release_lock, take_lock
from detector.models.checkpoint import CheckpointError, load_checkpoint


def test_torch_writer_failure_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.ones(2)}}, path)

    def writer_fails(obj, f, *a, **k):
        f.write(b"partial")
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(checkpoint_module.torch, "save", writer_fails)
    with pytest.raises(CheckpointError) as info:
        save_checkpoint({"model": {"w": torch.zeros(2)}}, path)
    message = str(info.value)
    assert message.startswith(f"{path}: could not save the checkpoint (PytorchStreamWriter failed writing file "
                              "data/0: file write failed); the previous one is kept (")
    assert message.endswith(" MiB free on the disk)") and "\n" not in message
    monkeypatch.undo()
    assert load_checkpoint(path)["model"]["w"].tolist() == [1.0, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # the temp file is gone


NOISE = random.Random(0).randbytes(4096)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_a_pickle_with_code_is_refused_as_code(tmp_path, protocol):
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"model": Evil()}, protocol=protocol))
    with pytest.raises(CheckpointError, match=r"evil.pt: refused: .* could run code when loaded$"):
        load_checkpoint(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("content", [NOISE, b"\x80" + NOISE, b"junk", b"", b"hello\n" * 50, b"PK\x03\x04" + NOISE],
                         ids=["random", "random-proto", "junk", "empty", "text", "zip-junk"])
def test_random_bytes_are_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"x.pt: not a checkpoint") as info:
        load_checkpoint(path)
    assert "could run code" not in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------ resume and --epochs
def train_args(data, out, epochs=1, *extra):
    return ["train", "--data", str(data), "--epochs", str(epochs), "--batch-size", "8", "--img-size", "64",
            "--workers", "0", "--device", "cpu", "--eval-every", "5", "--data-path", "loader", "--out", str(out), *extra]


def rows(run):
    with open(run / "results.csv") as f:
        return list(csv.DictReader(f))


def test_resume_from_another_directory_extends_the_schedule_in_the_runs_own_folder(shapes_yaml, tmp_path,
                                                                                      monkeypatch, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    assert main(train_args(shapes_yaml, "run", 1)) == 0  # a relative --out
    monkeypatch.chdir(tmp_path / "b")
    capsys.readouterr()
    assert main(["train", "--resume", "../a/run/last.pt", "--epochs", "3", "--lr", "0.5", "--workers", "0",
                 "--device", "cpu", "--data-path", "loader"]) == 0
    captured = capsys.readouterr()
    assert "--epochs 3: the schedule now ends at epoch 3 instead of 1 (the cosine goes on to the new total)" in captured.err
    assert "note: with --resume the run keeps its own settings and folder (../a/run); ignored: --lr 0.5" in captured.err
    assert "weights in ../a/run/best.pt" in captured.out
    assert list((tmp_path / "b").iterdir()) == []  # nothing written where it was started
    run = tmp_path / "a" / "run"
    # 16 images / batch 8 = 2 steps an epoch; warm-up 2 steps; the cosine over steps 2..6 of the new total:
    # after step 4: 3e-3 * (0.01 + 0.99 * 0.5 * (1 + cos(pi / 2))) = 0.001515; after step 6: 3e-3 * 0.01
    assert [(r["epoch"], r["lr"]) for r in rows(run)] == [("1", "0.003000"), ("2", "0.001515"), ("3", "0.000030")]
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["config"]["epochs"] == 3 and ckpt["config"]["lr"] == 3e-3
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "last.pt", "results.csv", "results.png"]  # no lock

    # --epochs not beyond the epochs done: refused, and the run is left as it was
    assert main(["train", "--resume", str(run / "last.pt"), "--epochs", "3", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: --epochs 3 with --resume {run / 'last.pt'}: the run has done 3 of its 3 epochs; give "
                   "more than 3 to extend it, or leave --epochs out to finish it\n")
    assert len(rows(run)) == 3

    # an exported model has no optimizer state: it cannot be resumed
    assert main(["export", "--weights", str(run / "last.pt"), "--out", str(tmp_path / "shipped.pt")]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "shipped.pt"), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err == (f"error: {tmp_path / 'shipped.pt'}: an exported model (weights only, no optimizer state): it "
                   "cannot be resumed; --resume takes the last.pt of a training run\n")
    # a detector's run is not resumed as a classifier's
    assert main(["classify", "train", "--resume", str(run / "last.pt"), "--device", "cpu"]) == 1
    assert "resume it with `detector train --resume`" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- the lock
def test_a_second_run_on_the_same_folder_is_refused(shapes_yaml, tmp_path, capsys):
    run = tmp_path / "run"
    fd = take_lock(run)  # a run holding the folder (this process, another open file)
    try:
        for words in (["train"], ["classify", "train"]):
            assert main([*words, "--data", str(shapes_yaml), "--device", "cpu", "--out", str(run)]) == 1
            err = capsys.readouterr().err
            assert err.startswith(f"error: {run / 'run.lock'}: another run (pid {os.getpid()} on "
                                  f"{socket.gethostname()}, started ")
            assert err.endswith(f") is writing to {run}; wait for it to end or choose another --out\n")
            assert "Traceback" not in err
        assert json.loads((run / "run.lock").read_text())["pid"] == os.getpid()  # still the holder's
    finally:
        release_lock(fd, run)
    assert not (run / "run.lock").exists()


def test_a_stale_lock_is_taken_over_with_a_note(shapes_yaml, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.lock").write_text(json.dumps({"pid": 4_000_000, "host": "gone-host", "started": "yesterday"}))
    assert main(train_args(shapes_yaml, run, 1)) == 0
    err = capsys.readouterr().err
    assert (f"note: {run / 'run.lock'}: took over the lock left by pid 4000000 on gone-host (that run ended without "
            "removing it)") in err
    assert not (run / "run.lock").exists()  # removed at the end


def test_the_lock_goes_on_ctrl_c_and_on_a_failed_save(shapes_yaml, tmp_path, monkeypatch, capsys):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop_module, "plot_training", interrupt)
    assert main(train_args(shapes_yaml, tmp_path / "a", 1)) == 130
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["best.pt", "last.pt", "results.csv"]
    monkeypatch.undo()

    def writer_fails(obj, f, *a, **k):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(checkpoint_module.torch, "save", writer_fails)
    capsys.readouterr()
    assert main(train_args(shapes_yaml, tmp_path / "b", 1)) == 1
    err = capsys.readouterr().err
    last_line = err.rstrip("\n").split("\n")[-1].split("\r")[-1]  # after the progress bar's carriage return
    assert last_line.startswith(f"error: {tmp_path / 'b' / 'best.pt'}: could not save the checkpoint "
                                "(PytorchStreamWriter failed writing file data/0: file write failed); the previous "
                                "one is kept (")
    assert "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["results.csv"]
