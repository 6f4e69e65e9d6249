import math

import d2l_reference as book
import pytest
import torch
import torchvision

from detector.core.boxes import (
    batched_nms,
    box_area,
    box_convert,
    box_iou,
    check_boxes,
    clip_boxes,
    decode,
    encode,
    nms,
)


def random_boxes(n, generator=None, scale=1.0):
    xy = torch.rand(n, 2, generator=generator) * scale
    wh = torch.rand(n, 2, generator=generator) * scale * 0.5 + 1e-3
    return torch.cat((xy, xy + wh), dim=1)


def test_box_convert_literal_and_round_trip():
    xyxy = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    assert torch.equal(box_convert(xyxy, "xyxy", "xywh"), torch.tensor([[10.0, 20.0, 20.0, 40.0]]))
    assert torch.equal(box_convert(xyxy, "xyxy", "cxcywh"), torch.tensor([[20.0, 40.0, 20.0, 40.0]]))
    boxes = random_boxes(50, torch.Generator().manual_seed(0))
    for fmt in ("xywh", "cxcywh"):
        torch.testing.assert_close(box_convert(box_convert(boxes, "xyxy", fmt), fmt, "xyxy"), boxes)
        torch.testing.assert_close(box_convert(boxes, "xyxy", fmt), torchvision.ops.box_convert(boxes, "xyxy", fmt))
    with pytest.raises(ValueError, match="unknown box format"):
        box_convert(boxes, "xyxy", "yolo")


def test_box_area_and_iou_literal():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]])
    b = torch.tensor([[1.0, 1.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]])
    assert torch.equal(box_area(a), torch.tensor([4.0, 4.0]))
    expected = torch.tensor([[1 / 4, 0.0], [1 / 4, 0.0]])
    torch.testing.assert_close(box_iou(a, b), expected)


def test_box_iou_matches_book_and_torchvision_and_batches():
    g = torch.Generator().manual_seed(1)
    a, b = random_boxes(40, g), random_boxes(30, g)
    torch.testing.assert_close(box_iou(a, b), book.box_iou(a, b))
    torch.testing.assert_close(box_iou(a, b), torchvision.ops.box_iou(a, b))
    batch_a, batch_b = torch.stack([a, a.flip(0)]), torch.stack([b, b * 0.5])
    batched = box_iou(batch_a, batch_b)
    assert batched.shape == (2, 40, 30)
    for i in range(2):
        torch.testing.assert_close(batched[i], box_iou(batch_a[i], batch_b[i]))


def test_box_iou_degenerate_and_empty():
    point = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    assert box_iou(point, point).item() == 0.0  # empty union: 0, not NaN
    assert box_iou(torch.zeros(0, 4), point).shape == (0, 1)
    assert box_iou(torch.zeros(2, 0, 4), torch.zeros(2, 3, 4)).shape == (2, 0, 3)
    with pytest.raises(ValueError, match="box_iou takes"):
        box_iou(torch.zeros(2, 4), torch.zeros(3, 5))


def test_clip_boxes():
    boxes = torch.tensor([[-5.0, 3.0, 120.0, 90.0]])
    assert torch.equal(clip_boxes(boxes, height=80, width=100), torch.tensor([[0.0, 3.0, 100.0, 80.0]]))


@pytest.mark.parametrize("weights", [(10.0, 10.0, 5.0, 5.0), (1.0, 1.0, 1.0, 1.0)])
def test_decode_inverts_encode(weights):
    g = torch.Generator().manual_seed(2)
    anchors, boxes = random_boxes(100, g), random_boxes(100, g)
    offsets = encode(anchors, boxes, weights)
    torch.testing.assert_close(decode(anchors, offsets, weights), boxes, atol=1e-5, rtol=1e-5)
    # batched: anchors [A, 4] broadcast against offsets [B, A, 4]
    batch = torch.stack([offsets, offsets * 0.5])
    decoded = decode(anchors, batch, weights)
    torch.testing.assert_close(decoded[0], boxes, atol=1e-5, rtol=1e-5)


def test_encode_decode_match_book():
    g = torch.Generator().manual_seed(3)
    anchors, boxes = random_boxes(64, g), random_boxes(64, g)
    torch.testing.assert_close(encode(anchors, boxes), book.offset_boxes(anchors, boxes), atol=1e-4, rtol=1e-4)
    offsets = torch.randn(64, 4, generator=g)
    torch.testing.assert_close(decode(anchors, offsets), book.offset_inverse(anchors, offsets))


def test_encode_matches_torchvision_box_coder():
    from torchvision.models.detection._utils import BoxCoder

    g = torch.Generator().manual_seed(4)
    anchors, boxes = random_boxes(64, g, 100.0), random_boxes(64, g, 100.0)
    coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
    torch.testing.assert_close(encode(anchors, boxes, (1.0, 1.0, 1.0, 1.0)), coder.encode_single(boxes, anchors))


def test_decode_clamps_wild_predictions():
    anchors = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    boxes = decode(anchors, torch.tensor([[0.0, 0.0, 1e4, 1e4]]))
    assert torch.isfinite(boxes).all()
    side = boxes[0, 2] - boxes[0, 0]
    torch.testing.assert_close(side, torch.tensor(16.0 * 1000 / 16))
    assert math.isclose(side.item(), 1000.0, rel_tol=1e-5)


