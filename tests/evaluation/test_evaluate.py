import numpy as np
import pytest

from detector.data.records import ImageRecord
from detector.evaluation.coco import STAT_KEYS, coco_evaluate, confusion_matrix, voc_ap50


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


def test_perfect_predictions_give_ap_1_with_the_datasets_own_category_ids():
    cat_ids = [3, 12]
    metrics, _ev = coco_evaluate(records(), ["cat", "dog"], cat_ids, as_results(records(), cat_ids))
    assert set(STAT_KEYS) <= set(metrics)
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AP50"] == pytest.approx(1.0)
    assert metrics["per_class"] == {"cat": pytest.approx(1.0), "dog": pytest.approx(1.0)}
    assert metrics["AP50_voc"] == pytest.approx(1.0)


def test_no_detections_give_ap_0_not_a_crash():
    metrics, ev = coco_evaluate(records(), ["cat", "dog"], None, [])
    assert ev is None and all(metrics[k] == 0.0 for k in STAT_KEYS) and metrics["AP50_voc"] == 0.0


def test_results_naming_unknown_images_or_categories_are_refused():
    with pytest.raises(ValueError, match="not in the data set"):
        coco_evaluate(records(), ["cat", "dog"], None, [{"image_id": 5, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}])


def test_shifted_boxes_lower_ap_but_not_ap50():
    cat_ids = [1, 2]
    res = as_results(records(), cat_ids)
    for r in res:
        r["bbox"][0] += 0.12 * r["bbox"][2]  # IoU about 0.79: counts at 0.5 and 0.75, not above 0.8
    metrics, _ = coco_evaluate(records(), ["cat", "dog"], cat_ids, res)
    assert metrics["AP50"] == pytest.approx(1.0) and 0.4 < metrics["AP"] < 0.8


def test_voc_ap50_literal():
    # one class, two boxes; detections: a hit (0.9), a false alarm (0.8), a second hit (0.7)
    recs = [ImageRecord("a", 100, 100, [[0, 0, 10, 10], [50, 50, 60, 60]], [0, 0], image_id=1)]
    res = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
           {"image_id": 1, "category_id": 1, "bbox": [20, 20, 10, 10], "score": 0.8},
           {"image_id": 1, "category_id": 1, "bbox": [50, 50, 10, 10], "score": 0.7}]
    # recall 0.5 at precision 1, recall 1 at precision 2/3: all-point AP = 0.5 * 1 + 0.5 * 2/3
    assert voc_ap50(recs, res, [1]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    recs[0].difficult[1] = True  # a difficult box is neither needed nor a false alarm when found
    assert voc_ap50(recs, res, [1]) == pytest.approx(1.0)


def test_confusion_matrix_literal():
    recs = records()
    res = [{"image_id": 4, "category_id": 2, "bbox": [10, 10, 40, 40], "score": 0.9},   # cat box called dog
           {"image_id": 9, "category_id": 2, "bbox": [0, 0, 100, 100], "score": 0.8},   # dog found
           {"image_id": 11, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.7},    # false detection
           {"image_id": 11, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.1}]    # under conf: ignored
    m = confusion_matrix(recs, res, [1, 2], conf=0.25)
    expected = np.array([[0, 1, 0],    # cat: called dog once
                         [0, 1, 1],    # dog: found once, missed once (the box in a.png)
                         [1, 0, 0]])   # background: one false cat
    assert (m == expected).all()
