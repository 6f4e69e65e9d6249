"""The names in the model tables, without importing torch: the CLI offers them as choices and ``detector
--help`` stays fast. A test checks that they equal the tables' keys (``registry.MODELS``,
``backbones.BACKBONES``), and the smallest input each takes, so that a too small ``--img-size`` is refused
before anything is built."""

DETECTORS = ("faster_rcnn", "resnet_ssd", "ssd300_vgg16", "ssdlite320_mobilenet_v3_large", "tiny_ssd", "tiny_ssd_plus")
ANCHOR_MODELS = ("resnet_ssd", "ssd300_vgg16", "ssdlite320_mobilenet_v3_large", "tiny_ssd", "tiny_ssd_plus")  # the SSD family: anchor ``sizes`` and ``ratios`` keywords
BACKBONES = ("alexnet", "densenet", "googlenet", "lenet", "nin", "resnet18", "resnet34", "resnet50", "vgg11")

# the smallest square input (px) each detector runs on: TinySSD's 6 halvings end at 1 px from 64; resnet_ssd's
# body and extra blocks from 33; faster_rcnn runs below 32, but then its coarsest FPN level (stride 32) is empty
ZOO_NAMES = ("torchvision:fasterrcnn_mobilenet_v3_large_320_fpn", "torchvision:fasterrcnn_mobilenet_v3_large_fpn",
             "torchvision:fasterrcnn_resnet50_fpn", "torchvision:fasterrcnn_resnet50_fpn_v2",
             "torchvision:ssd300_vgg16", "torchvision:ssdlite320_mobilenet_v3_large")  # detector.engine.zoo.ZOO
DETECTION_BODIES = ("resnet18", "resnet34", "resnet50", "tv_resnet18", "tv_resnet34", "tv_resnet50",
                    "tv_mobilenet_v3_large")  # --backbone of resnet_ssd / faster_rcnn (MobileNet: faster_rcnn)
DETECTOR_MIN_INPUT = {"faster_rcnn": 32, "resnet_ssd": 33, "tiny_ssd": 64, "tiny_ssd_plus": 64, "ssd300_vgg16": 268,
                      "ssdlite320_mobilenet_v3_large": 32}
BACKBONE_MIN_INPUT = {"lenet": 12, "alexnet": 65, "vgg11": 32, "nin": 67, "googlenet": 8, "resnet18": 8,
                      "resnet34": 8, "resnet50": 8, "densenet": 29}  # the smallest square input each allows
