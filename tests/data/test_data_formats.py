import json

import numpy as np
import pytest
from PIL import Image

from detector.data.check import prepare_split
from detector.data.convert import convert_dataset
from detector.data.dataset import load_dataset
from detector.data.records import DataError


def make_image(path, w=40, h=30):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (10, 20, 30)).save(path)
    return path


def coco_doc(**overrides):
    doc = {
        "images": [{"id": 7, "file_name": "a.png", "width": 40, "height": 30},
                   {"id": 9, "file_name": "b.png", "width": 40, "height": 30}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 12, "bbox": [1, 2, 10, 5], "iscrowd": 0},
                        {"id": 2, "image_id": 7, "category_id": 3, "bbox": [20, 10, 5, 5], "iscrowd": 1}],
        "categories": [{"id": 12, "name": "dog"}, {"id": 3, "name": "cat"}],
    }
    doc.update(overrides)
    return doc


@pytest.fixture
def coco_dir(tmp_path):
    make_image(tmp_path / "images" / "a.png")
    make_image(tmp_path / "images" / "b.png")
    (tmp_path / "instances_val.json").write_text(json.dumps(coco_doc()))
    return tmp_path


def test_coco_categories_map_to_0_based_and_back(coco_dir):
    data = load_dataset(coco_dir / "instances_val.json")
    assert data.classes == ["cat", "dog"] and data.category_ids == [3, 12]
    (rec_a, rec_b) = data.split("val")
    assert rec_a.path == coco_dir / "images" / "a.png"  # found under images/
    np.testing.assert_allclose(rec_a.boxes, [[1, 2, 11, 7], [20, 10, 25, 15]])
    assert rec_a.labels.tolist() == [1, 0] and rec_a.iscrowd.tolist() == [False, True]
    assert [data.category_id(label) for label in rec_a.labels] == [12, 3]
    assert len(rec_b.boxes) == 0


def test_coco_problems_name_the_annotation(coco_dir):
    doc = coco_doc()
    doc["annotations"] += [{"id": 2, "image_id": 7, "category_id": 99, "bbox": [0, 0, 1, 1]},
                           {"id": 4, "image_id": 8, "category_id": 3, "bbox": [0, 0, 1, 1]}]
    f = coco_dir / "instances_val.json"
    f.write_text(json.dumps(doc))
    kinds = {(p.kind, p.where) for p in load_dataset(f).problems}
    assert ("duplicate-id", "annotation id 2") in kinds
    assert ("unknown-class", "annotation id 2") in kinds
    assert ("unknown-image", "annotation id 4") in kinds
    with pytest.raises(DataError, match="instances_val.json"):
        prepare_split(f, "val", log=lambda s: None)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON: .* at line 1"),
    ("[]", "not a COCO annotation file"),
    ('{"images": [{"file_name": 3}]}', r"images\[0\] must have"),
    ("", "not valid JSON"),
])
def test_coco_malformed_files(tmp_path, text, message):
    f = tmp_path / "bad.json"
    f.write_text(text)
    with pytest.raises(DataError, match=message) as e:
        load_dataset(f)
    assert "bad.json" in str(e.value)


def write_voc(root):
    make_image(root / "JPEGImages" / "0001.jpg")
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "0001.xml").write_text(
        "<annotation><filename>0001.jpg</filename><size><width>40</width><height>30</height><depth>3</depth></size>"
        "<object><name>dog</name><difficult>1</difficult><bndbox><xmin>2</xmin><ymin>3</ymin><xmax>12</xmax>"
        "<ymax>13</ymax></bndbox></object>"
        "<object><name>cat</name><difficult>0</difficult><bndbox><xmin>21</xmin><ymin>1</ymin><xmax>30</xmax>"
        "<ymax>20</ymax></bndbox></object></annotation>")
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "val.txt").write_text("0001\n")
    (root / "ImageSets" / "Main" / "dog_val.txt").write_text("0001 1\n")  # class list: not a split


def test_voc_reads_difficult_and_1_based_pixels(tmp_path):
    write_voc(tmp_path)
    data = load_dataset(tmp_path)
    assert list(data.splits) == ["val"] and data.classes == ["cat", "dog"]
    (rec,) = data.split("val")
    np.testing.assert_allclose(rec.boxes, [[1, 2, 12, 13], [20, 0, 30, 20]])
    assert rec.difficult.tolist() == [True, False] and rec.labels.tolist() == [1, 0]


def test_voc_bad_xml_names_the_file(tmp_path):
    write_voc(tmp_path)
    (tmp_path / "Annotations" / "0001.xml").write_text("<annotation><object>")
    with pytest.raises(DataError, match=r"0001.xml: not valid XML"):
        load_dataset(tmp_path)


def write_yolo(root):
    make_image(root / "images" / "train" / "a.png", 100, 50)
    make_image(root / "images" / "train" / "b.png", 100, 50)  # no label file: an image without boxes
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.2 0.4\n\n0 0.1 0.1 0.1 0.1\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nnames: {0: person, 1: car}\n")


def test_yolo_reads_normalized_boxes(tmp_path):
    write_yolo(tmp_path)
    data = load_dataset(tmp_path / "data.yaml")
    assert data.classes == ["person", "car"]
    a, b = data.split("train")
    np.testing.assert_allclose(a.boxes, [[40, 15, 60, 35], [5, 2.5, 15, 7.5]], atol=1e-4)
    assert a.labels.tolist() == [1, 0] and len(b.boxes) == 0


