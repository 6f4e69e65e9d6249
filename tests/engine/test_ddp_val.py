"""Validation under DDP: two processes each predict their share of the val split, rank 0 scores them all, and
the metrics equal one process's, on a model whose AP is well above 0 (an AP of 0 on both sides proves nothing)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from detector.data.synth import synth_dataset

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import json, sys
import torch
from detector.api import Detector
from detector.data.check import prepare_split
from detector.engine.detect import val_metrics
from detector.engine.distributed import process_group
from detector.evaluation.ground_truth import ground_truth

with process_group("cpu") as (ranks, _):  # leaves the group at the end, as training does: a rank that exits
    det = Detector(sys.argv[1], device="cpu")  # with gloo's threads alive can abort in C++ (seen once in CI)
    data, records = prepare_split(sys.argv[2], "val", "refuse")
    gt = ground_truth(data, "val", records)
    metrics = val_metrics(det.model, records, gt, data.classes, det.info.category_ids, torch.device("cpu"),
                          ranks, batch_size=3)  # several batches per rank
    if ranks.main:
        open(sys.argv[3], "w").write(json.dumps(metrics))
"""


@pytest.mark.slow
def test_val_ap_under_two_processes_equals_one(tmp_path):
    data = synth_dataset(tmp_path / "d", "shapes", train=1, val=14, seed=5, size=256, workers=1)
    script = tmp_path / "val.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    weights = str(ROOT / "models" / "tinyssd-shapes.pt")
    one = subprocess.run([sys.executable, str(script), weights, str(data), str(tmp_path / "one.json")], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script), weights, str(data), str(tmp_path / "two.json")], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert two.returncode == 0, two.stderr[-3000:]
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert one["AP"] > 0.4 and one["AP50"] > 0.7  # the shipped model on its own kind of images
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl"):
        assert two[key] == pytest.approx(one[key], abs=1e-9), key
