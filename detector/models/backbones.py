"""The classification networks of D2L's modern-CNN chapters, as the book builds them, in one table.

    from detector.models.backbones import BACKBONES
    net = BACKBONES["resnet18"](num_classes=10, in_channels=1)     # Fashion-MNIST
    logits = net(torch.rand(8, 1, 96, 96))                          # (8, 10)
    c3, c4, c5 = net.feature_maps(torch.rand(8, 3, 256, 256))       # ResNets: strides 8, 16, 32

Every network is a :class:`Classifier`: ``features`` (the body) then ``head`` (pooling and the classifier),
so that a detector can take the body and a pretrained checkpoint maps onto it by name. Each accepts any
input size its architecture allows: the fully connected heads pool adaptively to the size the book's input
gives (LeNet 5x5 at 28 px, AlexNet 5x5 and VGG 7x7 at 224 px).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detector.models.names import BACKBONE_MIN_INPUT
from detector.models.recipes import RECIPES  # noqa: F401 - re-exported: each network's default recipe


class Classifier(nn.Module):
    """``head(features(x))``. ``stages``: the indices in ``features`` whose outputs are the feature maps at
    strides 8, 16 and 32 (ResNets), for detectors."""

    def __init__(self, features: nn.Sequential, head: nn.Sequential, stages: Sequence[int] = (), stage_channels: Sequence[int] = ()):
        super().__init__()
        self.features, self.head = features, head
        self.stages, self.stage_channels = tuple(stages), tuple(stage_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def feature_maps(self, x: Tensor) -> list[Tensor]:
        """The outputs of ``features[i]`` for ``i`` in ``stages`` (strides 8, 16, 32 for the ResNets)."""
        if not self.stages:
            raise ValueError(f"{type(self).__name__} has no multi-scale stages (only the ResNets do)")
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.stages:
                outs.append(x)
        return outs


# --- LeNet (D2L 7.6; 6.6 in the 0.x editions) and its BatchNorm variant (D2L 8.5) --------------------------

def lenet(num_classes: int = 10, in_channels: int = 1, batch_norm: bool = False) -> Classifier:
    def act(n: int, two_d: bool) -> list[nn.Module]:
        bn = (nn.BatchNorm2d(n) if two_d else nn.BatchNorm1d(n)) if batch_norm else None
        return [bn, nn.Sigmoid()] if bn else [nn.Sigmoid()]

    features = nn.Sequential(nn.Conv2d(in_channels, 6, kernel_size=5, padding=2), *act(6, True), nn.AvgPool2d(2, 2),
                             nn.Conv2d(6, 16, kernel_size=5), *act(16, True), nn.AvgPool2d(2, 2))
    head = nn.Sequential(nn.AdaptiveAvgPool2d((5, 5)), nn.Flatten(), nn.Linear(16 * 5 * 5, 120), *act(120, False),
                         nn.Linear(120, 84), *act(84, False), nn.Linear(84, num_classes))
    return Classifier(features, head)


# --- AlexNet (D2L 8.1) -----------------------------------------------------------------------------------------------

def alexnet(num_classes: int = 10, in_channels: int = 3) -> Classifier:
    features = nn.Sequential(
        nn.Conv2d(in_channels, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
    head = nn.Sequential(nn.AdaptiveAvgPool2d((5, 5)), nn.Flatten(), nn.Linear(6400, 4096), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, num_classes))
    return Classifier(features, head)


# --- VGG-11 (D2L 8.2) ------------------------------------------------------------------------------------------------

VGG11_ARCH = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))  # (convs, channels) per block


def vgg_block(num_convs: int, in_channels: int, out_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU()]
        in_channels = out_channels
    return nn.Sequential(*layers, nn.MaxPool2d(2, 2))


def vgg11(num_classes: int = 10, in_channels: int = 3, width_divisor: int = 1) -> Classifier:
    """The book's VGG-11; it trains a narrower one (``width_divisor=4``) on Fashion-MNIST."""
    blocks, c = [], in_channels
    for n, out in VGG11_ARCH:
        blocks.append(vgg_block(n, c, out // width_divisor))
        c = out // width_divisor
    head = nn.Sequential(nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(), nn.Linear(c * 49, 4096 // width_divisor), nn.ReLU(),
                         nn.Dropout(0.5), nn.Linear(4096 // width_divisor, 4096 // width_divisor), nn.ReLU(),
                         nn.Dropout(0.5), nn.Linear(4096 // width_divisor, num_classes))
    return Classifier(nn.Sequential(*blocks), head)


# --- NiN (D2L 8.3) ---------------------------------------------------------------------------------------------------

def nin_block(in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding), nn.ReLU(),
                         nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
                         nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU())


def nin(num_classes: int = 10, in_channels: int = 3, book_relu: bool = False) -> Classifier:
    """The book's NiN, except that its class scores (the last block's last 1x1 conv) are not put through a ReLU:
    scores that cannot be negative leave a class whose units all died no way to recover. ``book_relu=True``
    keeps the book's ReLU (the same weights: ReLUs have none)."""
    features = nn.Sequential(nin_block(in_channels, 96, 11, 4, 0), nn.MaxPool2d(3, 2), nin_block(96, 256, 5, 1, 2),
                             nn.MaxPool2d(3, 2), nin_block(256, 384, 3, 1, 1), nn.MaxPool2d(3, 2), nn.Dropout(0.5))
    scores = nin_block(384, num_classes, 3, 1, 1)
    if not book_relu:
        scores = scores[:-1]
    head = nn.Sequential(scores, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())
    return Classifier(features, head)


# --- GoogLeNet (D2L 8.4) ---------------------------------------------------------------------------------------------

class Inception(nn.Module):
    """Four parallel paths concatenated on channels: 1x1; 1x1 then 3x3; 1x1 then 5x5; 3x3 max-pool then 1x1."""

    def __init__(self, in_channels: int, c1: int, c2: tuple[int, int], c3: tuple[int, int], c4: int):
        super().__init__()
        self.p1 = nn.Sequential(nn.Conv2d(in_channels, c1, 1), nn.ReLU())
        self.p2 = nn.Sequential(nn.Conv2d(in_channels, c2[0], 1), nn.ReLU(), nn.Conv2d(c2[0], c2[1], 3, padding=1), nn.ReLU())
        self.p3 = nn.Sequential(nn.Conv2d(in_channels, c3[0], 1), nn.ReLU(), nn.Conv2d(c3[0], c3[1], 5, padding=2), nn.ReLU())
        self.p4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(in_channels, c4, 1), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat((self.p1(x), self.p2(x), self.p3(x), self.p4(x)), dim=1)


def googlenet(num_classes: int = 10, in_channels: int = 3) -> Classifier:
    b1 = nn.Sequential(nn.Conv2d(in_channels, 64, 7, stride=2, padding=3), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1))
    b2 = nn.Sequential(nn.Conv2d(64, 64, 1), nn.ReLU(), nn.Conv2d(64, 192, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1))
    b3 = nn.Sequential(Inception(192, 64, (96, 128), (16, 32), 32), Inception(256, 128, (128, 192), (32, 96), 64),
                       nn.MaxPool2d(3, 2, padding=1))
    b4 = nn.Sequential(Inception(480, 192, (96, 208), (16, 48), 64), Inception(512, 160, (112, 224), (24, 64), 64),
                       Inception(512, 128, (128, 256), (24, 64), 64), Inception(512, 112, (144, 288), (32, 64), 64),
                       Inception(528, 256, (160, 320), (32, 128), 128), nn.MaxPool2d(3, 2, padding=1))
    b5 = nn.Sequential(Inception(832, 256, (160, 320), (32, 128), 128), Inception(832, 384, (192, 384), (48, 128), 128))
    head = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(1024, num_classes))
    return Classifier(nn.Sequential(b1, b2, b3, b4, b5), head)


# --- ResNet (D2L 8.6), with bottleneck blocks for ResNet-50 ---------------------------------------------------------

class Residual(nn.Module):
    """The book's residual block: 3x3 conv, BN, ReLU, 3x3 conv, BN, plus the input (through a 1x1 conv when the
    shape changes), then ReLU."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv3 = nn.Conv2d(in_channels, channels, 1, stride=stride) if stride != 1 or in_channels != channels else None
        self.bn1, self.bn2 = nn.BatchNorm2d(channels), nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (self.conv3(x) if self.conv3 is not None else x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), each with BN; shortcut through a 1x1 conv + BN when the shape changes."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        out = channels * self.expansion
        self.body = nn.Sequential(nn.Conv2d(in_channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU(),
                                  nn.Conv2d(channels, out, 1, bias=False), nn.BatchNorm2d(out))
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)) \
            if stride != 1 or in_channels != out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def resnet_stem(in_channels: int) -> nn.Sequential:
    """The book's b1: 7x7 conv stride 2, BN, ReLU, 3x3 max-pool stride 2 (stride 4 in all)."""
    return nn.Sequential(nn.Conv2d(in_channels, 64, 7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.MaxPool2d(3, stride=2, padding=1))


def resnet(depths: Sequence[int], block: type = Residual, num_classes: int = 10, in_channels: int = 3) -> Classifier:
    """A ResNet: the stem, then four stages of ``depths`` blocks at 64, 128, 256, 512 channels (x4 for
    bottlenecks); every stage but the first halves the resolution, so stages 2, 3, 4 are strides 8, 16, 32."""
    layers: list[nn.Module] = [resnet_stem(in_channels)]
    c = 64
    for i, (depth, channels) in enumerate(zip(depths, (64, 128, 256, 512))):
        blocks = []
        for j in range(depth):
            blocks.append(block(c, channels, stride=2 if i > 0 and j == 0 else 1))
            c = channels * block.expansion
        layers.append(nn.Sequential(*blocks))
    head = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(c, num_classes))
    e = block.expansion
    return Classifier(nn.Sequential(*layers), head, stages=(2, 3, 4), stage_channels=(128 * e, 256 * e, 512 * e))


def resnet18(num_classes: int = 10, in_channels: int = 3) -> Classifier:
    return resnet((2, 2, 2, 2), Residual, num_classes, in_channels)


def resnet34(num_classes: int = 10, in_channels: int = 3) -> Classifier:
    return resnet((3, 4, 6, 3), Residual, num_classes, in_channels)


def resnet50(num_classes: int = 10, in_channels: int = 3) -> Classifier:
    return resnet((3, 4, 6, 3), Bottleneck, num_classes, in_channels)


# --- DenseNet (D2L 8.7) ----------------------------------------------------------------------------------------------

def conv_block(in_channels: int, channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(), nn.Conv2d(in_channels, channels, 3, padding=1))


class DenseBlock(nn.Module):
    """``num_convs`` conv blocks, each seeing the concatenation of the input and every earlier output."""

    def __init__(self, num_convs: int, in_channels: int, growth_rate: int):
        super().__init__()
        self.net = nn.ModuleList(conv_block(in_channels + i * growth_rate, growth_rate) for i in range(num_convs))

    def forward(self, x: Tensor) -> Tensor:
        for blk in self.net:
            x = torch.cat((x, blk(x)), dim=1)
        return x


def transition_block(in_channels: int, channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(), nn.Conv2d(in_channels, channels, 1), nn.AvgPool2d(2, 2))


def densenet(num_classes: int = 10, in_channels: int = 3, growth_rate: int = 32,
             num_convs_in_dense_blocks: Sequence[int] = (4, 4, 4, 4)) -> Classifier:
    layers: list[nn.Module] = [resnet_stem(in_channels)]
    c = 64
    for i, n in enumerate(num_convs_in_dense_blocks):
        layers.append(DenseBlock(n, c, growth_rate))
        c += n * growth_rate
        if i != len(num_convs_in_dense_blocks) - 1:
            layers.append(transition_block(c, c // 2))
            c //= 2
    layers += [nn.BatchNorm2d(c), nn.ReLU()]
    head = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(c, num_classes))
    return Classifier(nn.Sequential(*layers), head)


BACKBONES = {
    "lenet": lenet,
    "alexnet": alexnet,
    "vgg11": vgg11,
    "nin": nin,
    "googlenet": googlenet,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "densenet": densenet,
}
MIN_INPUT = BACKBONE_MIN_INPUT  # the smallest square input each architecture allows (in names.py, without torch)


def xavier_init(net: nn.Module) -> nn.Module:
    """The book's ``init_cnn``: Xavier-uniform weights in every ``Linear`` and ``Conv2d`` (biases as they are)."""
    for m in net.modules():
        if type(m) in (nn.Linear, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
    return net
