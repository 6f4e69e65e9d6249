"""The names in the model tables, without importing torch: the CLI offers them as choices and ``detector
--help`` stays fast. A test checks that they equal the tables' keys (``registry.MODELS``,
``backbones.BACKBONES``)."""

DETECTORS = ("faster_rcnn", "resnet_ssd", "tiny_ssd", "tiny_ssd_plus")
BACKBONES = ("alexnet", "densenet", "googlenet", "lenet", "nin", "resnet18", "resnet34", "resnet50", "vgg11")
