"""Every data set parser fed truncated, malformed and hostile files: each gives a DataError that names the
file (and the place in it), never a traceback from deep inside, and nothing valid is dropped silently:
refused by default, skipped and counted with --skip-invalid."""

import json

import pytest
from PIL import Image

from detector.data.check import prepare_split
from detector.data.dataset import load_dataset
from detector.data.records import DataError, inside


def image(path, w=40, h=30):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (90, 90, 90)).save(path)
    return path


def load_split(path, split="train", policy="refuse"):
    logs = []
    records = prepare_split(path, split, policy, log=logs.append)[1]
    return records, logs


def test_inside_keeps_paths_under_their_root(tmp_path):
    assert inside(tmp_path, "a/b.jpg") == tmp_path / "a" / "b.jpg"
    assert inside(tmp_path, "a/../b.jpg") == tmp_path / "b.jpg"
    for bad in ("../x.jpg", "a/../../x.jpg", "/etc/passwd", "", "C:/x.jpg", "\\\\server\\x.jpg", ".", "./", "a/.."):
        assert inside(tmp_path, bad) is None, bad


# ------------------------------------------------------------------------------------------------------ COCO
def coco(tmp_path, images, annotations):
    image(tmp_path / "images" / "a.png")
    doc = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}
    f = tmp_path / "train.json"
    f.write_text(json.dumps(doc))
    return f


GOOD_IMAGE = {"id": 1, "file_name": "a.png", "width": 40, "height": 30}
GOOD_BOX = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]}


@pytest.mark.parametrize(("name", "kind"), [("../../../etc/passwd", "path-escape"), ("/etc/passwd", "path-escape")])
def test_coco_file_names_that_escape_are_refused_then_skipped_and_counted(tmp_path, name, kind):
    f = coco(tmp_path, [GOOD_IMAGE, {"id": 2, "file_name": name, "width": 40, "height": 30}],
             [GOOD_BOX, {**GOOD_BOX, "id": 2, "image_id": 2}])
    with pytest.raises(DataError, match=r"train.json: image id 2: file_name .* points outside") as e:
        load_split(f)
    assert "1 images" in str(e.value)
    records, logs = load_split(f, policy="skip")
    assert [r.path.name for r in records] == ["a.png"] and len(records[0].boxes) == 1
    assert any("1 unreadable images" in m for m in logs)


@pytest.mark.parametrize(("bbox", "message"), [
    (["a", 1, 2, 2], "NaN, inf or missing"),
    ([1, 1, 1e300, 5], "NaN, inf or missing"),  # beyond float32
    ([1, 1, 2], "NaN, inf or missing"),
    ([1, 1, -5, 5], "x1 <= x2|negative|inverted|zero"),
])
def test_coco_bad_boxes_name_the_annotation(tmp_path, bbox, message):
    f = coco(tmp_path, [GOOD_IMAGE], [GOOD_BOX, {**GOOD_BOX, "id": 9, "bbox": bbox}])
    with pytest.raises(DataError, match="annotation id 9") as e:
        load_split(f)
    assert any(part in str(e.value) for part in message.split("|")), str(e.value)
    records, _ = load_split(f, policy="skip")
    assert len(records[0].boxes) == 1  # the valid box stays


@pytest.mark.parametrize(("content", "message"), [
    (json.dumps({"images": [GOOD_IMAGE], "annotations": [GOOD_BOX], "categories": []})[:60], "not valid JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    ("[" * 50_000 + "]" * 50_000, "nested too deeply"),
    ('{"images": "x", "annotations": [], "categories": []}', "not a COCO annotation file"),
    ('{"images": [], "annotations": {}, "categories": 5}', "must be lists"),
    ('{"images": [{"id": "1", "file_name": "a.png"}], "annotations": [], "categories": []}', r"images\[0\] must have"),
])
def test_coco_malformed_and_truncated_files(tmp_path, content, message):
    f = tmp_path / "train.json"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError, match=message) as e:
        load_dataset(f)
    assert str(f) in str(e.value)


# ------------------------------------------------------------------------------------------------------- VOC
def voc(tmp_path, xml, ids=("a",)):
    image(tmp_path / "JPEGImages" / "a.jpg")
    (tmp_path / "Annotations").mkdir(parents=True, exist_ok=True)
    (tmp_path / "Annotations" / "a.xml").write_text(xml)
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    (tmp_path / "ImageSets" / "Main" / "train.txt").write_text("".join(f"{i}\n" for i in ids))
    return tmp_path


