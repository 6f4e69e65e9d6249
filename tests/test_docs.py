"""The documentation site builds, strictly, and the README's commands are the docs' commands.

``mkdocs build --strict`` fails on a broken link, a missing picture, an anchor that does not exist and an API page
whose object or docstring cannot be rendered (mkdocstrings reads the docstrings of this checkout). The README's
shell blocks are repeated word for word in the docs, so that the two cannot drift apart; the install commands
the README gives keep to the project's own version ranges.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def docs_pages() -> dict[str, str]:
    return {str(p.relative_to(DOCS)): p.read_text() for p in sorted(DOCS.rglob("*.md"))}


def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocstrings_handlers.python", reason="no docs extra: pip install -e '.[docs]'")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
               "--site-dir", str(tmp_path / "site")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    site = tmp_path / "site"
    for page in ("index.html", "getting-started/index.html", "api/detector/index.html", "api/core/index.html",
                 "api/contract/index.html", "experiments/index.html"):
        assert (site / page).is_file(), page
    api = (site / "api" / "detector" / "index.html").read_text()
    for name in ("detector.api.Detector", "detector.api.Results", "detector.api.Metrics", "detector.api.evaluate"):
        assert f'id="{name}"' in api, f"{name} missing from the API reference"
    core = (site / "api" / "core" / "index.html").read_text()
    for module in ("boxes", "anchors", "matching", "ssd_ops", "geometry", "losses"):
        assert f'id="detector.core.{module}"' in core, f"detector.core.{module} missing from the API reference"
    assert 'id="detector.core.boxes.box_iou"' in core  # the functions, not only the module headings


def test_every_readme_shell_block_is_in_the_docs_word_for_word():
    pages = docs_pages()
    shell = blocks(README, "bash")
    assert len(shell) >= 4  # the app, the tests, the CPU-only install, the command line
    for block in shell:
        homes = [name for name, text in pages.items() if f"```bash\n{block}```" in text]
        assert homes, f"this README block is in no docs page (docs/*.md), word for word:\n{block}"


def test_the_readme_keeps_the_commands_ci_and_users_rely_on():
    shell = blocks(README, "bash")
    assert "pip install -e . && python app.py\n" in shell
    assert 'pip install -e ".[test]" && python -m pytest\n' in shell  # .ci/run runs this
    assert len(README.splitlines()) <= 200


def test_the_cpu_only_install_keeps_to_the_projects_torch_ranges():
    """A torch outside the project's range would be replaced by PyPI's CUDA build at ``pip install -e .``, which is
    what the CPU-only line is there to avoid."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    found = re.findall(r'^\s+"((torch|torchvision)[<>=][^"]*)"', pyproject, re.MULTILINE)  # [(spec, name)]
    ranges = {name: spec for spec, name in found}
    line = next(line for block in blocks(README, "bash") for line in block.splitlines() if "whl/cpu" in line)
    assert f'"{ranges["torch"]}"' in line and f'"{ranges["torchvision"]}"' in line, (line, ranges)


def test_every_picture_the_docs_show_is_small():
    for picture in [*DOCS.rglob("*.png"), *DOCS.rglob("*.jpg")]:
        assert picture.stat().st_size < 400_000, f"{picture.relative_to(ROOT)}: keep pictures under 400 KB"


def test_moved_scripts_are_referred_to_where_they_are():
    """benchmarks/ keeps the speed benchmarks; the experiments and the quality tools have their own folders."""
    moved = {"recipe_ablation.sh": "experiments", "recipe_table.py": "experiments", "raccoon_compare.sh": "experiments",
             "pretrain_experiment.py": "experiments", "raccoon_false_positives.py": "experiments",
             "mutants.py": "tools", "load_app.py": "tools"}
    texts = {"README.md": README, **{f"docs/{k}": v for k, v in docs_pages().items()}}
    for name, folder in moved.items():
        assert (ROOT / folder / name).is_file(), f"{folder}/{name}"
        for source, text in texts.items():
            for found in re.findall(rf"([\w./-]*/){re.escape(name)}", text):
                assert found.endswith(f"{folder}/"), f"{source} refers to {found}{name}, which is {folder}/{name}"
