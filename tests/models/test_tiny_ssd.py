import pytest
import torch

from detector.core.losses import box_loss, cls_loss
from detector.models.registry import MODELS, build_model


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_table_smoke(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=3)
    side = max(256, getattr(model, "img_size", None) or 0)  # the zoo SSDs' own input (300, 320)
    images = torch.randint(0, 256, (2, 3, side, side), dtype=torch.uint8)
    targets = [{"boxes": torch.tensor([[10.0, 20, 80, 90], [100, 100, 250, 200]]), "labels": torch.tensor([0, 2])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]  # an image with no boxes
    model.train()
    losses = model(images, targets)
    assert list(losses) == list(model.loss_names) and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.eval()
    with torch.no_grad():
        out = model(images)
        if name in ("tiny_ssd", "tiny_ssd_plus", "resnet_ssd"):  # the book's SSDs: 5,444 anchors at 256 px
            cls, off, anchors = model.head_outputs(images)
            assert anchors.shape == (5444, 4) and cls.shape == (2, 5444, 4) and off.shape == (2, 5444, 4)
    assert len(out) == 2
    for det in out:
        assert det["boxes"].shape[1] == 4 and det["scores"].shape == det["labels"].shape
        assert ((det["boxes"] >= 0) & (det["boxes"] <= side)).all()
        assert ((det["labels"] >= 0) & (det["labels"] < 3)).all()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_list_of_images_of_different_sizes(name):
    """The contract's other form: a list of ``[3, H, W]`` of different sizes, in training and in eval; boxes
    come back in each image's own pixels; a list of same-size images gives the batch tensor's detections."""
    torch.manual_seed(0)
    model = build_model(name, num_classes=3)
    side = max(256, getattr(model, "img_size", None) or 0)  # the zoo SSDs' own input (300, 320)
    images = [torch.randint(0, 256, (3, side * 3 // 4, side), dtype=torch.uint8),
              torch.randint(0, 256, (3, side, side * 5 // 8), dtype=torch.uint8)]
    targets = [{"boxes": torch.tensor([[10.0, 20, 80, 90]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[100.0, 100, 150, 200]]), "labels": torch.tensor([2])}]
    losses = model.train()(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        out = model(images, post={"score_threshold": 0.0})
        batch = torch.stack([images[0], images[0].flip(-1)])
        from_list, from_batch = model(list(batch)), model(batch)
    assert len(out) == 2
    for det, image in zip(out, images):
        h, w = image.shape[-2:]
        assert len(det["boxes"]) > 0 and (det["boxes"] >= 0).all()
        assert (det["boxes"][:, 0::2] <= w).all() and (det["boxes"][:, 1::2] <= h).all()
        assert det["boxes"][:, 2].max() > 0.5 * w or det["boxes"][:, 3].max() > 0.5 * h  # spans its own image
    for a, b in zip(from_list, from_batch):
        assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["scores"], b["scores"])


def test_one_image_alone_equals_same_image_in_batch():
    torch.manual_seed(1)
    model = build_model("tiny_ssd_plus", 2).eval()
    images = torch.randint(0, 256, (3, 3, 128, 128), dtype=torch.uint8)
    with torch.no_grad():
        batch = model(images)
        alone = model(images[1:2])[0]
    torch.testing.assert_close(batch[1]["boxes"], alone["boxes"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(batch[1]["scores"], alone["scores"], atol=1e-5, rtol=1e-4)


def test_list_and_padded_targets_give_the_same_losses():
    torch.manual_seed(2)
    model = build_model("tiny_ssd", 2).train()
    images = torch.rand(2, 3, 128, 128)
    listed = [{"boxes": torch.tensor([[5.0, 5, 60, 60]]), "labels": torch.tensor([1])},
              {"boxes": torch.tensor([[30.0, 40, 90, 100], [0, 0, 20, 30]]), "labels": torch.tensor([0, 1])}]
    padded = {"boxes": torch.tensor([[[5.0, 5, 60, 60], [0, 0, 0, 0]], [[30.0, 40, 90, 100], [0, 0, 20, 30]]]),
              "labels": torch.tensor([[1, -1], [0, 1]]), "valid": torch.tensor([[True, False], [True, True]])}
    torch.manual_seed(3)
    a = model(images, listed)
    torch.manual_seed(3)
    b = model(images, padded)
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_training_mode_needs_targets_and_bad_images_are_refused():
    model = build_model("tiny_ssd", 1)
    with pytest.raises(ValueError, match="needs targets"):
        model(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        model.eval()(torch.rand(3, 64, 64))
    with pytest.raises(ValueError, match="unknown model"):
        build_model("yolo", 2)


def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model = build_model("tiny_ssd_plus", 2)
    images = torch.randint(0, 256, (4, 3, 128, 128), dtype=torch.uint8)
    images[:, :, 20:60, 30:90] = 250  # bright objects where the boxes are
    images[2:, :, 70:120, 10:50] = 5
    targets = [{"boxes": torch.tensor([[30.0, 20, 90, 60]]), "labels": torch.tensor([0])}] * 2 + \
              [{"boxes": torch.tensor([[30.0, 20, 90, 60], [10, 70, 50, 120]]), "labels": torch.tensor([0, 1])}] * 2
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    first = None
    for _ in range(60):
        loss = sum(model(images, targets).values())
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.25 * first
    model.eval()
    with torch.no_grad():
        det = model(images[2:3])[0]
    assert det["labels"][:2].sort().values.tolist() == [0, 1]


def test_losses_literal():
    # 1 image, 6 anchors: one positive; hard negative mining keeps the 3 hardest negatives
    logits = torch.tensor([[[0.0, 2.0], [3.0, 0.0], [0.0, 1.0], [0.0, 2.0], [0.0, 3.0], [2.0, 0.0]]])
    targets = torch.tensor([[1, 0, 0, 0, 0, 0]])
    ce = torch.nn.functional.cross_entropy(logits[0], targets[0], reduction="none")
    hardest = ce[1:].sort(descending=True).values[:3].sum()
    torch.testing.assert_close(cls_loss(logits, targets, "hnm"), ce[0] + hardest)
    torch.testing.assert_close(cls_loss(logits, targets, "ce"), ce.mean())
    p = torch.exp(-ce)
    torch.testing.assert_close(cls_loss(logits, targets, "focal"), ((1 - p) ** 2 * ce).sum())
    pred, tgt = torch.tensor([[[1.0, 0, 0, 0], [5, 5, 5, 5]]]), torch.zeros(1, 2, 4)
    mask = torch.tensor([[True, False]])
    torch.testing.assert_close(box_loss(pred, tgt, mask, "l1"), torch.tensor(1.0 / 8))
    torch.testing.assert_close(box_loss(pred, tgt, mask, "smooth_l1"), torch.tensor(0.5))
    with pytest.raises(ValueError, match="cls loss"):
        cls_loss(logits, targets, "nope")


def test_giou_loss_is_torchvisions():
    """``giou_loss`` equals torchvision's ``generalized_box_iou_loss`` pair by pair (overlapping, disjoint, nested
    and equal boxes), and ``smooth_l1+giou`` adds it, weighted, over the matched anchors only."""
    from torchvision.ops import generalized_box_iou_loss

    from detector.core.boxes import decode, encode
    from detector.core.losses import GIOU_WEIGHT, giou_loss
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(64, 2, generator=g)
    a = torch.cat((xy, xy + 0.05 + torch.rand(64, 2, generator=g)), 1)
    xy = torch.rand(64, 2, generator=g)
    b = torch.cat((xy, xy + 0.05 + torch.rand(64, 2, generator=g)), 1)
    b[:4] = a[:4]  # equal
    b[4:8] = torch.cat((a[4:8, :2] + 0.01, a[4:8, 2:] - 0.01), 1)  # nested
    b[8:12] = a[8:12] + 5  # far apart
    torch.testing.assert_close(giou_loss(a, b), generalized_box_iou_loss(a, b, eps=1e-7))
    assert giou_loss(a[:4], b[:4]).abs().max() < 1e-5 and (giou_loss(a[8:12], b[8:12]) > 1).all()

    anchors = torch.tensor([[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.8], [0.0, 0.0, 1.0, 1.0]])
    target = encode(anchors, torch.tensor([[0.12, 0.1, 0.45, 0.38], [0.5, 0.55, 0.85, 0.8], [0.2, 0.2, 0.3, 0.3]]))[None]
    pred = target + torch.tensor([[[0.5, -0.3, 0.2, 0.1], [0.0, 0.4, -0.2, 0.3], [9.0, 9.0, 9.0, 9.0]]])
    mask = torch.tensor([[True, True, False]])  # the third anchor is not matched: its wild offsets count for nothing
    both = box_loss(pred, target, mask, "smooth_l1+giou", anchors=anchors)
    overlap = giou_loss(decode(anchors[:2], pred[0, :2]), decode(anchors[:2], target[0, :2])).sum() / 2
    torch.testing.assert_close(both, box_loss(pred, target, mask, "smooth_l1") + GIOU_WEIGHT * overlap)
    assert overlap > 0 and box_loss(target, target, mask, "smooth_l1+giou", anchors=anchors).abs() < 1e-5
    with pytest.raises(ValueError, match="needs the anchors"):
        box_loss(pred, target, mask, "smooth_l1+giou")


def test_giou_box_loss_trains():
    """A TinySSD with ``box_loss="smooth_l1+giou"`` takes training steps that lower its loss on one batch."""
    torch.manual_seed(0)
    model = build_model("tiny_ssd_plus", num_classes=1, box_loss="smooth_l1+giou").train()
    images = torch.randint(0, 256, (2, 3, 128, 128), dtype=torch.uint8)
    targets = [{"boxes": torch.tensor([[10.0, 20, 80, 90]]), "labels": torch.tensor([0])},
               {"boxes": torch.tensor([[30.0, 30, 120, 100]]), "labels": torch.tensor([0])}]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    first = None
    for _ in range(15):
        losses = model(images, targets)
        loss = losses["loss_cls"] + losses["loss_box"]
        first = losses["loss_box"].item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.isfinite(loss) and model(images, targets)["loss_box"].item() < first


@pytest.mark.parametrize("name", sorted(MODELS))
def test_postprocess_settings_are_per_call(name):
    """``post`` changes one call's detections and nothing on the model: the next call without it gives the
    defaults' detections again."""
    torch.manual_seed(0)
    model = build_model(name, num_classes=3).eval()
    defaults = dict(model.post_defaults)
    images = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8)
    with torch.no_grad():
        before = model(images)
        scores = torch.cat([d["scores"] for d in before])
        assert len(scores) > 6, "random weights should give many detections above the default threshold"
        cut = float(scores.median())
        strict = model(images, post={"score_threshold": cut, "max_detections": 3})
        after = model(images)
    assert model.post_defaults == defaults
    for d in strict:
        assert len(d["scores"]) <= 3 and (d["scores"] > cut - 1e-6).all()
    assert sum(len(d["scores"]) for d in strict) < len(scores)
    for a, b in zip(before, after):
        assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["scores"], b["scores"])
    with pytest.raises(ValueError, match="unknown postprocess settings"):
        model(images, post={"nms": 0.5})


def test_model_names_without_torch_equal_the_tables():
    from detector.models import names
    from detector.models.backbones import BACKBONES

    assert set(names.DETECTORS) == set(MODELS)
    assert set(names.BACKBONES) == set(BACKBONES)


@pytest.mark.parametrize("name", ["tiny_ssd", "resnet_ssd"])
def test_feature_shapes_place_the_models_own_anchors(name):
    """The maps' shapes without images (what --anchors auto measures coverage on): the model's anchors there are
    the ones its forward pass uses, and the call leaves the model in its mode."""
    model = build_model(name, 3).train()
    assert model.feature_shapes(256, 256) == [(32, 32), (16, 16), (8, 8), (4, 4), (1, 1)] and model.training
    shapes = model.feature_shapes(96, 160)
    model.eval()
    _, _, anchors = model.head_outputs(torch.zeros(1, 3, 96, 160, dtype=torch.uint8))
    assert torch.equal(model.anchor_gen(shapes), anchors)


def test_the_anchor_models_are_the_ssd_family():
    """--anchors auto is offered for the models with the SSD's ``sizes`` and ``ratios`` keywords."""
    from detector.models.names import ANCHOR_MODELS
    from detector.models.ssd import SSD

    assert all(isinstance(build_model(name, 2), SSD) for name in ANCHOR_MODELS)
    assert set(MODELS) - set(ANCHOR_MODELS) == {"faster_rcnn"}


def test_boxes_of_a_non_square_batch_land_in_each_images_pixels():
    """The network's normalized boxes scale by the padded batch's width and height (x by W, y by H), then clip to
    each image: one anchor [0.25, 0.5, 0.75, 1] with zero offsets and a sure class, literal boxes out."""
    model = build_model("tiny_ssd", 2).eval()
    model.img_size = None  # eval on the batch as given, no fitting to a square input

    def head_outputs(x):
        B = x.shape[0]
        return (torch.tensor([[[-10.0, 10.0, -10.0]]]).expand(B, 1, 3), torch.zeros(B, 1, 4),
                torch.tensor([[0.25, 0.5, 0.75, 1.0]]))

    model.head_outputs = head_outputs
    with torch.no_grad():
        (wide,) = model(torch.zeros(1, 3, 64, 128, dtype=torch.uint8))
        both = model([torch.zeros(3, 64, 128, dtype=torch.uint8), torch.zeros(3, 96, 48, dtype=torch.uint8)])
    assert wide["boxes"].tolist() == [[32.0, 32.0, 96.0, 64.0]] and wide["labels"].tolist() == [0]
    # padded to 96 x 128: [32, 48, 96, 96], then each image's own clip
    assert [d["boxes"].tolist() for d in both] == [[[32.0, 48.0, 96.0, 64.0]], [[32.0, 48.0, 48.0, 96.0]]]
