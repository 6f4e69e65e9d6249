"""Torchvision's COCO detectors (the zoo) from a script, as ``detector import`` and the app use them.

    from detector.api.zoo import ZOO_NAMES, import_zoo, zoo_models
    import_zoo("torchvision:ssdlite320_mobilenet_v3_large", "models/ssdlite-coco.pt")   # a checkpoint of ours
    for m in zoo_models(): print(m.name, m.box_ap, m.cached)                            # nothing downloaded
    Detector("torchvision:fasterrcnn_mobilenet_v3_large_320_fpn")                       # or use it directly

``ZOO_NAMES`` needs no torch (the CLI's choices); the rest imports it when called.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from detector.models.names import ZOO_NAMES

ONNX_SERVED = ("ssd300_vgg16", "ssdlite320_mobilenet_v3_large")  # the zoo SSDs, faster with ONNX Runtime on a CPU

__all__ = ["ONNX_SERVED", "ZOO_NAMES", "ZooModel", "import_zoo", "zoo_models", "zoo_onnx"]


@dataclass(frozen=True)
class ZooModel:
    """One zoo model as a list shows it, without downloading anything."""

    name: str  # torchvision:NAME
    model: str  # this project's architecture
    classes: list[str]  # COCO's 80
    box_ap: float  # torchvision's published COCO val2017 box AP (theirs, not measured here)
    size_mb: float  # the download
    cached: bool  # its weights are in the torch hub cache already

    @property
    def onnx_served(self) -> bool:
        """Served with ONNX Runtime on a CPU (where it is installed): the zoo's SSDs."""
        return self.model in ONNX_SERVED


def zoo_models() -> list[ZooModel]:
    """The zoo's models, smallest download first."""
    import torchvision.models.detection as tvd

    from detector.engine.zoo import ZOO, coco_classes, hub_folder

    models = []
    for name, z in sorted(ZOO.items(), key=lambda kv: kv[1].size_mb):
        weights = getattr(tvd, z.weights).COCO_V1
        cached = (hub_folder() / weights.url.rsplit("/", 1)[-1]).is_file()
        models.append(ZooModel(name, z.model, coco_classes(weights.meta["categories"])[0], z.box_ap, z.size_mb, cached))
    return models


def import_zoo(name: str, out: str | Path, weights_file: str | Path | None = None):
    """Write ``out`` (a ``.pt`` checkpoint of this project) holding torchvision's model ``name``, its weights from
    torchvision's weights API (the hub cache, or a download) or ``weights_file``; its :class:`ModelInfo`."""
    from detector.api.info import info_from_checkpoint
    from detector.core.errors import UsageError, setting
    from detector.engine.zoo import import_torchvision

    if Path(out).suffix.lower() not in (".pt", ".pth"):
        raise UsageError(f"{setting('out', str(out))}: a checkpoint, so it must end in .pt or .pth")
    ckpt = import_torchvision(name, out, None if weights_file is None else str(weights_file))
    return info_from_checkpoint(ckpt, str(out))


def zoo_onnx(name: str) -> Path:
    """The ONNX graph of the zoo SSD ``name`` (its weights already in the torch hub cache), exported once into
    ``<hub>/checkpoints/detector-onnx/`` and again only when the weights file is newer than it."""
    import tempfile

    import torchvision.models.detection as tvd

    from detector.engine.onnx_export import export_onnx
    from detector.engine.zoo import ZOO, hub_folder, import_torchvision

    weights = hub_folder() / getattr(tvd, ZOO[name].weights).COCO_V1.url.rsplit("/", 1)[-1]
    graph = hub_folder() / "detector-onnx" / f"{weights.stem}.onnx"
    if graph.is_file() and graph.stat().st_mtime_ns >= weights.stat().st_mtime_ns:
        return graph
    with tempfile.TemporaryDirectory() as tmp:
        import_torchvision(name, Path(tmp) / "zoo.pt")
        export_onnx(Path(tmp) / "zoo.pt", graph, log=lambda line: None)
    return graph


def onnx_runtime_installed() -> bool:
    """Whether ONNX export and ONNX Runtime are installed (the ``[onnx]`` extra)."""
    import importlib.util

    return all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))
