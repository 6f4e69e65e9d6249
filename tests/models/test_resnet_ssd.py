import pytest
import torch
import torchvision

from detector.engine.checkpoint import save_checkpoint
from detector.models.backbones import BACKBONES
from detector.models.checkpoint import CheckpointError
from detector.models.resnet_body import load_backbone
from detector.models.resnet_ssd import ResNetSSD


def classifier_checkpoint(path, name="resnet18"):
    net = BACKBONES[name](5, 3)
    save_checkpoint({"model": net.state_dict(), "model_name": name, "task": "classify", "classes": list("abcde")}, path)
    return net


def test_classifier_body_loads_into_the_detector(tmp_path):
    torch.manual_seed(0)
    net = classifier_checkpoint(tmp_path / "cls.pt")
    det = ResNetSSD(3, backbone="resnet18")
    report = load_backbone(det, str(tmp_path / "cls.pt"))
    assert report["missing_in_body"] == [] and report["loaded"] == report["body_tensors"]
    torch.testing.assert_close(det.blocks[0][0][0].weight, net.features[0][0].weight)  # the stem's conv
    torch.testing.assert_close(det.blocks[2][1].conv2.weight, net.features[4][1].conv2.weight)  # stage 4
    with torch.no_grad():  # the body computes what the classifier's feature maps are
        x = torch.rand(1, 3, 128, 128)
        det.eval(), net.eval()
        c5 = det.blocks[2](det.blocks[1](det.blocks[0](x)))
        torch.testing.assert_close(c5, net.feature_maps(x)[2])


def test_torchvision_weights_load_into_tv_backbones(tmp_path, monkeypatch):
    tv = torchvision.models.resnet18(weights=None)
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(tv.state_dict(), hub / "resnet18-f37072fd.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    det = ResNetSSD(2, backbone="tv_resnet18")
    report = load_backbone(det, "imagenet")  # found in the torch hub cache
    assert report["missing_in_body"] == []
    torch.testing.assert_close(det.blocks[0][0][0].weight, tv.conv1.weight)
    torch.testing.assert_close(det.blocks[1][1].bn2.running_var, tv.layer3[1].bn2.running_var)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(CheckpointError, match="nothing is downloaded at run time"):
        load_backbone(ResNetSSD(2, backbone="tv_resnet18"), "imagenet")


def test_mismatches_are_clear_errors(tmp_path):
    classifier_checkpoint(tmp_path / "r34.pt", "resnet34")
    with pytest.raises(CheckpointError, match="holds a resnet34, the detector's backbone is resnet18"):
        load_backbone(ResNetSSD(2, backbone="resnet18"), str(tmp_path / "r34.pt"))
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / "r50.pth")
    with pytest.raises(CheckpointError, match="does not fit the tv_resnet18 body"):
        load_backbone(ResNetSSD(2, backbone="tv_resnet18"), str(tmp_path / "r50.pth"))
    with pytest.raises(ValueError, match="backbone='vgg11': unknown"):
        ResNetSSD(2, backbone="vgg11")


def test_frozen_stages_do_not_learn():
    det = ResNetSSD(2, backbone="resnet18", freeze_stages=2).train()
    stem, stage1, stage2 = det.blocks[0]
    assert not any(p.requires_grad for p in stem.parameters()) and not any(p.requires_grad for p in stage1.parameters())
    assert all(p.requires_grad for p in stage2.parameters())
    assert not stem[1].training and stage2.training  # frozen BatchNorm keeps its statistics
    before = stem[0].weight.clone()
    opt = torch.optim.SGD([p for p in det.parameters() if p.requires_grad], lr=0.1)
    loss = sum(det(torch.rand(2, 3, 128, 128), [{"boxes": torch.tensor([[10.0, 10, 60, 60]]), "labels": torch.tensor([1])}] * 2).values())
    loss.backward()
    opt.step()
    assert torch.equal(stem[0].weight, before)
