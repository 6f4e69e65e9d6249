"""The demo's handlers (detector/app/) on the shipped model, and the /detect endpoint through gradio_client."""

import json
import shutil
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from detector.app.catalog import ModelCache, describe_checkpoint, discover_models
from detector.app.detect import api_detect, run_detect
from detector.app.examples import example_boxes_text, make_examples, photo_examples
from detector.app.figures import anchors_figure, matching_figure, nms_figure, parse_boxes
from detector.app.uploads import BadInput, load_upload
from detector.core.boxes import box_iou, decode
from detector.core.errors import DetectorError
from detector.data.synth import SHAPES

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "models" / "tinyssd-shapes.pt"


@pytest.fixture(scope="module")
def entry():
    e = describe_checkpoint(WEIGHTS)
    e.label = WEIGHTS.name
    return e


@pytest.fixture(scope="module")
def cache():
    return ModelCache("cpu")


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return make_examples(tmp_path_factory.mktemp("examples"), count=3)


def truth(path):
    t = json.loads(Path(path).with_suffix(".json").read_text())
    return np.array(t["boxes"], np.float32), t["classes"]


# ------------------------------------------------------------------------------------------------ uploads
def test_greyscale_rgba_and_16bit_become_rgb(tmp_path):
    grey = tmp_path / "grey.png"
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (32, 1))).save(grey)
    img, notes = load_upload(grey)
    assert img.shape == (32, 64, 3) and img.dtype == np.uint8
    assert (img[..., 0] == img[..., 1]).all() and img[0, 63, 0] == 252
    assert any("greyscale" in n for n in notes)

    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :15, 3] = 255  # left half opaque red, right half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    img, notes = load_upload(tmp_path / "rgba.png")
    assert img.shape == (20, 30, 3)
    assert tuple(img[5, 2]) == (200, 0, 0) and tuple(img[5, 25]) == (255, 255, 255)
    assert any("transparency" in n for n in notes)

    deep = (np.linspace(0, 65535, 50 * 40).reshape(40, 50)).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)  # a real 16-bit PNG
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    img, notes = load_upload(tmp_path / "deep.png")
    assert img.dtype == np.uint8 and img.min() == 0 and img.max() == 255
    assert abs(int(img[20, 25, 0]) - round(int(deep[20, 25]) / 257)) <= 1
    assert any("16-bit" in n for n in notes)


def test_exif_rotated_photo_is_turned_upright(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :10] = 255  # a white band on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    Image.fromarray(img).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    up, notes = load_upload(tmp_path / "rot.jpg")
    assert up.shape == (40, 20, 3)  # turned: tall, not wide
    assert up[:10].mean() > 200 and up[-10:].mean() < 50  # the band is now on top
    assert any("EXIF" in n for n in notes)


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "empty file"),
    (b"# not an image\n", "not an image"),
    ("truncated", "corrupt or truncated"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, content, problem):
    path = tmp_path / "upload.jpg"
    if content == "truncated":
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[:3000])
    else:
        path.write_bytes(content)
    with pytest.raises(DetectorError, match=f"upload.jpg: {problem}"):
        load_upload(path)


def test_too_large_image_is_refused_without_decoding(tmp_path):
    Image.new("1", (12000, 9000)).save(tmp_path / "huge.png")  # 108 megapixels, a small file
    with pytest.raises(BadInput, match="huge.png: too large"):
        load_upload(tmp_path / "huge.png")


# ---------------------------------------------------------------------------------------------- detection
def test_detect_finds_the_generated_objects_and_reports_bad_uploads(tmp_path, examples, entry, cache):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    r = run_detect([*map(str, examples), str(bad)], entry, cache, conf=0.3)
    assert any("notes.txt: not an image" in m for m in r.messages)
    assert len(r.images) == len(examples) and len(r.results) == len(examples)
    assert "objects" in r.summary and "cpu" in r.summary
    found = total = 0
    for path, det in zip(examples, r.results):
        boxes, names = truth(path)
        total += len(boxes)
        if len(det.boxes):
            iou = box_iou(torch.from_numpy(boxes), torch.from_numpy(det.boxes)).numpy()
            for g in range(len(boxes)):
                hits = [j for j in range(len(det.boxes)) if iou[g, j] >= 0.5 and SHAPES[det.labels[j]] == names[g]]
                found += bool(hits)
    assert found >= 0.7 * total, f"found {found} of {total} generated objects"
    # the table and the COCO results JSON say the same as the detections
    assert len(r.rows) == sum(len(d.labels) for d in r.results)
    results = json.loads(Path(r.json_path).read_text())
    assert len(results) == len(r.rows)
    info = cache.get(entry.path).info
    for res, row in zip(results, r.rows):
        assert res["file_name"] == row[0] and res["category"] == row[1]
        assert res["category_id"] in info.category_ids
        x, y, w, h = res["bbox"]
        assert np.allclose([x, y, x + w, y + h], row[3:], atol=0.1) and w > 0 and h > 0
    per_image = [[row[2] for row in r.rows if row[0] == p.name] for p in examples]
    assert all(s == sorted(s, reverse=True) for s in per_image)