def voc_xml(filename="a.jpg", name="cat", box=("1", "1", "10", "10"), extra=""):
    return (f"<annotation><filename>{filename}</filename><size><width>40</width><height>30</height></size>"
            f"<object><name>{name}</name><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin><xmax>{box[2]}</xmax>"
            f"<ymax>{box[3]}</ymax></bndbox></object>{extra}</annotation>")


LOL = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
       + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
       + "]><annotation><filename>a.jpg</filename><object><name>&lol9;</name></object></annotation>")
XXE = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       + voc_xml(name="&xxe;"))


@pytest.mark.parametrize(("xml", "message"), [
    (voc_xml()[:70], "not valid XML"),
    (LOL, "not valid XML"),  # billion laughs: expat refuses the amplification
    (XXE, "not valid XML"),  # external entities are not fetched
])
def test_voc_truncated_and_hostile_xml(tmp_path, xml, message):
    root = voc(tmp_path, xml)
    with pytest.raises(DataError, match=f"a.xml: {message}"):
        load_dataset(root)


def test_voc_paths_that_escape_and_bad_numbers(tmp_path):
    root = voc(tmp_path, voc_xml(filename="../../../etc/hostname"))
    with pytest.raises(DataError, match=r"a.xml: filename: '../../../etc/hostname' points outside"):
        load_split(root)
    root = voc(tmp_path, voc_xml(), ids=("a", "../../../etc/passwd"))
    with pytest.raises(DataError, match=r"train.txt: line 2: image id '../../../etc/passwd' points outside"):
        load_split(root)
    records, logs = load_split(root, policy="skip")
    assert len(records) == 1 and any("1 unreadable images" in m for m in logs)
    root = voc(tmp_path, voc_xml(box=("abc", "1", "1e999", "5")))
    with pytest.raises(DataError, match="a.xml: object 1"):
        load_split(root)


# ------------------------------------------------------------------------------------------------------ YOLO
def yolo(tmp_path, yaml_text, labels="0 0.5 0.5 0.2 0.2\n"):
    image(tmp_path / "images" / "train" / "a.png", 100, 50)
    (tmp_path / "labels" / "train").mkdir(parents=True, exist_ok=True)
    (tmp_path / "labels" / "train" / "a.txt").write_text(labels)
    f = tmp_path / "data.yaml"
    f.write_text(yaml_text)
    return f


GOOD_YAML = "path: .\ntrain: images/train\nnames: [a, b]\n"


@pytest.mark.parametrize(("text", "message"), [
    ("path: .\ntrain: [images/train\nnames: {\n", "not valid YAML at line"),
    ("names: 5\ntrain: images/train\n", "'names' must be a list or a mapping"),
    ("names: [a, a]\ntrain: images/train\n", "class names repeat"),
    ("a: &a [x, x, x]\nb: &b [*a, *a, *a]\nnames: [*b, *b]\ntrain: images/train\n", "is not a class name"),
    ("!!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),  # safe_load: no code
    ("names: [a]\n", "no split"),
])
def test_yolo_bad_yaml(tmp_path, text, message):
    f = yolo(tmp_path, text)
    with pytest.raises(DataError, match=message) as e:
        load_dataset(f)
    assert "data.yaml" in str(e.value)


def test_yolo_bad_label_lines_are_named_and_the_good_ones_kept(tmp_path):
    labels = "0 nan 0.5 0.1 0.1\n0 1e309 0.5 0.1 0.1\nx y\n7 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n"
    f = yolo(tmp_path, GOOD_YAML, labels)
    with pytest.raises(DataError) as e:
        load_split(f)
    for line in (1, 2, 3, 4):
        assert f"a.txt: line {line}:" in str(e.value)
    records, logs = load_split(f, policy="skip")
    assert sorted(records[0].labels.tolist()) == [0, 1]  # both valid lines stay
    assert any("skipped 4 invalid boxes" in m for m in logs)


# ---------------------------------------------------------------------------------------------- the book's CSV
def test_banana_csv_hostile_rows(tmp_path):
    folder = tmp_path / "bananas_train"
    image(folder / "images" / "0.png")
    (folder / "label.csv").write_text("img_name,label,xmin,ymin,xmax,ymax\n0.png,0,1,1,5,5\n"
                                      "../../../etc/passwd,0,1,1,5,5\n0.png,0,1,1\n0.png,zz,1,1,5,5\n")
    with pytest.raises(DataError) as e:
        load_split(folder)
    text = str(e.value)
    assert "label.csv: line 3: img_name '../../../etc/passwd' points outside" in text
    assert "label.csv: line 4: expected 6 fields" in text and "label.csv: line 5: label 'zz'" in text
    records, _ = load_split(folder, policy="skip")
    assert [len(r.boxes) for r in records] == [1]
    (folder / "label.csv").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DataError, match="label.csv: not UTF-8"):
        load_dataset(folder)
    (folder / "label.csv").write_text("")
    with pytest.raises(DataError, match="label.csv: empty file"):
        load_dataset(folder)


