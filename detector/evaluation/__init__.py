"""Inference and its numbers: one inference path (``predict``), COCO mAP with pycocotools and VOC AP
(``coco``), drawings (``draw``) and plots (``plots``). Imports ``core``, ``data`` and ``models``."""