def test_large_image_boxes_map_back_to_its_pixels(examples, entry, cache):
    det = cache.get(entry.path)
    small = load_upload(examples[0])[0]
    big = cv2.resize(small, None, fx=8, fy=8, interpolation=cv2.INTER_NEAREST)  # 2048 px
    d_small = det.predict(small, conf=0.5)[0]
    d_big = det.predict(big, conf=0.5)[0]
    assert len(d_small.labels) >= 1 and len(d_big.labels) == len(d_small.labels)
    iou = box_iou(torch.from_numpy(d_small.boxes * 8), torch.from_numpy(d_big.boxes)).numpy()
    assert (iou.max(1) > 0.85).all()
    assert (d_big.boxes[:, 2] <= 2048 + 1).all() and d_big.boxes[:, 2].max() > 300


def test_filters_thresholds_and_no_detections(examples, entry, cache, tmp_path):
    det = cache.get(entry.path)
    image = load_upload(examples[0])[0]
    every = det.predict(image, conf=0.05)[0]
    assert len(every.labels) >= 3
    high = det.predict(image, conf=0.9)[0]
    assert (high.scores >= 0.9).all() and len(high.labels) < len(every.labels)
    one = run_detect([str(examples[0])], entry, cache, conf=0.05, max_det=1, downloads=tmp_path).results[0]
    assert len(one.labels) == 1 and one.scores[0] == every.scores.max()
    name = SHAPES[int(every.labels[0])]
    only = run_detect([str(examples[0])], entry, cache, conf=0.05, classes=[name], downloads=tmp_path).results[0]
    assert len(only.labels) >= 1 and all(SHAPES[c] == name for c in only.labels)
    blank = np.full((300, 200, 3), 127, np.uint8)
    assert len(det.predict(blank, conf=0.5)[0]) == 0
    with pytest.raises(BadInput, match="max detections 5000 must lie in 1..1000"):
        run_detect([str(examples[0])], entry, cache, max_det=5000, downloads=tmp_path)


def test_nms_tab_keeps_what_detect_gives(examples, entry, cache):
    det = cache.get(entry.path)
    image = load_upload(examples[1])[0]
    for iou in (0.3, 0.6):
        r = nms_figure(image, entry, cache, conf=0.05, iou=iou)
        direct = det.predict(image, conf=0.05, iou=iou, max_det=1000)[0]
        assert len(r.candidates.labels) > len(r.kept.labels) > 0
        assert np.allclose(np.sort(r.kept.scores), np.sort(direct.scores), atol=1e-6)
        assert f"{len(r.kept.labels)} kept" in r.summary


def test_api_detect_json(examples, entry, cache, tmp_path):
    out = api_detect(str(examples[0]), entry, cache, 0.3, 0.45, 100)
    assert out["width"] == 256 and out["height"] == 256 and out["device"] == "cpu"
    name = examples[0].name
    assert out["detections"] and all(d["category"] in SHAPES and len(d["bbox"]) == 4 and d["file_name"] == name
                                     for d in out["detections"])  # the one JSON shape of a detection
    (r,) = cache.get(entry.path).predict(examples[0], conf=0.3, iou=0.45, max_det=100)
    assert out["detections"] == r.to_coco(file_name=name)
    own = api_detect(str(examples[0]), entry, cache)  # nothing given: the model's own settings
    assert own["detections"] == cache.get(entry.path).predict(examples[0])[0].to_coco(file_name=name)
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert "x.png: " in api_detect(str(tmp_path / "x.png"), entry, cache)["error"]
    assert api_detect(None, entry, cache) == {"error": "no image given"}


# ------------------------------------------------------------------------------------- the book's figures
def test_anchors_figure_counts_and_errors():
    image = np.zeros((300, 400, 3), np.uint8)
    drawn, text = anchors_figure(image, 3, 5, "0.2 0.4", "1, 2, 0.5")
    assert text.startswith(f"{3 * 5 * 4} anchors") and drawn.size == (640, 480)
    assert np.asarray(drawn).any()  # something was drawn on the black image
    with pytest.raises(BadInput, match="sizes"):
        anchors_figure(image, 3, 5, "big", "1")
    with pytest.raises(BadInput, match="too many"):
        anchors_figure(image, 128, 128, "0.1 0.2", "1 2")


