import d2l_reference as book
import pytest
import torch

from detector.core.ssd_ops import assign_targets, postprocess

# D2L 14.4.3: the labelling example (dog, cat) and five anchors
GROUND_TRUTH = torch.tensor([[0, 0.1, 0.08, 0.52, 0.92], [1, 0.55, 0.2, 0.9, 0.88]])
ANCHORS = torch.tensor(
    [[0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4], [0.63, 0.05, 0.88, 0.98], [0.66, 0.45, 0.8, 0.8], [0.57, 0.3, 0.92, 0.9]]
)


def test_book_labelling_example():
    offsets, mask, cls = assign_targets(
        ANCHORS, GROUND_TRUTH[None, :, 1:], GROUND_TRUTH[None, :, 0].long(), torch.ones(1, 2, dtype=torch.bool)
    )
    assert cls.tolist() == [[0, 1, 2, 0, 2]]
    assert mask.tolist() == [[False, True, True, False, True]]
    # the book prints these offsets (its log has an eps of 1e-6, hence its 4.17e-06 for the 0 here)
    expected = torch.tensor(
        [[0, 0, 0, 0], [1.40, 10.0, 2.59, 7.18], [-1.20, 0.269, 1.68, -1.57], [0, 0, 0, 0], [-0.571, -1.00, 0.0, 0.626]]
    )
    torch.testing.assert_close(offsets[0], expected, atol=6e-3, rtol=0)


def pad(scenes, fill=(0.0, 0.0, 1.0, 1.0)):
    G = max([len(s) for s in scenes] + [1])
    boxes = torch.tensor(fill).repeat(len(scenes), G, 1)
    labels = torch.full((len(scenes), G), 7)
    valid = torch.zeros(len(scenes), G, dtype=torch.bool)
    for i, s in enumerate(scenes):
        boxes[i, : len(s)], labels[i, : len(s)], valid[i, : len(s)] = s[:, 1:], s[:, 0].long(), True
    return boxes, labels, valid


def random_labels(g, n):
    xy = torch.rand(n, 2, generator=g) * 0.7
    boxes = torch.cat((xy, xy + 0.05 + 0.25 * torch.rand(n, 2, generator=g)), 1)
    return torch.cat((torch.randint(0, 3, (n, 1), generator=g).float(), boxes), 1)


def test_agrees_with_book_multibox_target_and_batches():
    from detector.core.anchors import generate_anchors

    g = torch.Generator().manual_seed(0)
    anchors = torch.cat([generate_anchors(8, 8, [0.2, 0.3], [1, 2, 0.5]), generate_anchors(4, 4, [0.5, 0.6], [1, 2, 0.5])])
    scenes = [random_labels(g, n) for n in (1, 3, 5, 2)] + [torch.zeros(0, 5)]
    boxes, labels, valid = pad(scenes)
    offsets, mask, cls = assign_targets(anchors, boxes, labels, valid)
    assert offsets.shape == (5, len(anchors), 4) and mask.shape == cls.shape == (5, len(anchors))
    for i, s in enumerate(scenes[:-1]):
        b_off, b_mask, b_cls = book.multibox_target(anchors[None], s[None])
        torch.testing.assert_close(offsets[i].reshape(-1), b_off[0], atol=1e-3, rtol=1e-4)
        assert torch.equal(mask[i].repeat_interleave(4).float(), b_mask[0])
        assert torch.equal(cls[i], b_cls[0])
        alone = assign_targets(anchors, s[None, :, 1:], s[None, :, 0].long(), torch.ones(1, len(s), dtype=torch.bool))
        for a, b in zip(alone, (offsets, mask, cls)):
            assert torch.equal(a[0], b[i])
    # the image with no boxes: all background, zero offsets
    assert not mask[-1].any() and (cls[-1] == 0).all() and (offsets[-1] == 0).all()


def test_no_boxes_anywhere():
    offsets, mask, cls = assign_targets(ANCHORS, torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.long),
                                        torch.zeros(2, 0, dtype=torch.bool))
    assert offsets.shape == (2, 5, 4) and not mask.any() and (cls == 0).all()


def test_assign_targets_bad_labels():
    boxes, labels, valid = GROUND_TRUTH[None, :, 1:], GROUND_TRUTH[None, :, 0], torch.ones(1, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="gt_labels must be an integer"):
        assign_targets(ANCHORS, boxes, labels, valid)
    with pytest.raises(ValueError, match="negative label"):
        assign_targets(ANCHORS, boxes, torch.tensor([[0, -1]]), valid)


# D2L 14.4.4: the NMS example: four anchors, zero offsets, probabilities for (background, dog, cat)
NMS_ANCHORS = torch.tensor([[0.1, 0.08, 0.52, 0.92], [0.08, 0.2, 0.56, 0.95], [0.15, 0.3, 0.62, 0.91], [0.55, 0.2, 0.9, 0.88]])
NMS_PROBS = torch.tensor([[0.0] * 4, [0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.9]])


def nms_example_inputs():
    logits = NMS_PROBS.T.log()[None]  # (1, 4, 3): softmax gives the probabilities back
    return logits, torch.zeros(1, 4, 4), NMS_ANCHORS


