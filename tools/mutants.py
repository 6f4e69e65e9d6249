"""A small mutation pass: does the suite catch plausible one-token bugs?

    python tools/mutants.py                             # the default targets, 8 mutants per module, seed 0
    python tools/mutants.py --per-module 20 --only detector/core/boxes.py --out runs/mutants.json
    python tools/mutants.py --known                     # each known bug alone (KNOWN): every one must be caught

For each target module, mutants are drawn at random (seeded) from every place where one of these edits
applies: a comparison flipped (``<`` to ``<=``, ``==`` to ``!=``, ...), ``+``/``-`` or ``*``/``/`` swapped,
``and``/``or`` swapped, an integer constant off by one, ``True``/``False`` swapped, an index ``[0]``/``[1]``
swapped, a ``not`` dropped. Each mutant is written into a copy of the checkout (never into this one) and
the module's tests run there (``pytest -x``, with a time limit); a mutant whose tests still pass
*survives*. The report lists every mutant with its place, its edit and whether it was killed.

Mutation testing measures the tests, not the code: a surviving mutant is either a missing test or an
equivalent edit (one that cannot change behaviour); the note that runs this says which.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {  # module -> the tests that guard it
    "detector/core/boxes.py": ["tests/core/test_boxes.py", "tests/core/test_properties.py"],
    "detector/core/anchors.py": ["tests/core/test_anchors.py", "tests/core/test_properties.py",
                                 "tests/models/test_faster_rcnn.py"],  # grid anchors: checked against torchvision
    "detector/core/matching.py": ["tests/core/test_matching.py", "tests/core/test_properties.py"],
    "detector/core/ssd_ops.py": ["tests/core/test_ssd.py", "tests/models/test_score_threshold.py"],
    "detector/data/coco.py": ["tests/data"],
    "detector/data/voc.py": ["tests/data"],
    "detector/data/yolo.py": ["tests/data"],
    "detector/data/banana.py": ["tests/data"],
    "detector/evaluation/coco.py": ["tests/evaluation"],
    "detector/evaluation/predict.py": ["tests/evaluation", "tests/api/test_one_path.py"],
    # the modules of issue 34's bugs
    "detector/api/detector.py": ["tests/api", "tests/evaluation/test_eval_command.py"],
    "detector/engine/detect.py": ["tests/engine/test_train.py", "tests/engine/test_ddp_val.py",
                                  "tests/data/test_negatives.py"],
    "detector/models/ssd.py": ["tests/models/test_tiny_ssd.py", "tests/models/test_score_threshold.py",
                               "tests/models/test_zoo_ssd_equality.py"],
    "detector/models/rpn.py": ["tests/models/test_torchvision_equality.py", "tests/models/test_faster_rcnn.py"],
    "detector/models/faster_rcnn.py": ["tests/models/test_torchvision_equality.py", "tests/models/test_faster_rcnn.py",
                                       "tests/models/test_score_threshold.py"],
}
# Issue 34's bugs (a mutation audit's survivors, now each with a test that fails on it) and the boundary flips:
# (name, module, [(text, replacement), ...], the tests that must catch it). ``--known`` applies each alone.
KNOWN = [
    ("1 VOC AP at IoU exactly 0.5", "detector/evaluation/coco.py",
     [("ious[j] < 0.5:", "ious[j] <= 0.5:")], ["tests/evaluation/test_evaluate.py"]),
    ("2 eval --weights joins by position", "detector/api/detector.py",
     [("cfg.workers,\n                                  ids=[im[\"id\"] for im in gt[\"images\"]], ", "cfg.workers, ")],
     ["tests/evaluation/test_eval_command.py"]),
    ("3 DDP val: each rank's part under all ids", "detector/engine/detect.py",
     [("ids=ids[part]", "ids=ids")], ["tests/engine/test_ddp_val.py"]),
    ("4 max_det cut before the class filter", "detector/evaluation/predict.py",
     [('post["max_detections"] = MAX_DET', 'post["max_detections"] = max_det')], ["tests/api/test_one_path.py"]),
    ("5 SSD pixel scale [H, W, H, W]", "detector/models/ssd.py",
     [("torch.tensor([W, H, W, H]", "torch.tensor([H, W, H, W]")], ["tests/models/test_tiny_ssd.py"]),
    ("6 RPN pre/post-NMS top-n swapped", "detector/models/rpn.py",
     [("min(self.pre_nms_top_n[mode], n)", "min(self.post_nms_top_n[mode], n)"),
      ("B, self.post_nms_top_n[mode])", "B, self.pre_nms_top_n[mode])")], ["tests/models/test_torchvision_equality.py"]),
    ("7 predict's loader shuffles", "detector/evaluation/predict.py",
     [("shuffle=False", "shuffle=True")], ["tests/evaluation/test_predict.py"]),
    ("8 SSD postprocess: score > threshold", "detector/core/ssd_ops.py",
     [("keep = top_scores >= score_threshold", "keep = top_scores > score_threshold")],
     ["tests/models/test_score_threshold.py"]),
    ("9 Faster R-CNN box head: score > threshold", "detector/models/faster_rcnn.py",
     [('(scores >= post["score_threshold"])', '(scores > post["score_threshold"])')],
     ["tests/models/test_score_threshold.py"]),
    ("10 ONNX graph: score > threshold", "detector/engine/onnx_export.py",
     [("(top_scores >= score_threshold)", "(top_scores > score_threshold)")], ["tests/models/test_score_threshold.py"]),
    ("11 the book's matcher: IoU > threshold", "detector/core/matching.py",
     [("_best_gt_where(iou, best_iou, best_iou >= iou_threshold)", "_best_gt_where(iou, best_iou, best_iou > iou_threshold)")],
     ["tests/core/test_matching.py"]),
    ("12 SSD's matcher: IoU > threshold", "detector/core/matching.py",
     [("torch.where(best_iou >= iou_threshold, best_gt, -1)", "torch.where(best_iou > iou_threshold, best_gt, -1)")],
     ["tests/core/test_matching.py"]),
    ("13 Faster R-CNN's matcher: IoU > high", "detector/core/matching.py",
     [("positive = best_iou >= high_threshold", "positive = best_iou > high_threshold")], ["tests/core/test_matching.py"]),
    ("14 Faster R-CNN's matcher: IoU <= low is background", "detector/core/matching.py",
     [("(best_iou < low_threshold)] = BELOW_LOW", "(best_iou <= low_threshold)] = BELOW_LOW")],
     ["tests/core/test_matching.py"]),
    # survivors of the random pass over the modules of the seven (issue 34's note), each now pinned by a test
    ("15 train(config=..., data=...) takes the config and drops data", "detector/api/detector.py",
     [("if settings or data is not None:", "if settings and data is not None:")], ["tests/api/test_detector.py"]),
    ("16 without a val split the Detector holds a best.pt that does not exist", "detector/api/detector.py",
     [('else self.run / "last.pt"', 'else self.run / "best.pt"')], ["tests/api/test_detector.py"]),
    ("17 a checkpoint without a letterbox key trains letterboxed", "detector/api/info.py",
     [('letterbox=bool(ckpt.get("letterbox", False))', 'letterbox=bool(ckpt.get("letterbox", True))')],
     ["tests/api/test_detector.py"]),
    ("18 a checkpoint without category ids reports them from 0", "detector/api/info.py",
     [('or list(range(1, len(classes) + 1))', 'or list(range(len(classes)))')], ["tests/api/test_detector.py"]),
    ("19 any --img-size refused for an ONNX graph, a checkpoint's too", "detector/api/detector.py",
     [('if self.info.format == "onnx" and cfg.img_size', 'if self.info.format == "onnx" or cfg.img_size')],
     ["tests/api/test_detector.py"]),
    ("20 a glob that matches is refused, one that does not is silent", "detector/evaluation/predict.py",
     [("            if not matches:", "            if matches:")], ["tests/api/test_detector.py"]),
    ("21 the size mismatch message swaps width and height", "detector/evaluation/predict.py",
     [("decoded as {image.shape[1]}x{image.shape[0]}", "decoded as {image.shape[0]}x{image.shape[1]}")],
     ["tests/evaluation/test_predict.py"]),
    ("22 COCO results' boxes with 3 decimals", "detector/evaluation/predict.py",
     [("round(x2 - x1, 2)", "round(x2 - x1, 3)")], ["tests/evaluation/test_predict.py"]),
    ("23 Faster R-CNN's RoIs pooled off pixel centres by default", "detector/models/faster_rcnn.py",
     [("roi_aligned: bool = True", "roi_aligned: bool = False")], ["tests/models/test_faster_rcnn.py"]),
]
FLIP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq}
SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}


def sites(tree: ast.AST) -> list[tuple[int, str]]:
    """Every place an edit applies: ``(index of the node in ast.walk order, kind)``."""
    found = []
    for i, node in enumerate(ast.walk(tree)):
        if isinstance(node, ast.Compare) and type(node.ops[0]) in FLIP:
            found.append((i, "compare"))
        elif isinstance(node, ast.BinOp) and type(node.op) in SWAP:
            found.append((i, "binop"))
        elif isinstance(node, ast.BoolOp):
            found.append((i, "boolop"))
        elif isinstance(node, ast.Constant) and type(node.value) is int and not isinstance(node.value, bool):
            found.append((i, "int"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            found.append((i, "bool"))
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value in (0, 1):
            found.append((i, "index"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            found.append((i, "not"))
    return found


def mutate(source: str, index: int, kind: str) -> tuple[str, int, str]:
    """``(mutated source, line, description)`` for the edit ``kind`` at node ``index``."""
    tree = ast.parse(source)
    node = list(ast.walk(tree))[index]
    before = ast.unparse(node)
    if kind == "compare":
        node.ops[0] = FLIP[type(node.ops[0])]()
    elif kind == "binop":
        node.op = SWAP[type(node.op)]()
    elif kind == "boolop":
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif kind == "int":
        node.value = node.value + 1 if node.value != 1 else 0
    elif kind == "bool":
        node.value = not node.value
    elif kind == "index":
        node.slice.value = 1 - node.slice.value
    elif kind == "not":
        tree = _DropNot(node).visit(tree)
    after = ast.unparse(node) if kind != "not" else ast.unparse(node.operand)
    return ast.unparse(tree), node.lineno, f"{before[:80]}  ->  {after[:80]}"


class _DropNot(ast.NodeTransformer):
    def __init__(self, target: ast.UnaryOp):
        self.target = target

    def visit_UnaryOp(self, node: ast.UnaryOp):
        return node.operand if node is self.target else self.generic_visit(node)


def run_tests(copy: Path, tests: list[str], timeout: float) -> str:
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", *tests]
    env = {"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
           "HYPOTHESIS_PROFILE": "default"}
    try:
        done = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return "killed (timeout)"
    return "survived" if done.returncode == 0 else "killed"


def make_copy(tmp: str) -> Path:
    """A copy of the checkout to mutate: the code, the tests, the data configs and the shipped models."""
    copy = Path(tmp) / "checkout"
    top_level_skip = {".git", "runs", "data", "site"}  # the checkout's own data/ holds generated sets: only its configs

    def skip(folder: str, names: list[str]) -> set[str]:
        here = {n for n in names if n in top_level_skip} if Path(folder) == ROOT else set()
        return here | {n for n in names if n in ("__pycache__", ".hypothesis") or n.endswith(".pt")}

    shutil.copytree(ROOT, copy, ignore=skip)
    (copy / "data").mkdir()
    for config in (ROOT / "data").glob("*.yaml"):
        shutil.copy(config, copy / "data")
    (copy / "models").mkdir(exist_ok=True)
    for shipped in (ROOT / "models").glob("*.pt"):  # tests that run the shipped model need it
        shutil.copy(shipped, copy / "models")
    return copy


def run_known(timeout: float) -> list[dict]:
    """Apply each of :data:`KNOWN` alone to a copy and run its tests: each must be killed."""
    report = []
    with tempfile.TemporaryDirectory() as tmp:
        copy = make_copy(tmp)
        for name, module, edits, tests in KNOWN:
            source = (ROOT / module).read_text()
            mutated = source
            for old, new in edits:
                if mutated.count(old) != 1:
                    raise SystemExit(f"{name}: {module} holds {old!r} {mutated.count(old)} times, not once: update KNOWN")
                mutated = mutated.replace(old, new)
            (copy / module).write_text(mutated)
            t0 = time.perf_counter()
            outcome = run_tests(copy, tests, timeout)
            (copy / module).write_text(source)
            report.append({"bug": name, "module": module, "tests": tests, "outcome": outcome,
                           "seconds": round(time.perf_counter() - t0, 1)})
            print(f"{outcome:<17} {name}  ({module}; {' '.join(tests)})", flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-module", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="modules to mutate (default: all targets)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per mutant's test run")
    parser.add_argument("--out", help="write the report as JSON here")
    parser.add_argument("--known", action="store_true", help="instead: each of the known bugs (KNOWN) alone; "
                        "every one must be killed")
    args = parser.parse_args(argv)
    if args.known:
        report = run_known(args.timeout)
        survived = [r["bug"] for r in report if r["outcome"] == "survived"]
        print(f"\n{len(report) - len(survived)} of {len(report)} known bugs caught" +
              (f"; survived: {', '.join(survived)}" if survived else ""))
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(report, indent=2))
        return 1 if survived else 0
    rng = random.Random(args.seed)
    report = []
    with tempfile.TemporaryDirectory() as tmp:
        copy = make_copy(tmp)
        for module in args.only or list(TARGETS):
            source = (ROOT / module).read_text()
            chosen = rng.sample(sites(ast.parse(source)), min(args.per_module, len(sites(ast.parse(source)))))
            for index, kind in chosen:
                mutated, line, what = mutate(source, index, kind)
                (copy / module).write_text(mutated)
                t0 = time.perf_counter()
                outcome = run_tests(copy, TARGETS.get(module, ["tests"]), args.timeout)
                (copy / module).write_text(source)
                report.append({"module": module, "line": line, "kind": kind, "edit": what, "outcome": outcome,
                               "seconds": round(time.perf_counter() - t0, 1)})
                print(f"{outcome:<17} {module}:{line}  {what}", flush=True)
    survived = [r for r in report if r["outcome"] == "survived"]
    print(f"\n{len(report) - len(survived)} of {len(report)} mutants killed; {len(survived)} survived")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