def test_matching_figure_is_the_books_assignment():
    image = np.zeros((200, 300, 3), np.uint8)
    r = matching_figure(image, "10 20 120 150\n150 40 290 190", 6, 8, "0.3, 0.5", "1, 2", 0.5)
    best = r.iou.max(1)
    pos = r.assigned >= 0
    assert set(np.unique(r.assigned[pos])) == {0, 1}  # every box has an anchor
    assert pos[best >= 0.5].all()  # every anchor over the threshold is positive
    for a in np.nonzero(pos & (best < 0.5))[0]:  # the rest are the boxes' own best anchors
        assert a in set(r.iou.argmax(0))
    assert len(r.rows) == pos.sum() and f"{pos.sum()} of {len(r.anchors)} anchors" in r.summary
    gt = torch.tensor([[10, 20, 120, 150], [150, 40, 290, 190]], dtype=torch.float32)
    for row in r.rows:  # offsets decode back onto the assigned box
        anchor = torch.tensor([row[3:7]], dtype=torch.float32)
        back = decode(anchor, torch.tensor([row[9:13]], dtype=torch.float32))
        assert torch.allclose(back, gt[row[7]][None], atol=1.0)


@pytest.mark.parametrize(("text", "problem"), [
    ("1 2 3", "needs 4 numbers"),
    ("50 50 10 60", "x2 > x1"),
    ("400 10 500 50", "outside"),
    ("a b c d", "not a list of numbers"),
    ("", "at least one"),
])
def test_typed_boxes_errors(text, problem):
    with pytest.raises(BadInput, match=problem):
        parse_boxes(text, 300, 200)


def test_examples_carry_their_ground_truth(examples):
    lines = example_boxes_text(examples[0]).splitlines()
    boxes, _ = truth(examples[0])
    assert len(lines) == len(boxes) >= 2
    assert parse_boxes("\n".join(lines), 256, 256).shape == (len(boxes), 4)


