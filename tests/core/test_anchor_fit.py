"""Fitting anchors to boxes: literal IoUs and layouts, planted clusters, the exact coverage shortcut, the evolution."""

import pytest
import torch

from detector.core.anchor_fit import (
    best_anchor_iou,
    coverage,
    evolve_layout,
    fitness,
    kmeans_wh,
    ssd_layout,
    wh_iou,
)
from detector.core.anchors import MultiLevelAnchors
from detector.core.boxes import box_iou
from detector.models.ssd import BOOK_RATIOS, BOOK_SIZES, SMALL_OBJECT_SIZES

SHAPES = [(32, 32), (16, 16), (8, 8), (4, 4), (1, 1)]  # TinySSD's maps at 256 px


def random_boxes(n: int, lo: float, hi: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    wh = torch.rand(n, 2, generator=gen) * (hi - lo) + lo  # (N, 2)
    xy = torch.rand(n, 2, generator=gen) * (1 - wh) + wh / 2  # (N, 2) centres, boxes inside the image
    return torch.cat((xy - wh / 2, xy + wh / 2), 1)


def test_wh_iou_by_hand():
    """(2, 1) and (1, 2) centred on one point: intersection 1 x 1, union 2 + 2 - 1."""
    iou = wh_iou(torch.tensor([[2.0, 1.0], [1.0, 1.0]]), torch.tensor([[1.0, 2.0], [2.0, 2.0]]))
    torch.testing.assert_close(iou, torch.tensor([[1 / 3, 0.5], [0.5, 0.25]]))


def test_kmeans_recovers_planted_clusters():
    gen = torch.Generator().manual_seed(0)
    planted = torch.tensor([[0.05, 0.05], [0.2, 0.1], [0.4, 0.6]])  # smallest area first
    wh = (planted[:, None] * (1 + 0.05 * torch.randn(3, 200, 2, generator=gen))).reshape(-1, 2)  # +-5% noise
    centres = kmeans_wh(wh[torch.randperm(600, generator=gen)], k=3)
    torch.testing.assert_close(centres, planted, rtol=0.02, atol=0.0)
    assert torch.equal(kmeans_wh(wh, 3), kmeans_wh(wh, 3))
    with pytest.raises(ValueError, match="at least 10 boxes"):
        kmeans_wh(wh[:4], 10)


def test_ssd_layout_by_hand():
    """Sizes: the clusters' sqrt(w h), two per level; ratios: the median box aspect, then its 85th and 15th
    percentiles. Aspects 1/2, 1, 2: in log space the quantiles are 0, 0.7 ln 2 and -0.7 ln 2."""
    centres = torch.tensor([[0.1, 0.1], [0.1, 0.4], [0.3, 0.3], [0.8, 0.2]])
    wh = torch.tensor([[1.0, 2.0], [1.0, 1.0], [2.0, 1.0]])
    sizes, ratios = ssd_layout(centres, wh, per_level=[2, 2], num_ratios=3)
    assert sizes == [[0.1, 0.2], [0.3, 0.4]]
    assert ratios == pytest.approx([1.0, 2**0.7, 2**-0.7], abs=1e-4)
    assert ssd_layout(centres, wh, per_level=[1, 3], num_ratios=1) == ([[0.1], [0.2, 0.3, 0.4]], [1.0])


@pytest.mark.parametrize("shapes", [SHAPES, [(12, 20), (6, 10), (3, 5), (2, 3), (1, 1)]])
def test_best_anchor_iou_is_the_brute_force_maximum(shapes):
    """Only the cell holding a box's centre can hold its best anchor on each map: the same maximum as over every
    anchor, on square and rectangular maps, for boxes partly outside the image too."""
    boxes = torch.cat((random_boxes(300, 0.01, 0.6), torch.tensor([[-0.1, -0.1, 0.2, 0.3], [0.9, 0.5, 1.2, 0.7]])))
    for sizes, ratios in ((BOOK_SIZES, BOOK_RATIOS), (SMALL_OBJECT_SIZES, (1.3, 3.0, 0.25))):
        brute = box_iou(boxes, MultiLevelAnchors(sizes, ratios)(shapes)).amax(1)
        torch.testing.assert_close(best_anchor_iou(boxes, shapes, sizes, ratios), brute, atol=1e-6, rtol=0)


def test_coverage_and_fitness_by_hand():
    best = torch.tensor([0.2, 0.5, 0.8, 0.9])
    assert coverage(best) == pytest.approx({"boxes": 4, "covered": 0.75, "mean_iou": 0.6})
    assert fitness(best) == pytest.approx(((0.5 + 0.8 + 0.9) / 4, 0.6))
    assert coverage(torch.zeros(0)) == {"boxes": 0, "covered": 0.0, "mean_iou": 0.0}


def test_evolution_only_improves_and_keeps_the_layout():
    boxes = random_boxes(400, 0.03, 0.12)  # small: the book's anchors (0.2 and up) cover none of them
    start = fitness(best_anchor_iou(boxes, SHAPES, BOOK_SIZES, BOOK_RATIOS))
    assert start[0] == 0  # no box covered: the tie-break (mean best IoU) must lead the way out
    sizes, ratios = evolve_layout(boxes, SHAPES, BOOK_SIZES, BOOK_RATIOS, generations=150)
    assert (sizes, ratios) == evolve_layout(boxes, SHAPES, BOOK_SIZES, BOOK_RATIOS, generations=150)  # seeded
    assert [len(s) for s in sizes] == [2] * 5 and len(ratios) == 3
    flat = [s for level in sizes for s in level]
    assert flat == sorted(flat)  # still increasing from the finest map to the coarsest
    assert coverage(best_anchor_iou(boxes, SHAPES, sizes, ratios))["covered"] > 0.5
    unchanged = evolve_layout(boxes, SHAPES, BOOK_SIZES, BOOK_RATIOS, generations=0)
    assert unchanged == ([list(s) for s in BOOK_SIZES], list(BOOK_RATIOS))
