"""What a training run does with its folder and its checkpoints: writes that fail, files that are not
checkpoints, the run folder of ``--resume``, ``--epochs`` on resume, and the lock that keeps two runs apart."""

import pickle
import random

import pytest
import torch

import detector.engine.checkpoint as checkpoint_module
from detector.engine.checkpoint import save_checkpoint
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
