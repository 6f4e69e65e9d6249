"""Every subcommand, fed the bad values users give: one line on stderr that names the problem, exit 2 for a
usage error and 1 for bad data or files, and never a traceback. One row per command line.

Add a row here with every new command or option. Rows run in-process through ``detector.cli.main.main`` (an
exception escaping it would be a traceback on the command line); a few run the real ``detector`` binary too.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from detector.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = str(ROOT / "models" / "tinyssd-shapes.pt")  # an exported model: weights only, no training state


def _image(path: Path, w: int = 40, h: int = 30) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (90, 90, 90)).save(path)
    return path


def _coco(folder: Path, images: list, annotations: list, name: str = "train.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _image(folder / "a.png")
    doc = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}
    (folder / name).write_text(json.dumps(doc))
    return folder / name


GOOD_IMAGE = {"id": 1, "file_name": "a.png", "width": 40, "height": 30}
GOOD_BOX = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 10]}


@pytest.fixture(scope="module")
def bad(tmp_path_factory, request) -> dict[str, str]:
    """The prepared inputs, by name (paths as text)."""
    from detector.data.synth import synth_dataset

    t = tmp_path_factory.mktemp("bad")
    p: dict[str, Path] = {"tmp": t}
    p["shapes"] = synth_dataset(t / "shapes", "shapes", train=4, val=2, seed=0, size=64, workers=1)
    p["shapes_dir"] = t / "shapes"
    p["image"] = _image(t / "ok.png")
    p["text_png"] = t / "notes.png"
    p["text_png"].write_text("not an image")
    p["random_pt"] = t / "random.pt"
    p["random_pt"].write_bytes(bytes(range(256)) * 40)
    p["empty_pt"] = t / "empty.pt"
    p["empty_pt"].write_bytes(b"")
    p["a_file"] = t / "a-file.txt"
    p["a_file"].write_text("x")
    p["coco_ok"] = _coco(t / "coco_ok", [GOOD_IMAGE], [GOOD_BOX])
    p["coco_list_id"] = _coco(t / "coco_list", [{**GOOD_IMAGE, "id": [1]}], [GOOD_BOX])
    p["coco_dict_id"] = _coco(t / "coco_dict", [GOOD_IMAGE], [{**GOOD_BOX, "image_id": {"a": 1}}])
    p["coco_dot"] = _coco(t / "coco_dot", [GOOD_IMAGE, {"id": 2, "file_name": ".", "width": 40, "height": 30}],
                          [GOOD_BOX])
    p["coco_dotslash"] = _coco(t / "coco_dotslash", [GOOD_IMAGE, {"id": 2, "file_name": "./", "width": 40,
                                                                  "height": 30}], [GOOD_BOX])
    p["coco_truncated"] = t / "truncated.json"
    p["coco_truncated"].write_text(p["coco_ok"].read_text()[:40])
    preds = {"not_list": {"a": 1}, "no_bbox": [{"image_id": 1, "category_id": 1, "score": 0.5}],
             "short_bbox": [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3], "score": 0.5}],
             "text_bbox": [{"image_id": 1, "category_id": 1, "bbox": ["a", 2, 3, 4], "score": 0.5}],
             "nan_score": [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": float("nan")}],
             "unknown_image": [{"image_id": 99, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}],
             "unknown_category": [{"image_id": 1, "category_id": 7, "bbox": [1, 2, 3, 4], "score": 0.5}]}
    (t / "preds").mkdir()
    for name, value in preds.items():
        p[f"preds_{name}"] = t / "preds" / f"{name}.json"
        p[f"preds_{name}"].write_text(json.dumps(value))
    p["preds_not_json"] = t / "preds" / "broken.json"
    p["preds_not_json"].write_text("[{")
    voc = t / "voc_inf"
    _image(voc / "JPEGImages" / "a.jpg")
    (voc / "Annotations").mkdir(parents=True)
    (voc / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>inf</width><height>30</height></size><object><name>"
        "cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>")
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "train.txt").write_text("a\n")
    p["voc_inf"] = voc
    yolo = t / "yolo"
    _image(yolo / "images" / "train" / "a.png")
    (yolo / "train.txt").write_bytes(b"images/train/a.png\n\xff\xfeb.png\n")
    (yolo / "nonutf8.yaml").write_text("path: .\ntrain: train.txt\nnames: [a, b]\n")
    (yolo / "wrong_types.yaml").write_text("names: 5\ntrain: images/train\n")
    (yolo / "escape.yaml").write_text("path: .\ntrain: escape.txt\nnames: [a]\n")
    (yolo / "escape.txt").write_text("../outside.png\n")
    p.update({"yolo_nonutf8": yolo / "nonutf8.yaml", "yolo_wrong_types": yolo / "wrong_types.yaml",
              "yolo_escape": yolo / "escape.yaml"})
    p["yaml_self"] = t / "self.yaml"
    p["yaml_self"].write_text("format: detector\nnames: [a]\ntrain: self.yaml\n")
    p["yaml_not_yaml"] = t / "tabs.yaml"
    p["yaml_not_yaml"].write_text("names: [a\n\ttrain: [\n")
    row = "img_name,label,xmin,ymin,xmax,ymax\n0.png,0,1,1,5,5\n"
    for name, text in (("my_bananas_train", row), ("bom_bananas_train", "\ufeff" + row)):
        _image(t / name / "images" / "0.png")
        (t / name / "label.csv").write_bytes(text.encode("utf-8"))
    p["banana_underscore"], p["banana_bom"] = t / "my_bananas_train", t / "bom_bananas_train"
    p["big"] = t / "big.png"
    Image.new("1", (20000, 20000)).save(p["big"])
    p["nested_out"] = p["shapes_dir"] / "converted"
    p["fake_video"] = t / "clip.mp4"
    p["fake_video"].write_text("not a video")
    import cv2
    import numpy as np

    p["clip3"] = t / "three.mp4"  # a real video of 3 frames
    writer = cv2.VideoWriter(str(p["clip3"]), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for k in range(3):
        writer.write(np.full((48, 64, 3), 40 * k, np.uint8))
    writer.release()
    p["random_onnx"] = t / "random.onnx"
    p["random_onnx"].write_bytes(bytes(range(256)) * 40)
    p["foreign_onnx"] = _foreign_onnx(t / "foreign.onnx")
    p["frcnn_pt"] = t / "frcnn.pt"
    import torch

    torch.save({"model": {}, "model_name": "faster_rcnn", "classes": ["a"], "img_size": 64}, p["frcnn_pt"])
    p["old_run"] = t / "old-run"  # a folder holding an earlier run
    p["old_run"].mkdir()
    (p["old_run"] / "results.csv").write_text("epoch,loss\n1,2.0\n")
    p["recipe_yolo"] = t / "yolo.yaml"
    p["recipe_yolo"].write_text("model: yolo\n")
    p["recipe_nulls"] = t / "nulls.yaml"
    p["recipe_nulls"].write_text("epochs: null\nbatch_size: null\n")
    p["neg_with_a_val_image"] = t / "neg-copy"  # a "negatives" folder holding one of the data set's val images
    (p["neg_with_a_val_image"] / "a").mkdir(parents=True)
    import shutil

    shutil.copy(next(iter(sorted((t / "shapes" / "val" / "images").iterdir()))), p["neg_with_a_val_image"] / "a")
    p["empty_dir"] = t / "empty-folder"
    p["empty_dir"].mkdir()
    p["text_dir"] = t / "text-folder"  # a folder whose one "image" is text
    p["text_dir"].mkdir()
    (p["text_dir"] / "notes.png").write_text("not an image")
    p["photos"] = t / "photos"  # a folder of inputs
    _image(p["photos"] / "cat.png")
    p["dup_names"] = _coco(t / "dup", [GOOD_IMAGE], [GOOD_BOX])
    doc = json.loads(p["dup_names"].read_text())
    doc["categories"] = [{"id": 1, "name": "thing"}, {"id": 2, "name": "thing"}]
    p["dup_names"].write_text(json.dumps(doc))
    far = t / "yolo_far"  # a YOLO set whose yaml lies elsewhere (Ultralytics' usual layout)
    _image(far / "images" / "train" / "a.png", 64, 64)
    _image(far / "images" / "val" / "b.png", 64, 64)
    for split, stem in (("train", "a"), ("val", "b")):
        (far / "labels" / split).mkdir(parents=True)
        (far / "labels" / split / f"{stem}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (t / "yolo_cfg").mkdir()
    (t / "yolo_cfg" / "data.yaml").write_text(f"path: {far}\ntrain: images/train\nval: images/val\nnames: [a]\n")
    p["yolo_far"], p["yolo_elsewhere"] = far, t / "yolo_cfg" / "data.yaml"
    p["coco_covered"] = _coco(t / "covered", [{**GOOD_IMAGE, "width": 64, "height": 64}],
                              [{**GOOD_BOX, "bbox": [0, 0, 64, 64]}])
    _image(t / "covered" / "a.png", 64, 64)  # one photograph, all of it an object
    return {**{k: str(v) for k, v in p.items()}, "empty": ""}


def _foreign_onnx(path: Path) -> Path:
    """A valid ONNX model that `detector export` did not write (no metadata): Identity from images to boxes."""
    try:
        from onnx import TensorProto, helper, save
    except ImportError:  # the onnx rows are skipped then
        return path
    info = helper.make_tensor_value_info
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["boxes"])], "other",
                              [info("images", TensorProto.FLOAT, [1, 3, 8, 8])], [info("boxes", TensorProto.FLOAT, None)])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


# id, command line ({name} is a prepared input), exit status, a fragment the message must hold
ROWS = [
    # anchors
    ("anchors-missing", "anchors {tmp}/nope.png", 1, "no such file"),
    ("anchors-not-image", "anchors {text_png}", 1, "not an image"),
    ("anchors-bad-size", "anchors {image} --sizes -0.1", 2, "must be a finite number above 0"),
    ("anchors-bad-ratio", "anchors {image} --ratios 0", 2, "ratio"),
    ("anchors-fmap-text", "anchors {image} --fmap a b", 2, "invalid int value"),
    ("anchors-over-cap", "anchors {big}", 1, "over the cap"),
    ("anchors-cap-zero", "anchors {image} --max-pixels 0", 2, "must be a positive integer"),
    # data check / convert / synth / show
    ("check-missing", "data check {tmp}/nothing", 2, "nothing"),
    ("check-list-ids", "data check {coco_list_id}", 1, "must have an integer 'id'"),
    ("check-dict-ids", "data check {coco_dict_id}", 1, "image_id"),
    ("check-dot-name", "data check {coco_dot}", 1, "names the folder"),
    ("check-dotslash-name", "data check {coco_dotslash}", 1, "itself, not a file in it"),
    ("check-truncated-json", "data check {coco_truncated}", 1, "truncated.json"),
    ("check-voc-inf", "data check {voc_inf}", 1, "must be whole numbers of pixels"),
    ("check-yolo-nonutf8", "data check {yolo_nonutf8}", 1, "not UTF-8 text"),
    ("check-yolo-wrong-types", "data check {yolo_wrong_types}", 1, "'names' must be a list or a mapping"),
    ("check-yolo-escape", "data check {yolo_escape}", 1, "outside"),
    ("check-yaml-self", "data check {yaml_self}", 1, "which is being read already"),
    ("check-yaml-broken", "data check {yaml_not_yaml}", 1, "tabs.yaml"),
    ("check-banana-underscore", "data check {banana_underscore}", 0, ""),
    ("check-banana-bom", "data check {banana_bom}", 0, ""),
    ("check-workers", "data check {shapes} --workers -2", 2, "must be a positive integer"),
    ("convert-into-source", "data convert {shapes_dir} --to yolo --out {nested_out}", 2, "overlaps the source"),
    ("convert-onto-source", "data convert {shapes_dir} --to coco --out {shapes_dir} --link", 2, "overlaps"),
    ("convert-bad-format", "data convert {shapes} --to xml --out {tmp}/x", 2, "invalid choice"),
    ("convert-bad-data", "data convert {coco_list_id} --to voc --out {tmp}/x2", 1, "must have an integer 'id'"),
    ("synth-negative", "data synth --out {tmp}/s --train -1", 2, "must be 0 or more"),
    ("synth-bad-preset", "data synth --out {tmp}/s --preset clouds", 2, "invalid choice"),
    ("synth-out-is-file", "data synth --out {a_file}/s --train 1 --val 0 --workers 1", 1, "cannot write there"),
    ("show-missing", "data show {tmp}/nothing --out {tmp}/show", 2, "nothing"),
    # train
    ("train-batch-0", "train --data {shapes} --batch-size 0", 2, "--batch-size 0"),
    ("train-fewer-images-than-the-default-batch", "train --data {shapes} --out {tmp}/fb --device cpu --workers 0", 1,
     "its 4 training images are fewer than one batch of 8; give --batch-size 4 or less"),
    ("train-eval-every-0", "train --data {shapes} --eval-every 0", 2, "--eval-every 0"),
    ("train-epochs-negative", "train --data {shapes} --epochs -1", 2, "--epochs -1"),
    ("train-img-size-7", "train --data {shapes} --img-size 7", 2, "--img-size 7"),
    ("train-device-tpu", "train --data {shapes} --device tpu", 2, "--device tpu"),
    ("train-lr-0", "train --data {shapes} --lr 0", 2, "--lr 0"),
    ("train-time-0", "train --data {shapes} --time 0", 2, "--time 0.0: must be a positive number"),
    ("train-time-nan", "train --data {shapes} --time nan", 2, "--time nan: must be a positive number"),
    ("train-time-text", "train --data {shapes} --time 1h", 2, "invalid float value"),
    ("train-patience-0", "train --data {shapes} --patience 0", 2, "--patience 0: must be at least 1"),
    ("train-workers-negative", "train --data {shapes} --workers -1", 2, "--workers -1"),
    ("train-kwargs-list", "train --data {shapes} --model-kwargs [1]", 2, "must be a JSON object"),
    ("train-kwargs-broken", "train --data {shapes} --model-kwargs {{x", 2, "is not JSON"),
    ("train-kwargs-unknown", "train --data {shapes} --model-kwargs {{\"nope\":1}} --out {tmp}/k --device cpu", 2,
     "takes no keyword 'nope'"),
    ("train-kwargs-bad-head", "train --data {shapes} --model-kwargs {{\"head\":\"nope\"}} --out {tmp}/kh --device cpu",
     2, "--model-kwargs: tiny_ssd_plus: head must be one of"),
    ("train-kwargs-bad-box-loss", ("train --data {shapes} --model-kwargs {{\"box_loss\":\"giou\"}} --out {tmp}/kb "
     "--device cpu"), 2, "box_loss one of ('l1', 'smooth_l1', 'smooth_l1+giou')"),
    ("train-kwargs-merge-text", ("train --data {shapes} --model-kwargs {{\"nms_merge\":\"yes\"}} --out {tmp}/km "
     "--device cpu"), 2, "nms_merge must be true or false, got 'yes'"),
    ("train-unknown-model", "train --data {shapes} --model yolo", 2, "invalid choice"),
    ("train-out-under-file", "train --data {shapes} --out {a_file}/run --device cpu", 1, "a-file.txt"),
    ("train-resume-exported", "train --resume " + SHIPPED, 1, "cannot be resumed"),
    ("train-resume-random", "train --resume {random_pt}", 1, "not a checkpoint"),
    ("train-resume-missing", "train --resume {tmp}/none.pt", 1, "no such checkpoint"),
    ("train-missing-data", "train --data {tmp}/nothing --device cpu --out {tmp}/m", 1, "nothing"),
    ("train-bad-data", "train --data {coco_list_id} --device cpu --out {tmp}/b", 1, "must have an integer 'id'"),
    ("train-backbone-wrong-model", "train --data {shapes} --backbone resnet18", 2, "--backbone"),
    ("train-freeze-negative", "train --data {shapes} --model resnet_ssd --freeze-stages -1", 2,
     "--freeze-stages -1: must be at least 0"),
    ("train-config-missing", "train --config {tmp}/none.yaml", 2, "none.yaml: cannot read it"),
    ("train-config-not-a-mapping", "train --config {a_file}", 2, "must be a mapping of settings"),
    ("train-config-not-yaml", "train --config {random_pt}", 2, "random.pt: not a text file"),
    ("train-weights-other-model", "train --data {coco_ok} --weights " + SHIPPED + " --out {tmp}/w --device cpu", 1,
     "cannot start a tiny_ssd_plus of 1 classes"),
    ("train-weights-random", "train --data {shapes} --weights {random_pt} --out {tmp}/w2 --device cpu", 1,
     "not a checkpoint"),
    ("train-over-cap", "train --data {shapes} --max-pixels 100 --device cpu --out {tmp}/cap", 1, "over the cap"),
    ("train-letterbox-device", "train --data {shapes} --letterbox --data-path device", 2,
     "--letterbox: done by the DataLoader path only"),
    ("train-mosaic-1.5", "train --data {shapes} --mosaic 1.5", 2, "--mosaic 1.5: must be between 0 and 1"),
    ("train-mosaic-device", "train --data {shapes} --mosaic 0.5 --mixup 0.5 --data-path device", 2,
     "--mosaic and --mixup: done by the DataLoader path only"),
    ("train-mixup-negative", "train --data {shapes} --mixup -1", 2, "--mixup -1.0: must be between 0 and 1"),
    ("train-mixup-nan", "train --data {shapes} --mixup nan", 2, "--mixup nan: must be between 0 and 1"),
    ("train-multi-scale-2", "train --data {shapes} --multi-scale 2", 2,
     "--multi-scale 2.0: must be at least 0 and below 1"),
    ("train-multi-scale-no-size", "train --data {shapes} --multi-scale 0.01 --img-size 70", 2, "leaves no size"),
    ("train-ema-decay-1.5", "train --data {shapes} --ema-decay 1.5", 2, "--ema-decay 1.5: must be between 0 and 1"),
    ("train-ema-decay-1", "train --data {shapes} --ema-decay 1", 2, "--ema-decay 1.0: must be between 0 and 1 (both"),
    ("train-ema-decay-text", "train --data {shapes} --ema-decay high", 2, "invalid float value"),
    ("train-ema-tau-0", "train --data {shapes} --ema-decay 0.99 --ema-tau 0", 2, "--ema-tau 0: must be at least 1"),
    ("train-ema-tau-text", "train --data {shapes} --ema-tau long", 2, "invalid int value: 'long'"),
    ("train-ema-tau-alone", "train --data {shapes} --ema-tau 100", 2, "--ema-tau 100: the ramp of the moving average"),
    ("train-anchors-bogus", "train --data {shapes} --anchors bogus", 2, "invalid choice"),
    ("train-anchors-faster-rcnn", "train --data {shapes} --anchors auto --model faster_rcnn", 2,
     "--anchors auto: fits the anchor sizes of the SSD models"),
    ("train-anchors-and-sizes", "train --data {shapes} --anchors auto --model-kwargs {{\"sizes\":[[0.1]]}}", 2,
     "leave them out of --model-kwargs"),
    # eval
    ("eval-nothing-to-score", "eval --data {shapes}", 2, "give --weights"),
    ("eval-negatives-missing", "eval --data {shapes} --weights " + SHIPPED + " --device cpu --negatives {tmp}/nope", 1,
     "/nope: no such folder"),
    ("eval-negatives-a-file", "eval --data {shapes} --weights " + SHIPPED + " --device cpu --negatives {a_file}", 1,
     "a file, not a folder"),
    ("eval-negatives-empty-text", "eval --data {shapes} --weights " + SHIPPED + " --device cpu --negatives {empty}", 2,
     "--negatives '': give a folder"),
    ("eval-negatives-no-images", "eval --data {shapes} --weights " + SHIPPED + " --device cpu --negatives "
     "{empty_dir}", 1, "no images in it"),
    ("export-conf-over-1", "export --weights " + SHIPPED + " --out {tmp}/ec.pt --conf 1.5", 2,
     "--conf 1.5: must be between 0 and 1"),
    ("export-conf-text", "export --weights " + SHIPPED + " --out {tmp}/ec2.pt --conf high", 2,
     "invalid float value: 'high'"),
    ("export-negatives-without-card", "export --weights " + SHIPPED + " --out {tmp}/en.pt --negatives {empty_dir}", 2,
     "give --card too"),
    ("export-negatives-missing", "export --weights " + SHIPPED + " --out {tmp}/en2.pt --card --negatives {tmp}/none", 1,
     "no such folder"),
    ("eval-negatives-copies-of-the-data", "eval --data {shapes} --weights " + SHIPPED + " --device cpu --negatives "
     "{neg_with_a_val_image}", 1, "images of the data set itself"),
    ("predict-out-over-a-recursive-glob", "predict {shapes_dir}/**/*.jpg --weights " + SHIPPED + " --device cpu --out "
     "{shapes_dir}/val/images", 2, "is where"),
    ("predict-out-empty", "predict {image} --weights " + SHIPPED + " --device cpu --out {empty}", 2,
     "--out '': give a folder"),
    ("train-hard-negatives-below-0", "train --data {shapes} --hard-negatives -1 --out {tmp}/hn1", 2,
     "--hard-negatives -1.0: must be 0 or more"),
    ("train-hard-negatives-nan", "train --data {shapes} --hard-negatives nan --out {tmp}/hn2", 2,
     "--hard-negatives nan: must be 0 or more"),
    ("train-hard-negatives-text", "train --data {shapes} --hard-negatives lots --out {tmp}/hn3", 2,
     "invalid float value: 'lots'"),
    ("train-hard-negatives-device-path", "train --data {shapes} --hard-negatives 2 --data-path device --out {tmp}/hn4",
     2, "--hard-negatives: done by the DataLoader path only"),
    ("train-recipe-unknown-model", "train --config {recipe_yolo} --data {shapes} --device cpu --out {tmp}/ry", 2,
     "--model yolo: choose one of"),
    ("train-recipe-nulls", "train --config {recipe_nulls} --data {shapes} --device cpu --out {tmp}/rn2", 2,
     "--epochs None: must be given"),
    ("eval-negatives-with-predictions", "eval --data {coco_ok} --predictions {preds_not_list} --negatives {tmp}", 2,
     "false alarms are counted by running a model"),
    ("eval-negatives-unreadable", "eval --data {shapes} --weights " + SHIPPED + " --device cpu --negatives {text_dir}",
     1, "notes.png"),
    ("eval-random-weights", "eval --data {shapes} --weights {random_pt}", 1, "not a checkpoint"),
    ("eval-empty-weights", "eval --data {shapes} --weights {empty_pt}", 1, "not a checkpoint"),
    ("eval-other-classes", "eval --data {coco_ok} --weights " + SHIPPED + " --device cpu", 1, "trained on classes"),
    ("eval-preds-not-list", "eval --data {coco_ok} --predictions {preds_not_list}", 1, "not_list.json"),
    ("eval-preds-no-bbox", "eval --data {coco_ok} --predictions {preds_no_bbox}", 1, "bbox"),
    ("eval-preds-short-bbox", "eval --data {coco_ok} --predictions {preds_short_bbox}", 1, "bbox"),
    ("eval-preds-text-bbox", "eval --data {coco_ok} --predictions {preds_text_bbox}", 1, "bbox"),
    ("eval-preds-nan-score", "eval --data {coco_ok} --predictions {preds_nan_score}", 1, "score"),
    ("eval-preds-unknown-image", "eval --data {coco_ok} --predictions {preds_unknown_image}", 1, "99"),
    ("eval-preds-unknown-category", "eval --data {coco_ok} --predictions {preds_unknown_category}", 1, "7"),
    ("eval-preds-not-json", "eval --data {coco_ok} --predictions {preds_not_json}", 1, "broken.json"),
    ("eval-preds-missing", "eval --data {coco_ok} --predictions {tmp}/none.json", 1, "none.json"),
    ("eval-batch-0", "eval --data {shapes} --weights " + SHIPPED + " --batch-size 0", 2, "--batch-size 0"),
    ("eval-no-split", "eval --data {shapes} --predictions {preds_no_bbox} --split test", 1, "test"),
    ("eval-out-under-file", "eval --data {coco_ok} --predictions {preds_no_bbox} --out {a_file}/e", 1, "a-file.txt"),
    ("eval-corrupt-onnx", "eval --data {shapes} --weights {random_onnx}", 1, "random.onnx: not an ONNX model"),
    ("eval-foreign-onnx", "eval --data {shapes} --weights {foreign_onnx}", 1, "not one written by `detector export"),
    # predict
    ("predict-missing-input", "predict {tmp}/none.jpg --weights " + SHIPPED + " --out {tmp}/p", 1, "none.jpg"),
    ("predict-random-weights", "predict {image} --weights {random_pt} --out {tmp}/p", 1, "not a checkpoint"),
    ("predict-bad-conf", "predict {image} --weights " + SHIPPED + " --conf 2", 2, "--conf 2"),
    ("predict-unknown-class", "predict {image} --weights " + SHIPPED + " --classes dog", 2, "dog"),
    ("predict-max-det-0", "predict {image} --weights " + SHIPPED + " --max-det 0", 2, "--max-det 0"),
    ("predict-img-size-7", "predict {image} --weights " + SHIPPED + " --img-size 7", 2, "--img-size 7"),
    ("predict-device-tpu", "predict {image} --weights " + SHIPPED + " --device tpu", 2, "--device tpu"),
    ("predict-not-image", "predict {text_png} --weights " + SHIPPED + " --out {tmp}/p2 --device cpu", 1, "notes.png"),
    ("predict-over-cap", "predict {big} --weights " + SHIPPED + " --out {tmp}/p3 --device cpu", 1, "over the cap"),
    ("predict-fake-video", "predict {fake_video} --weights " + SHIPPED + " --out {tmp}/p4 --device cpu", 1,
     "not a readable video"),
    ("predict-missing-video", "predict {tmp}/none.mp4 --weights " + SHIPPED + " --out {tmp}/p5", 1, "none.mp4"),
    ("predict-out-under-file", "predict {image} --weights " + SHIPPED + " --out {a_file}/p", 1, "a-file.txt"),
    ("predict-corrupt-onnx", "predict {image} --weights {random_onnx} --out {tmp}/p6", 1,
     "random.onnx: not an ONNX model, or a damaged one"),
    ("predict-foreign-onnx", "predict {image} --weights {foreign_onnx} --out {tmp}/p7", 1,
     "foreign.onnx: an ONNX model, but not one written by `detector export --format onnx`"),
    ("predict-missing-onnx", "predict {image} --weights {tmp}/none.onnx --out {tmp}/p8", 1, "none.onnx: no such model"),
    ("predict-iou-2", "predict {image} --weights " + SHIPPED + " --iou 2", 2, "--iou 2.0: must be between 0 and 1"),
    ("predict-max-det-over-cap", "predict {image} --weights " + SHIPPED + " --max-det 1001", 2,
     "--max-det 1001: must be at most 1000"),
    ("predict-vid-stride-0", "predict {image} --weights " + SHIPPED + " --vid-stride 0", 2,
     "--vid-stride 0: must be at least 1"),
    ("predict-vid-stride-text", "predict {image} --weights " + SHIPPED + " --vid-stride half", 2,
     "invalid int value: 'half'"),
    ("predict-max-frames-0", "predict {image} --weights " + SHIPPED + " --max-frames 0", 2,
     "--max-frames 0: must be at least 1"),
    ("predict-max-frames-text", "predict {image} --weights " + SHIPPED + " --max-frames many", 2,
     "invalid int value: 'many'"),
    ("predict-video-over-max-frames", "predict {clip3} --weights " + SHIPPED + " --max-frames 2 --out {tmp}/p10 "
     "--device cpu", 1, "three.mp4: 3 frames (0 s), more than the 2 taken (--max-frames 2); raise it"),
    ("predict-max-pixels-0", "predict {image} --weights " + SHIPPED + " --max-pixels 0", 2,
     "--max-pixels 0: must be at least 1"),
    ("predict-unknown-model-name", "predict {image} --weights tiny_ssd --out {tmp}/p9", 2,
     "tiny_ssd is a new model with no weights yet"),
    # export
    ("export-format-xyz", "export --weights " + SHIPPED + " --format xyz --out {tmp}/m.onnx", 2, "invalid choice"),
    ("export-onnx-to-pt", "export --weights " + SHIPPED + " --format onnx --out {tmp}/m.pt", 2,
     "--format onnx writes a .onnx file"),
    ("export-no-suffix", "export --weights " + SHIPPED + " --out {tmp}/m", 2, "end it in .pt or .pth"),
    ("export-pt-img-size", "export --weights " + SHIPPED + " --out {tmp}/m.pt --img-size 128", 2,
     "apply to --format onnx"),
    ("export-onnx-img-size-7", "export --weights " + SHIPPED + " --format onnx --out {tmp}/m.onnx --img-size 7", 2,
     "--img-size 7: too small for tiny_ssd_plus"),
    ("export-onnx-img-size-0", "export --weights " + SHIPPED + " --out {tmp}/m.onnx --img-size 0", 2,
     "--img-size 0: must be at least 1"),
    ("export-onnx-faster-rcnn", "export --weights {frcnn_pt} --format onnx --out {tmp}/f.onnx", 1,
     "faster_rcnn cannot be exported to ONNX"),
    ("export-onnx-random", "export --weights {random_pt} --out {tmp}/r.onnx", 1, "not a checkpoint"),
    ("export-onnx-from-onnx", "export --weights {random_onnx} --out {tmp}/r2.onnx", 1, "not a checkpoint"),
    ("export-random", "export --weights {random_pt} --out {tmp}/m.pt", 1, "not a checkpoint"),
    ("export-missing", "export --weights {tmp}/none.pt --out {tmp}/m.pt", 1, "no such checkpoint"),
    ("export-card-bad-data", "export --weights " + SHIPPED + " --out {tmp}/m2.pt --card --test-data {tmp}/nothing",
     1, "nothing"),
    # import (offline here: torchvision's weights API cannot download, the hub cache is empty)
    ("import-unknown", "import torchvision:maskrcnn_resnet50_fpn --out {tmp}/z.pt", 2, "invalid choice"),
    ("import-out-suffix", "import torchvision:fasterrcnn_resnet50_fpn --out {tmp}/z.onnx", 2, ".pt or .pth"),
    ("import-offline", "import torchvision:fasterrcnn_resnet50_fpn --out {tmp}/z.pt", 1, "--weights-file"),
    ("import-missing-file", ("import torchvision:fasterrcnn_resnet50_fpn_v2 --out {tmp}/z.pt --weights-file "
                             "{tmp}/none.pth"), 1, "none.pth"),
    ("import-random-file", "import torchvision:fasterrcnn_resnet50_fpn --out {tmp}/z.pt --weights-file {random_pt}",
     1, "not a readable state dict"),
    ("import-wrong-weights", "import torchvision:fasterrcnn_resnet50_fpn --out {tmp}/z.pt --weights-file "
     + SHIPPED, 1, "not the weights of torchvision's fasterrcnn_resnet50_fpn"),
    # classify
    ("classify-batch-0", "classify train --data {shapes} --batch-size 0", 2, "--batch-size 0"),
    ("classify-img-size", "classify train --data {shapes} --model alexnet --img-size 7", 2, "--img-size 7"),
    ("classify-device", "classify train --data {shapes} --device tpu", 2, "--device tpu"),
    ("classify-time-negative", "classify train --data {shapes} --time -1", 2, "--time -1.0: must be a positive"),
    ("classify-patience-text", "classify train --data {shapes} --patience x", 2, "invalid int value"),
    ("classify-kwargs", "classify train --data {shapes} --model-kwargs [1]", 2, "must be a JSON object"),
    ("classify-optimizer", "classify train --data {shapes} --optimizer rmsprop", 2, "invalid choice: 'rmsprop'"),
    ("classify-schedule", "classify train --data {shapes} --schedule step", 2, "invalid choice: 'step'"),
    ("classify-momentum-one", "classify train --data {shapes} --momentum 1", 2, "--momentum 1.0: must be at least 0"),
    ("classify-momentum-text", "classify train --data {shapes} --momentum x", 2, "invalid float value"),
    ("classify-momentum-adamw", "classify train --data {shapes} --optimizer adamw --momentum 0.9", 2,
     "--momentum 0.9: for --optimizer sgd only"),
    ("classify-resume-random", "classify train --resume {random_pt}", 1, "not a checkpoint"),
    ("classify-missing-data", "classify train --data {tmp}/nothing --device cpu --out {tmp}/c", 1, "nothing"),
    ("classify-eval-detector", "classify eval --weights " + SHIPPED + " --data {shapes}", 1, "not a classifier"),
    ("classify-eval-random", "classify eval --weights {random_pt} --data {shapes}", 1, "not a checkpoint"),
    # demo (fails before serving)
    ("demo-missing-weights", "demo --weights {tmp}/none.pt --port 1", 1, "no such file"),
    ("demo-random-weights", "demo --weights {random_pt} --port 1", 1, "not a checkpoint"),
    ("demo-corrupt-onnx", "demo --weights {random_onnx} --port 1", 1, "random.onnx: not an ONNX model"),
    # no command writes over what it reads, or over an earlier run (issue 31)
    ("predict-out-is-the-input-folder", "predict {photos} --weights " + SHIPPED + " --out {photos}", 2,
     "is where"),
    ("predict-out-beside-the-input", "predict {photos}/cat.png --weights " + SHIPPED + " --out {photos}", 2,
     "its drawings would be written over the inputs"),
    ("export-over-its-weights", "export --weights {tmp}/copy.pt --out {tmp}/copy.pt", 2, "is the checkpoint it exports"),
    ("train-into-an-earlier-run", "train --data {shapes} --out {old_run} --device cpu", 2,
     "holds an earlier run (results.csv); choose another --out, pass --exist-ok"),
    ("synth-into-a-data-set", "data synth --out {shapes_dir} --train 2 --val 1", 2, "is not empty (a data set"),
    ("synth-size-100000", "data synth --out {tmp}/big --size 100000", 2, "must be between 32 and 4096"),
    ("negatives-count-0", "data negatives {shapes} --out {tmp}/neg --count 0", 2, "must be between 1 and 100000"),
    ("negatives-count-huge", "data negatives {shapes} --out {tmp}/neg --count 10000000", 2,
     "must be between 1 and 100000"),
    ("negatives-into-the-data-set", "data negatives {shapes} --out {shapes_dir}/neg", 2, "is inside the data set"),
    ("negatives-into-a-used-folder", "data negatives {shapes} --out {photos} --count 1", 2, "is not empty"),
    ("negatives-bad-split", "data negatives {shapes} --out {tmp}/neg --split test", 2, "has the splits train, val"),
    ("negatives-out-under-a-file", "data negatives {shapes} --out {a_file}/neg --count 1", 1, "cannot write there"),
    ("negatives-no-source", "data negatives {tmp}/nothing-here --out {tmp}/neg", 2, "no such file or folder"),
    ("negatives-seed-negative", "data negatives {shapes} --out {tmp}/neg --seed -1", 2, "must be 0 or more"),
    ("negatives-into-the-images-of-a-yaml-elsewhere", "data negatives {yolo_elsewhere} --out {yolo_far}/images/train/n",
     2, "overlaps the source folder"),
    ("negatives-into-the-other-splits-images", "data negatives {yolo_elsewhere} --out {yolo_far}/images/val/n", 2,
     "overlaps the source folder"),
    ("negatives-of-the-val-split", "data negatives {shapes} --out {tmp}/neg --split val", 2,
     "would leak it into training"),
    ("negatives-out-empty", "data negatives {shapes} --out {empty}", 2, "--out '': give a new folder"),
    ("show-into-the-images", "data show {shapes} --out {shapes_dir}/train/images/shown", 2,
     "overlaps the source folder"),
    ("negatives-out-is-a-file", "data negatives {shapes} --out {a_file} --count 1", 1, "a file, not a folder"),
    ("negatives-no-free-region", "data negatives {coco_covered} --out {tmp}/negc --count 2", 1,
     "no crop free of boxes"),
    ("train-negatives-empty", "train --data {shapes} --negatives {empty} --out {tmp}/rn --device cpu", 2,
     "--negatives '': give a folder"),
    ("train-negatives-a-file", "train --data {shapes} --negatives {a_file} --out {tmp}/rn --device cpu", 1,
     "a file, not a folder"),
    ("train-negatives-the-train-images",
     "train --data {shapes} --negatives {shapes_dir}/train/images --out {tmp}/rn --device cpu", 1,
     "are images of the data set itself"),
    ("synth-seed-negative", "data synth --out {tmp}/ss --seed -1", 2, "must be 0 or more"),
    ("show-seed-negative", "data show {shapes} --out {tmp}/sh --seed -1", 2, "must be 0 or more"),
    ("predict-empty-path", "predict {empty} --weights " + SHIPPED, 2, "an empty path"),
    ("train-negatives-missing", "train --data {shapes} --negatives {tmp}/nope --out {tmp}/rn --device cpu", 1,
     "no such folder"),
    ("show-size-0", "data show {shapes} --out {tmp}/sh --size 0", 2, "must be between 32 and 4096"),
    ("show-num-negative", "data show {shapes} --out {tmp}/sh --num -1", 2, "must be a positive integer"),
    ("anchors-fmap-huge", "anchors {image} --fmap 100000 100000 --out {tmp}/a.png", 2, "must be between 1 and 1000"),
    ("anchors-ratio-inf", "anchors {image} --ratios inf --out {tmp}/a.png", 2, "must be a finite number above 0"),
    ("anchors-out-not-an-image", "anchors {image} --out {tmp}/a.txt", 2, "end it in .png or .jpg"),
    ("anchors-out-under-a-file", "anchors {image} --out {a_file}/a.png", 1, "cannot write there"),
    ("demo-port-negative", "demo --port -1", 2, "must be between 1 and 65535"),
    ("demo-port-too-large", "demo --port 70000", 2, "must be between 1 and 65535"),
    ("demo-queue-0", "demo --queue-size 0", 2, "must be between 1 and 100000"),
    ("demo-max-file-size-banana", "demo --max-file-size banana", 2, "must be a size such as 50mb"),
    ("demo-max-file-size-0", "demo --max-file-size 0", 2, "must be at least 1 byte"),
    ("demo-upload-budget-banana", "demo --upload-budget apples", 2, "argument --upload-budget: must be a size"),
    ("demo-client-upload-budget-negative", "demo --client-upload-budget=-5mb", 2,
     "argument --client-upload-budget: must be a size"),
    ("train-kwargs-num-classes", "train --data {shapes} --model-kwargs {{\"num_classes\":-3}} --out {tmp}/nc --device cpu",
     2, "num_classes is not a keyword to give"),
    ("eval-duplicate-category-names", "eval --data {dup_names} --predictions {preds_no_bbox}", 1,
     "the name 'thing' is also category 1's"),
    # the command itself
    ("unknown-command", "frobnicate", 2, "invalid choice"),
    ("no-command", "", 2, "required"),
]


def run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse (2), and commands that exit with their message
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            code = 1
        else:
            code = e.code or 0
    captured = capsys.readouterr()
    return code, captured.err + captured.out


@pytest.mark.parametrize(("row_id", "line", "status", "fragment"), ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_gives_one_clear_line(bad, capsys, row_id, line, status, fragment):
    if "onnx" in row_id and not all(importlib.util.find_spec(p) for p in ("onnx", "onnxruntime")):
        pytest.skip("the onnx extra is not installed")
    argv = [part.format(**bad) for part in line.split()]
    code, text = run(argv, capsys)
    assert "Traceback" not in text, text
    assert code == status, f"{row_id}: exit {code}, expected {status}\n{text}"
    assert fragment in text, f"{row_id}: {fragment!r} not in\n{text}"
    if status:  # the line that says it: an error (data check lists its problems, indented), a usage error,
        # or predict's per-image "skipped:" (the other images go on)
        said = [ln for ln in text.splitlines() if ln.strip().startswith(("error:", "usage:", "skipped:"))]
        assert said, f"{row_id}: no 'error:', 'skipped:' or usage line\n{text}"


def test_the_table_covers_every_subcommand():
    from detector.cli.main import build_parser

    commands = {r[1].split()[0] if r[1] else "" for r in ROWS}
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) <= commands
    assert len(ROWS) >= 60


@pytest.mark.parametrize("line", ["train --resume {random_pt}", "data check {coco_list_id}",
                                  "predict {image} --weights {random_pt} --out {tmp}/q",
                                  "import torchvision:fasterrcnn_resnet50_fpn --out {tmp}/z.pt",
                                  "train --devices 2 --resume {tmp}/nope/last.pt --device cpu --workers 0"])
def test_the_real_binary_says_one_line(bad, line):
    argv = [part.format(**bad) for part in line.split()]
    done = subprocess.run([sys.executable, "-m", "detector", *argv], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len([ln for ln in done.stderr.splitlines() if ln.startswith("error:")]) == 1, done.stderr


def test_a_bug_keeps_its_traceback(bad, monkeypatch):
    """Only the library's own errors (``DetectorError``) become one line: a bug raising ``ValueError`` or
    ``OSError`` inside a command escapes ``main`` with its traceback instead of posing as bad input."""
    import detector.api.data
    import detector.api.scoring

    for kind in (ValueError, OSError, RuntimeError):
        def broken(*a, kind=kind, **k):
            raise kind("a bug")

        monkeypatch.setattr(detector.api.data, "load_data", broken)
        monkeypatch.setattr(detector.api.scoring, "load_dataset", broken)
        with pytest.raises(kind, match="a bug"):
            main(["data", "check", bad["shapes"]])
        with pytest.raises(kind, match="a bug"):
            main(["eval", "--data", bad["shapes"], "--predictions", bad["a_file"]])
