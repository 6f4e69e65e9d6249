"""Property-based tests (hypothesis) of the core: box ops, anchors, matching, NMS, on random, degenerate,
huge, tiny and NaN boxes and on empty inputs."""

import math

import pytest
import torch
from d2l_reference import assign_anchor_to_bbox
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from detector.core.anchors import generate_anchors
from detector.core.boxes import (
    batched_nms,
    box_convert,
    box_iou,
    check_boxes,
    clip_boxes,
    decode,
    encode,
    nms,
)
from detector.core.matching import match_anchors

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

coord = st.floats(-1e4, 1e4, allow_nan=False)
extent = st.one_of(st.just(0.0), st.floats(1e-3, 1e4))  # zero (degenerate), tiny to large


@st.composite
def boxes(draw, min_n=0, max_n=12, lo=coord, size=extent):
    n = draw(st.integers(min_n, max_n))
    rows = []
    for _ in range(n):
        x, y, w, h = draw(lo), draw(lo), draw(size), draw(size)
        rows.append([x, y, x + w, y + h])
    return torch.tensor(rows, dtype=torch.float32).reshape(n, 4)


positive = st.floats(1e-2, 1e3)  # positive extents for the ops that need them


@SETTINGS
@given(boxes(), boxes())
def test_iou_is_a_symmetric_ratio(a, b):
    iou = box_iou(a, b)
    assert iou.shape == (len(a), len(b))
    assert torch.isfinite(iou).all() and (iou >= 0).all() and (iou <= 1 + 1e-5).all()
    torch.testing.assert_close(iou, box_iou(b, a).T)
    if len(a) and len(b):  # the batched form agrees with the plain one
        torch.testing.assert_close(box_iou(a[None], b[None])[0], iou)


@SETTINGS
@given(boxes(min_n=1, size=positive))
def test_a_box_overlaps_itself_fully(a):
    assert torch.allclose(box_iou(a, a).diagonal(), torch.ones(len(a)), atol=1e-4)


def test_iou_on_empty_degenerate_and_huge():
    assert box_iou(torch.zeros(0, 4), torch.zeros(3, 4)).shape == (0, 3)
    point = torch.tensor([[5.0, 5.0, 5.0, 5.0]])
    assert box_iou(point, point).item() == 0.0  # empty union: 0, not NaN
    huge = torch.tensor([[0.0, 0.0, 1e30, 1e30]])  # areas overflow fp32: still a number in [0, 1]
    assert 0.0 <= box_iou(huge, huge).item() <= 1.0


@SETTINGS
@given(boxes(min_n=1, size=positive), st.floats(0.02, 50), st.floats(0.02, 50), st.floats(-3, 3), st.floats(-3, 3))
def test_decode_inverts_encode(anchors, sw, sh, sx, sy):
    cxcywh = box_convert(anchors, "xyxy", "cxcywh")
    w, h = cxcywh[:, 2] * sw, cxcywh[:, 3] * sh
    cx, cy = cxcywh[:, 0] + sx * cxcywh[:, 2], cxcywh[:, 1] + sy * cxcywh[:, 3]
    targets = box_convert(torch.stack((cx, cy, w, h), 1), "cxcywh", "xyxy")
    for weights in ((10.0, 10.0, 5.0, 5.0), (1.0, 1.0, 1.0, 1.0)):
        back = decode(anchors, encode(anchors, targets, weights), weights)
        scale = targets.abs().amax(1, keepdim=True).clamp(min=1.0)
        assert torch.allclose(back / scale, targets / scale, atol=1e-4)


@SETTINGS
@given(boxes(size=positive))
def test_convert_round_trips_and_clip_stays_inside(b):
    for fmt in ("cxcywh", "xywh"):
        back = box_convert(box_convert(b, "xyxy", fmt), fmt, "xyxy")
        assert torch.allclose(back, b, atol=1e-2, rtol=1e-5)
    c = clip_boxes(b, 480.0, 640.0)
    assert (c[:, 0::2] >= 0).all() and (c[:, 0::2] <= 640).all() and (c[:, 1::2] >= 0).all() and (c[:, 1::2] <= 480).all()
    assert torch.equal(clip_boxes(c, 480.0, 640.0), c)


