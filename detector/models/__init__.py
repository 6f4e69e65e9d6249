"""The detectors and the book's classification networks, on the core: ``registry`` (the detector table,
``build_model``, ``load_detector``), ``ssd`` (the SSD family's heads and loss), ``tiny_ssd``, ``resnet_ssd``,
``faster_rcnn`` and ``rpn``, ``resnet_body`` (ResNet bodies and their pretrained weights), ``backbones`` (LeNet to
DenseNet), ``checkpoint`` (reading checkpoints), ``names`` (the tables' names, without torch).
Imports ``detector.core`` only."""
