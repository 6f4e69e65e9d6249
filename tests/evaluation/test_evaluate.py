import json

import numpy as np
import pytest
from coco_cases import pycocotools_stats, random_case

from detector.data.check import prepare_split
from detector.data.records import DataError, ImageRecord
from detector.evaluation.coco import STAT_KEYS, coco_evaluate, confusion_matrix, voc_ap50
from detector.evaluation.ground_truth import ground_truth, records_document


def records():
    return [
        ImageRecord("a.png", 100, 100, [[10, 10, 50, 50], [60, 60, 90, 95]], [0, 1], image_id=4),
        ImageRecord("b.png", 100, 100, [[0, 0, 100, 100]], [1], difficult=[False], image_id=9),
        ImageRecord("c.png", 100, 100, np.zeros((0, 4)), [], image_id=11),
    ]


def as_results(recs, cat_ids, score=0.9):
    out = []
    for r in recs:
        for (x1, y1, x2, y2), label in zip(r.boxes.tolist(), r.labels.tolist()):
            out.append({"image_id": r.image_id, "category_id": cat_ids[label], "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": score})
    return out


def evaluate(recs, classes, cat_ids, results):
    return coco_evaluate(records_document(recs, classes, cat_ids), classes, cat_ids, results)


def test_perfect_predictions_give_ap_1_with_the_datasets_own_category_ids():
    cat_ids = [3, 12]
    metrics, _ev = evaluate(records(), ["cat", "dog"], cat_ids, as_results(records(), cat_ids))
    expected = {**{k: 1.0 for k in STAT_KEYS}, "APs": 0.0, "ARs": 0.0}  # no small box
    assert {k: metrics[k] for k in STAT_KEYS} == pytest.approx(expected, abs=1e-12)
    assert metrics["per_class"] == pytest.approx({"cat": 1.0, "dog": 1.0}, abs=1e-12)
    assert metrics["AP50_voc"] == 1.0 and metrics["AP50_voc07"] == 1.0


def test_no_detections_give_ap_0_not_a_crash():
    metrics, ev = evaluate(records(), ["cat", "dog"], [1, 2], [])
    assert ev is None and all(metrics[k] == 0.0 for k in STAT_KEYS)
    assert metrics["AP50_voc"] == 0.0 and metrics["AP50_voc07"] == 0.0 and metrics["per_class"] == {"cat": 0, "dog": 0}


@pytest.mark.parametrize("result, message", [
    ({"image_id": 5, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}, "image_id 5 is not an image"),
    ({"image_id": 4, "category_id": 7, "bbox": [0, 0, 1, 1], "score": 1}, r"category_id 7 is not one of .*\[1, 2\]"),
])
def test_results_naming_unknown_images_or_categories_are_refused(result, message):
    with pytest.raises(DataError, match="^results: entry 0: " + message):
        evaluate(records(), ["cat", "dog"], [1, 2], [result])


def test_shifted_boxes_lower_ap_but_not_ap50():
    cat_ids = [1, 2]
    res = as_results(records(), cat_ids)
    for r in res:
        r["bbox"][0] += 0.12 * r["bbox"][2]  # IoU 0.88 / 1.12 = 0.786: a hit at IoU 0.50 ... 0.75, a miss above
    metrics, _ = evaluate(records(), ["cat", "dog"], cat_ids, res)
    assert metrics["AP50"] == 1.0 and metrics["AP75"] == 1.0
    assert metrics["AP"] == pytest.approx(0.6, abs=1e-12)  # 6 of the 10 IoU thresholds
    assert metrics["per_class"] == {"cat": pytest.approx(0.6, abs=1e-12), "dog": pytest.approx(0.6, abs=1e-12)}


def test_the_ground_truth_built_from_records_is_not_rounded():
    recs = [ImageRecord("a.png", 100, 100, [[10.125, 10.5, 50.25, 40.0625]], [0], image_id=3)]
    (ann,) = records_document(recs, ["cat"], [7])["annotations"]
    assert ann["bbox"] == [10.125, 10.5, 40.125, 29.5625] and ann["area"] == 40.125 * 29.5625
    assert ann["category_id"] == 7


