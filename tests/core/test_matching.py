import d2l_reference as book
import pytest
import torch
from torchvision.models.detection._utils import Matcher

from detector.core.matching import (
    BELOW_LOW,
    BETWEEN,
    batched_iou,
    match_anchors,
    match_iou,
    match_thresholds,
    sample_pos_neg,
)


def iou(rows):
    return torch.tensor(rows, dtype=torch.float32).T[None]  # rows are anchors; (1, G, A)


def test_greedy_then_threshold_on_literal_matrix():
    # 4 anchors x 2 boxes. Step 1: 0.9 (anchor 1, box 0) first, then box 1 takes its best free anchor:
    # anchor 2 (0.4). Step 2: anchor 0 has best IoU 0.6 >= 0.5 with box 0; anchor 3 stays background.
    m = iou([[0.6, 0.1], [0.9, 0.8], [0.2, 0.4], [0.1, 0.3]])
    assert match_iou(m, 0.5).tolist() == [[0, 0, 1, -1]]
    # a lower threshold lets anchor 3 in too
    assert match_iou(m, 0.3).tolist() == [[0, 0, 1, 1]]


def test_greedy_overrides_threshold_assignment():
    # anchor 0 prefers box 0 by threshold, but greedily box 1 takes anchor 0 after box 0 took anchor 1
    m = iou([[0.7, 0.65], [0.8, 0.1]])
    assert match_iou(m, 0.5).tolist() == [[1, 0]]


def test_ties_take_lowest_anchor_then_lowest_box():
    m = iou([[0.5, 0.5], [0.5, 0.5], [0.1, 0.1]])
    # flattened argmax picks (anchor 0, box 0), then (anchor 1, box 1); anchor 2 is under threshold
    assert match_iou(m, 0.5).tolist() == [[0, 1, -1]]


def test_box_without_overlap_takes_no_anchor():
    m = iou([[0.6, 0.0], [0.2, 0.0]])
    assert match_iou(m, 0.5).tolist() == [[0, -1]]


def test_padding_columns_never_match():
    anchors = torch.tensor([[0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 3.0, 3.0]])
    gt = torch.tensor([[[0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 3.0, 3.0]]])
    valid = torch.tensor([[True, False]])
    assert match_anchors(anchors, gt, valid).tolist() == [[0, -1]]
    all_padding = torch.zeros(1, 2, dtype=torch.bool)
    assert match_anchors(anchors, gt, all_padding).tolist() == [[-1, -1]]
    none = match_anchors(anchors, torch.zeros(3, 0, 4), torch.zeros(3, 0, dtype=torch.bool))
    assert none.tolist() == [[-1, -1]] * 3


def test_more_boxes_than_anchors():
    anchors = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    gt = torch.tensor([[[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.9, 0.9], [0.5, 0.5, 1.0, 1.0]]])
    assert match_anchors(anchors, gt, torch.ones(1, 3, dtype=torch.bool)).tolist() == [[0]]


def random_scene(generator, num_anchors=300, max_boxes=6):
    xy = torch.rand(num_anchors, 2, generator=generator)
    anchors = torch.cat((xy, xy + 0.05 + 0.3 * torch.rand(num_anchors, 2, generator=generator)), 1)
    n = int(torch.randint(1, max_boxes + 1, (1,), generator=generator))
    xy = torch.rand(n, 2, generator=generator) * 0.7
    boxes = torch.cat((xy, xy + 0.05 + 0.25 * torch.rand(n, 2, generator=generator)), 1)
    return anchors, boxes


def test_agrees_with_book_on_random_scenes():
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        anchors, boxes = random_scene(g)
        expected = book.assign_anchor_to_bbox(boxes, anchors)
        ours = match_anchors(anchors, boxes[None], torch.ones(1, len(boxes), dtype=torch.bool))[0]
        assert torch.equal(ours, expected)


def test_one_image_alone_equals_same_image_in_batch():
    g = torch.Generator().manual_seed(1)
    anchors, _ = random_scene(g)
    scenes = [random_scene(g)[1] for _ in range(5)] + [torch.zeros(0, 4)]
    G = max(len(s) for s in scenes)
    gt = torch.zeros(len(scenes), G, 4)
    valid = torch.zeros(len(scenes), G, dtype=torch.bool)
    for i, s in enumerate(scenes):
        gt[i, : len(s)], valid[i, : len(s)] = s, True
        gt[i, len(s):] = torch.tensor([0.0, 0.0, 1.0, 1.0])  # padding that would match anything if used
    batched = match_anchors(anchors, gt, valid)
    for i, s in enumerate(scenes):
        alone = match_anchors(anchors, s[None], torch.ones(1, len(s), dtype=torch.bool))[0]
        assert torch.equal(batched[i], alone)


def test_bad_input():
    anchors = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="gt_boxes must have shape"):
        match_anchors(anchors, torch.zeros(2, 4), torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="gt_valid"):
        match_anchors(anchors, torch.zeros(1, 2, 4), torch.ones(1, 2))
    bad = torch.tensor([[[0.5, 0.0, 0.1, 1.0]]])
    with pytest.raises(ValueError, match="gt_boxes"):
        match_anchors(anchors, bad, torch.ones(1, 1, dtype=torch.bool))
    # the same bad row as padding is fine
    assert match_anchors(anchors, bad, torch.zeros(1, 1, dtype=torch.bool)).tolist() == [[-1]]