# ------------------------------------------------------------------------------------------- the project YAML
@pytest.mark.parametrize(("text", "message"), [
    ("format: detector\nnames: [a, a]\ntrain: t.json\n", "distinct class names"),
    ("format: detector\nnames: [[a]]\ntrain: t.json\n", "distinct class names"),
    ("format: detector\ntrain: {nothing: x}\n", "names no format"),
    ("format: detector\ntrain: [oops\n", "not valid YAML"),
])
def test_project_yaml_malformed(tmp_path, text, message):
    f = tmp_path / "data.yaml"
    f.write_text(text)
    with pytest.raises(DataError, match=message) as e:
        load_dataset(f)
    assert "data.yaml" in str(e.value)


# ------------------------------------------------------------------------ issue 13: nothing lost or changed silently
def check_cli(path, capsys):
    """``detector data check PATH``: (exit status, stdout, stderr)."""
    from detector.cli.main import main

    code = main(["data", "check", str(path), "--workers", "1"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused_in_one_line(path, capsys, *parts):
    """The check exits 1 with exactly one ``error:`` line on stderr that names the file and holds ``parts``."""
    code, out, err = check_cli(path, capsys)
    assert code == 1 and "Traceback" not in err + out, err + out
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "0.5", "-1"])
def test_yolo_class_values_that_are_not_classes_are_errors_with_their_line(tmp_path, capsys, value):
    f = yolo(tmp_path, GOOD_YAML, f"0 0.5 0.5 0.2 0.2\n{value} 0.5 0.5 0.1 0.1\n")
    code, out, _ = check_cli(f, capsys)
    assert code == 1 and "no problems found" not in out
    assert f"error: {tmp_path / 'labels' / 'train' / 'a.txt'}: line 2: class {value} is not in 0..1" in out
    records, logs = load_split(f, policy="skip")
    assert records[0].labels.tolist() == [0] and any("skipped 1 invalid boxes" in m for m in logs)


@pytest.mark.parametrize("line", ["../outside.png", "/etc/passwd", "images/../../outside.png"])
def test_yolo_image_lists_that_escape_the_root_are_refused_then_skipped_and_counted(tmp_path, line):
    image(tmp_path.parent / "outside.png")
    f = yolo(tmp_path, "path: .\ntrain: train.txt\nnames: [a, b]\n")
    (tmp_path / "train.txt").write_text(f"images/train/a.png\n{line}\n")
    with pytest.raises(DataError, match=rf"train.txt: line 2: image '{line}' points outside") as e:
        load_split(f)
    assert "would drop 0 boxes and 1 images" in str(e.value)
    records, logs = load_split(f, policy="skip")
    assert [r.path.name for r in records] == ["a.png"] and records[0].boxes.tolist() == [[40, 20, 60, 30]]
    assert any("1 unreadable images" in m for m in logs)


def test_yolo_image_list_that_is_not_utf8(tmp_path, capsys):
    f = yolo(tmp_path, "path: .\ntrain: train.txt\nnames: [a, b]\n")
    (tmp_path / "train.txt").write_bytes(b"images/train/a.png\n\xff\xfeb.png\n")
    refused_in_one_line(f, capsys, str(tmp_path / "train.txt"), "not UTF-8 text", "at byte 19")