def test_book_nms_example_class_agnostic():
    (out,) = postprocess(*nms_example_inputs(), nms_threshold=0.5, class_agnostic=True)
    # the book keeps the dog at 0.9 on anchor 0 and the cat at 0.9 on anchor 3; the rest are suppressed
    torch.testing.assert_close(out["scores"], torch.tensor([0.9, 0.9]))
    assert sorted(out["labels"].tolist()) == [0, 1]
    torch.testing.assert_close(out["boxes"][out["labels"].argsort()], NMS_ANCHORS[[0, 3]])


def test_book_nms_example_class_aware():
    (out,) = postprocess(*nms_example_inputs(), nms_threshold=0.5)
    # per class: cat keeps anchor 3 (0.9) and anchor 2 (0.3), whose IoU with anchor 3 is 0.08; dog keeps
    # anchor 0 (0.9) and anchor 3 (0.1), which overlaps no other dog box
    torch.testing.assert_close(out["scores"], torch.tensor([0.9, 0.9, 0.3, 0.1]))
    assert out["labels"].tolist() in ([0, 1, 1, 0], [1, 0, 1, 0])
    torch.testing.assert_close(out["boxes"][2:], NMS_ANCHORS[[2, 3]])


def test_postprocess_agrees_with_book_class_agnostic():
    g = torch.Generator().manual_seed(1)
    A = 200
    xy = torch.rand(A, 2, generator=g) * 0.8
    anchors = torch.cat((xy, xy + 0.1 + 0.1 * torch.rand(A, 2, generator=g)), 1)
    logits = torch.randn(1, A, 4, generator=g) * 3
    offsets = torch.randn(1, A, 4, generator=g) * 0.5
    (out,) = postprocess(logits, offsets, anchors, score_threshold=0.0, pre_nms_top_k=None, max_detections=A,
                         class_agnostic=True)
    probs = logits[0].softmax(-1)
    conf, _ = probs[:, 1:].max(1)
    boxes = book.offset_inverse(anchors, offsets[0])
    keep = book.nms(boxes, conf, 0.5)
    torch.testing.assert_close(out["scores"], conf[keep])
    torch.testing.assert_close(out["boxes"], boxes[keep])


def test_postprocess_batch_equals_alone_and_caps():
    g = torch.Generator().manual_seed(2)
    A, C = 300, 3
    xy = torch.rand(A, 2, generator=g) * 0.8
    anchors = torch.cat((xy, xy + 0.1 + 0.1 * torch.rand(A, 2, generator=g)), 1)
    logits = torch.randn(4, A, C + 1, generator=g) * 2
    offsets = torch.randn(4, A, 4, generator=g) * 0.3
    logits[2, :, 0] = 100.0  # image 2: everything is background -> no detections
    outs = postprocess(logits, offsets, anchors, max_detections=20)
    assert len(outs) == 4
    for i in range(4):
        (alone,) = postprocess(logits[i : i + 1], offsets[i : i + 1], anchors, max_detections=20)
        for key in ("boxes", "scores", "labels"):
            assert torch.equal(outs[i][key], alone[key])
        assert len(outs[i]["scores"]) <= 20
        assert (outs[i]["scores"][:-1] >= outs[i]["scores"][1:]).all()
        assert outs[i]["labels"].dtype == torch.long and ((outs[i]["labels"] >= 0) & (outs[i]["labels"] < C)).all()
    assert outs[0]["scores"].numel() == 20
    assert outs[2]["boxes"].shape == (0, 4) and outs[2]["scores"].shape == (0,)


def test_postprocess_top_k_and_threshold():
    logits, offsets, anchors = nms_example_inputs()
    (out,) = postprocess(logits, offsets, anchors, pre_nms_top_k=1)
    assert out["scores"].tolist() == pytest.approx([0.9])
    (out,) = postprocess(logits, offsets, anchors, score_threshold=0.95)
    assert out["boxes"].shape == (0, 4)


def test_postprocess_bad_shapes():
    logits, offsets, anchors = nms_example_inputs()
    with pytest.raises(ValueError, match="offsets must have shape"):
        postprocess(logits, offsets[:, :3], anchors)
    with pytest.raises(ValueError, match="anchors must have shape"):
        postprocess(logits, offsets, anchors[:3])
    with pytest.raises(ValueError, match="cls_logits"):
        postprocess(logits[0], offsets, anchors)


def test_empty_anchors_give_empty_outputs():
    offsets, mask, cls = assign_targets(torch.zeros(0, 4), GROUND_TRUTH[None, :, 1:], torch.tensor([[0, 1]]),
                                        torch.ones(1, 2, dtype=torch.bool))
    assert offsets.shape == (1, 0, 4) and mask.shape == cls.shape == (1, 0)
    (out,) = postprocess(torch.zeros(1, 0, 3), torch.zeros(1, 0, 4), torch.zeros(0, 4))
    assert out["boxes"].shape == (0, 4) and out["scores"].shape == (0,) and out["labels"].shape == (0,)
    assert postprocess(torch.zeros(0, 5, 3), torch.zeros(0, 5, 4), ANCHORS) == []
