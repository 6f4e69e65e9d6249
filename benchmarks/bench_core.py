"""Benchmark the detection core against the book's own code (the `d2l` package from PyPI).

    pip install --no-deps d2l==1.0.3
    python benchmarks/bench_core.py                      # CPU
    python benchmarks/bench_core.py --device cuda        # GPU, when there is one
    python benchmarks/bench_core.py --json out.json      # also write the figures

Setting: TinySSD's 5,444 anchors (256x256 input), batch 32.
- assign_targets vs d2l.multibox_target, with G boxes in every image (G = 4 and 10; d2l has no padding, so
  every image gets exactly G real boxes and both sides see the same input; the outputs are checked equal).
- postprocess (defaults: class-aware, top 400, NMS 0.5) vs d2l.multibox_detection (class-agnostic, NMS over
  all 5,444 boxes in a Python loop), per image. Scores are random logits (C = 1, the bananas setting), so
  every anchor is a candidate: the worst case for both.
- nms: torchvision's kernel (our nms) vs the book's Python-loop nms on 5,444 boxes.

Each figure is the median of several timed repeats after a warm-up, synchronizing the GPU.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
import types

import torch

from detector.core.anchors import MultiLevelAnchors
from detector.core.boxes import nms
from detector.core.ssd_ops import assign_targets, postprocess

TINY_SSD_SIZES = [[0.2, 0.272], [0.37, 0.447], [0.54, 0.619], [0.71, 0.79], [0.88, 0.961]]  # the book's
TINY_SSD_SHAPES = [(32, 32), (16, 16), (8, 8), (4, 4), (1, 1)]  # feature maps at 256x256


def import_d2l():
    """Import d2l.torch, stubbing the notebook extras it imports but this benchmark never calls."""
    for name in ("IPython", "IPython.display", "matplotlib_inline", "matplotlib_inline.backend_inline",
                 "pandas", "requests"):
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
    if "IPython" in sys.modules and not hasattr(sys.modules["IPython"], "display"):
        sys.modules["IPython"].display = sys.modules["IPython.display"]
    if not hasattr(sys.modules["matplotlib_inline"], "backend_inline"):
        sys.modules["matplotlib_inline"].backend_inline = sys.modules["matplotlib_inline.backend_inline"]
    from d2l import torch as d2l

    return d2l


def timeit(fn, device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def random_boxes(batch: int, count: int, generator: torch.Generator) -> torch.Tensor:
    xy = torch.rand(batch, count, 2, generator=generator) * 0.7
    wh = 0.05 + 0.25 * torch.rand(batch, count, 2, generator=generator)
    return torch.cat((xy, xy + wh), dim=-1)  # (B, G, 4)


def bench_targets(d2l, anchors, device, batch, count, repeats, g):
    boxes = random_boxes(batch, count, g).to(device)
    labels = torch.randint(0, 3, (batch, count), generator=g).to(device)
    valid = torch.ones(batch, count, dtype=torch.bool, device=device)
    book_labels = torch.cat((labels[..., None].float(), boxes), dim=-1)  # (B, G, 5): the book's layout

    ours = assign_targets(anchors, boxes, labels, valid)
    theirs = d2l.multibox_target(anchors[None], book_labels)
    assert torch.equal(ours[2], theirs[2]), "class targets differ from the book's"
    torch.testing.assert_close(ours[0].reshape(batch, -1), theirs[0], atol=1e-3, rtol=1e-4)

    t_ours = timeit(lambda: assign_targets(anchors, boxes, labels, valid), device, repeats)
    t_book = timeit(lambda: d2l.multibox_target(anchors[None], book_labels), device, max(2, repeats // 5))
    return {"batch": batch, "boxes_per_image": count, "ours_ms": t_ours * 1e3, "book_ms": t_book * 1e3,
            "speedup": t_book / t_ours}


def bench_postprocess(d2l, anchors, device, batch, repeats, g):
    A = anchors.shape[0]
    logits = torch.randn(batch, A, 2, generator=g).to(device)  # C = 1 (bananas)
    offsets = (torch.randn(batch, A, 4, generator=g) * 0.5).to(device)
    t_batch = timeit(lambda: postprocess(logits, offsets, anchors), device, repeats) / batch
    t_one = timeit(lambda: postprocess(logits[:1], offsets[:1], anchors), device, repeats)
    probs = logits[:1].softmax(-1).permute(0, 2, 1)  # (1, C+1, A): the book's layout
    t_book = timeit(lambda: d2l.multibox_detection(probs, offsets[:1].reshape(1, -1), anchors[None]), device,
                    max(2, repeats // 10))
    return {"ours_ms_per_image_batch": t_batch * 1e3, "batch": batch, "ours_ms_batch1": t_one * 1e3,
            "book_ms_per_image": t_book * 1e3, "speedup_batch": t_book / t_batch, "speedup_batch1": t_book / t_one}


def bench_nms(d2l, anchors, device, repeats, g):
    boxes = anchors + 0.01 * torch.randn(anchors.shape, generator=g).to(device)
    boxes = torch.cat((boxes[:, :2], torch.maximum(boxes[:, 2:], boxes[:, :2] + 1e-3)), 1)
    scores = torch.rand(len(boxes), generator=g).to(device)
    t_ours = timeit(lambda: nms(boxes, scores, 0.5), device, repeats)
    t_book = timeit(lambda: d2l.nms(boxes, scores, 0.5), device, 2)
    return {"boxes": len(boxes), "ours_ms": t_ours * 1e3, "book_ms": t_book * 1e3, "speedup": t_book / t_ours}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    device = torch.device(args.device)
    d2l = import_d2l()
    g = torch.Generator().manual_seed(0)
    anchors = MultiLevelAnchors(TINY_SSD_SIZES, [1, 2, 0.5])(TINY_SSD_SHAPES, device)
    assert anchors.shape == (5444, 4)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    results = {"device": name, "torch": torch.__version__, "anchors": anchors.shape[0],
               "assign_targets": [bench_targets(d2l, anchors, device, args.batch, G, args.repeats, g) for G in (4, 10)],
               "postprocess": bench_postprocess(d2l, anchors, device, args.batch, args.repeats, g),
               "nms": bench_nms(d2l, anchors, device, args.repeats, g)}

    print(f"device: {name}; torch {torch.__version__}; {anchors.shape[0]} anchors")
    for r in results["assign_targets"]:
        print(f"assign_targets  B={r['batch']} G={r['boxes_per_image']:>2}: ours {r['ours_ms']:8.2f} ms   "
              f"d2l.multibox_target {r['book_ms']:9.2f} ms   {r['speedup']:6.1f}x")
    p = results["postprocess"]
    print(f"postprocess per image: ours {p['ours_ms_per_image_batch']:.3f} ms (batch {p['batch']}), "
          f"{p['ours_ms_batch1']:.3f} ms (batch 1)   d2l.multibox_detection {p['book_ms_per_image']:.1f} ms   "
          f"{p['speedup_batch']:.0f}x / {p['speedup_batch1']:.0f}x")
    n = results["nms"]
    print(f"nms on {n['boxes']} boxes: ours {n['ours_ms']:.2f} ms   book {n['book_ms']:.1f} ms   {n['speedup']:.0f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