@SETTINGS
@given(st.data(), st.floats(0.0, 1.0))
def test_nms_keeps_a_set_no_pair_of_which_overlaps_too_much(data, thr):
    b = data.draw(boxes(max_n=30, lo=st.floats(0, 200), size=st.floats(1, 100)))
    scores = torch.tensor(data.draw(st.lists(st.floats(0, 1), min_size=len(b), max_size=len(b))),
                          dtype=torch.float32)
    keep = nms(b, scores, thr)
    assert len(set(keep.tolist())) == len(keep)
    assert (scores[keep][1:] <= scores[keep][:-1]).all()  # by decreasing score
    if len(keep) > 1:
        iou = box_iou(b[keep], b[keep])
        iou.fill_diagonal_(0)
        assert (iou <= thr + 1e-5).all()
    removed = sorted(set(range(len(b))) - set(keep.tolist()))
    if removed:  # every removed box is covered by a kept box with at least its score
        cover = box_iou(b[removed], b[keep]) > thr - 1e-5
        assert (cover & (scores[keep][None] >= scores[removed][:, None])).any(1).all()


@SETTINGS
@given(st.data(), st.floats(0.1, 0.9))
def test_batched_nms_is_nms_within_each_label(data, thr):
    b = data.draw(boxes(max_n=25, lo=st.floats(0, 100), size=st.floats(1, 60)))
    n = len(b)
    scores = torch.tensor(data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n, unique=True)),
                          dtype=torch.float32)
    labels = torch.tensor(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), dtype=torch.int64)
    keep = set(batched_nms(b, scores, labels, thr).tolist())
    expected = set()
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        expected |= set(idx[nms(b[idx], scores[idx], thr)].tolist())
    assert keep == expected


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_boxes_are_refused_with_a_message(bad):
    b = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, bad, 2.0, 2.0]])
    for call in (lambda: nms(b, torch.ones(2), 0.5), lambda: batched_nms(b, torch.ones(2), torch.zeros(2, dtype=torch.long), 0.5),
                 lambda: check_boxes(b), lambda: match_anchors(b, b[None], torch.ones(1, 2, dtype=torch.bool))):
        with pytest.raises(ValueError, match="NaN or inf"):
            call()


@SETTINGS
@given(st.integers(1, 12), st.integers(1, 12), st.lists(st.floats(0.01, 1.5), min_size=1, max_size=4),
       st.lists(st.floats(0.1, 10), min_size=1, max_size=4))
def test_anchors_count_centres_and_shapes(h, w, sizes, ratios):
    a = generate_anchors(h, w, sizes, ratios)
    k = len(sizes) + len(ratios) - 1
    assert a.shape == (h * w * k, 4) and torch.isfinite(a).all()
    assert ((a[:, 2] - a[:, 0]) > 0).all() and ((a[:, 3] - a[:, 1]) > 0).all()
    centres = box_convert(a, "xyxy", "cxcywh")[:, :2].reshape(h, w, k, 2)
    assert torch.allclose(centres[..., 0], ((torch.arange(w) + 0.5) / w)[None, :, None].expand(h, w, k), atol=1e-5)
    assert torch.allclose(centres[..., 1], ((torch.arange(h) + 0.5) / h)[:, None, None].expand(h, w, k), atol=1e-5)
    ratio = (a[:, 2] - a[:, 0]) / (a[:, 3] - a[:, 1]) * w / h  # width/height in pixels of a square image
    expected = torch.tensor([ratios[0]] * len(sizes) + list(ratios[1:])).repeat(h * w)
    assert torch.allclose(ratio, expected.float(), rtol=1e-3)


@pytest.mark.parametrize(("sizes", "ratios"), [([], [1.0]), ([0.5], []), ([0.0], [1.0]), ([-0.1], [1.0]),
                                               ([float("nan")], [1.0]), ([0.5], [float("nan")])])
def test_anchors_refuse_bad_sizes_and_ratios(sizes, ratios):
    with pytest.raises(ValueError, match="sizes|ratios"):
        generate_anchors(4, 4, sizes, ratios)


def greedy_finds_overlaps(iou: torch.Tensor) -> bool:
    """Whether each of the book's greedy steps (best remaining anchor-box pair, then both are discarded) picks a
    pair that overlaps: then ours must equal the book's exactly (ours gives a box with no free overlapping
    anchor none, the book an arbitrary one: the documented deviation)."""
    iou = iou.clone()
    for _ in range(iou.shape[1]):
        k = int(torch.argmax(iou))
        a, g = divmod(k, iou.shape[1])
        if iou[a, g] <= 0:
            return False
        iou[a, :], iou[:, g] = -1.0, -1.0
    return True


