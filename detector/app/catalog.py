"""The models the app offers: checkpoints (and exported ``.onnx`` graphs, run with ONNX Runtime) in ``models/``
and ``runs/*/best.pt`` with what their model cards say, and a small cache of loaded models."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from detector.api import Detector, describe
from detector.api.zoo import ONNX_SERVED, onnx_runtime_installed, zoo_models, zoo_onnx
from detector.app.uploads import BadInput
from detector.core.errors import InputError

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the checkout, for an editable install
# the first of these that the list holds is selected at start: the shipped model run by ONNX Runtime (2.1-2.6x
# faster than PyTorch eager on the CPU, docs/export.md; the same detections), else its checkpoint
DEFAULT_MODELS = ("tinyssd-shapes.onnx", "tinyssd-shapes.pt")


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
    """The zoo's COCO models (:func:`detector.api.zoo.zoo_models`), each with its 80 classes, torchvision's
    published COCO box AP and the download's size, and whether it is in the torch hub cache already (nothing is
    downloaded here: the first detection with it downloads it, with its progress in the page)."""
    entries = {}
    for z in zoo_models():
        label = f"COCO: {z.name.removeprefix('torchvision:')}"
        summary = (f"torchvision's COCO model, box AP {z.box_ap} (theirs); {z.size_mb:.0f} MB, "
                   + ("downloaded" if z.cached else "downloaded on first use")
                   + ("; run with ONNX Runtime" if z.onnx_served and onnx_runtime_installed() else ""))
        entries[label] = ModelEntry(label, z.name, z.classes, summary)
    return entries


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
    info = describe(path)
    summary = f"{info.name} at {info.img_size or '?'} px"
    metrics = _metric_text(info.metrics)
    if metrics:
        summary += f"; val at epoch {info.epoch + 1 if info.epoch is not None else '?'}: {metrics}"
    return ModelEntry(label="", path=path, classes=info.classes, summary=summary)


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
        except (InputError, OSError):
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

    def __init__(self, device: str = "cpu", capacity: int = 3):
        self.device = str(device)
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
        det = Detector(str(key), device=self.device)  # a zoo model's weights: from the cache or downloaded
        if det.info.name in ONNX_SERVED and isinstance(key, str) and det.device.type == "cpu" \
                and onnx_runtime_installed():
            return Detector(str(zoo_onnx(key)), device="cpu")
        return det