def test_discover_models_reads_cards_and_skips_broken(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(WEIGHTS, models / "a.pt")
    shutil.copy(WEIGHTS.with_suffix(".json"), models / "a.json")
    (models / "broken.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "runs" / "exp").mkdir(parents=True)
    shutil.copy(WEIGHTS, tmp_path / "runs" / "exp" / "best.pt")
    entries = discover_models([models], tmp_path / "runs")
    assert list(entries) == ["a.pt", "exp/best.pt"]
    assert "AP 0.703" in entries["a.pt"].summary and entries["a.pt"].classes == list(SHAPES)
    assert entries["exp/best.pt"].classes == list(SHAPES)


def test_discover_models_lists_onnx_files_and_runs_them_like_the_checkpoint(shipped_onnx, examples, tmp_path):
    pytest.importorskip("onnxruntime")
    _, onnx_path = shipped_onnx
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(onnx_path, models / "tinyssd-shapes.onnx")
    shutil.copy(WEIGHTS, models / "tinyssd-shapes.pt")
    (models / "broken.onnx").write_bytes(b"not a graph")
    entries = discover_models([models], None)
    assert list(entries) == ["tinyssd-shapes.onnx", "tinyssd-shapes.pt"]  # broken.onnx left out
    onnx_entry = entries["tinyssd-shapes.onnx"]
    assert onnx_entry.classes == list(SHAPES) and onnx_entry.summary.endswith("; ONNX Runtime")
    cache, image = ModelCache("cpu"), np.asarray(Image.open(examples[0]).convert("RGB"))
    got, want = (cache.get(e.path).predict(image, conf=0.2, iou=0.45, max_det=50)[0] for e in entries.values())
    assert len(got.scores) == len(want.scores) > 0 and got.labels.tolist() == want.labels.tolist()
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-4)
    np.testing.assert_allclose(got.boxes, want.boxes, atol=0.5)


# ------------------------------------------------------------------------------------ served, through HTTP
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_detect_endpoint_through_gradio_client(examples, entry, cache, tmp_path):
    from gradio_client import Client, handle_file

    from detector.app.ui import build_app

    bananas = describe_checkpoint(ROOT / "models" / "tinyssd-bananas.pt")
    bananas.label = "tinyssd-bananas.pt"
    port = free_port()
    demo = build_app({entry.label: entry, bananas.label: bananas}, entry.label, cache, examples,
                     url=f"http://127.0.0.1:{port}/")
    demo.queue(max_size=8, default_concurrency_limit=1)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        out = client.predict(handle_file(str(examples[0])), 0.3, 0.45, 100, api_name="/detect")
        direct = api_detect(str(examples[0]), entry, cache, 0.3, 0.45, 100)
        assert out["detections"] == direct["detections"] and out["model"] == entry.label
        own = client.predict(handle_file(str(examples[0])), api_name="/detect")  # no settings: the model's own
        assert own["detections"] == api_detect(str(examples[0]), entry, cache)["detections"]
        other = client.predict(handle_file(str(examples[0])), 0.3, 0.45, 100, "tinyssd-bananas.pt",
                               api_name="/detect")  # the optional model, from the dropdown's list
        assert other["model"] == "tinyssd-bananas.pt" and {d["category"] for d in other["detections"]} <= {"banana"}
        assert "unknown model 'nope.pt'" in client.predict(handle_file(str(examples[0])), 0.3, 0.45, 100, "nope.pt",
                                                           api_name="/detect")["error"]
        bad = tmp_path / "bad.jpg"
        bad.write_bytes(b"nope")
        assert "bad.jpg: not an image" in client.predict(handle_file(str(bad)), 0.3, 0.45, 100,
                                                          api_name="/detect")["error"]
        assert list(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == ["/detect"]
    finally:
        demo.close()


def test_demo_command_refuses_a_missing_checkpoint(capsys):
    from detector.cli.main import main

    with pytest.raises(SystemExit, match="--weights nope.pt: no such file"):
        main(["demo", "--weights", "nope.pt", "--port", str(free_port())])


def test_video_is_drawn_frame_by_frame_with_limits(tmp_path, examples, entry, cache):
    from detector.app import detect as app_detect
    from detector.app.detect import run_video

    clip = tmp_path / "clip.mp4"
    frame = cv2.imread(str(examples[0]))  # a generated image with objects, as every frame
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (frame.shape[1], frame.shape[0]))
    for _ in range(6):
        w.write(frame)
    w.release()
    video, frames_json, summary = run_video(str(clip), entry, cache, 0.3, 0.45, downloads=tmp_path)
    doc = json.loads(Path(frames_json).read_text())
    counts = [len(f["detections"]) for f in doc["frames"]]
    boxes, _ = truth(examples[0])
    assert len(counts) == 6 and set(counts) == {counts[0]} and counts[0] >= len(boxes) - 1  # same frame: same result
    assert video.endswith(".webm") and Path(video).stat().st_size > 0 and "6 frames" in summary
    with pytest.raises(BadInput, match="notes.txt: not a video"):
        run_video(str(tmp_path / "notes.txt"), entry, cache)
    fake = tmp_path / "fake.webm"
    fake.write_text("x")
    with pytest.raises(BadInput, match="fake.webm: not a readable video"):
        run_video(str(fake), entry, cache, downloads=tmp_path)
    original = app_detect.MAX_VIDEO_FRAMES
    app_detect.MAX_VIDEO_FRAMES = 4
    try:
        with pytest.raises(BadInput, match=r"clip.mp4: longer than the app takes \(4 frames"):
            run_video(str(clip), entry, cache, downloads=tmp_path)
    finally:
        app_detect.MAX_VIDEO_FRAMES = original


def test_the_app_starts_on_the_shipped_model_run_by_onnx_runtime(monkeypatch, tmp_path):
    from detector.app.ui import resolve_models

    monkeypatch.chdir(tmp_path)  # no runs/ here: the shipped models alone
    entries, default = resolve_models(None)
    assert default == "tinyssd-shapes.onnx" and entries[default].summary.endswith("; ONNX Runtime")
    assert {"tinyssd-shapes.pt", "tinyssd-bananas.onnx", "tinyssd-bananas.pt", "tinyssd-raccoon.onnx",
            "tinyssd-raccoon.pt"} <= set(entries)
    entries, default = resolve_models(str(ROOT / "models" / "tinyssd-bananas.pt"))
    assert default == "tinyssd-bananas.pt"  # --weights still chooses


def test_the_shipped_photos_carry_their_truth_and_the_raccoon_model_finds_the_raccoons(cache):
    """models/examples: raccoon val photos (never trained on) with their boxes; the shipped raccoon model, as the
    app runs it (ONNX Runtime), finds most of them at IoU 0.5 and the shapes model's classes are not its own."""
    pytest.importorskip("onnxruntime")
    photos = photo_examples([ROOT / "nowhere", ROOT / "models" / "examples"])
    assert [p.name for p in photos] == ["raccoon-145.jpg", "raccoon-186.jpg", "raccoon-41.jpg"]
    raccoon = describe_checkpoint(ROOT / "models" / "tinyssd-raccoon.onnx")
    raccoon.label = "tinyssd-raccoon.onnx"
    assert raccoon.classes == ["raccoon"]
    r = run_detect([str(p) for p in photos], raccoon, cache, conf=0.3)
    assert not r.messages and len(r.results) == len(photos)
    found = total = 0
    for path, det in zip(photos, r.results):
        boxes, names = truth(path)
        h, w = load_upload(path)[0].shape[:2]
        assert set(names) == {"raccoon"} and (boxes >= 0).all() and (boxes[:, [0, 2]] <= w).all() \
            and (boxes[:, [1, 3]] <= h).all()
        total += len(boxes)
        if len(det.boxes):
            found += int((box_iou(torch.from_numpy(boxes), torch.from_numpy(det.boxes)).max(1).values >= 0.5).sum())
    assert found >= total - 1, f"found {found} of {total} raccoons"
    assert example_boxes_text(photos[0]).count("\n") == 1  # two raccoons in raccoon-145


# ------------------------------------------------------------------------------------------------ the zoo
def test_zoo_entries_say_what_they_detect_and_a_missing_file_is_named(hub, tmp_path):
    from detector.app.catalog import zoo_entries
    from detector.app.ui import resolve_models

    entries = zoo_entries()
    lite = entries["COCO: ssdlite320_mobilenet_v3_large"]
    assert len(lite.classes) == 80 and "box AP 21.3 (theirs); 13 MB, downloaded on first use" in lite.summary
    assert lite.detects().startswith("80 everyday object classes (COCO: person, bicycle")
    assert next(iter(entries)) == "COCO: ssdlite320_mobilenet_v3_large"  # the smallest download first
    cache = ModelCache("cpu")
    with pytest.raises(DetectorError, match="put ssdlite320_mobilenet_v3_large_coco-a79551df.pth in"):
        cache.get(lite.path)  # offline, not in the cache: one line says which file to put where
    hub("torchvision:ssdlite320_mobilenet_v3_large")
    assert "downloaded; run with ONNX Runtime" in zoo_entries()["COCO: ssdlite320_mobilenet_v3_large"].summary
    image = tmp_path / "coffee.png"
    Image.fromarray(data_coffee()).save(image)
    r = run_detect([str(image)], lite, cache, conf=0.3, downloads=tmp_path)
    assert r.rows and all(row[1] in lite.classes for row in r.rows)  # COCO's names
    all_entries, default = resolve_models("torchvision:ssdlite320_mobilenet_v3_large")
    assert default == "COCO: ssdlite320_mobilenet_v3_large" and "tinyssd-shapes.pt" in all_entries


def test_a_zoo_ssd_is_served_by_onnx_runtime_with_pytorchs_detections(hub, tmp_path):
    """The app runs a zoo SSD's graph with ONNX Runtime on a CPU: exported once beside the cached weights, its
    detections those of the PyTorch model; a Faster R-CNN stays PyTorch."""
    pytest.importorskip("onnxruntime")
    from detector.api import Detector
    from detector.api.zoo import zoo_onnx

    name = "torchvision:ssdlite320_mobilenet_v3_large"
    hub(name)
    det = ModelCache("cpu").get(name)
    assert det.info.format == "onnx" and len(det.names) == 80
    graph = zoo_onnx(name)
    made = graph.stat().st_mtime_ns
    ModelCache("cpu").get(name)
    assert graph.stat().st_mtime_ns == made  # exported once
    image = data_coffee()
    ours, torch_model = det.predict(image, conf=0.3)[0], Detector(name, device="cpu").predict(image, conf=0.3)[0]
    assert len(ours) == len(torch_model) > 0
    assert [ours.names[k] for k in ours.labels.tolist()] == [torch_model.names[k] for k in torch_model.labels.tolist()]
    assert np.allclose(ours.boxes, torch_model.boxes, atol=0.05) and np.allclose(ours.scores, torch_model.scores,
                                                                                 atol=1e-4)
    hub("torchvision:fasterrcnn_mobilenet_v3_large_320_fpn")
    assert ModelCache("cpu").get("torchvision:fasterrcnn_mobilenet_v3_large_320_fpn").info.format != "onnx"


def test_an_empty_result_names_the_models_classes(entry, cache, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 150), (128, 128, 128)).save(blank)
    r = run_detect([str(blank)], entry, cache, conf=0.5, downloads=tmp_path)
    assert any("detects only circle, triangle, square, star and cross; for other objects choose a COCO model" in m
               for m in r.messages)


def data_coffee():
    from skimage import data

    return data.coffee()
