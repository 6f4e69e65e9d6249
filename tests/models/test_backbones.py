import pytest
import torch

from detector.models.backbones import BACKBONES, MIN_INPUT, lenet


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_table_smoke(name):
    torch.manual_seed(0)
    net = BACKBONES[name](num_classes=7, in_channels=1)
    size = MIN_INPUT[name]
    x = torch.rand(2, 1, size, size)
    out = net(x)
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.sum().backward()
    net.eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, size + 13, size + 13)).shape == (1, 7)  # any larger size works too


def test_lenet_is_the_books_and_has_a_batchnorm_variant():
    net = lenet(10, 1)
    assert sum(p.numel() for p in net.parameters()) == 61706  # the book's LeNet-5 at 28 x 28
    assert net.features(torch.rand(1, 1, 28, 28)).shape == (1, 16, 5, 5)
    bn = lenet(10, 1, batch_norm=True)
    assert sum(isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)) for m in bn.modules()) == 4


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_resnets_give_feature_maps_at_strides_8_16_32(name):
    net = BACKBONES[name](10, 3).eval()
    with torch.no_grad():
        maps = net.feature_maps(torch.rand(1, 3, 256, 192))
    assert [m.shape[-2:] for m in maps] == [(32, 24), (16, 12), (8, 6)]
    assert [m.shape[1] for m in maps] == list(net.stage_channels)
    with pytest.raises(ValueError, match="only the ResNets"):
        lenet().feature_maps(torch.rand(1, 1, 28, 28))