@st.composite
def clustered_scene(draw):
    """A grid of anchors (the book's ``multibox_prior``) and 2 to 6 boxes around one point, so that boxes
    contest the same anchors."""
    fh, fw = draw(st.integers(2, 6)), draw(st.integers(2, 6))
    anchors = generate_anchors(fh, fw, [draw(st.floats(0.1, 0.6)), draw(st.floats(0.05, 0.3))], [1.0, 2.0, 0.5])
    cx, cy = draw(st.floats(0.2, 0.8)), draw(st.floats(0.2, 0.8))
    rows = []
    for _ in range(draw(st.integers(2, 6))):
        x, y = cx + draw(st.floats(-0.12, 0.12)), cy + draw(st.floats(-0.12, 0.12))
        w, h = draw(st.floats(0.05, 0.5)), draw(st.floats(0.05, 0.5))
        rows.append([x - w / 2, y - h / 2, x + w / 2, y + h / 2])
    return anchors, torch.tensor(rows)


def check_against_the_book(anchors, gt, thr) -> bool:
    """Our matching against the book's on one scene; returns whether boxes contested a best anchor and the
    assignments were compared exactly."""
    iou = box_iou(anchors, gt)
    ours = match_anchors(anchors, gt[None], torch.ones(1, len(gt), dtype=torch.bool), thr)[0]
    best = iou.max(1)
    assert (ours[best.values >= thr] >= 0).all()  # every anchor over the threshold is positive
    assert ours.max() < len(gt)
    compared = greedy_finds_overlaps(iou)
    if compared:
        assert torch.equal(ours, assign_anchor_to_bbox(gt, anchors, iou_threshold=thr))
        assert set(ours.tolist()) >= set(range(len(gt)))  # and every box got an anchor
    return compared and len(iou.argmax(0).unique()) < len(gt)


# tied IoUs are filtered out (assume below), and Hypothesis' simplest values (interval ends) tie often, so some
# seeds filter more than its health check allows; the seeded test below checks that contested scenes are met
@settings(SETTINGS, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(clustered_scene(), st.floats(0.1, 0.9))
def test_matching_is_the_books_when_boxes_contest_anchors(scene, thr):
    anchors, gt = scene
    iou = box_iou(anchors, gt)
    flat = iou[iou > 0]
    assume(len(flat.unique()) == len(flat))  # exact float ties make the visiting order matter; not tested here
    check_against_the_book(anchors, gt, thr)


def test_contested_scenes_are_exercised_and_match_the_book():
    """300 seeded scenes of the same kind: many of them contested (two boxes share their best anchor) and
    compared with the book's assignment exactly (156 of 300 with this seed)."""
    gen = torch.Generator().manual_seed(0)
    contested = 0
    for _ in range(300):
        r = torch.rand(8, generator=gen)
        anchors = generate_anchors(int(2 + r[0] * 5), int(2 + r[1] * 5), [0.1 + 0.5 * float(r[2]), 0.1], [1, 2, 0.5])
        n = int(2 + r[3] * 5)
        centre = 0.3 + 0.4 * r[4:6]
        xy = centre + (torch.rand(n, 2, generator=gen) - 0.5) * 0.24
        wh = 0.05 + 0.45 * torch.rand(n, 2, generator=gen)
        gt = torch.cat([xy - wh / 2, xy + wh / 2], 1)
        contested += check_against_the_book(anchors, gt, 0.2 + 0.6 * float(r[6]))
    assert contested >= 100, f"only {contested} of 300 scenes were contested and compared"


@SETTINGS
@given(st.data(), st.floats(0.1, 0.9))
def test_matching_is_the_books_on_random_scenes(data, thr):
    anchors = data.draw(boxes(min_n=1, max_n=40, lo=st.floats(0, 1), size=st.floats(0.01, 0.6)))
    gt = data.draw(boxes(min_n=1, max_n=6, lo=st.floats(0, 1), size=st.floats(0.01, 0.8)))
    iou = box_iou(anchors, gt)
    flat = iou[iou > 0]
    assume(len(flat.unique()) == len(flat))
    check_against_the_book(anchors, gt, thr)


def test_matching_empty_and_padding_rows():
    anchors = generate_anchors(2, 2, [0.5], [1.0])
    none = match_anchors(anchors, torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.bool))
    assert none.shape == (2, 4) and (none == -1).all()
    padded = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [math.nan] * 4]])  # padding rows may hold anything
    out = match_anchors(anchors, padded, torch.tensor([[True, False]]))
    assert set(out.flatten().tolist()) <= {-1, 0} and (out == 0).any()
