"""Every Python block of the README runs, as written, on a tiny generated set: the documented API cannot rot.

Run in a scratch folder holding ``data/shapes`` (8 training and 4 val images at 64 px) and the repository's
``models/``; ``epochs=N`` is run as ``epochs=1``, which is the only change made to the text."""

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from detector.data.synth import synth_dataset

    ws = tmp_path_factory.mktemp("readme")
    synth_dataset(ws / "data" / "shapes", "shapes", train=8, val=4, seed=0, size=64, workers=1)
    shutil.copytree(ROOT / "models", ws / "models")
    return ws


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 3 and "from detector import Detector" in BLOCKS[0]


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_every_python_block_runs(workspace, monkeypatch, index):
    monkeypatch.chdir(workspace)
    code = re.sub(r"epochs=\d+", "epochs=1", BLOCKS[index])
    exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": f"readme_{index}"})  # noqa: S102
