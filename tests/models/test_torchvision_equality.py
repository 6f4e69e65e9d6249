"""Our Faster R-CNN against torchvision's, on the same weights (``from_torchvision``), stage by stage.

Random weights give near-uniform scores that test nothing, so the RPN's and the box head's class layers are
scaled up with a fixed seed: many detections pass the score threshold, with distinct scores. Images: three
photographs of ``skimage.data`` and a generated one, of different sizes; ``min_size=320`` keeps it quick.
"""

import pytest
import torch
import torchvision

from detector.models.rcnn_transform import transform_images
from detector.models.zoo_rcnn import from_torchvision

skimage_data = pytest.importorskip("skimage.data")
BUILDERS = {"v1": torchvision.models.detection.fasterrcnn_resnet50_fpn,
            "v2": torchvision.models.detection.fasterrcnn_resnet50_fpn_v2}


def confident(tv_model):
    """Scale the class layers (x3), new biases from a fixed seed: confident, varied scores."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in (tv_model.rpn.head.cls_logits, tv_model.roi_heads.box_predictor.cls_score):
            layer.weight.mul_(3.0)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g))
    return tv_model


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    tv = confident(BUILDERS["v1"](weights=None, weights_backbone=None, min_size=320, max_size=512)).eval()
    return tv, from_torchvision(tv)


def photos():
    g = torch.Generator().manual_seed(1)
    images = [torch.from_numpy(f()).permute(2, 0, 1).float() / 255 for f in
              (skimage_data.astronaut, skimage_data.coffee, skimage_data.chelsea)]  # 512x512, 400x600, 300x451
    return images + [torch.rand(3, 203, 157, generator=g)]


def as_rows(boxes):
    """Rows sorted lexicographically: boxes compared as sets (their order depends on tied scores)."""
    for col in reversed(range(boxes.shape[1])):
        boxes = boxes[boxes[:, col].sort(stable=True).indices]
    return boxes


def assert_same_detections(theirs, ours, label_shift=1):
    for a, b in zip(theirs, ours):
        assert len(a["scores"]) == len(b["scores"]) > 20
        assert len(a["scores"].unique()) > 10  # varied, not all tied
        rows_a = torch.cat((a["boxes"], a["scores"][:, None], a["labels"][:, None].float() - label_shift), 1)
        rows_b = torch.cat((b["boxes"], b["scores"][:, None], b["labels"][:, None].float()), 1)
        torch.testing.assert_close(as_rows(rows_a), as_rows(rows_b), atol=1e-4, rtol=0)


def test_stage_by_stage_v1(pair):
    tv, ours = pair
    images = photos()
    with torch.no_grad():
        image_list, _ = tv.transform(images)
        x, sizes, _ = transform_images(images, ours.min_size, ours.max_size, ours.size_divisible)
        torch.testing.assert_close(x, image_list.tensors, atol=1e-6, rtol=0)
        assert sizes.tolist() == [list(s) for s in image_list.image_sizes]
        tv_feats = tv.backbone(image_list.tensors)
        feats = ours.features(x)
        for a, b in zip(tv_feats.values(), feats):
            torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
        tv_props, _ = tv.rpn(image_list, tv_feats)
        props, valid, _ = ours.rpn(feats, sizes, tuple(x.shape[-2:]))
        for a, b, v in zip(tv_props, props, valid):
            torch.testing.assert_close(as_rows(b[v]), as_rows(a), atol=1e-4, rtol=0)
        # the RoI head on torchvision's proposals: pooled features and class scores
        pooled = tv.roi_heads.box_head(tv.roi_heads.box_roi_pool(tv_feats, tv_props, image_list.image_sizes))
        tv_logits, _ = tv.roi_heads.box_predictor(pooled)
        rois = torch.cat([torch.cat((torch.full((len(p), 1), float(i)), p), 1) for i, p in enumerate(tv_props)])
        logits = ours.cls_score(ours.pool(feats, rois))
        torch.testing.assert_close(logits.softmax(-1), tv_logits.softmax(-1), atol=1e-5, rtol=0)
        assert_same_detections(tv(images), ours(images))


def test_batch_tensor_and_one_image_v1(pair):
    tv, ours = pair
    images = torch.rand(2, 3, 150, 250, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert_same_detections(tv(list(images)), ours(images))


def test_training_losses_v1(pair):
    """The same losses given the same sampled anchors and proposals: the samplers take every candidate."""
    tv, ours = pair
    images = photos()[1:3]
    targets = [{"boxes": torch.tensor([[50.0, 40, 300, 280], [320, 100, 560, 390]]), "labels": torch.tensor([3, 17])},
               {"boxes": torch.tensor([[100.0, 30, 420, 290]]), "labels": torch.tensor([16])}]  # torchvision's 1..90
    ours_targets = [{"boxes": t["boxes"], "labels": t["labels"] - 1} for t in targets]
    for sampler in (tv.rpn.fg_bg_sampler, tv.roi_heads.fg_bg_sampler):
        sampler.batch_size_per_image = 10**6
    ours.rpn.batch_size_per_image = ours.box_batch_size_per_image = 10**6
    try:
        with torch.no_grad():
            theirs = tv.train()([i.clone() for i in images], [dict(t) for t in targets])
            mine = ours.train()(images, ours_targets)
    finally:
        tv.eval(), ours.eval()
    assert set(theirs) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
    mine["loss_rpn_box_reg"] = mine.pop("loss_rpn_box")
    for k in theirs:
        torch.testing.assert_close(mine[k], theirs[k], atol=1e-5, rtol=1e-4)


def test_v2_detections():
    torch.manual_seed(3)
    tv = confident(BUILDERS["v2"](weights=None, weights_backbone=None, min_size=256, max_size=400)).eval()
    ours = from_torchvision(tv)
    assert len(ours.box_head) == 7  # 4 conv + BN layers, flatten, one FC and its ReLU
    images = photos()[2:]
    with torch.no_grad():
        assert_same_detections(tv(images), ours(images))


MOBILE = {"large": torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn,
          "320": torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn}


@pytest.mark.parametrize("name", sorted(MOBILE))
def test_mobilenet_stage_by_stage_detections_and_losses(name):
    """torchvision's MobileNetV3 Faster R-CNNs (the FPN on the body's two stride-32 maps, five anchor sizes per
    level, the RPN's 0.05 objectness threshold): features, proposals, detections and losses."""
    torch.manual_seed(4)
    tv = MOBILE[name](weights=None, weights_backbone=None, num_classes=9, min_size=256, max_size=400)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():  # torchvision's own init leaves the body's maps near 1e-8: every objectness tied
        for m in tv.backbone.body.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, generator=g)
    tv = confident(tv).eval()
    ours = from_torchvision(tv)
    assert ours.strides == [32, 32, 64] and ours.roi_levels == 2 and ours.rpn.score_threshold == 0.05
    images = photos()
    with torch.no_grad():
        image_list, _ = tv.transform(images)
        x, sizes, _ = transform_images(images, ours.min_size, ours.max_size, ours.size_divisible)
        torch.testing.assert_close(x, image_list.tensors, atol=1e-6, rtol=0)
        tv_feats = tv.backbone(image_list.tensors)
        feats = ours.features(x)
        for a, b in zip(tv_feats.values(), feats):
            torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
        tv_props, _ = tv.rpn(image_list, tv_feats)
        props, valid, _ = ours.rpn(feats, sizes, tuple(x.shape[-2:]))
        for a, b, v in zip(tv_props, props, valid):
            torch.testing.assert_close(as_rows(b[v]), as_rows(a), atol=1e-4, rtol=0)
        assert_same_detections(tv(images), ours(images))
    targets = [{"boxes": torch.tensor([[50.0, 40, 300, 280]]), "labels": torch.tensor([3])},
               {"boxes": torch.tensor([[100.0, 30, 420, 290]]), "labels": torch.tensor([6])}]
    for sampler in (tv.rpn.fg_bg_sampler, tv.roi_heads.fg_bg_sampler):
        sampler.batch_size_per_image = 10**6
    ours.rpn.batch_size_per_image = ours.box_batch_size_per_image = 10**6
    with torch.no_grad():
        theirs = tv.train()([i.clone() for i in images[1:3]], [dict(t) for t in targets])
        mine = ours.train()(images[1:3], [{"boxes": t["boxes"], "labels": t["labels"] - 1} for t in targets])
    mine["loss_rpn_box_reg"] = mine.pop("loss_rpn_box")
    for k in theirs:
        torch.testing.assert_close(mine[k], theirs[k], atol=1e-5, rtol=1e-4)