def test_coco_finds_each_images_folder(tmp_path):
    """Images beside the JSON and in images/: each is found where it is (the first used to decide for all)."""
    image(tmp_path / "beside.png", 40, 30)
    image(tmp_path / "images" / "inside.png", 50, 20)
    doc = {"images": [{"id": 1, "file_name": "beside.png"}, {"id": 2, "file_name": "inside.png"},
                      {"id": 3, "file_name": "nowhere.png"}],
           "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [1, 2, 3, 4]}],
           "categories": [{"id": 1, "name": "thing"}]}
    (tmp_path / "train.json").write_text(json.dumps(doc))
    records = load_dataset(tmp_path / "train.json").split("train")
    assert [r.path for r in records] == [tmp_path / "beside.png", tmp_path / "images" / "inside.png",
                                         tmp_path / "nowhere.png"]
    with pytest.raises(DataError) as e:
        load_split(tmp_path / "train.json")
    assert str(e.value).count("no such image") == 1 and "nowhere.png: no such image" in str(e.value)
    records, _ = load_split(tmp_path / "train.json", policy="skip")
    assert [(r.width, r.height, r.boxes.tolist()) for r in records] == [(40, 30, []), (50, 20, [[1, 2, 4, 6]])]


@pytest.mark.parametrize("name", [".", "./", "images/..", ""])
def test_coco_file_name_that_names_the_folder_itself(tmp_path, capsys, name):
    f = coco(tmp_path, [GOOD_IMAGE, {"id": 2, "file_name": name, "width": 40, "height": 30}], [GOOD_BOX])
    code, out, err = check_cli(f, capsys)
    assert code == 1 and "Traceback" not in out + err
    reason = "is not a file name" if not name else f"names the folder {tmp_path / 'images'} itself, not a file in it"
    assert f"train.json: image id 2: file_name {name!r} {reason}" in out
    records, _ = load_split(f, policy="skip")
    assert [r.path.name for r in records] == ["a.png"]


@pytest.mark.parametrize("name", [".", "./"])
def test_voc_filename_that_names_the_folder_itself(tmp_path, capsys, name):
    root = voc(tmp_path, voc_xml(filename=name))
    code, out, err = check_cli(root, capsys)
    assert code == 1 and "Traceback" not in out + err
    assert f"a.xml: filename: {name!r} names the folder {tmp_path / 'JPEGImages'} itself, not a file in it" in out


@pytest.mark.parametrize(("width", "height"), [("inf", "30"), ("40", "-30"), ("nan", "30"), ("1e400", "1e400")])
def test_voc_sizes_that_are_not_sizes(tmp_path, capsys, width, height):
    xml = voc_xml().replace("<width>40</width><height>30</height>", f"<width>{width}</width><height>{height}</height>")
    root = voc(tmp_path, xml)
    code, out, err = check_cli(root, capsys)
    assert code == 1 and "Traceback" not in out + err
    assert f"a.xml: size: width {width!r} and height {height!r} must be whole numbers of pixels" in out
    with pytest.raises(DataError, match="would drop 0 boxes and 1 images"):
        load_split(root)


BOMB = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else 'x'}]\n" for i in range(9))


@pytest.mark.parametrize(("text", "parts"), [
    ("names: 5\ntrain: images/train\n", ["'names' must be a list or a mapping"]),
    ("names: [a, b]\ntrain: [1, 2]\n", ["'train' must be a path or a list of paths (text), got 1"]),
    ("names: [a, b]\npath: [1]\ntrain: images/train\n", ["'path' must be a folder (text), got a list"]),
    (BOMB + "names: [a, b]\ntrain: *l8\n", ["'train' must be a path or a list of paths (text), got a list"]),
    (BOMB + "names: *l8\ntrain: images/train\n", ["a list is not a class name"]),
])
def test_yolo_yaml_with_wrong_types_or_an_alias_bomb(tmp_path, capsys, text, parts):
    f = yolo(tmp_path, text)
    refused_in_one_line(f, capsys, str(f), *parts)


@pytest.mark.parametrize(("text", "parts"), [
    ("format: detector\nnames: *l8\ntrain: t.json\n", ["distinct class names"]),
    ("format: detector\nroot: [1]\ntrain: t.json\n", ["'root' must be a folder (text), got a list"]),
    ("format: detector\ntrain: {coco: [1]}\n", ["'coco' must be a path (text), got a list"]),
    ("format: detector\nnames: [a]\ntrain: data.yaml\n", ["includes", "data.yaml, which is being read already"]),
    ("format: detector\nnames: [a]\ntrain: .\n", ["includes", "data.yaml, which is being read already"]),
])
def test_project_yaml_with_wrong_types_or_that_includes_itself(tmp_path, capsys, text, parts):
    f = tmp_path / "data.yaml"
    f.write_text(BOMB + text if "*l8" in text else text)
    refused_in_one_line(f, capsys, "data.yaml", *parts)


