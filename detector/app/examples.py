"""The app's examples: a few generated ``shapes`` val images with their ground truth, made on first start, and the
real photographs shipped in ``models/examples`` (raccoon val photos, each with its ground truth)."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from detector.api.data import synth_sample


def make_examples(folder: Path | str, count: int = 4, seed: int = 7) -> list[Path]:
    """A few images of the generated ``shapes`` val split (seed ``seed``) in ``folder``, written on first use
    with their ground truth beside them (``example-N.json``); images with fewer than 2 objects are passed over."""
    folder = Path(folder)
    existing = sorted(folder.glob("example-*.jpg"))
    if len(existing) >= count and all(p.with_suffix(".json").is_file() for p in existing[:count]):
        return existing[:count]
    folder.mkdir(parents=True, exist_ok=True)
    paths, index = [], 0
    while len(paths) < count and index < 100:
        image, boxes, classes = synth_sample(index, "val", seed)
        index += 1
        if len(boxes) < 2:
            continue
        p = folder / f"example-{len(paths)}.jpg"
        Image.fromarray(image).save(p, quality=95)
        truth = {"boxes": boxes.round(1).tolist(), "classes": classes, "seed": seed, "split": "val",
                 "index": index - 1}
        p.with_suffix(".json").write_text(json.dumps(truth))
        paths.append(p)
    return paths


def photo_examples(folders) -> list[Path]:
    """The shipped example photographs: ``*.jpg`` with their ground truth (``.json``) in the first of ``folders``
    that holds any, sorted by name."""
    for folder in folders:
        found = sorted(p for p in Path(folder).glob("*.jpg") if p.with_suffix(".json").is_file())
        if found:
            return found
    return []


def example_boxes_text(path: Path | str) -> str:
    """The ground-truth boxes of an example from :func:`make_examples`, one ``x1 y1 x2 y2`` line each."""
    try:
        boxes = json.loads(Path(path).with_suffix(".json").read_text())["boxes"]
    except (OSError, KeyError, json.JSONDecodeError):
        return ""
    return "\n".join(" ".join(f"{v:.0f}" for v in b) for b in boxes)
