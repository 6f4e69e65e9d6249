"""``detector train --anchors auto``: an SSD's anchor sizes and ratios fitted to the training boxes, with a
coverage report before and after (:mod:`detector.core.anchor_fit`).

    kwargs, report = fit_anchors(model, train_records, img_size=256, letterbox=False)
    model = build_model(name, num_classes, **model_kwargs, **kwargs)    # {} when the model's anchors cover more

The boxes are taken as the model sees them: normalized to the square input, stretched to it or letterboxed.
k-means gives a first layout; the evolution starts from it, or from the model's own anchors when those score
higher. The fitted layout keeps the model's number of sizes per level and of ratios (so its heads keep their
shapes); it replaces the model's own only when it covers more boxes (YOLO's autoanchor keeps the original anchors the
same way). The chosen ``sizes`` and ``ratios`` go into the checkpoint's ``model_kwargs``, from which eval,
predict and the app rebuild the model.
"""

from __future__ import annotations

import numpy as np
import torch

from detector.core.anchor_fit import (
    GENERATIONS,
    best_anchor_iou,
    coverage,
    evolve_layout,
    fitness,
    kmeans_wh,
    ssd_layout,
)
from detector.core.geometry import letterbox_geometry
from detector.data.records import ImageRecord


def input_boxes(records: list[ImageRecord], size: int, letterbox: bool = False) -> torch.Tensor:
    """Every box of ``records`` as the model sees it: xyxy ``[N, 4]`` normalized to the ``size x size`` input."""
    parts = []
    for r in records:
        if len(r.boxes) == 0:
            continue
        if letterbox:
            new_h, new_w, top, left = letterbox_geometry(r.height, r.width, size)
            scale, offset = np.array([new_w / r.width, new_h / r.height] * 2) / size, np.array([left, top] * 2) / size
        else:
            scale, offset = 1 / np.array([r.width, r.height] * 2), np.zeros(4)
        parts.append(np.asarray(r.boxes, np.float64).reshape(-1, 4) * scale + offset)
    return torch.from_numpy(np.concatenate(parts)).float() if parts else torch.zeros(0, 4)


def fit_anchors(model, records: list[ImageRecord], size: int, letterbox: bool = False,
                generations: int = GENERATIONS) -> tuple[dict, dict]:
    """``(kwargs, report)``: ``kwargs`` is ``{"sizes": ..., "ratios": ...}`` fitted to ``records``' boxes for the
    SSD ``model`` at input ``size`` (k-means, then ``generations`` of evolution), or ``{}`` when the model's own
    anchors cover as many boxes; ``report`` holds the box count, the coverage ``before`` and ``after`` (see
    :func:`detector.core.anchor_fit.coverage`), the fitted ``sizes`` and ``ratios`` and which were ``used``
    ("fitted" or "model")."""
    gen = model.anchor_gen
    if any(r != gen.ratios[0] for r in gen.ratios):
        raise ValueError("--anchors auto: the model's levels have different ratios; it fits one shared set")
    boxes = input_boxes(records, size, letterbox)  # (N, 4)
    shapes = model.feature_shapes(size, size)
    before = coverage(best_anchor_iou(boxes, shapes, gen.sizes, gen.ratios[0]))
    per_level = [len(s) for s in gen.sizes]
    if len(boxes) < sum(per_level):
        return {}, {"boxes": len(boxes), "before": before, "after": before, "used": "model",
                    "why": f"fewer training boxes than the {sum(per_level)} sizes to fit"}
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-6)  # (N, 2)
    sizes, ratios = ssd_layout(kmeans_wh(wh, sum(per_level)), wh, per_level, len(gen.ratios[0]))
    own = [list(s) for s in gen.sizes], list(gen.ratios[0])
    start = max((sizes, ratios), own, key=lambda layout: fitness(best_anchor_iou(boxes, shapes, *layout)))
    sizes, ratios = evolve_layout(boxes, shapes, *start, generations)
    after = coverage(best_anchor_iou(boxes, shapes, sizes, ratios))
    better = (after["covered"], after["mean_iou"]) > (before["covered"], before["mean_iou"])
    report = {"boxes": len(boxes), "before": before, "after": after, "sizes": sizes, "ratios": ratios,
              "used": "fitted" if better else "model"}
    return ({"sizes": sizes, "ratios": ratios} if better else {}), report


def describe_fit(report: dict) -> str:
    """The report as log lines."""
    def cov(c: dict) -> str:
        return f"{c['covered'] * 100:.1f}% of boxes with an anchor at IoU >= 0.5 (mean best IoU {c['mean_iou']:.3f})"

    head = f"--anchors auto: {report['boxes']} training boxes; the model's anchors: {cov(report['before'])}"
    if "why" in report:
        return f"{head}; kept them: {report['why']}"
    fitted = f"fitted anchors: {cov(report['after'])}; sizes {report['sizes']}, ratios {report['ratios']}"
    verdict = "using the fitted anchors" if report["used"] == "fitted" else "they cover fewer: kept the model's"
    return f"{head}\n{fitted}\n{verdict}"
