"""``detector eval --data ann.json --predictions preds.json``: pycocotools' numbers on the user's own files, with
no images on disk, and one clear line for a malformed file."""

import json
import re

import pytest
from coco_cases import CATEGORY_IDS, NAMES, pycocotools_stats, write_case

from detector.cli.main import main
from detector.evaluation.coco import STAT_KEYS


@pytest.mark.parametrize("seed", [2, 3])
def test_eval_of_a_lone_coco_file_equals_pycocotools(tmp_path, seed, capsys):
    ann, preds = write_case(tmp_path, seed, images=30)  # no image files anywhere: none are needed
    assert main(["eval", "--data", str(ann), "--predictions", str(preds), "--out", str(tmp_path / "out")]) == 0
    shown = capsys.readouterr().out
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    ref = pycocotools_stats(ann, preds)
    assert min(ref) > 0  # every area range has boxes: nothing hides behind pycocotools' -1
    assert [metrics[k] for k in STAT_KEYS] == pytest.approx(list(ref), abs=1e-9, rel=0)
    for cat in CATEGORY_IDS:
        assert metrics["per_class"][NAMES[cat]] == pytest.approx(pycocotools_stats(ann, preds, cat)[0], abs=1e-9, rel=0)
    assert f"AP @[.50:.95]   {ref[0]:.4f}" in shown and f"AP50 (VOC07)    {metrics['AP50_voc07']:.4f}" in shown
    assert (tmp_path / "out" / "confusion_matrix.png").exists()