# Two images, two classes: several boxes per class and image, a miss, a duplicate, false positives, a VOC
# difficult box and a crowd region (both ignored: a detection on them neither counts nor costs).
def hand_case():
    recs = [
        ImageRecord("1.png", 200, 200, [[10, 10, 50, 50], [100, 100, 160, 150], [20, 120, 80, 190], [120, 10, 190, 80]],
                    [0, 0, 1, 1], iscrowd=[0, 0, 0, 1], image_id=10),  # cat A, cat B (missed), dog C, dog crowd D
        ImageRecord("2.png", 200, 200, [[0, 0, 40, 40], [50, 50, 150, 150]], [0, 1], difficult=[1, 0], image_id=20),
    ]
    cat, dog = 3, 90
    results = [
        {"image_id": 10, "category_id": cat, "bbox": [10, 10, 40, 40], "score": 0.9},     # A: hit
        {"image_id": 10, "category_id": cat, "bbox": [10, 10, 40, 40], "score": 0.8},     # A again: false positive
        {"image_id": 20, "category_id": cat, "bbox": [0, 0, 40, 40], "score": 0.7},       # the difficult cat: ignored
        {"image_id": 20, "category_id": cat, "bbox": [160, 160, 30, 30], "score": 0.6},   # nothing there
        {"image_id": 10, "category_id": dog, "bbox": [20, 120, 60, 70], "score": 0.95},   # C: hit
        {"image_id": 10, "category_id": dog, "bbox": [122, 12, 66, 66], "score": 0.85},   # the crowd region: ignored
        {"image_id": 20, "category_id": dog, "bbox": [50, 50, 100, 100], "score": 0.5},   # F: hit
        {"image_id": 20, "category_id": dog, "bbox": [0, 150, 30, 30], "score": 0.4},     # nothing there
    ]
    return recs, ["cat", "dog"], [cat, dog], results


def test_hand_case_per_class_ap_by_hand():
    recs, classes, cat_ids, results = hand_case()
    metrics, _ = evaluate(recs, classes, cat_ids, results)
    # cat: 1 of its 2 boxes found at precision 1 (then only false positives): COCO's 101 recall points 0, .01, ..,
    # .50 have precision 1, the others 0, at every IoU threshold; dog: both found before any false positive.
    assert metrics["per_class"]["cat"] == pytest.approx(51 / 101, abs=1e-12)
    assert metrics["per_class"]["dog"] == pytest.approx(1.0, abs=1e-12)
    assert metrics["AP"] == pytest.approx((51 / 101 + 1) / 2, abs=1e-12)
    assert metrics["AP50_voc"] == pytest.approx((0.5 + 1) / 2, abs=1e-12)  # all-point: recall 0.5 at precision 1
    assert metrics["AP50_voc07"] == pytest.approx((6 / 11 + 1) / 2, abs=1e-12)  # recall >= 0, .1, .. .5: 6 of 11


def _write(tmp_path, doc, results):
    ann, preds = tmp_path / "ann.json", tmp_path / "preds.json"
    ann.write_text(json.dumps(doc))
    preds.write_text(json.dumps(results))
    return ann, preds


def _same_as_pycocotools(metrics, ann, preds, classes, cat_ids):
    ref = pycocotools_stats(ann, preds)
    assert [metrics[k] for k in STAT_KEYS] == pytest.approx([max(s, 0.0) for s in ref], abs=1e-9, rel=0)
    for name, cat in zip(classes, cat_ids):
        assert metrics["per_class"][name] == pytest.approx(pycocotools_stats(ann, preds, cat)[0], abs=1e-9, rel=0)