def test_nms_agrees_with_book_and_torchvision():
    g = torch.Generator().manual_seed(5)
    for trial in range(5):
        boxes, scores = random_boxes(200, g), torch.rand(200, generator=g)
        for thr in (0.3, 0.5, 0.7):
            keep = nms(boxes, scores, thr)
            assert torch.equal(keep, torchvision.ops.nms(boxes, scores, thr))
            assert torch.equal(keep, book.nms(boxes, scores, thr))


def test_batched_nms_keeps_groups_apart():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [0]
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 1]), 0.5).tolist() == [0, 1]
    g = torch.Generator().manual_seed(6)
    boxes, scores = random_boxes(300, g), torch.rand(300, generator=g)
    labels = torch.randint(0, 4, (300,), generator=g)
    assert torch.equal(batched_nms(boxes, scores, labels, 0.5), torchvision.ops.batched_nms(boxes, scores, labels, 0.5))


def test_nms_empty_input():
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).shape == (0,)
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).shape == (0,)


@pytest.mark.parametrize(
    "boxes, message",
    [
        (torch.tensor([[5.0, 0.0, 1.0, 1.0]]), "x1 <= x2"),
        (torch.tensor([[0.0, 0.0, float("nan"), 1.0]]), "NaN or inf"),
        (torch.tensor([[0.0, 0.0, float("inf"), 1.0]]), "NaN or inf"),
        (torch.zeros(3, 5), r"shape \[\.\.\., 4\]"),
        (torch.zeros(3, 4, dtype=torch.long), "floating-point"),
    ],
)
def test_bad_boxes_are_refused_with_the_argument_name(boxes, message):
    with pytest.raises(ValueError, match=message):
        check_boxes(boxes, "gt_boxes")
    with pytest.raises(ValueError, match="boxes"):
        nms(boxes, torch.zeros(boxes.shape[0]), 0.5)


def test_nms_checks_scores_shape():
    with pytest.raises(ValueError, match="scores must have shape"):
        nms(torch.zeros(3, 4), torch.zeros(2), 0.5)


def test_box_iou_broadcasts_and_supports_autograd():
    g = torch.Generator().manual_seed(7)
    a = random_boxes(6, g).reshape(2, 3, 4)
    anchors = random_boxes(5, g)
    torch.testing.assert_close(box_iou(a, anchors), box_iou(a, anchors.expand(2, 5, 4)))
    b = random_boxes(5, g).requires_grad_()
    box_iou(random_boxes(3, g), b).sum().backward()  # no in-place error, a finite gradient
    assert b.grad is not None and torch.isfinite(b.grad).all()


def test_merge_boxes_is_yolov5s_weighted_mean():
    """Each kept box becomes the score-weighted mean of the candidates overlapping it with IoU above the threshold
    (YOLOv5's ``merge``: ``weights = (iou > thr) * scores``, written out here pair by pair); a candidate of
    weight 0 never counts, and a box with nothing to merge (a degenerate one) stays as it was."""
    from detector.core.boxes import merge_boxes

    cands = torch.tensor([[10.0, 10, 50, 50], [12, 8, 54, 48], [30, 30, 70, 70], [11, 11, 49, 52]])
    scores = torch.tensor([0.9, 0.6, 0.8, 0.3])
    kept = cands[[0, 2]]
    weights = scores.expand(2, 4).clone()
    weights[0, 3] = 0.0  # e.g. another class: may not merge into the first box
    got = merge_boxes(kept, cands.expand(2, 4, 4), weights, 0.5)
    for k, box in enumerate(kept):
        w = [float(weights[k, j]) if float(box_iou(box[None], cands[j][None])) > 0.5 else 0.0 for j in range(4)]
        want = sum(wj * cands[j] for j, wj in enumerate(w)) / sum(w)
        torch.testing.assert_close(got[k], want)
    assert not torch.equal(got[0], kept[0]) and torch.equal(got[1], kept[1])  # the third box overlaps no other
    empty = torch.tensor([[5.0, 5, 5, 5]])  # zero area: IoU undefined, nothing merges
    torch.testing.assert_close(merge_boxes(empty, empty[None], torch.ones(1, 1), 0.5), empty)


def test_postprocess_merge_moves_boxes_not_detections():
    """``postprocess(merge=True)``: the same detections, scores and labels as plain NMS; each box the weighted
    mean of its image's candidates of its class, so boxes of another class or image never pull on it."""
    from detector.core.ssd_ops import postprocess

    torch.manual_seed(0)
    anchors = torch.rand(60, 2) * 0.6
    anchors = torch.cat((anchors, anchors + 0.1 + torch.rand(60, 2) * 0.3), 1)
    logits, offsets = torch.randn(2, 60, 3) * 3, torch.randn(2, 60, 4)
    plain = postprocess(logits, offsets, anchors, nms_threshold=0.5)
    merged = postprocess(logits, offsets, anchors, nms_threshold=0.5, merge=True)
    every = postprocess(logits, offsets, anchors, nms_threshold=1.0, max_detections=10_000)  # all candidates
    for p, m, e in zip(plain, merged, every, strict=True):
        assert torch.equal(p["scores"], m["scores"]) and torch.equal(p["labels"], m["labels"])
        for box, label, got in zip(p["boxes"], p["labels"], m["boxes"]):
            near = (e["labels"] == label) & (box_iou(box[None], e["boxes"])[0] > 0.5)
            want = (e["scores"][near, None] * e["boxes"][near]).sum(0) / e["scores"][near].sum()
            torch.testing.assert_close(got, want)
    assert any(not torch.equal(p["boxes"], m["boxes"]) for p, m in zip(plain, merged))