GOOD = {"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}


@pytest.mark.parametrize("entry, message", [
    ([1, 2, 3, 4], r"expected an object with image_id, category_id, bbox and score, got \[1, 2, 3, 4\]"),
    ({"image_id": 1, "category_id": 1, "score": 0.5}, "has no bbox"),
    ({"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}, "has no score"),
    ({"category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}, "has no image_id"),
    ({**GOOD, "bbox": [1, 2, 3]}, r"bbox must be 4 finite numbers \[x, y, w, h\] in pixels, got \[1, 2, 3\]"),
    ({**GOOD, "bbox": [1, 2, "3", 4]}, "bbox must be 4 finite numbers"),
    ({**GOOD, "bbox": "1 2 3 4"}, "bbox must be 4 finite numbers"),
    ({**GOOD, "bbox": [1, 2, -3, 4]}, "negative width or height"),
    ({**GOOD, "score": float("nan")}, "score must be a finite number, got NaN"),
    ({**GOOD, "score": "high"}, "score must be a finite number"),
    ({**GOOD, "image_id": [1]}, r"image_id \[1\] is not an image of the ground truth"),
    ({**GOOD, "image_id": 99}, "image_id 99 is not an image of the ground truth; use the annotation file's image ids"),
    ({**GOOD, "category_id": {"id": 1}}, r"category_id \{\"id\": 1\} is not one of the data set's \[1\]"),
])
def test_a_malformed_prediction_is_one_line_naming_the_entry(tmp_path, entry, message, capsys):
    ann, preds = _files(tmp_path)
    preds.write_text(json.dumps([GOOD, GOOD, GOOD, entry, GOOD]))  # NaN written as JSON's usual extension
    assert main(["eval", "--data", str(ann), "--predictions", str(preds)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: {preds}: entry 3: ")
    assert re.search(message, err), err


def _files(tmp_path, annotations=None):
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
           "annotations": annotations or [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "area": 9}],
           "categories": [{"id": 1, "name": "cat"}]}
    ann, preds = tmp_path / "annotations.json", tmp_path / "preds.json"
    ann.write_text(json.dumps(doc))
    preds.write_text(json.dumps([GOOD]))
    return ann, preds


@pytest.mark.parametrize("text", ["{}", '"results"', "5"])
def test_predictions_that_are_not_a_list(tmp_path, text, capsys):
    ann, preds = _files(tmp_path)
    preds.write_text(text)
    assert main(["eval", "--data", str(ann), "--predictions", str(preds)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {preds}: expected a JSON list of COCO results")


@pytest.mark.parametrize("key, value", [("id", [1]), ("id", {"a": 1}), ("image_id", [1]), ("category_id", {"id": 1}),
                                        ("id", None)])
def test_annotation_ids_that_are_lists_or_objects_are_one_line(tmp_path, key, value, capsys):
    good = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}
    ann, preds = _files(tmp_path, [good, {**good, "id": 2}, {**good, "id": 3, key: value}])
    assert main(["eval", "--data", str(ann), "--predictions", str(preds)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err == f"error: {ann}: annotations[2]: {key!r} must be an integer, got {json.dumps(value)}\n"


@pytest.mark.parametrize("field, value, message", [("area", "big", "'area' \"big\" is not a number >= 0"),
                                                   ("iscrowd", [1], "'iscrowd' [1] is not 0 or 1")])
def test_an_area_or_crowd_flag_pycocotools_cannot_read_is_one_line(tmp_path, field, value, message, capsys):
    ann, preds = _files(tmp_path, [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], field: value}])
    assert main(["eval", "--data", str(ann), "--predictions", str(preds)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {ann}: annotations[0]: {message}") and err.count("\n") == 1


def test_the_split_flag_still_picks_a_split_and_names_a_missing_one(tmp_path, capsys):
    ann, preds = _files(tmp_path)  # annotations.json: read as the split "train"
    assert main(["eval", "--data", str(ann), "--predictions", str(preds), "--split", "train"]) == 0
    assert "AP @.50         1.0000" in capsys.readouterr().out  # the one box, found exactly
    assert main(["eval", "--data", str(ann), "--predictions", str(preds), "--split", "val"]) == 1
    assert "no split 'val'" in capsys.readouterr().err


def test_predictions_are_joined_by_file_never_by_position(tmp_path, capsys):
    """A VOC set whose val list is shuffled after the predictions were made: the same AP, because entries carry
    their file names; predictions of the val split scored against the train split are an error, not AP 0."""
    import random

    from detector.data.synth import synth_dataset

    yaml = synth_dataset(tmp_path / "s", "shapes", train=6, val=12, seed=4, size=64, workers=1)
    assert main(["data", "convert", str(yaml), "--to", "voc", "--out", str(tmp_path / "voc")]) == 0
    voc = tmp_path / "voc"
    from detector.data.check import prepare_split

    data, records = prepare_split(str(voc), "val")
    cat_ids = list(range(1, len(data.classes) + 1))
    preds = [{"image_id": k + 1, "file_name": str(r.path), "category_id": cat_ids[c], "score": 0.9,
              "bbox": [x1, y1, x2 - x1, y2 - y1]}
             for k, r in enumerate(records) for (x1, y1, x2, y2), c in zip(r.boxes.tolist(), r.labels.tolist())]
    (tmp_path / "preds.json").write_text(json.dumps(preds))
    # equal scores across images, with a false positive first in every other image: pycocotools ranks ties in
    # image-id order, so the AP depends on the ids; ids follow the paths, not the list's order
    tied = [{**p, "score": 0.5} for p in preds]
    tied += [{**p, "score": 0.5, "bbox": [p["bbox"][0] + 20, p["bbox"][1] + 20, 3, 3]}
             for k, p in enumerate(preds) if k % 2]
    (tmp_path / "tied.json").write_text(json.dumps(sorted(tied, key=lambda p: (p["file_name"], p["bbox"][2]))))
    out, out_tied = [], []
    for shuffle in (False, True):
        if shuffle:
            val = voc / "ImageSets" / "Main" / "val.txt"
            lines = val.read_text().splitlines()
            random.Random(1).shuffle(lines)
            val.write_text("\n".join(lines) + "\n")
        assert main(["eval", "--data", str(voc), "--predictions", str(tmp_path / "preds.json"), "--out",
                     str(tmp_path / f"e{shuffle}")]) == 0
        out.append(json.loads((tmp_path / f"e{shuffle}" / "metrics.json").read_text())["AP"])
        assert main(["eval", "--data", str(voc), "--predictions", str(tmp_path / "tied.json"), "--out",
                     str(tmp_path / f"t{shuffle}")]) == 0
        out_tied.append(json.loads((tmp_path / f"t{shuffle}" / "metrics.json").read_text()))
    assert out[0] == out[1] == pytest.approx(1.0)
    assert out_tied[0] == out_tied[1] and 0.2 < out_tied[0]["AP"] < 0.99
    assert "joined to the 12 images of val by file name" in capsys.readouterr().err
    assert main(["eval", "--data", str(voc), "--split", "train", "--predictions", str(tmp_path / "preds.json")]) == 1
    assert "entries name images that are not in this split" in capsys.readouterr().err


def test_eval_weights_on_a_coco_file_with_0_based_unsorted_ids_equals_pycocotools(tmp_path, capsys):
    """``eval --weights`` on the user's COCO file whose image ids are 0, 7, 3 (0-based, unsorted) and whose middle
    image gets no detection: the model's detections of each file, under that file's id, scored by pycocotools on
    the same file, give the same numbers (a join by position would move every detection after the empty image)."""
    import shutil
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from detector.api import Detector
    from detector.data.synth import synth_dataset

    shipped = str(Path(__file__).resolve().parents[2] / "models" / "tinyssd-shapes.pt")
    src = synth_dataset(tmp_path / "synth", "shapes", train=1, val=2, seed=5, size=256, workers=1).parent / "val"
    made = json.loads((src / "annotations.json").read_text())
    user = tmp_path / "user"
    user.mkdir()
    for im in made["images"]:
        shutil.copy(src / "images" / im["file_name"], user / im["file_name"])
    Image.new("RGB", (256, 256), (128, 128, 128)).save(user / "empty.jpg")
    new_id = {1: 0, 2: 3}  # the synth file's ids 1, 2 -> the user's 0, 3
    doc = {"images": [{**made["images"][0], "id": 0}, {"id": 7, "file_name": "empty.jpg", "width": 256, "height": 256},
                      {**made["images"][1], "id": 3}],
           "annotations": [{**a, "image_id": new_id[a["image_id"]]} for a in made["annotations"]],
           "categories": made["categories"]}
    ann = user / "instances.json"
    ann.write_text(json.dumps(doc))
    det = Detector(shipped, device="cpu")
    conf = det.model.post_defaults["score_threshold"]  # what eval keeps: the model's own threshold
    preds = [p for im in doc["images"] for p in det.predict(user / im["file_name"], conf=conf)[0].to_coco(im["id"])]
    assert not [p for p in preds if p["image_id"] == 7]  # the empty image: no detection
    (tmp_path / "preds.json").write_text(json.dumps(preds))
    ref = pycocotools_stats(ann, tmp_path / "preds.json")
    assert ref[1] > 0.5  # AP50: the shipped model finds these shapes
    assert main(["eval", "--weights", shipped, "--data", str(ann), "--device", "cpu", "--out", str(tmp_path / "e")]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    ref = np.maximum(ref, 0)  # pycocotools' -1 (no large boxes here) is reported as 0
    assert np.allclose([metrics[k] for k in STAT_KEYS], ref, atol=1e-9, rtol=0), ([metrics[k] for k in STAT_KEYS], ref)


def biased_model(path, fires: bool, classes=("shape",)):
    """A TinySSD whose class heads say "always this class" (``fires``) or "always background": a model that fires on
    every image, or on none."""
    import torch

    from detector.engine.checkpoint import save_checkpoint
    from detector.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("tiny_ssd", len(classes), img_size=64)
    with torch.no_grad():
        for head in model.cls_heads:
            head.weight.zero_()
            per_anchor = head.bias.view(-1, len(classes) + 1)  # (anchors, background + classes)
            per_anchor.fill_(-10.0)
            per_anchor[:, 1 if fires else 0] = 10.0  # the first class everywhere, or background everywhere
    save_checkpoint({"model": model.state_dict(), "model_name": "tiny_ssd", "classes": list(classes),
                     "img_size": 64}, path)
    return path


def test_eval_negatives_counts_the_images_a_model_fires_on(tmp_path, capsys, shapes_yaml):
    import json

    from PIL import Image

    from detector import Detector

    negatives = tmp_path / "everyday"
    (negatives / "more").mkdir(parents=True)
    for k in range(6):  # subfolders count, as train --negatives reads them
        Image.new("RGB", (80 + k, 60), (20 * k, 90, 140)).save(negatives / ("more" if k % 2 else ".") / f"{k}.png")
    classes = ["circle", "triangle", "square", "star", "cross"]
    every = biased_model(tmp_path / "every.pt", fires=True, classes=classes)
    never = biased_model(tmp_path / "never.pt", fires=False, classes=classes)
    assert main(["eval", "--weights", str(every), "--data", str(shapes_yaml), "--negatives", str(negatives),
                 "--device", "cpu", "--workers", "0", "--out", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    assert "AP @[.50:.95]" in out  # printed with the AP figures
    assert f"false alarms on 6 images without its classes ({negatives}): 100.0% at 0.25, 100.0% at 0.5" in out
    saved = json.loads((tmp_path / "e" / "metrics.json").read_text())["false_alarms"]
    assert saved["images"] == 6 and saved["thresholds"] == {"0.25": 1.0, "0.5": 1.0}
    m = Detector(never, device="cpu").val(data=shapes_yaml, negatives=negatives, workers=0)
    assert m.false_alarms == {"0.25": 0.0, "0.5": 0.0} and m.stats["false_alarms"]["worst"] == []
    assert main(["eval", "--weights", str(never), "--data", str(shapes_yaml), "--negatives", str(tmp_path / "none"),
                 "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--negatives {tmp_path / 'none'}: no such folder" in err
