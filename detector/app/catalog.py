"""The models the app offers: checkpoints (and exported ``.onnx`` graphs, run with ONNX Runtime) in ``models/``
and ``runs/*/best.pt`` with what their model cards say, and a small cache of loaded models."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from detector.api import Detector
from detector.app.uploads import BadInput
from detector.models.checkpoint import CheckpointError, load_checkpoint
from detector.models.registry import load_detector

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the checkout, for an editable install
# the first of these that the list holds is selected at start: the shipped model run by ONNX Runtime (2.1-2.6x
# faster than PyTorch eager on the CPU, docs/export.md; the same detections), else its checkpoint
DEFAULT_MODELS = ("tinyssd-shapes.onnx", "tinyssd-shapes.pt")
ONNX_ZOO = ("ssd300_vgg16", "ssdlite320_mobilenet_v3_large")  # the zoo models the app serves with ONNX Runtime


@dataclass
class ModelEntry:
    """A model the demo offers: where it is (a checkpoint, an ``.onnx``, or a zoo name ``torchvision:NAME``), its
    classes and what its card, checkpoint or the zoo's table says of it."""

    label: str
    path: Path | str
    classes: list[str] = field(default_factory=list)
    summary: str = ""

    @property
    def is_zoo(self) -> bool:
        return str(self.path).startswith("torchvision:")

    def detects(self) -> str:
        """One line: what the model detects."""
        if len(self.classes) > 12:
            return f"{len(self.classes)} everyday object classes (COCO: {', '.join(self.classes[:6])}, ...)"
        if not self.classes:
            return "(classes unknown)"
        return ", ".join(self.classes[:-1]) + (" and " if len(self.classes) > 1 else "") + self.classes[-1]


def zoo_entries() -> dict[str, ModelEntry]:
    """The zoo's COCO models (:data:`detector.engine.zoo.ZOO`), each with its 80 classes, torchvision's published
    COCO box AP and the download's size, and whether it is in the torch hub cache already (nothing is
    downloaded here: the first detection with it downloads it, with its progress in the page)."""
    import torchvision.models.detection as tvd

    from detector.engine.zoo import ZOO, coco_classes, hub_folder

    entries = {}
    for name, z in sorted(ZOO.items(), key=lambda kv: kv[1].size_mb):
        weights = getattr(tvd, z.weights).COCO_V1
        cached = (hub_folder() / weights.url.rsplit("/", 1)[-1]).is_file()
        label = f"COCO: {name.removeprefix('torchvision:')}"
        summary = (f"torchvision's COCO model, box AP {z.box_ap} (theirs); {z.size_mb:.0f} MB, "
                   + ("downloaded" if cached else "downloaded on first use")
                   + ("; run with ONNX Runtime" if z.model in ONNX_ZOO and onnx_runtime_installed() else ""))
        entries[label] = ModelEntry(label, name, coco_classes(weights.meta["categories"])[0], summary)
    return entries


def onnx_runtime_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))


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


def _metric_text(metrics: dict | None) -> str:
    if not metrics:
        return ""
    return ", ".join(f"{k} {metrics[k]:.3f}" for k in ("AP", "AP50") if isinstance(metrics.get(k), (int, float)))


def describe_checkpoint(path: Path) -> ModelEntry:
    """A :class:`ModelEntry` from the model card beside ``path`` (``X.json`` for ``X.pt`` or ``X.onnx``) or the
    checkpoint (an ``.onnx`` file's metadata); an ``.onnx`` entry says that ONNX Runtime runs it."""
    entry = _describe(path)
    if path.suffix.lower() == ".onnx":
        entry.summary += "; ONNX Runtime"
    return entry


