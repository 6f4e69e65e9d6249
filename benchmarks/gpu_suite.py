"""Every GPU claim of the docs (docs/benchmarks.md) measured by one command, in under nine minutes on one
H100.

    python benchmarks/gpu_suite.py --out runs/gpu                 # on the GPU: runs/gpu/gpu_suite.json and .md
    python benchmarks/gpu_suite.py --smoke --out runs/gpu-smoke   # tiny sizes on the CPU, under 2 minutes (CI runs it)

Stages (each a benchmark of this folder run as its own process, with a time limit; a stage that fails or runs
out of time is recorded with the end of its output, and the suite goes on):
- ``core``: ``bench_core.py``, the core against the book's code (needs ``d2l``; skipped without it);
- ``predict_b1``, ``predict_b64``: ``bench_predict.py`` on the shipped TinySSD at batch 1 and 64;
- ``train``: ``bench_train.py``: the book's loop, ours and the network alone (images/s over whole epochs), bf16;
  ``train_fp32``: ours without autocast; ``train_compiled``: ours and the network with ``torch.compile``;
- ``ttq_bananas``, ``ttq_shapes``: time to quality: ``detector train --amp`` on generated bananas and shapes,
  the wall seconds (compile included) until val AP50 first reaches 0.95, from the run's ``results.csv``;
- ``faster_rcnn``: ``bench_faster_rcnn.py --speed-only``: ours against torchvision's ``fasterrcnn_resnet50_fpn``
  (train and inference images/s, ms at batch 1, peak memory); ours on the same ResNet-50 body (a ResNet-18 one
  with ``--smoke``, where only the stage's running is checked);
- ``data``: ``bench_data.py``: the DataLoader and the device-resident data paths' images/s.

The goals it reports against (an H100, torch 2.11): the book's loop 263 images/s; the network alone (bf16,
channels_last, compiled, batch 256) 9,300 images/s; ours 5,000 images/s or more and AP50 0.95 on bananas within
30 s; torchvision's ``fasterrcnn_resnet50_fpn`` 71 training images/s (512 px, batch 8, bf16), 364 inference
images/s (batch 8, fp32), 12.9 ms at batch 1.

On a GPU machine with torch and torchvision (2.11 / 0.26 work) but none of this project's other packages and no
internet: on a machine with internet, ``pip download --only-binary=:all: --python-version 3.12 --platform
manylinux2014_x86_64 -d wheels albumentations pycocotools opencv-python-headless pyyaml tqdm scikit-image
matplotlib pillow numpy`` (add ``--no-deps d2l==1.0.3`` for the book's code), carry ``wheels/`` and the
checkout, then ``pip install --no-index --find-links wheels albumentations pycocotools opencv-python-headless
pyyaml tqdm scikit-image matplotlib`` and ``PYTHONPATH=. python benchmarks/gpu_suite.py --out runs/gpu`` (the
package need not be installed: the stages run ``python -m detector`` from the checkout).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SHIPPED = ROOT / "models" / "tinyssd-shapes.pt"


def has_d2l() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("d2l") is not None
    except ValueError:
        return False


def run(argv: list[str], timeout: float, env: dict) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        return done.returncode, done.stdout + done.stderr, time.perf_counter() - t0
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return 124, out + f"\n(stopped after {timeout:.0f} s)", time.perf_counter() - t0


def bench_stage(script: str, args: list[str], out: Path, name: str, timeout: float, env: dict) -> dict:
    """A benchmark script that writes ``--json``: its figures, or the failure."""
    target = out / f"{name}.json"
    code, text, seconds = run([str(BENCH / script), *args, "--json", str(target)], timeout, env)
    if code == 0 and target.exists():
        return {"status": "ok", "seconds": round(seconds, 1), "result": json.loads(target.read_text())}
    return {"status": "failed", "seconds": round(seconds, 1), "error": text[-1500:]}


def time_to_quality(preset: str, out: Path, smoke: bool, device: str, timeout: float, env: dict) -> dict:
    """``detector train`` on a generated set; wall seconds (from results.csv: the epochs' own times, the first
    one including compilation) until val AP50 first reaches 0.95."""
    data = out / f"data-{preset}"
    train, val, size, epochs = (32, 16, 64, 1) if smoke else ((1000, 100, 256, 20) if preset == "bananas"
                                                              else (3000, 300, 256, 20))
    code, text, _ = run(["-m", "detector", "data", "synth", "--out", str(data), "--preset", preset, "--train",
                         str(train), "--val", str(val), "--size", str(size), "--workers", str(os.cpu_count() or 1)],
                        timeout, env)
    if code:
        return {"status": "failed", "error": text[-1500:]}
    run_dir = out / f"ttq-{preset}"
    argv = ["-m", "detector", "train", "--data", str(data / "dataset.yaml"), "--epochs", str(epochs),
            "--eval-every", "1", "--img-size", str(size), "--device", device, "--out", str(run_dir),
            "--batch-size", "16" if smoke else "64", "--workers", "2"]
    if device != "cpu":
        argv += ["--amp", "--compile"]
    code, text, seconds = run(argv, timeout, env)
    rows = []
    if (run_dir / "results.csv").exists():
        with open(run_dir / "results.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    wall, reached = 0.0, None
    for r in rows:
        wall += float(r["epoch_s"])
        if r.get("AP50") and float(r["AP50"]) >= 0.95 and reached is None:
            reached = {"epoch": int(r["epoch"]), "seconds": round(wall, 1)}
    result = {"train_images": train, "epochs_run": len(rows), "command_seconds": round(seconds, 1),
              "best_AP50": max((float(r["AP50"]) for r in rows if r.get("AP50")), default=None),
              "reached_AP50_0.95": reached, "images_per_s": [float(r["images_per_s"]) for r in rows]}
    return {"status": "ok" if code == 0 else "failed", "seconds": round(seconds, 1), "result": result,
            **({"error": text[-1500:]} if code else {})}


def stages(smoke: bool, device: str, d2l: bool) -> list[tuple[str, callable]]:
    small = smoke
    core = ["--device", device, "--batch", "4" if small else "32", "--repeats", "2" if small else "10"]
    train = ["--device", device, "--images", "32" if small else "2000", "--epochs", "1" if small else "3",
             "--batch", "8" if small else "256", "--size", "64" if small else "256", "--steps", "3" if small else "20"]
    train += [] if d2l else ["--skip-book"]
    frcnn_data = "data-shapes"
    frcnn = ["--device", device, "--size", "128" if small else "512", "--batch", "2" if small else "8",
             "--speed-only", "--steps", "2" if small else "20", "--workers", "2",
             "--backbone", "tv_resnet18" if small else "tv_resnet50"]
    data = ["--device", device, "--images", "32" if small else "2000", "--size", "64" if small else "256",
            "--epochs", "1" if small else "3", "--workers", "2", "--batch", "8" if small else "32"]
    return [
        ("core", lambda o, t, e: bench_stage("bench_core.py", core, o, "core", t, e) if d2l else
         {"status": "skipped", "reason": "d2l is not installed (pip install --no-deps d2l==1.0.3)"}),
        ("predict_b1", lambda o, t, e: bench_stage("bench_predict.py", ["--weights", str(SHIPPED), "--device", device,
                                                                        "--batch", "1", "--repeats", "3" if small else "30"],
                                                   o, "predict_b1", t, e)),
        ("predict_b64", lambda o, t, e: bench_stage("bench_predict.py", ["--weights", str(SHIPPED), "--device", device,
                                                                         "--batch", "4" if small else "64",
                                                                         "--repeats", "2" if small else "30"],
                                                    o, "predict_b64", t, e)),
        ("train", lambda o, t, e: bench_stage("bench_train.py", train, o, "train", t, e)),
        ("train_fp32", lambda o, t, e: bench_stage("bench_train.py", [*train, "--skip-book", "--amp", "off"], o,
                                                   "train_fp32", t, e)),
        ("train_compiled", lambda o, t, e: {"status": "skipped", "reason": "torch.compile is timed on the GPU only"}
         if small else bench_stage("bench_train.py", [*train, "--skip-book", "--compile"], o, "train_compiled", t, e)),
        ("ttq_bananas", lambda o, t, e: time_to_quality("bananas", o, small, device, t, e)),
        ("ttq_shapes", lambda o, t, e: time_to_quality("shapes", o, small, device, t, e)),
        ("faster_rcnn", lambda o, t, e: bench_stage("bench_faster_rcnn.py",
                                                    ["--data", str(o / frcnn_data / "dataset.yaml"), *frcnn], o,
                                                    "faster_rcnn", t, e)),
        ("data", lambda o, t, e: bench_stage("bench_data.py", data, o, "data", t, e)),
    ]


def markdown(report: dict) -> str:
    lines = [(f"# GPU suite: {report['device']} ({'smoke' if report['smoke'] else 'full'}), "
              f"{report['seconds']:.0f} s in all"), "", "| stage | status | seconds | figures |", "| --- | --- | --- | --- |"]
    for name, stage in report["stages"].items():
        figures = {}
        for k, v in (stage.get("result") or {}).items():  # nested figures (ours / torchvision) one level down
            figures.update({f"{k}.{kk}": vv for kk, vv in v.items()} if isinstance(v, dict) else {k: v})
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()
                          if isinstance(v, (int, float, str)) or v is None)[:400]
        detail = shown or stage.get("reason", "") or stage.get("error", "").strip().splitlines()[-1:][0:1]
        lines.append(f"| {name} | {stage['status']} | {stage.get('seconds', '')} | {detail if isinstance(detail, str) else ' '.join(detail)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/gpu-suite")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (under 2 minutes on a quiet "
                        "2-core machine; no stage is timed out before 10 minutes)")
    parser.add_argument("--device", help="default: cuda when there is one (cpu with --smoke)")
    parser.add_argument("--only", nargs="*", help="run these stages only")
    args = parser.parse_args(argv)
    import torch

    device = args.device or ("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PYTHONUNBUFFERED": "1"}
    # each stage's time limit, in seconds (a cap, not the expected time). With --smoke (the CPU check in the test
    # suite) only a guard against a hang: its stages take seconds, many times that on a loaded machine, and their
    # speed is not what the smoke run checks
    limits = ({} if args.smoke else
              {"ttq_bananas": 150, "ttq_shapes": 150, "train": 120, "train_compiled": 120, "faster_rcnn": 150})
    default_limit = 600 if args.smoke else 60
    t0 = time.perf_counter()
    report = {"device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu", "smoke": args.smoke,
              "torch": torch.__version__, "stages": {}}
    ordered = stages(args.smoke, device, has_d2l())
    ordered.sort(key=lambda s: s[0] == "faster_rcnn")  # it needs the shapes set that ttq_shapes writes
    for name, stage in ordered:
        if args.only and name not in args.only:
            continue
        print(f"[{time.perf_counter() - t0:5.0f} s] {name} ...", flush=True)
        report["stages"][name] = stage(out, limits.get(name, default_limit), env)
        print(f"         {report['stages'][name]['status']}", flush=True)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "gpu_suite.json").write_text(json.dumps(report, indent=2))
    (out / "gpu_suite.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if all(s["status"] in ("ok", "skipped") for s in report["stages"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