def test_yolo_bad_lines_are_reported_with_line_numbers(tmp_path):
    write_yolo(tmp_path)
    (tmp_path / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.2 0.4\n5 0.5 0.5 0.1 0.1\nx y z\n0 0.5\n")
    problems = {(p.kind, p.where) for p in load_dataset(tmp_path / "data.yaml").problems}
    assert problems == {("unknown-class", "line 2"), ("malformed", "line 3"), ("malformed", "line 4")}
    with pytest.raises(DataError, match=r"a.txt: line 2: class 5 is not in 0..1"):
        prepare_split(tmp_path / "data.yaml", "train", log=lambda s: None)
    _, records = prepare_split(tmp_path / "data.yaml", "train", policy="skip", log=lambda s: None)
    assert len(records[0].boxes) == 1  # only the valid box is left, and the skip was reported


def test_yolo_bad_yaml(tmp_path):
    (tmp_path / "data.yaml").write_text("names: [a\ntrain: x")
    with pytest.raises(DataError, match="data.yaml: not valid YAML at line"):
        load_dataset(tmp_path / "data.yaml")
    (tmp_path / "data.yaml").write_text("train: images\n")
    with pytest.raises(DataError, match="'names' must be"):
        load_dataset(tmp_path / "data.yaml")


def write_banana(folder, rows):
    for name in {r[0] for r in rows}:
        make_image(folder / "images" / name, 256, 256)
    (folder / "label.csv").write_text("img_name,label,xmin,ymin,xmax,ymax\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))


def test_banana_layout_with_two_splits(tmp_path):
    write_banana(tmp_path / "bananas_train", [("0.png", 0, 104, 20, 143, 58), ("1.png", 0, 68, 175, 118, 223)])
    write_banana(tmp_path / "bananas_val", [("0.png", 0, 1, 2, 30, 40)])
    data = load_dataset(tmp_path)
    assert data.classes == ["banana"] and sorted(data.splits) == ["train", "val"]
    np.testing.assert_allclose(data.split("train")[0].boxes, [[104, 20, 143, 58]])


def test_banana_bad_header_and_rows(tmp_path):
    folder = tmp_path / "bananas_train"
    write_banana(folder, [("0.png", 0, 10, 10, 20, 20)])
    (folder / "label.csv").write_text("name,x\n")
    with pytest.raises(DataError, match=r"label.csv: line 1: expected the header"):
        load_dataset(folder)
    (folder / "label.csv").write_text("img_name,label,xmin,ymin,xmax,ymax\n0.png,0,10,10,20\n0.png,3,1,1,5,5\n")
    kinds = {(p.kind, p.where) for p in load_dataset(folder).problems}
    assert kinds == {("malformed", "line 2"), ("unknown-class", "line 3")}


def test_unknown_path_and_folder(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset(tmp_path / "missing")
    with pytest.raises(DataError, match="no data set found here"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("to", ["coco", "voc", "yolo"])
def test_convert_round_trip_keeps_every_box(shapes_yaml, tmp_path, to):
    data = load_dataset(shapes_yaml)
    splits = {s: prepare_split(shapes_yaml, s, data=data, log=lambda m: None)[1] for s in data.splits}
    target = convert_dataset(splits, data.classes, to, tmp_path / to)
    back = load_dataset(target, classes=data.classes if to == "voc" else None)
    assert back.classes == data.classes
    for split, records in splits.items():
        got = {p.name.removeprefix(f"{split}_"): r for r in back.split(split) for p in [r.path]}
        assert len(got) == len(records)
        for r in records:
            g = got[r.path.name]
            assert g.labels.tolist() == r.labels.tolist()
            np.testing.assert_allclose(g.boxes, r.boxes, atol=0.02)


def test_shipped_configs_read_the_standard_layouts(tmp_path):
    import shutil
    from pathlib import Path

    repo_data = Path(__file__).resolve().parents[2] / "data"
    voc = tmp_path / "VOCdevkit" / "VOC2007"
    write_voc(voc)
    (voc / "ImageSets" / "Main" / "val.txt").rename(voc / "ImageSets" / "Main" / "trainval.txt")
    (voc / "ImageSets" / "Main" / "test.txt").write_text("0001\n")
    (voc / "Annotations" / "0001.xml").write_text(
        (voc / "Annotations" / "0001.xml").read_text().replace(">cat<", ">person<"))
    shutil.copy(repo_data / "voc2007.yaml", tmp_path)
    data = load_dataset(tmp_path / "voc2007.yaml")
    assert len(data.classes) == 20 and sorted(data.splits) == ["train", "val"]
    (rec,) = data.split("train")
    assert [data.classes[i] for i in rec.labels] == ["dog", "person"]
    assert data.coco_files == {}

    coco = tmp_path / "coco"
    make_image(coco / "val2017" / "a.png")
    make_image(coco / "val2017" / "b.png")
    make_image(coco / "train2017" / "a.png")
    make_image(coco / "train2017" / "b.png")
    (coco / "annotations").mkdir()
    for split in ("train", "val"):
        (coco / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(coco_doc()))
    shutil.copy(repo_data / "coco2017.yaml", tmp_path)
    data = load_dataset(tmp_path / "coco2017.yaml")
    assert data.classes == ["cat", "dog"] and data.category_ids == [3, 12]
    assert data.split("val")[0].path == coco / "val2017" / "a.png"
    ann = coco / "annotations"
    assert data.coco_files == {s: str(ann / f"instances_{s}2017.json") for s in ("train", "val")}  # evaluation's truth
    # the annotations folder alone is read too: one split per file, images found in the COCO layout
    alone = load_dataset(coco / "annotations")
    assert sorted(alone.splits) == ["train", "val"] and alone.split("train")[0].path == coco / "train2017" / "a.png"
    assert alone.coco_files == data.coco_files