def _describe(path: Path) -> ModelEntry:
    card_path = path.with_suffix(".json")
    if card_path.is_file():
        try:
            card = json.loads(card_path.read_text())
            test = card.get("test") or {}
            metrics = _metric_text(test.get("metrics"))
            where = f"held-out {test.get('images', '?')} images" if metrics else ""
            if not metrics:
                metrics, where = _metric_text(card.get("val_metrics_during_training")), "val"
            summary = f"{card.get('model_name', '?')} at {card.get('img_size', '?')} px"
            if metrics:
                summary += f"; {where}: {metrics}"
            return ModelEntry(label="", path=path, classes=list(card.get("classes", [])), summary=summary)
        except (json.JSONDecodeError, OSError, AttributeError, TypeError):
            pass  # fall back to the checkpoint itself
    ckpt = load_detector(path)[1] if path.suffix.lower() == ".onnx" else load_checkpoint(path)
    summary = f"{ckpt.get('model_name', '?')} at {ckpt.get('img_size', '?')} px"
    metrics = _metric_text(ckpt.get("metrics"))
    if metrics:
        summary += f"; val at epoch {ckpt.get('epoch', '?') + 1 if isinstance(ckpt.get('epoch'), int) else '?'}: {metrics}"
    return ModelEntry(label="", path=path, classes=list(ckpt.get("classes", [])), summary=summary)


def discover_models(models_dirs: Sequence[Path | str] = (), runs_dir: Path | str | None = "runs",
                    extra: Sequence[Path | str] = ()) -> dict[str, ModelEntry]:
    """The checkpoints the demo offers: ``extra`` first, then ``*.pt`` and ``*.onnx`` in each of ``models_dirs``,
    then ``runs/*/best.pt``. Keys are labels for a dropdown; unreadable checkpoints (and ``.onnx`` files when
    onnxruntime is not installed) are left out."""
    paths: list[Path] = [Path(p) for p in extra]
    for d in models_dirs:
        if Path(d).is_dir():
            paths += sorted(p for p in Path(d).iterdir() if p.suffix in (".pt", ".onnx") and p.is_file())
    if runs_dir is not None and Path(runs_dir).is_dir():
        paths += sorted(Path(runs_dir).glob("*/best.pt"))
    entries: dict[str, ModelEntry] = {}
    seen: set[Path] = set()
    for p in paths:
        if p.resolve() in seen:
            continue
        seen.add(p.resolve())
        try:
            entry = describe_checkpoint(p)
        except (CheckpointError, OSError, KeyError):
            continue
        entry.label = f"{p.parent.name}/{p.name}" if p.name == "best.pt" else p.name
        entries.setdefault(entry.label, entry)
    return entries


def default_models_dirs() -> list[Path]:
    """``./models`` and, for an editable install run from elsewhere, the checkout's ``models/``."""
    return [Path("models"), PACKAGE_ROOT / "models"]


class ModelCache:
    """Loaded models (:class:`~detector.api.Detector`) by path (a few at most). Gradio calls handlers from several
    threads: the lock makes loading and evicting safe; a model is not changed by a call (its settings are per
    call)."""

    def __init__(self, device: torch.device | str = "cpu", capacity: int = 3):
        self.device = torch.device(device)
        self.capacity = capacity
        self._models: OrderedDict[Path | str, Detector] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, path: Path | str) -> Detector:
        key = str(path) if str(path).startswith("torchvision:") else Path(path).resolve()
        with self.lock:
            if key not in self._models:
                try:
                    self._models[key] = self._load(key)
                except OSError as e:
                    raise BadInput(f"{key}: cannot read it ({e.strerror or e})") from None
                while len(self._models) > self.capacity:
                    self._models.popitem(last=False)
            self._models.move_to_end(key)
            return self._models[key]

    def _load(self, key: Path | str) -> Detector:
        """A zoo SSD runs with ONNX Runtime on a CPU (1.2-1.9x PyTorch's speed, docs/benchmarks.md): its graph is
        exported once beside the cached weights; the rest, and every model on a GPU, with PyTorch."""
        from detector.engine.zoo import ZOO

        det = Detector(str(key), device=str(self.device))  # a zoo model's weights: from the cache or downloaded
        if (isinstance(key, str) and ZOO[key].model in ONNX_ZOO and self.device.type == "cpu"
                and onnx_runtime_installed()):
            return Detector(str(zoo_onnx(key)), device="cpu")
        return det
