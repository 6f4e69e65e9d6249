"""Every Python block of the README and of the docs (``docs/**/*.md``) runs, as written, on a tiny generated set:
the documented API cannot rot. A block the docs repeat word for word from the README runs once.

Run in a scratch folder holding ``data/shapes`` (8 training and 4 val images at 64 px) and the repository's
``models/``; ``epochs=N`` is run as ``epochs=1``, which is the only change made to the text."""

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCKS = {}  # block -> where it is first written ("README.md python block 1", "docs/x.md python block 2")
for source in SOURCES:
    for k, block in enumerate(re.findall(r"```python\n(.*?)```", source.read_text(), re.DOTALL)):
        BLOCKS.setdefault(block, f"{source.relative_to(ROOT)} python block {k + 1}")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from detector.data.synth import synth_dataset

    ws = tmp_path_factory.mktemp("readme")
    synth_dataset(ws / "data" / "shapes", "shapes", train=8, val=4, seed=0, size=64, workers=1)
    shutil.copytree(ROOT / "models", ws / "models")
    return ws


def test_the_readme_and_the_docs_have_python_blocks():
    readme = [block for block, where in BLOCKS.items() if where.startswith("README.md")]
    assert readme and "from detector import Detector" in readme[0] and len(BLOCKS) >= 3


@pytest.mark.parametrize("block", list(BLOCKS), ids=list(BLOCKS.values()))
def test_every_python_block_runs(workspace, monkeypatch, block):
    monkeypatch.chdir(workspace)
    code = re.sub(r"epochs=\d+", "epochs=1", block)
    exec(compile(code, BLOCKS[block], "exec"), {"__name__": "documented_block"})  # noqa: S102
