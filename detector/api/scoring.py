"""Evaluation for the API: the split to score, its ground truth, and pycocotools' numbers with their files.

    from detector.api import evaluate
    m = evaluate(data="data/shapes", predictions="preds.json")     # predictions made elsewhere; no images needed
"""

from __future__ import annotations

import json
import logging
from dataclasses import fields
from pathlib import Path

from detector.api.results import Metrics
from detector.core.errors import InputError, UsageError, setting
from detector.core.files import write_atomic
from detector.data.check import prepare_split
from detector.data.dataset import load_dataset
from detector.data.records import default_category_ids
from detector.engine.modes import EvalConfig
from detector.evaluation.coco import coco_evaluate, confusion_matrix
from detector.evaluation.ground_truth import ground_truth
from detector.evaluation.plots import plot_confusion, plot_pr_curves
from detector.evaluation.results import join_by_file, read_results

logger = logging.getLogger("detector")


def prepare_out(cfg: EvalConfig) -> None:
    """Make ``cfg.out`` before any work, or say in one line why it cannot be."""
    if cfg.out:
        try:
            Path(cfg.out).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"{setting('out', cfg.out)}: cannot write there ({e.strerror or e}); choose a folder you can "
                             "write to") from None


def load_split(cfg: EvalConfig, read_images: bool) -> tuple[str, object, list]:
    """``(split, data, checked records)`` of ``cfg.data``: ``cfg.split``, or a lone COCO file whole, or ``val``.
    Scoring a predictions file needs no images where the annotations give the image sizes."""
    data = load_dataset(cfg.data)
    split = cfg.split
    if split is None:
        lone_coco = Path(cfg.data).suffix.lower() == ".json" and len(data.splits) == 1
        split = next(iter(data.splits)) if lone_coco else "val"
    data, records = prepare_split(cfg.data, split, "skip" if cfg.skip_invalid else "refuse", log=logger.info,
                                  data=data, read_images=read_images, max_pixels=cfg.max_pixels)
    return split, data, records


def ground_truth_of(data, split: str, records: list) -> tuple[dict, list[int]]:
    """The COCO ground truth of a split and the data set's category ids."""
    return ground_truth(data, split, records), default_category_ids(data.classes, data.category_ids)


def score(cfg: EvalConfig, data, gt: dict, category_ids: list[int], results: list[dict], source: str) -> Metrics:
    """pycocotools' numbers of ``results`` against ``gt``; with ``cfg.out``, also metrics.json, the PR curves
    and the confusion matrix there."""
    stats, ev = coco_evaluate(gt, data.classes, category_ids, results, source=source)
    if cfg.out:
        out = Path(cfg.out)
        write_atomic(out / "metrics.json", json.dumps(stats, indent=2))
        try:
            if ev is not None:
                plot_pr_curves(ev, data.classes, out)
            plot_confusion(confusion_matrix(gt, results, category_ids), data.classes, out / "confusion_matrix.png")
        except OSError as e:
            raise InputError(f"{setting('out', str(out))}: the plots could not be written ({e.strerror or e}); metrics.json "
                             "was") from None
        logger.debug("wrote %s, PR curves and the confusion matrix", out / "metrics.json")
    return Metrics(stats, len(gt["images"]))


def evaluate(data: str | Path, predictions: str | Path | list[dict], **settings) -> Metrics:
    """pycocotools' numbers of COCO results (``detector eval --predictions``: a JSON file, or the list itself)
    against ``data``'s split: :class:`~detector.engine.modes.EvalConfig`'s fields as keywords."""
    unknown = sorted(set(settings) - {f.name for f in fields(EvalConfig)} - {"data"})
    if unknown:
        raise UsageError(f"evaluate(): no setting {', '.join(unknown)}; the settings are "
                         f"{', '.join(f.name for f in fields(EvalConfig) if f.name != 'data')}")
    cfg = EvalConfig(data=str(data), **settings)
    cfg.check()
    if cfg.negatives is not None:
        raise UsageError(f"{setting('negatives', cfg.negatives)}: false alarms are counted by running a model; "
                         "evaluate it with its weights (Detector(...).val, detector eval --weights)")
    prepare_out(cfg)
    split, dataset, records = load_split(cfg, read_images=False)
    gt, category_ids = ground_truth_of(dataset, split, records)
    results = predictions if isinstance(predictions, list) else read_results(predictions)
    source = "predictions" if isinstance(predictions, list) else str(predictions)
    results, how = join_by_file(results, records, gt, source)
    metrics = score(cfg, dataset, gt, category_ids, results, source)  # a malformed entry: its one line, nothing else
    logger.info("%s: %d predictions joined to the %d images of %s %s", source, len(results), len(records), split, how)
    return metrics


FALSE_ALARM_AT = (0.25, 0.5)  # thresholds false alarms are counted at (and the model's own, where it differs)


def false_alarms(det, folder: str | Path, max_pixels: int, skip_invalid: bool = False,
                 annotated: list | None = None) -> dict:
    """The share of the images of ``folder`` (and its subfolders; none holds the model's classes) on which
    ``det`` (a :class:`~detector.api.Detector`) finds something at or above each threshold:
    ``{"folder", "images", "thresholds": {"0.25": rate, "0.5": rate, ...}, "worst": [(file, score), ...]}``.
    ``annotated``: the data set's records; a copy of one of its images in ``folder`` is refused (it holds
    objects: what the model finds there is no false alarm)."""
    from detector.data.negatives import background_records, refuse_annotated_copies

    records = background_records(folder, max_pixels, skip_invalid=skip_invalid, log=logger.info)
    if annotated:
        refuse_annotated_copies(records, annotated, folder)
    thresholds = sorted({*FALSE_ALARM_AT, det.info.defaults.conf})
    best = {}
    for r in det.predict([str(r.path) for r in records], stream=True, conf=min(thresholds), batch=8,
                         max_pixels=max_pixels):
        best[r.path] = float(r.scores.max()) if len(r) else 0.0
    n = len(best)
    rates = {f"{t:g}": sum(s >= t for s in best.values()) / n for t in thresholds}
    worst = sorted(best.items(), key=lambda kv: -kv[1])[:5]
    return {"folder": str(folder), "images": n, "thresholds": rates, "conf_for_5_percent": conf_for(best, 0.05),
            "worst": [[Path(p).name, round(s, 3)] for p, s in worst if s >= min(thresholds)]}


def conf_for(best: dict[str, float], rate: float) -> float:
    """The lowest threshold (of the ones predict looks below: scores were kept from the lowest of
    :data:`FALSE_ALARM_AT`) at which at most ``rate`` of the images fire: just above the best score of the image
    that would be one too many; a calibration of the model's own ``conf`` (``detector export --conf``)."""
    scores = sorted(best.values(), reverse=True)
    allowed = int(rate * len(scores))  # images that may fire
    if allowed >= len(scores) or scores[allowed] < min(FALSE_ALARM_AT):
        return min(FALSE_ALARM_AT)
    return round(min(1.0, scores[allowed] + 1e-3), 3)
