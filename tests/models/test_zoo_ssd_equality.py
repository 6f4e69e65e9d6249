"""Our SSD300 and SSDlite against torchvision's, on the same weights (``from_torchvision``): the transformed batch,
every level's features, the default boxes, the head outputs, the final detections (as sets) and the training
losses.

Seeded weights that make the test mean something: the backbones re-initialized (Kaiming, a fixed seed) so that
features vary, the class layers scaled and given random biases so that many detections pass with distinct
scores. Images: three photographs of ``skimage.data`` and a generated one of another size, as floats in [0, 1].
"""

import pytest
import torch
import torchvision
from test_torchvision_equality import as_rows

from detector.core.contract import normalize_images
from detector.core.geometry import fit_images
from detector.models.zoo_ssd import from_torchvision

skimage_data = pytest.importorskip("skimage.data")
NAMES = ["ssdlite320_mobilenet_v3_large", "ssd300_vgg16"]


def seeded(name: str):
    torch.manual_seed(0)
    tv = getattr(torchvision.models.detection, name)(weights=None, weights_backbone=None, num_classes=6)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in tv.backbone.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, generator=g)
        if name == "ssd300_vgg16":  # its input is in 0..255 (std 1/255): the first layer brings it to about 1
            tv.backbone.features[0].weight.div_(100.0)
        for m in tv.head.classification_head.module_list:
            last = m[-1] if isinstance(m, torch.nn.Sequential) else m
            last.weight.mul_(5.0 if name.startswith("ssdlite") else 0.2)
            last.bias.copy_(torch.randn(last.bias.shape, generator=g))
    return tv.eval()


@pytest.fixture(scope="module", params=NAMES)
def pair(request):
    tv = seeded(request.param)
    return tv, from_torchvision(tv)


def images():
    g = torch.Generator().manual_seed(1)
    photos = [torch.from_numpy(f()).permute(2, 0, 1).float() / 255 for f in
              (skimage_data.astronaut, skimage_data.coffee, skimage_data.chelsea)]  # 512x512, 400x600, 300x451
    return photos + [torch.rand(3, 203, 157, generator=g)]


@torch.no_grad()
def test_batch_features_anchors_and_heads(pair):
    tv, ours = pair
    ims = images()
    image_list, _ = tv.transform(ims)
    x, _ = fit_images(ims, ours.img_size, ours.letterbox, ours.resize)
    torch.testing.assert_close(normalize_images(x, ours.image_mean, ours.image_std), image_list.tensors,
                               atol=1e-4, rtol=1e-5)
    tv_feats = list(tv.backbone(image_list.tensors).values())
    h = image_list.tensors
    for level, block in enumerate(ours.blocks):
        h = block(h)
        seen = h if ours.level_norms is None else ours.level_norms[level](h)
        torch.testing.assert_close(seen, tv_feats[level], atol=1e-4, rtol=1e-4)
        assert seen.abs().mean() > 1e-3  # features that carry something
    cls, offsets, anchors = ours.head_outputs(x)
    torch.testing.assert_close(anchors * ours.img_size, tv.anchor_generator(image_list, tv_feats)[0], atol=1e-4, rtol=0)
    head = tv.head(tv_feats)
    torch.testing.assert_close(cls, head["cls_logits"], atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(offsets, head["bbox_regression"], atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_detections_as_sets(pair):
    tv, ours = pair
    ims = images()
    theirs, mine = tv(ims), ours(ims)
    for a, b in zip(theirs, mine):
        assert len(a["scores"]) == len(b["scores"]) > 20 and len(a["scores"].unique()) > 10
        rows_a = torch.cat((a["boxes"], a["scores"][:, None], a["labels"][:, None].float() - 1), 1)
        rows_b = torch.cat((b["boxes"], b["scores"][:, None], b["labels"][:, None].float()), 1)
        torch.testing.assert_close(as_rows(rows_b), as_rows(rows_a), atol=1e-3, rtol=0)


def test_training_losses(pair):
    tv, ours = pair
    ims = images()[:2]
    # boxes whose best anchors are unique: where two anchors tie exactly (a small box inside several anchors of
    # one size), torchvision's and our IoUs, computed in different frames, may break the tie differently
    targets = [{"boxes": torch.tensor([[40.0, 60, 300, 400], [100, 20, 180, 90]]), "labels": torch.tensor([1, 3])},
               {"boxes": torch.tensor([[200.0, 150, 420, 330]]), "labels": torch.tensor([5])}]
    torch.manual_seed(0)
    theirs = tv.train()(ims, [dict(t) for t in targets])
    tv.eval()
    x, frames = fit_images(ims, ours.img_size, ours.letterbox, ours.resize)  # as the data pipeline sizes a batch
    scale = [torch.tensor([ours.img_size / f[1], ours.img_size / f[0]] * 2) for f in frames.tolist()]
    mine = ours.train()({"images": x}["images"], [{"boxes": t["boxes"] * s, "labels": t["labels"] - 1}
                                                   for t, s in zip(targets, scale)])
    ours.eval()
    torch.testing.assert_close(mine["loss_cls"], theirs["classification"], rtol=1e-4, atol=0)
    torch.testing.assert_close(mine["loss_box"], theirs["bbox_regression"], rtol=1e-4, atol=0)
