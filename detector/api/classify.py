"""The book's classification networks (LeNet to DenseNet) from a script, as ``detector classify`` trains and scores
them; their checkpoints are the detectors' pretrained backbones (``train(pretrained=...)``).

    from detector.api.classify import train_classifier, evaluate_classifier
    train_classifier(model="resnet18", data="data/shapes", epochs=10, out="runs/cls-resnet18")
    evaluate_classifier("runs/cls-resnet18/best.pt", data="data/shapes")     # {"top1": ..., "images": ...}
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from detector.core.errors import InputError, UsageError
from detector.engine.config import ClassifyConfig, check_flags


def train_classifier(config: ClassifyConfig | None = None, **settings) -> dict:
    """Train a classifier: every :class:`~detector.engine.config.ClassifyConfig` field as a keyword (or a whole
    ``config``); the last val metrics (``top1``)."""
    from detector.engine.classify import train_classifier as train

    if config is None:
        known = {f.name for f in fields(ClassifyConfig)} - {"command", "given", "overrides"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise UsageError(f"train_classifier(): no setting {', '.join(unknown)}; the settings are "
                             f"{', '.join(sorted(known))}")
        config = ClassifyConfig(**settings, given=tuple(settings))
    elif settings:
        raise UsageError("train_classifier(): give the settings in the ClassifyConfig or as keywords, not both")
    config.check()
    return train(config)


def evaluate_classifier(weights: str | Path, data: str | Path, device: str = "auto", workers: int = 2) -> dict:
    """Top-1 accuracy of a classifier checkpoint on ``data``'s val split: ``{"top1", "images", "model", "img_size"}``."""
    from detector.data.classify import load_classification
    from detector.engine.classify import accuracy, load_classifier
    from detector.engine.loop import resolve_device

    check_flags(device=device, workers=workers)
    where = resolve_device(device)
    model, ckpt = load_classifier(str(weights), where)
    classes, _, val = load_classification(str(data), ckpt["img_size"])
    if val is None:
        raise InputError(f"{data}: no val split to evaluate on")
    if classes != ckpt["classes"]:
        raise InputError(f"{weights} was trained on classes {ckpt['classes']}, the data has {classes}")
    m = accuracy(model, val, where, workers=workers)
    return {**m, "model": ckpt["model_name"], "img_size": ckpt["img_size"]}