def test_hand_case_equals_pycocotools_on_the_same_document(tmp_path):
    recs, classes, cat_ids, results = hand_case()
    gt = records_document(recs, classes, cat_ids)
    metrics, _ = coco_evaluate(gt, classes, cat_ids, results)
    _same_as_pycocotools(metrics, *_write(tmp_path, gt, results), classes, cat_ids)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_coco_file_is_scored_on_its_own_annotations_like_pycocotools(tmp_path, seed):
    doc, results = random_case(seed)
    ann, preds = _write(tmp_path, doc, results)
    data, recs = prepare_split(ann, "train", read_images=False, log=lambda s: None)  # no images on disk
    gt = ground_truth(data, "train", recs)
    assert [im["id"] for im in gt["images"]] == [im["id"] for im in doc["images"]] and gt["images"][0]["id"] == 0
    assert gt["annotations"] == doc["annotations"]  # areas, ids, crowd flags and unrounded boxes: the file's own
    metrics, _ = coco_evaluate(gt, data.classes, data.category_ids, results)
    assert data.category_ids == [3, 17, 90]
    _same_as_pycocotools(metrics, ann, preds, data.classes, data.category_ids)


def test_skipped_boxes_leave_the_files_ground_truth_and_the_others_keep_their_area(tmp_path):
    doc = {"images": [{"id": 5, "file_name": "a.png", "width": 100, "height": 80}],
           "annotations": [{"id": 1, "image_id": 5, "category_id": 2, "bbox": [10, 10, 20, 20], "area": 123.5},
                           {"id": 2, "image_id": 5, "category_id": 2, "bbox": [10, 10, "x", 20], "area": 1},
                           {"image_id": 5, "category_id": 2, "bbox": [50, 40, 10, 10]}],
           "categories": [{"id": 2, "name": "cat"}]}
    ann, _ = _write(tmp_path, doc, [])
    with pytest.raises(DataError, match="annotation id 2"):
        prepare_split(ann, "train", read_images=False, log=lambda s: None)
    data, recs = prepare_split(ann, "train", "skip", read_images=False, log=lambda s: None)
    gt = ground_truth(data, "train", recs)
    assert gt["annotations"] == [{"id": 1, "image_id": 5, "category_id": 2, "bbox": [10, 10, 20, 20], "area": 123.5,
                                  "iscrowd": 0},
                                 {"id": 3, "image_id": 5, "category_id": 2, "bbox": [50, 40, 10, 10], "area": 100,
                                  "iscrowd": 0}]  # a new id, unused in the file; the box's area; not crowd


def test_voc_ap_literal():
    # one class, two boxes; detections: a hit (0.9), a false alarm (0.8), a second hit (0.7)
    recs = [ImageRecord("a", 100, 100, [[0, 0, 10, 10], [50, 50, 60, 60]], [0, 0], image_id=1)]
    res = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
           {"image_id": 1, "category_id": 1, "bbox": [20, 20, 10, 10], "score": 0.8},
           {"image_id": 1, "category_id": 1, "bbox": [50, 50, 10, 10], "score": 0.7}]
    # (recall, precision) after each: (0.5, 1), (0.5, 1/2), (1, 2/3). All-point: 0.5 * 1 + 0.5 * 2/3.
    # 11-point: the best precision at recall >= 0, .1, .., .5 is 1 (6 points), at >= .6, .., 1 it is 2/3 (5 points).
    gt = records_document(recs, ["a"], [1])
    assert voc_ap50(gt, res, [1]) == {"AP50_voc": pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-12),
                                      "AP50_voc07": pytest.approx((6 + 5 * 2 / 3) / 11, abs=1e-12)}
    recs[0].difficult[1] = True  # a difficult box is neither needed nor a false alarm when found
    gt = records_document(recs, ["a"], [1])
    assert voc_ap50(gt, res, [1]) == {"AP50_voc": 1.0, "AP50_voc07": 1.0}


