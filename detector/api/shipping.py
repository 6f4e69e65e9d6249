"""Export for the API: a small checkpoint or an ONNX graph, the format from the file's suffix, and the model card.

    Detector("runs/shapes/best.pt").export("models/shapes.onnx", dynamic_batch=True, card=True, test_data="data/t")
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from detector.core.errors import InputError, UsageError, setting
from detector.engine.config import check_img_size
from detector.engine.export import export_checkpoint, model_card
from detector.engine.modes import ExportConfig
from detector.models.checkpoint import load_checkpoint

logger = logging.getLogger("detector")
EXPORT_SUFFIXES = {"pt": (".pt", ".pth"), "onnx": (".onnx",)}  # format -> what the file may end in


def export_format(cfg: ExportConfig) -> str:
    """``cfg.format``, or the one the file's suffix names; a :class:`UsageError` for settings that do not fit it."""
    suffix = Path(cfg.out).suffix.lower()
    fmt = cfg.format or next((f for f, s in EXPORT_SUFFIXES.items() if suffix in s), None)
    if fmt is None:
        raise UsageError(f"{setting('out', cfg.out)}: end it in .pt or .pth (a PyTorch checkpoint) or .onnx "
                         f"({setting('format', 'onnx')})")
    if suffix not in EXPORT_SUFFIXES[fmt]:
        raise UsageError(f"{setting('out', cfg.out)}: {setting('format', fmt)} writes a "
                         f"{' or '.join(EXPORT_SUFFIXES[fmt])} file")
    if fmt == "pt" and (cfg.img_size is not None or cfg.dynamic_batch):
        raise UsageError(f"{setting('img_size')} and {setting('dynamic_batch')} apply to {setting('format', 'onnx')}; "
                         "a checkpoint keeps its own")
    return fmt


def check_card(weights: str | Path, cfg: ExportConfig) -> None:
    """The model card's inputs, before the export is written: its device exists here, its test data has the
    model's classes."""
    from detector.data.dataset import load_dataset
    from detector.engine.loop import resolve_device

    resolve_device(cfg.device)
    if cfg.negatives is not None:  # the folder's images found now, before anything is written
        from detector.data.negatives import background_records

        background_records(cfg.negatives, log=lambda line: None)
    if cfg.test_data:
        classes = load_checkpoint(weights).get("classes")
        data = load_dataset(cfg.test_data)
        if data.classes != classes:
            raise InputError(f"{setting('test_data', cfg.test_data)}: its classes {data.classes} are not the model's {classes}")


def export_model(weights: str | Path, out: str | Path, load: Callable[..., Any] | None = None,
                 **settings) -> Path:
    """Write ``out`` from the checkpoint ``weights`` (``detector export``): a small checkpoint (``.pt``) or an ONNX
    graph (``.onnx``), the format from the suffix; :class:`~detector.engine.config.ExportConfig`'s fields as
    keywords (with ``card=True``, also the model card beside it, measured on the written file as ``load``, the
    :class:`~detector.api.Detector` class, loads it). ``Detector.export`` calls it."""
    unknown = sorted(set(settings) - {f.name for f in fields(ExportConfig)})
    if unknown:
        raise UsageError(f"export: no setting {', '.join(unknown)}")
    cfg = ExportConfig(out=str(out), **settings)
    cfg.check()
    fmt = export_format(cfg)
    if Path(out).resolve() == Path(weights).resolve():
        raise UsageError(f"{setting('out', str(out))} is the checkpoint it exports: writing there would replace it; "
                         f"choose another {setting('out')}")
    if cfg.negatives is not None and not cfg.card:
        raise UsageError(f"{setting('negatives', cfg.negatives)}: the false-alarm rate goes into the model card; "
                         f"give {setting('card', True)} too")
    if cfg.card:
        if load is None:
            raise UsageError(f"{setting('card', True)}: the card is measured on the written model; give "
                             "load=Detector (or use Detector.export)")
        check_card(weights, cfg)  # before anything is written
    if fmt == "onnx":
        from detector.models.onnx_backend import require

        require("onnx", "onnxscript", what="ONNX export")  # before torch's exporter is imported
        from detector.engine.onnx_export import export_onnx

        ckpt = load_checkpoint(weights)
        if cfg.img_size is not None:
            check_img_size(ckpt.get("model_name", ""), cfg.img_size)
        export_onnx(weights, cfg.out, cfg.img_size, cfg.dynamic_batch, cfg.half, log=logger.info, conf=cfg.conf)
    else:
        ckpt = export_checkpoint(weights, cfg.out, cfg.half, cfg.conf)
    out = Path(cfg.out)
    logger.debug("wrote %s (%.2f MiB)", out, out.stat().st_size / 2**20)
    if cfg.card:
        card = model_card(str(weights), str(out), ckpt, cfg.test_data, cfg.device, cfg.trained_on)
        exported = load(out, device=cfg.device)  # the written file, loaded once for the card's measurements
        card["inference_defaults"] = exported.info.defaults.as_dict()
        if cfg.negatives is not None:  # measured on the exported file, as the card's metrics
            from detector.api.results import false_alarm_text
            from detector.api.scoring import false_alarms
            from detector.data.images import MAX_PIXELS

            card["false_alarms"] = false_alarms(exported, cfg.negatives, MAX_PIXELS)
            logger.info(false_alarm_text(card["false_alarms"]))
        card["notes"] = list(cfg.note or [])
        card_path = out.with_suffix(".json")
        try:
            card_path.write_text(json.dumps(card, indent=2) + "\n")
        except OSError as e:
            raise InputError(f"{card_path}: cannot write the model card ({e.strerror or e})") from None
        logger.debug("wrote the model card %s", card_path)
    return out
