"""Shipping a model: a small checkpoint (weights and description only, optionally fp16) and its model card.

    detector export --weights runs/shapes/best.pt --out models/tinyssd-shapes.pt --half --card --test-data data/shapes-test
"""

from __future__ import annotations

import csv
import platform
from pathlib import Path

import torch
import yaml

from detector.data.check import prepare_split
from detector.data.dataset import load_dataset
from detector.data.records import DataError, default_category_ids
from detector.engine.checkpoint import save_checkpoint
from detector.evaluation.coco import coco_evaluate
from detector.evaluation.ground_truth import ground_truth
from detector.evaluation.predict import predict_records
from detector.models.checkpoint import load_checkpoint
from detector.models.registry import load_detector

SHIPPED_KEYS = ("model_name", "model_kwargs", "classes", "category_ids", "img_size", "letterbox", "command", "epoch",
                "metrics", "data", "conf")  # what a shipped checkpoint keeps besides the weights


def export_checkpoint(weights: str | Path, out: str | Path, half: bool = False, conf: float | None = None) -> dict:
    """Write ``out``: the weights of ``weights`` (in fp16 with ``half``) and its description, without the
    training state (``conf``: the model's own score threshold, kept). Returns the source checkpoint."""
    ckpt = load_checkpoint(weights)
    small = {k: ckpt[k] for k in SHIPPED_KEYS if k in ckpt}
    if conf is not None:
        small["conf"] = float(conf)
    small["model"] = {k: v.half() if half and v.is_floating_point() else v for k, v in ckpt["model"].items()}
    save_checkpoint(small, out)
    return ckpt


def _split_sizes(path: str) -> dict:
    try:
        data = load_dataset(path)
    except (DataError, OSError):
        return {}
    return {f"{name}_images": len(records) for name, records in data.splits.items()}


def _generator(data: str | Path) -> dict:
    """``{"generator": ...}`` for a generated set (its ``dataset.yaml`` names preset, seed and size), else nothing
    (a folder in a plain layout, VOC, COCO or YOLO, has no yaml)."""
    path = Path(data) / "dataset.yaml" if Path(data).is_dir() else Path(data)
    info = yaml.safe_load(path.read_text()) if path.suffix == ".yaml" and path.is_file() else {}
    generator = {k: info.get(k) for k in ("preset", "seed", "size")}
    return {"generator": generator} if any(v is not None for v in generator.values()) else {}


def model_card(weights: str, exported: str, ckpt: dict, test_data: str | None, device: str = "cpu",
               trained_on: str | None = None) -> dict:
    """What a user needs to trust a shipped model: how it was trained (command, data and its generator seeds,
    epochs, wall time, device) and its metrics on held-out data, measured on the exported (shipped) weights."""
    run = Path(weights).parent
    csv_path = run / "results.csv"
    rows = list(csv.DictReader(csv_path.read_text().splitlines())) if csv_path.exists() else []
    card = {
        "model": Path(exported).name, "model_name": ckpt["model_name"], "model_kwargs": ckpt.get("model_kwargs", {}),
        "classes": ckpt["classes"], "img_size": ckpt["img_size"], "letterbox": ckpt.get("letterbox", False),
        "command": ckpt.get("command", ""),
        "train_config": {k: v for k, v in ckpt.get("config", {}).items() if k not in ("resume", "command")},
        "data": {"path": str(ckpt.get("data", "")), **_generator(ckpt.get("data", "")), **_split_sizes(ckpt.get("data", ""))},
        "epochs": ckpt.get("epoch", -1) + 1,
        "wall_time_s": round(sum(float(r["epoch_s"]) for r in rows), 1),
        "train_images_per_s": round(sum(float(r["images_per_s"]) for r in rows) / max(len(rows), 1), 1),
        "device": ckpt.get("device") or trained_on or "not recorded", "host": platform.processor() or platform.machine(),
        "torch": torch.__version__, "val_metrics_during_training": ckpt.get("metrics", {}),
    }
    if test_data:
        model, _ = load_detector(exported, device)
        data, records = prepare_split(test_data, "val", log=lambda s: None)
        cat_ids = default_category_ids(data.classes, data.category_ids)
        gt = ground_truth(data, "val", records)
        results = predict_records(model, records, cat_ids, device, ids=[im["id"] for im in gt["images"]])
        metrics, _ = coco_evaluate(gt, data.classes, cat_ids, results)
        card["test"] = {"data": str(test_data), "images": len(records), **_generator(test_data), "metrics": metrics}
    return card