def test_thresholds_literal():
    m = iou([[0.8, 0.1], [0.5, 0.2], [0.1, 0.2], [0.2, 0.4]])
    # anchor 3 reaches box 1's highest IoU (0.4): a low-quality match
    assert match_thresholds(m, 0.7, 0.3, allow_low_quality_matches=False).tolist() == [[0, BETWEEN, BELOW_LOW, BETWEEN]]
    assert match_thresholds(m, 0.7, 0.3, allow_low_quality_matches=True).tolist() == [[0, BETWEEN, BELOW_LOW, 1]]


@pytest.mark.parametrize("low_quality", [False, True])
def test_thresholds_agree_with_torchvision_matcher(low_quality):
    g = torch.Generator().manual_seed(2)
    matcher = Matcher(0.7, 0.3, allow_low_quality_matches=low_quality)
    images = [random_scene(g) for _ in range(4)]
    anchors = images[0][0]
    G = max(len(b) for _, b in images)
    gt = torch.zeros(len(images), G, 4)
    valid = torch.zeros(len(images), G, dtype=torch.bool)
    for i, (_, b) in enumerate(images):
        gt[i, : len(b)], valid[i, : len(b)] = b, True
    ours = match_thresholds(batched_iou(anchors, gt, valid), 0.7, 0.3, low_quality)
    for i, (_, b) in enumerate(images):
        expected = matcher(batched_iou(anchors, b[None], torch.ones(1, len(b), dtype=torch.bool))[0])
        assert torch.equal(ours[i], expected)


def test_sampler_counts_and_sets():
    g = torch.Generator().manual_seed(3)
    matches = torch.full((3, 1000), BELOW_LOW)
    matches[0, :10] = 0  # few positives: all taken, negatives fill up
    matches[1, :600] = 2  # many positives: capped at half
    matches[1, 600:700] = BETWEEN
    matches[2] = BETWEEN  # nothing to sample
    pos, neg = sample_pos_neg(matches, 256, 0.5, generator=g)
    assert pos.sum(1).tolist() == [10, 128, 0]
    assert neg.sum(1).tolist() == [246, 128, 0]
    assert not (pos & neg).any()
    assert (matches[pos] >= 0).all() and (matches[neg] == BELOW_LOW).all()
    # deterministic under a seeded generator, and random: two seeds pick different positives
    again = sample_pos_neg(matches, 256, 0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(again[0], pos) and torch.equal(again[1], neg)
    other = sample_pos_neg(matches, 256, 0.5, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(other[0][1], pos[1])


def test_ties_on_a_grid_agree_with_book():
    from detector.core.anchors import generate_anchors

    anchors = generate_anchors(4, 4, [0.25], [1])  # 16 square cells: boxes spanning cells tie between them
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.25], [0.25, 0.25, 0.75, 0.75], [0.5, 0.5, 1.0, 0.75], [0.0, 0.0, 0.5, 0.25]])
    expected = book.assign_anchor_to_bbox(boxes, anchors, iou_threshold=0.4)
    ours = match_anchors(anchors, boxes[None], torch.ones(1, 4, dtype=torch.bool), iou_threshold=0.4)[0]
    assert torch.equal(ours, expected)
    assert (ours >= 0).sum() >= 4  # every box, the duplicate included, got its own anchor


def test_every_matcher_takes_an_iou_exactly_at_its_threshold():
    """Boxes whose IoU with the box is exactly 1/2, 7/10 and 3/10 (integer areas over 10 or 2): at the threshold
    an anchor is in (the book's ``>=``, torchvision's ``Matcher`` and ``SSDMatcher``), just under it, out."""
    from detector.core.matching import match_ssd

    gt, valid = torch.tensor([[[0.0, 0.0, 2.0, 1.0]]]), torch.tensor([[True]])
    anchors = torch.tensor([[0.0, 0.0, 2.0, 1.0],    # IoU 1: the box's best
                            [0.0, 0.0, 1.0, 1.0],    # exactly 1/2
                            [0.0, 0.0, 0.98, 1.0]])  # 0.49
    assert match_anchors(anchors, gt, valid, 0.5).tolist() == [[0, 0, -1]]
    assert match_ssd(batched_iou(anchors, gt, valid), 0.5).tolist() == [[0, 0, -1]]
    gt = torch.tensor([[[0.0, 0.0, 10.0, 1.0]]])
    anchors = torch.tensor([[0.0, 0.0, 10.0, 1.0],  # 1
                            [0.0, 0.0, 7.0, 1.0],   # exactly 7/10: matched
                            [0.0, 0.0, 6.9, 1.0],   # 0.69: ignored
                            [0.0, 0.0, 3.0, 1.0],   # exactly 3/10: ignored, not background
                            [0.0, 0.0, 2.9, 1.0]])  # 0.29: background
    expected = [[0, 0, BETWEEN, BETWEEN, BELOW_LOW]]
    assert match_thresholds(batched_iou(anchors, gt, valid), 0.7, 0.3).tolist() == expected
    tv = Matcher(0.7, 0.3, allow_low_quality_matches=True)(batched_iou(anchors, gt, valid)[0])
    assert tv.tolist() == expected[0]  # torchvision's own, on the same IoUs