def test_project_yamls_that_include_each_other(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text("format: detector\nnames: [x]\ntrain: b.yaml\n")
    (tmp_path / "b.yaml").write_text("format: detector\nnames: [x]\ntrain: a.yaml\n")
    refused_in_one_line(tmp_path / "a.yaml", capsys, "b.yaml: includes", "a.yaml, which is being read already (a loop)")


def banana_folder(folder, csv_text):
    image(folder / "images" / "0.png")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "label.csv").write_bytes(csv_text.encode("utf-8"))
    return folder


def test_banana_folders_with_underscores_in_their_names(tmp_path, capsys):
    row = "img_name,label,xmin,ymin,xmax,ymax\n0.png,0,1,1,5,5\n"
    single = banana_folder(tmp_path / "my_bananas", row)  # a split folder named without a split: train
    assert list(load_dataset(single).splits) == ["train"]
    parent = tmp_path / "sets_2024"
    for name in ("my_bananas_train", "my_bananas_val"):
        banana_folder(parent / name, row)
    data = load_dataset(parent)
    assert {s: [r.path.parent.parent.name for r in rs] for s, rs in data.splits.items()} == \
        {"train": ["my_bananas_train"], "val": ["my_bananas_val"]}
    banana_folder(parent / "old_bananas_val", row)  # two val splits: refused, not one silently replaced
    refused_in_one_line(parent, capsys, "a second 'val' split beside", "my_bananas_val")
    (parent / "old_bananas_val" / "label.csv").unlink()
    banana_folder(parent / "bananas_extra", row)
    refused_in_one_line(parent, capsys, "bananas_extra: a banana folder beside others must be named *_train")


def test_banana_label_csv_with_a_utf8_bom_is_read(tmp_path, capsys):
    folder = banana_folder(tmp_path / "bananas_train", "\ufeffimg_name,label,xmin,ymin,xmax,ymax\n0.png,0,1,2,5,6\n")
    assert (folder / "label.csv").read_bytes()[:3] == b"\xef\xbb\xbf"
    records, _ = load_split(folder)
    assert records[0].boxes.tolist() == [[1, 2, 5, 6]] and records[0].labels.tolist() == [0]
    assert check_cli(folder, capsys)[0] == 0


@pytest.mark.parametrize("category", [{"id": "1", "name": "thing"}, {"id": 1}, ["thing"]])
def test_coco_categories_without_an_integer_id_and_a_name(tmp_path, capsys, category):
    f = coco(tmp_path, [GOOD_IMAGE], [GOOD_BOX])
    doc = json.loads(f.read_text())
    doc["categories"] = [category]
    f.write_text(json.dumps(doc))
    refused_in_one_line(f, capsys, "categories[0] must have an integer 'id' and a 'name'")


def test_coco_categories_sharing_a_name_are_refused_not_merged(tmp_path, capsys):
    """Per-class AP is reported by name: two categories named alike would overwrite each other's."""
    f = coco(tmp_path, [GOOD_IMAGE], [GOOD_BOX])
    doc = json.loads(f.read_text())
    doc["categories"] = [{"id": 1, "name": "thing"}, {"id": 7, "name": "other"}, {"id": 3, "name": "thing"}]
    f.write_text(json.dumps(doc))
    refused_in_one_line(f, capsys, "categories[2]: the name 'thing' is also category 1's")


@pytest.mark.parametrize("size", [-5, "inf", 0, None])
def test_coco_sizes_that_are_not_sizes_mean_read_the_header(tmp_path, size):
    """A width that is not a positive number is taken as unknown: the image's header gives it (40x30)."""
    f = coco(tmp_path, [{**GOOD_IMAGE, "width": size}], [GOOD_BOX])
    (record,) = load_split(f)[0]
    assert (record.width, record.height) == (40, 30)


def test_voc_size_zero_means_read_the_header(tmp_path):
    root = voc(tmp_path, voc_xml().replace("<width>40</width><height>30</height>", "<width>0</width><height>0</height>"))
    (record,) = load_split(root)[0]
    assert (record.width, record.height) == (40, 30) and record.boxes.tolist() == [[0, 0, 10, 10]]  # VOC is 1-based