def test_voc07_counts_a_recall_of_exactly_three_tenths():
    # 10 boxes, 3 found at precision 1: recall 3/10 reaches the 0.3 point (np.arange(0, 1.1, 0.1)[3] would not)
    boxes = [[20 * k, 0, 20 * k + 10, 10] for k in range(10)]
    gt = records_document([ImageRecord("a", 200, 100, boxes, [0] * 10, image_id=1)], ["a"], [1])
    res = [{"image_id": 1, "category_id": 1, "bbox": [20 * k, 0, 10, 10], "score": 0.9} for k in range(3)]
    assert voc_ap50(gt, res, [1]) == {"AP50_voc": pytest.approx(0.3, abs=1e-12),
                                      "AP50_voc07": pytest.approx(4 / 11, abs=1e-12)}


def test_voc_counts_an_iou_of_exactly_one_half_as_a_hit():
    """The VOC devkit (VOCevaldet.m: ``ovmax >= VOCopts.minoverlap``) and pycocotools both take IoU >= 0.5: a
    detection covering exactly half of the union is found. Integer boxes make the IoU exactly 1/2."""
    gt = records_document([ImageRecord("a", 100, 100, [[0, 0, 20, 10]], [0], image_id=1)], ["a"], [1])
    half = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}]  # 100 / 200
    assert voc_ap50(gt, half, [1]) == {"AP50_voc": 1.0, "AP50_voc07": 1.0}
    assert coco_evaluate(gt, ["a"], [1], half)[0]["AP50"] == pytest.approx(1.0)  # pycocotools agrees
    below = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 9.9], "score": 0.9}]  # 99 / 200
    assert voc_ap50(gt, below, [1]) == {"AP50_voc": 0.0, "AP50_voc07": 0.0}


def test_confusion_matrix_literal():
    recs = records()
    res = [{"image_id": 4, "category_id": 2, "bbox": [10, 10, 40, 40], "score": 0.9},   # cat box called dog
           {"image_id": 9, "category_id": 2, "bbox": [0, 0, 100, 100], "score": 0.8},   # dog found
           {"image_id": 11, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.7},    # false detection
           {"image_id": 11, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.1}]    # under conf: ignored
    m = confusion_matrix(records_document(recs, ["cat", "dog"], [1, 2]), res, [1, 2], conf=0.25)
    expected = np.array([[0, 1, 0],    # cat: called dog once
                         [0, 1, 1],    # dog: found once, missed once (the box in a.png)
                         [1, 0, 0]])   # background: one false cat
    assert (m == expected).all()


def test_a_voc_data_sets_difficult_boxes_are_crowd_in_its_ground_truth(tmp_path):
    from PIL import Image

    from detector.data.convert import convert_dataset

    (tmp_path / "src").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "src" / "a.jpg")  # convert refuses an --out inside the source
    recs = [ImageRecord(tmp_path / "src" / "a.jpg", 64, 48, [[1.5, 2, 30, 40], [40, 4, 60, 20]], [0, 1],
                        difficult=[False, True], image_id=1)]
    root = convert_dataset({"val": recs}, ["cat", "dog"], "voc", tmp_path / "voc")
    data, val = prepare_split(root, "val", log=lambda s: None)
    gt = ground_truth(data, "val", val)
    assert [(a["category_id"], a["bbox"], a["iscrowd"]) for a in gt["annotations"]] == [
        (1, [1.5, 2, 28.5, 38], 0), (2, [40, 4, 20, 16], 1)]


def test_confusion_matrix_matches_at_exactly_the_iou_threshold():
    """IoU 0.5 exactly (100 / 200) is a match, as VOC's and COCO's >= rule says."""
    recs = [ImageRecord("a.png", 100, 100, [[0, 0, 10, 10]], [0], image_id=1)]
    at = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 20], "score": 0.9}]
    below = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 20.5], "score": 0.9}]
    gt = records_document(recs, ["cat", "dog"], [1, 2])
    assert confusion_matrix(gt, at, [1, 2])[0, 0] == 1
    assert confusion_matrix(gt, below, [1, 2])[0, 0] == 0
