"""Pictures of training and evaluation: loss and mAP curves, PR curves per class, a confusion matrix."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from detector.core.files import write_atomic


def save_figure(fig, path: Path, dpi: int) -> None:
    """``fig`` as a PNG at ``path``, whole or not at all (see :func:`~detector.core.files.write_atomic`)."""
    encoded = io.BytesIO()
    fig.savefig(encoded, dpi=dpi, format="png")
    write_atomic(path, encoded.getvalue())


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training(results_csv: Path, out: Path, loss_names: list[str] = (), metric_names: list[str] = ("AP", "AP50")) -> None:
    """Losses per epoch and the val metrics where evaluated, from ``results.csv``."""
    with open(results_csv) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [int(r["epoch"]) for r in rows]
    for key in ("loss", *loss_names):
        a.plot(epochs, [float(r[key]) for r in rows], label=key)
    a.set_xlabel("epoch"), a.set_title("training loss"), a.legend()
    for key in metric_names:
        pts = [(int(r["epoch"]), float(r[key])) for r in rows if r.get(key)]
        if pts:
            b.plot(*zip(*pts), marker="o", label=f"val {key}")
            b.legend()
    b.set_xlabel("epoch"), b.set_ylim(0, 1), b.set_title("validation")
    fig.tight_layout()
    save_figure(fig, out, dpi=100)
    plt.close(fig)


def plot_pr_curves(coco_eval, classes: list[str], out_dir: Path) -> list[Path]:
    """One PNG per class: precision against recall at IoU 0.5 (area all, 100 detections), from COCOeval."""
    plt = _plt()
    out_dir.mkdir(parents=True, exist_ok=True)
    recall = coco_eval.params.recThrs
    paths = []
    for k, name in enumerate(classes):
        p = coco_eval.eval["precision"][0, :, k, 0, 2]
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot(recall, np.where(p > -1, p, np.nan))
        valid = p[p > -1]
        ax.set_title(f"{name}: AP50 {valid.mean() if valid.size else 0:.3f}")
        ax.set_xlabel("recall"), ax.set_ylabel("precision"), ax.set_xlim(0, 1), ax.set_ylim(0, 1.02)
        fig.tight_layout()
        path = out_dir / f"pr_{k:02d}_{name}.png"
        save_figure(fig, path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_confusion(matrix: np.ndarray, classes: list[str], out: Path) -> None:
    """``matrix [C + 1, C + 1]``: rows true class (last: background), columns predicted (last: missed)."""
    plt = _plt()
    labels = [*classes, "background"]
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(labels), 1 + 0.6 * len(labels)))
    norm = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right"), ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted (background: missed)"), ax.set_ylabel("true (background: false detection)")
    fig.tight_layout()
    save_figure(fig, out, dpi=100)
    plt.close(fig)