def test_other_models_are_refused():
    model = torchvision.models.detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None)
    with pytest.raises(ValueError, match="torchvision Faster R-CNN"):
        from_torchvision(model)
    with pytest.raises(ValueError, match="torchvision Faster R-CNN"):
        from_torchvision(torchvision.models.resnet18())


def test_rpn_with_different_pre_and_post_nms_top_n():
    """Every shipped configuration keeps as many proposals before NMS (per level) as after (per image); here they
    differ (300 per level, 40 per image, eval): the proposals are still torchvision's, 40 per image."""
    torch.manual_seed(0)
    tv = confident(BUILDERS["v1"](weights=None, weights_backbone=None, min_size=320, max_size=512,
                                  rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=40)).eval()
    ours = from_torchvision(tv)
    images = photos()[:2]
    with torch.no_grad():
        image_list, _ = tv.transform(images)
        x, sizes, _ = transform_images(images, ours.min_size, ours.max_size, ours.size_divisible)
        tv_props, _ = tv.rpn(image_list, tv.backbone(image_list.tensors))
        props, valid, _ = ours.rpn(ours.features(x), sizes, tuple(x.shape[-2:]))
    assert [len(p) for p in tv_props] == [40, 40] and valid.sum(1).tolist() == [40, 40]
    for a, b, v in zip(tv_props, props, valid):
        torch.testing.assert_close(as_rows(b[v]), as_rows(a), atol=1e-4, rtol=0)
