from collections import OrderedDict

import pytest
import torch
import torchvision

from detector.core.anchors import grid_anchors
from detector.models.faster_rcnn import faster_rcnn, pool_rois
from detector.models.rpn import pad_per_image

TARGETS = [{"boxes": torch.tensor([[10.0, 20, 60, 70], [64, 64, 120, 110]]), "labels": torch.tensor([0, 2])},
           {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]  # an image with no boxes


@pytest.mark.parametrize("kwargs", [{}, {"fpn": False, "roi_op": "pool", "anchor_sizes": (32, 64, 128)}])
def test_losses_and_detections(kwargs):
    torch.manual_seed(0)
    model = faster_rcnn(3, **kwargs)
    images = torch.randint(0, 256, (2, 3, 128, 128), dtype=torch.uint8)
    losses = model.train()(images, TARGETS)
    assert set(losses) == {"loss_objectness", "loss_rpn_box", "loss_classifier", "loss_box_reg"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for det in out:
        assert det["boxes"].shape[1] == 4 and len(det["boxes"]) <= 100
        assert ((det["boxes"] >= 0) & (det["boxes"] <= 128)).all()
        assert ((det["labels"] >= 0) & (det["labels"] < 3)).all()
        assert (det["scores"][:-1] >= det["scores"][1:]).all()


def test_one_image_alone_equals_same_image_in_batch():
    torch.manual_seed(1)
    model = faster_rcnn(2).eval()
    images = torch.randint(0, 256, (3, 3, 128, 128), dtype=torch.uint8)
    with torch.no_grad():
        batch, alone = model(images)[1], model(images[1:2])[0]
    torch.testing.assert_close(batch["boxes"], alone["boxes"], atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(batch["scores"], alone["scores"], atol=1e-4, rtol=1e-4)


def test_pool_rois_matches_torchvision():
    torch.manual_seed(2)
    feats = [torch.rand(2, 8, 32, 32), torch.rand(2, 8, 16, 16), torch.rand(2, 8, 8, 8), torch.rand(2, 8, 4, 4)]
    boxes = [torch.tensor([[0.0, 0, 20, 20], [10, 10, 200, 180]]), torch.tensor([[30.0, 40, 90, 150], [5, 5, 250, 250]])]
    rois = torch.cat([torch.cat((torch.full((2, 1), float(i)), b), 1) for i, b in enumerate(boxes)])
    single = pool_rois(feats[:1], [8], rois, 7, "align")
    torch.testing.assert_close(single, torchvision.ops.roi_align(feats[0], rois, 7, 1 / 8, 2, aligned=True))
    pooled = torchvision.ops.roi_pool(feats[0], rois, 7, 1 / 8)
    torch.testing.assert_close(pool_rois(feats[:1], [8], rois, 7, "pool"), pooled)
    # multi-scale: torchvision's MultiScaleRoIAlign on levels 3..5 (P6 is only for the RPN there too)
    msra = torchvision.ops.MultiScaleRoIAlign(["0", "1", "2"], 7, 2, canonical_scale=224, canonical_level=4)
    expected = msra(OrderedDict((str(i), f) for i, f in enumerate(feats[:3])), boxes, [(256, 256)] * 2)
    torch.testing.assert_close(pool_rois(feats[:3], [8, 16, 32], rois, 7, "align", aligned=False), expected)


@pytest.mark.parametrize("layout, first_bin", [({}, 2.0), ({"roi_aligned": False}, 2.5)])
def test_rois_pool_at_pixel_centres_by_default(layout, first_bin):
    """The project's Faster R-CNN samples RoIs at pixel centres (detectron2's aligned RoI Align); torchvision's
    layout (``from_torchvision`` sets ``roi_aligned=False``) samples half a cell further. On a one-level map whose
    value is the column index, a RoI over columns 2..9 pools bins 2, 3, ..., 8 (or 2.5, ..., 8.5)."""
    model = faster_rcnn(2, fpn=False, **layout)
    model.box_head = torch.nn.Identity()
    stride = model.strides[0]
    feats = [torch.arange(16.0).repeat(1, 1, 16, 1)]  # (1, 1, 16, 16): value = column
    rois = torch.tensor([[0.0, 2 * stride, 2 * stride, 9 * stride, 9 * stride]])
    bins = model.pool(feats, rois).reshape(7, 7)
    expected = first_bin + torch.arange(7.0)
    torch.testing.assert_close(bins, expected.expand(7, 7))


def test_grid_anchors_match_torchvision_shapes():
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    ours = grid_anchors(4, 5, 16, [32, 64], [0.5, 1.0, 2.0])
    assert ours.shape == (4 * 5 * 6, 4)
    gen = AnchorGenerator(((32, 64),), ((0.5, 1.0, 2.0),))
    base = gen.cell_anchors[0] if gen.cell_anchors else gen.generate_anchors((32, 64), (0.5, 1.0, 2.0))
    wh_ours = (ours[:6, 2:] - ours[:6, :2])
    wh_tv = (base[:, 2:] - base[:, :2])
    torch.testing.assert_close(wh_ours, wh_tv, atol=1.0, rtol=0)  # torchvision rounds its base anchors
    assert torch.allclose((ours[:6, :2] + ours[:6, 2:]) / 2, torch.tensor([8.0, 8.0]))  # the first cell's centre


def test_pad_per_image():
    image = torch.tensor([1, 0, 1, 1, 0])
    boxes = torch.arange(20, dtype=torch.float32).view(5, 4)
    out, valid = pad_per_image(image, boxes, 3, 2)
    assert valid.tolist() == [[True, True], [True, True], [False, False]]
    assert out[1, 0].tolist() == boxes[0].tolist() and out[1, 1].tolist() == boxes[2].tolist()
    assert out[0, 1].tolist() == boxes[4].tolist()


@pytest.mark.slow
def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model = faster_rcnn(2, rpn_post_nms_top_n=(300, 300), box_batch_size_per_image=64)
    images = torch.full((2, 3, 128, 128), 30, dtype=torch.uint8)
    images[0, :, 20:70, 10:60] = 240
    images[1, :, 64:110, 64:120] = 240
    images[1, 0, 10:40, 80:120] = 250
    targets = [{"boxes": torch.tensor([[10.0, 20, 60, 70]]), "labels": torch.tensor([0])},
               {"boxes": torch.tensor([[64.0, 64, 120, 110], [80, 10, 120, 40]]), "labels": torch.tensor([0, 1])}]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 1e-3)
    first = None
    for _ in range(80):
        loss = sum(model.train()(images, targets).values())
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first
    with torch.no_grad():
        det = model.eval()(images[:1])[0]
    best = det["boxes"][0]
    iou = torchvision.ops.box_iou(best[None], targets[0]["boxes"])[0, 0]
    assert det["labels"][0] == 0 and iou > 0.5
