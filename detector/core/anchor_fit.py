"""Anchors fitted to a data set's boxes (YOLO's autoanchor, for the SSD's layout), and how well anchors cover boxes.

    wh = boxes[:, 2:] - boxes[:, :2]                              # (N, 2), boxes normalized to the input
    centres = kmeans_wh(wh, k=10)                                 # (10, 2), smallest area first
    sizes, ratios = ssd_layout(centres, wh, per_level=[2] * 5, num_ratios=3)
    sizes, ratios = evolve_layout(boxes, shapes, sizes, ratios)  # shapes: the feature maps' (h, w)
    coverage(best_anchor_iou(boxes, shapes, sizes, ratios))       # {"boxes", "covered", "mean_iou"}

A box is *covered* when some anchor overlaps it with IoU >= ``COVERED_IOU`` (the SSD's matching threshold):
then it gets a positive anchor by the threshold, not only by the greedy step. Coverage is measured with the
anchors where they are, on every cell of every feature map: for fixed shapes the IoU only falls as the centres
move apart, so on each map the best anchor is one of the cell that holds the box's centre
(:func:`best_anchor_iou`: exact, and ``N x K`` instead of ``N x A`` IoUs).

The SSD's layout (:func:`detector.core.anchors.generate_anchors`): per level, every size with ``ratios[0]``,
then ``sizes[0]`` with each of ``ratios[1:]``. :func:`ssd_layout` keeps the number of sizes of each level and
of ratios, so the model's heads keep their shapes: the sizes are the clusters' scales ``sqrt(w * h)``, in order,
the smallest on the finest map; the ratios (``w / h``) are the boxes' median aspect, which every size takes,
then aspects spread from the 85th to the 15th percentile (wide to tall, as the book's ``(1, 2, 0.5)``).
k-means on shapes ignores where the anchors sit, so :func:`evolve_layout` then refines sizes and ratios by
YOLOv5's evolution (random multiplicative mutations, kept when they raise the fitness: the mean best IoU counting
only covered boxes, then the plain mean), seeded, with the sizes kept increasing from the finest map to the
coarsest.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor

from detector.core.anchors import anchor_shapes

COVERED_IOU = 0.5  # a box is covered when its best anchor reaches this IoU (the SSD's matching threshold)
RATIO_SPREAD = (0.85, 0.15)  # the quantiles of the box aspects w / h that the ratios after the first span
GENERATIONS, MUTATION_P, MUTATION_SIGMA = 1000, 0.9, 0.1  # YOLOv5's autoanchor evolution
EVOLVE_BOXES = 4000  # the evolution scores at most this many boxes (a seeded sample)
SIZE_RANGE, RATIO_RANGE = (1e-3, 2.0), (0.125, 8.0)  # where the evolution keeps sizes and ratios


def wh_iou(wh1: Tensor, wh2: Tensor) -> Tensor:
    """IoU of boxes that share their centre, from their widths and heights: ``[N, 2] x [K, 2] -> [N, K]``."""
    inter = torch.min(wh1[:, None], wh2[None]).prod(-1)  # (N, K)
    return inter / (wh1.prod(-1)[:, None] + wh2.prod(-1)[None] - inter)


def kmeans_wh(wh: Tensor, k: int, iters: int = 300) -> Tensor:
    """k-means of box shapes ``[N, 2]`` with the distance ``1 - IoU`` (YOLOv2's anchor clustering): each box goes
    to the centre it overlaps most when centred on it, each centre is the mean shape of its boxes, until no box
    moves. Deterministic: it starts from the shapes at ``k`` evenly spaced quantiles of the area; a centre left
    without boxes stays where it is. Returns ``[k, 2]``, smallest area first."""
    if len(wh) < k:
        raise ValueError(f"k-means of {k} clusters needs at least {k} boxes, got {len(wh)}")
    wh = wh.double()
    order = wh.prod(-1).argsort()  # (N,)
    centres = wh[order[((torch.arange(k, dtype=torch.float64) + 0.5) / k * len(wh)).long()]]  # (k, 2)
    assign = None
    for _ in range(iters):
        new = wh_iou(wh, centres).argmax(1)  # (N,)
        if assign is not None and torch.equal(new, assign):
            break
        assign = new
        sums = torch.zeros_like(centres).index_add_(0, assign, wh)  # (k, 2)
        counts = torch.bincount(assign, minlength=k)[:, None]  # (k, 1)
        centres = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
    return centres[centres.prod(-1).argsort()].float()


def ssd_layout(centres: Tensor, wh: Tensor, per_level: Sequence[int],
               num_ratios: int) -> tuple[list[list[float]], list[float]]:
    """The SSD's ``sizes`` (``per_level[l]`` for level ``l``) and shared ``ratios`` (``num_ratios``) from k-means
    ``centres [sum(per_level), 2]`` (smallest first) and the boxes ``wh [N, 2]`` (see the module docstring)."""
    if len(centres) != sum(per_level):
        raise ValueError(f"{len(centres)} clusters for {sum(per_level)} sizes")
    sizes = [[round(s, 4) for s in level] for level in _split(centres.prod(-1).sqrt().tolist(), per_level)]
    log_aspect = (wh[:, 0] / wh[:, 1]).log().double()  # (N,)
    q = [0.5, *torch.linspace(*RATIO_SPREAD, num_ratios - 1).tolist()] if num_ratios > 1 else [0.5]
    ratios = [round(r, 4) for r in torch.quantile(log_aspect, torch.tensor(q, dtype=torch.float64)).exp().tolist()]
    return sizes, ratios


def nearest_cells(boxes: Tensor, shapes: Sequence[tuple[int, int]]) -> list[Tensor]:
    """Per feature map of ``shapes`` (h, w), the centre ``[N, 2]`` (x, y) of the cell nearest each box's centre."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2  # (N, 2) x, y
    cells = []
    for h, w in shapes:
        grid = torch.tensor([w, h], dtype=boxes.dtype)
        cells.append(((centre * grid).floor().clamp(min=0).minimum(grid - 1) + 0.5) / grid)  # (N, 2)
    return cells


def _split(values: list[float], per_level: Sequence[int]) -> list[list[float]]:
    """``values`` cut into consecutive runs of ``per_level[l]`` values, one per level."""
    bounds = list(itertools.accumulate(per_level, initial=0))
    return [values[a:b] for a, b in itertools.pairwise(bounds)]


def best_anchor_iou(boxes: Tensor, shapes: Sequence[tuple[int, int]], sizes: Sequence[Sequence[float]],
                    ratios: Sequence[float], cells: list[Tensor] | None = None) -> Tensor:
    """Each box's best IoU with the anchors of ``sizes`` (per level) and shared ``ratios`` on feature maps of
    ``shapes`` (h, w): ``boxes [N, 4]`` normalized xyxy -> ``[N]``. The same as the maximum of ``box_iou`` with
    every anchor :class:`~detector.core.anchors.MultiLevelAnchors` makes, from the cell holding each centre
    (``cells``: :func:`nearest_cells`, when known)."""
    cells = nearest_cells(boxes, shapes) if cells is None else cells
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # (N,)
    best = boxes.new_zeros(len(boxes))
    for (h, w), level_sizes, cell in zip(shapes, sizes, cells):
        wh = anchor_shapes(h, w, level_sizes, ratios).to(boxes.dtype)  # (K, 2)
        lt = torch.maximum(boxes[:, None, :2], cell[:, None] - wh / 2)  # (N, K, 2)
        rb = torch.minimum(boxes[:, None, 2:], cell[:, None] + wh / 2)  # (N, K, 2)
        inter = (rb - lt).clamp(min=0).prod(-1)  # (N, K)
        best = torch.maximum(best, (inter / (area[:, None] + wh.prod(-1) - inter)).amax(1))
    return best


def fitness(best: Tensor) -> tuple[float, float]:
    """The evolution's objective, compared in order: the mean of the best IoUs counting 0 for boxes not covered
    (YOLOv5's), then the plain mean best IoU (so that a layout that covers no box yet can still improve)."""
    if len(best) == 0:
        return 0.0, 0.0
    return float((best * (best >= COVERED_IOU)).mean()), float(best.mean())


def evolve_layout(boxes: Tensor, shapes: Sequence[tuple[int, int]], sizes: Sequence[Sequence[float]],
                  ratios: Sequence[float], generations: int = GENERATIONS,
                  seed: int = 0) -> tuple[list[list[float]], list[float]]:
    """``sizes`` (per level) and ``ratios`` refined for ``boxes [N, 4]`` on maps of ``shapes``: each generation
    multiplies every value, with probability ``MUTATION_P``, by ``1 + u * N(0, MUTATION_SIGMA)`` (u uniform,
    clipped to [0.3, 3]), sorts the sizes back into increasing order over the levels, and keeps the result when
    its :func:`fitness` is higher. Deterministic for a ``seed``; at most ``EVOLVE_BOXES`` boxes (a seeded
    sample) are scored."""
    per_level = [len(s) for s in sizes]
    gen = torch.Generator().manual_seed(seed)
    if len(boxes) > EVOLVE_BOXES:
        boxes = boxes[torch.randperm(len(boxes), generator=gen)[:EVOLVE_BOXES]]
    cells = nearest_cells(boxes, shapes)
    params = torch.tensor([s for level in sizes for s in level] + list(ratios), dtype=torch.float64)  # (K + R,)
    k = sum(per_level)

    def layout(p: Tensor) -> tuple[list[list[float]], list[float]]:
        return _split(p[:k].sort().values.tolist(), per_level), p[k:].tolist()

    best_fit = fitness(best_anchor_iou(boxes, shapes, *layout(params), cells))
    for _ in range(generations):
        mutate = torch.rand(len(params), generator=gen, dtype=torch.float64) < MUTATION_P
        noise = torch.randn(len(params), generator=gen, dtype=torch.float64) * MUTATION_SIGMA
        factor = (1 + mutate * torch.rand(1, generator=gen, dtype=torch.float64) * noise).clamp(0.3, 3.0)
        candidate = params * factor
        candidate[:k].clamp_(*SIZE_RANGE)
        candidate[k:].clamp_(*RATIO_RANGE)
        f = fitness(best_anchor_iou(boxes, shapes, *layout(candidate), cells))
        if f > best_fit:
            best_fit, params = f, candidate
    sizes, ratios = layout(params)
    return [[round(s, 4) for s in level] for level in sizes], [round(r, 4) for r in ratios]


def coverage(best: Tensor) -> dict:
    """``{"boxes": N, "covered": share of best IoUs >= COVERED_IOU, "mean_iou": their mean}`` of ``best [N]``."""
    if len(best) == 0:
        return {"boxes": 0, "covered": 0.0, "mean_iou": 0.0}
    return {"boxes": len(best), "covered": float((best >= COVERED_IOU).float().mean()), "mean_iou": float(best.mean())}
