"""``benchmarks/gpu_suite.py --smoke`` on the CPU: every stage runs (or is skipped with its reason) and the
figures land in one JSON and one Markdown table, so the suite cannot be broken when a GPU finally runs it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_suite_smoke_runs_every_stage(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--smoke", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=600, check=False)
    report = json.loads((tmp_path / "gpu_suite.json").read_text())
    stages = report["stages"]
    assert set(stages) == {"core", "predict_b1", "predict_b64", "train", "train_fp32", "train_compiled",
                           "ttq_bananas", "ttq_shapes", "faster_rcnn", "data"}
    failed = {k: v.get("error", "")[-600:] for k, v in stages.items() if v["status"] not in ("ok", "skipped")}
    assert not failed and done.returncode == 0, failed
    assert all(v.get("reason") for v in stages.values() if v["status"] == "skipped")
    assert stages["predict_b1"]["result"]["ms_per_image"] > 0
    assert stages["train"]["result"]["ours_images_per_s"] > 0 and stages["train"]["result"]["network_images_per_s"] > 0
    assert stages["train_fp32"]["result"]["amp_bf16"] is False
    assert stages["ttq_shapes"]["result"]["epochs_run"] == 1
    assert (tmp_path / "gpu_suite.md").read_text().count("\n| ") >= 10
