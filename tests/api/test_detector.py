"""The Python API, as a script uses it: ``Detector`` with train, val, predict and export; every input kind of
predict; streaming in bounded memory; bad input as one exception type with the CLI's message."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detector import Detector, DetectorError
from detector.api import Metrics, Results, UsageError, evaluate
from detector.cli.main import main
from detector.data.synth import synth_dataset
from detector.engine.checkpoint import save_checkpoint
from detector.models.registry import build_model

ROOT = Path(__file__).resolve().parents[2]
SHAPES = ROOT / "models" / "tinyssd-shapes.pt"
EXAMPLES = ROOT / "models" / "examples"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A generated set (16 train, 4 val images at 64 px) and a run trained on it for one epoch through the API."""
    root = tmp_path_factory.mktemp("api")
    data = synth_dataset(root / "shapes", "shapes", train=16, val=4, seed=0, size=64, workers=1)
    det = Detector("tiny_ssd_plus", device="cpu")
    metrics = det.train(data=data, epochs=1, batch_size=8, img_size=64, workers=0, out=str(root / "run"),
                        data_path="loader", eval_every=1)
    return {"root": root, "data": data, "det": det, "metrics": metrics}


def test_train_holds_the_best_model_and_knows_its_run(tiny):
    det, run = tiny["det"], tiny["root"] / "run"
    assert isinstance(tiny["metrics"], Metrics) and 0 <= tiny["metrics"].ap <= 1
    assert det.run == run and det.source == str(run / "best.pt")
    assert det.names == ["circle", "triangle", "square", "star", "cross"] and det.img_size == 64
    assert det.model is not None and not det.model.training


def test_val_equals_the_cli(tiny, tmp_path, capsys):
    m = tiny["det"].val(data=tiny["data"], workers=0, out=str(tmp_path / "ev"))
    assert set(m.to_dict()) >= {"AP", "AP50", "AP75", "per_class", "AP50_voc"} and m.images == 4
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["AP"] == m.ap
    assert main(["eval", "--weights", tiny["det"].source, "--data", str(tiny["data"]), "--workers", "0",
                 "--device", "cpu", "--out", str(tmp_path / "cli")]) == 0
    assert json.loads((tmp_path / "cli" / "metrics.json").read_text()) == m.to_dict()
    assert "AP @[.50:.95]" in capsys.readouterr().out


def test_evaluate_a_predictions_file_matches_val(tiny, tmp_path):
    det = tiny["det"]
    results = [r for k, res in enumerate(det.predict(sorted((Path(tiny["data"]).parent / "val" / "images").iterdir()),
                                                     conf=0.0)) for r in res.to_coco(image_id=k + 1)]
    (tmp_path / "preds.json").write_text(json.dumps(results))
    m = evaluate(data=tiny["data"], predictions=tmp_path / "preds.json")
    assert m.images == 4 and 0 <= m.ap <= 1


def test_train_from_a_checkpoint_starts_from_its_weights(tiny, tmp_path):
    det = Detector(tiny["det"].source, device="cpu")
    before = {k: v.clone() for k, v in det.model.state_dict().items()}
    det.train(data=tiny["data"], epochs=1, batch_size=8, workers=0, out=str(tmp_path / "more"), data_path="loader",
              lr=1e-9, warmup_epochs=0.0)  # a step this small leaves the weights where they started
    after = det.model.state_dict()
    assert det.img_size == 64  # the checkpoint's own input size, not the project's default
    moved = max((after[k].float() - before[k].float()).abs().max().item() for k in before if "running" not in k
                and before[k].is_floating_point())
    assert moved < 1e-3


def test_export_both_formats_and_predict_the_same(tiny, tmp_path):
    det = tiny["det"]
    pt = det.export(tmp_path / "small.pt", half=True)
    onnx = det.export(tmp_path / "model.onnx", dynamic_batch=True)
    image = np.asarray(Image.open(next(EXAMPLES.glob("*.jpg"))).convert("RGB"))
    ours = det.predict(image, conf=0.05)[0]
    for other in (Detector(pt, device="cpu"), Detector(onnx, device="cpu")):
        theirs = other.predict(image, conf=0.05)[0]
        assert len(theirs) == len(ours) > 0
        for box, score in zip(ours.boxes, ours.scores):  # the same detections as a set (equal scores may swap)
            near = np.abs(theirs.boxes - box).max(1) <= 0.5
            assert (np.abs(theirs.scores[near] - score) <= 2e-3).any(), (box, score)


def test_every_input_kind_of_predict(tmp_path):
    det = Detector(SHAPES, device="cpu")
    files = sorted(EXAMPLES.glob("*.jpg"))
    array = np.asarray(Image.open(files[0]).convert("RGB"))
    by_path = det.predict(files[0])[0]
    assert isinstance(by_path, Results) and by_path.path == str(files[0]) and by_path.orig_shape == array.shape[:2]
    for same in (det.predict(array)[0], det.predict(Image.open(files[0]))[0], det.predict(str(files[0]))[0]):
        np.testing.assert_array_equal(same.boxes, by_path.boxes)
    assert [r.path for r in det.predict(EXAMPLES)] == [str(f) for f in files]  # a folder: its images, sorted
    assert [r.path for r in det.predict(str(EXAMPLES / "raccoon-1*.jpg"))] == [str(f) for f in files[:2]]  # a glob
    assert len(det.predict([files[0], array, Image.open(files[1])])) == 3  # a list of them
    grey = det.predict(array.mean(-1).astype(np.uint8))[0]
    assert grey.orig_shape == array.shape[:2]
    video = tmp_path / "clip.webm"
    write_video(video, [array] * 3)
    frames = det.predict(video)
    assert [r.frame for r in frames] == [0, 1, 2] and all(r.path == str(video) and r.fps for r in frames)
    drawn = by_path.plot()
    assert drawn.size == (array.shape[1], array.shape[0])
    assert by_path.save(tmp_path / "out.jpg").is_file()
    assert all(c["file_name"] == str(files[0]) for c in by_path.to_coco(image_id=3))


def write_video(path: Path, frames: list[np.ndarray], fps: float = 5.0) -> None:
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"vp80"), fps, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.slow
def test_stream_over_1000_images_in_flat_memory(tmp_path):
    """A folder of 1,000 generated images streams one result at a time: memory after 1,000 is what it was after
    100 (within a few MiB), as a list of them would not be (each result keeps its image)."""
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(1000):
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    model = build_model("tiny_ssd", 2, img_size=64)
    save_checkpoint({"model": model.state_dict(), "model_name": "tiny_ssd", "classes": ["a", "b"],
                     "category_ids": [1, 2], "img_size": 64}, tmp_path / "m.pt")
    det = Detector(tmp_path / "m.pt", device="cpu")
    stream = det.predict(folder, stream=True, conf=0.5)
    assert iter(stream) is stream and not isinstance(stream, list)  # an iterator, not a list
    seen, at_100 = 0, None
    for r in stream:
        seen += 1
        assert r.orig_shape == (96, 128)
        if seen == 100:
            at_100 = rss_mib()
    assert seen == 1000
    assert rss_mib() - at_100 < 20, (at_100, rss_mib())  # a list would hold 900 more images: 33 MiB


def test_settings_merge_the_models_own_under_the_callers(tmp_path):
    """Not given, the NMS IoU and the maximum are the model's own (here 0.9 and 3); given, the caller's."""
    model = build_model("tiny_ssd", 1, img_size=64, nms_threshold=0.9, max_detections=3)
    save_checkpoint({"model": model.state_dict(), "model_name": "tiny_ssd", "classes": ["a"], "category_ids": [1],
                     "img_size": 64, "model_kwargs": {"nms_threshold": 0.9, "max_detections": 3}}, tmp_path / "m.pt")
    det = Detector(tmp_path / "m.pt", device="cpu")
    image = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    assert len(det.predict(image, conf=0.0)[0]) == 3  # its own maximum
    assert len(det.predict(image, conf=0.0, max_det=7)[0]) == 7
    seen = []
    real = det.model.forward
    det.model.forward = lambda images, targets=None, post=None, size=None: seen.append(post) or real(images, post=post)
    det.predict(image, conf=0.0)
    det.predict(image, conf=0.0, iou=0.3)
    assert seen[0]["nms_threshold"] == 0.9 and seen[1]["nms_threshold"] == 0.3  # the model's own, else the caller's
    assert det.info.defaults.as_dict() == {"conf": 0.25, "iou": 0.9, "max_det": 3}
    assert det.predict_config().iou == 0.9 and det.predict_config(iou=0.3).iou == 0.3


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Detector("no_such_model"), "no_such_model: neither a model (tiny_ssd"),
    (lambda: Detector(SHAPES, device="gpu7"), "device='gpu7': not a device"),
    (lambda: Detector(SHAPES).predict(EXAMPLES, classes=["dog"]), "classes=['dog']: not a class of this model"),
    (lambda: Detector(SHAPES).predict(EXAMPLES, conf=1.5), "conf=1.5: must be between 0 and 1"),
    (lambda: Detector(SHAPES).predict(EXAMPLES, max_det=0), "max_det=0: must be at least 1"),
    (lambda: Detector(SHAPES).predict("nowhere/*.jpg"), "nowhere/*.jpg: no such image, folder or matching files"),
    (lambda: Detector(SHAPES).predict(np.zeros((4, 4), np.float32)), "an image array must be RGB uint8"),
    (lambda: Detector(SHAPES).predict(EXAMPLES, colour="red"), "predict(): no setting colour"),
    (lambda: Detector("tiny_ssd").predict(EXAMPLES), "tiny_ssd is a new model with no weights yet"),
    (lambda: Detector("tiny_ssd").train(data="nowhere", epochs=0), "epochs=0: must be at least 1"),
    (lambda: Detector(SHAPES).export("x.txt"), "out='x.txt': end it in .pt or .pth"),
    # values of the wrong type, as a script or a recipe file gives them
    (lambda: Detector(SHAPES).predict(EXAMPLES, conf="0.3"), "conf='0.3': must be a number"),
    (lambda: Detector(SHAPES).predict(EXAMPLES, conf=-0.1), "conf=-0.1: must be between 0 and 1"),
    (lambda: Detector(SHAPES).predict(EXAMPLES, max_det=1001), "max_det=1001: must be at most 1000"),
    (lambda: Detector(SHAPES).predict(EXAMPLES, save_txt=True), "save_txt=True writes labels into out="),
    (lambda: Detector(SHAPES).predict(EXAMPLES, out=" "), "out=' ': give a folder"),
    (lambda: Detector(SHAPES).predict(EXAMPLES, max_frames=0), "max_frames=0: must be at least 1"),
    (lambda: Detector(SHAPES).predict(EXAMPLES, skip_bad_frames="no"), "skip_bad_frames='no': must be true or false"),
    (lambda: Detector(SHAPES).predict(EXAMPLES, max_det=1.5), "max_det=1.5: must be a whole number"),
    (lambda: Detector(SHAPES).predict(EXAMPLES, img_size=100.5), "img_size=100.5: must be a whole number"),
    (lambda: Detector(SHAPES).predict(EXAMPLES, img_size=1_000_000), "img_size=1000000: must be at most 8192"),
    (lambda: Detector(SHAPES).predict(EXAMPLES, batch=1.5), "batch=1.5: must be a whole number"),
    (lambda: Detector(SHAPES).predict(EXAMPLES, batch=None), "batch=None: must be a whole number"),
    (lambda: Detector(SHAPES).predict(None), "predict: cannot read a NoneType"),
    (lambda: Detector(SHAPES).predict(5), "predict: cannot read a int"),
    (lambda: Detector(SHAPES).predict([[EXAMPLES]]), "predict: a list holds"),
    (lambda: Detector(SHAPES).predict([]), "no images given"),
    (lambda: Detector(SHAPES).predict(Image.new("RGB", (0, 0))), "nothing to detect in"),
    (lambda: Detector(SHAPES).predict(np.zeros((200, 200, 3), np.uint8), max_pixels=100), "over the cap of 100"),
    (lambda: Detector(SHAPES, device=0), "device=0: must be text"),
    (lambda: Detector("tiny_ssd").train(data="d", epochs="ten"), "epochs='ten': must be a whole number"),
    (lambda: Detector("tiny_ssd").train(data="d", anchors="bogus"), "anchors='bogus': choose one of model, auto"),
    (lambda: Detector("tiny_ssd").train(data="d", model_kwargs="x"), "model_kwargs='x': must be a mapping"),
    (lambda: Detector("tiny_ssd").train(data="d", amp="yes"), "amp='yes': must be true or false"),
    (lambda: Detector("resnet_ssd").train(data="d", backbone="resnet999"), "backbone='resnet999': choose one of"),
    (lambda: Detector(SHAPES).export("a.pt", format="tflite"), "format='tflite': choose one of pt, onnx"),
    (lambda: Detector(SHAPES).export("a.pt", out="b.pt"), "export(): no setting out"),
    (lambda: evaluate(data=str(SHAPES), predictions="p.json", bogus=1), "evaluate(): no setting bogus"),
])
def test_bad_input_is_one_exception_type_with_one_line_in_python_terms(make, message):
    with pytest.raises(DetectorError) as e:
        make()
    assert message in str(e.value) and "\n" not in str(e.value)
    assert " --" not in f" {e.value}", "a message to a Python caller names keywords, not flags"


@pytest.mark.parametrize(("settings", "python", "cli"), [
    ({"conf": 1.5}, "conf=1.5: must be between 0 and 1", "--conf 1.5: must be between 0 and 1"),
    ({"classes": ["dog"]}, "classes=['dog']: not a class", "--classes dog: not a class"),
    ({"img_size": 100.5}, "img_size=100.5: must be a whole number", "--img-size 100.5: must be a whole number"),
])
def test_the_same_mistake_is_named_as_a_keyword_in_python_and_as_a_flag_on_the_command_line(settings, python, cli):
    from detector.core.errors import cli_terms

    det = Detector(SHAPES, device="cpu")
    with pytest.raises(UsageError, match=re.escape(python)):
        det.predict_config(**settings)
    with cli_terms(), pytest.raises(UsageError, match=re.escape(cli)):
        det.predict_config(**settings)


def test_train_takes_a_config_or_keywords_not_both(tmp_path):
    from detector.engine.config import TrainConfig

    with pytest.raises(UsageError, match="not both"):
        Detector("tiny_ssd").train(data="d", config=TrainConfig(), epochs=3)


def test_empty_metrics_say_nothing_was_evaluated():
    m = Metrics({})
    assert not m.evaluated and m.ap is None and repr(m) == "Metrics(nothing evaluated: no val split)"
    with pytest.raises(UsageError, match="nothing was evaluated"):
        m.table()


def test_results_save_errors_are_the_librarys(tmp_path):
    r = Detector(SHAPES, device="cpu").predict(next(EXAMPLES.glob("*.jpg")))[0]
    with pytest.raises(UsageError, match="out.txt: end it in an image format"):
        r.save(tmp_path / "out.txt")
    assert r.save(tmp_path / "new" / "folder" / "x.png").is_file()  # its folders are made
    (tmp_path / "a_file").write_text("")
    with pytest.raises(DetectorError, match="x.png: could not be written"):
        r.save(tmp_path / "a_file" / "x.png")
    r.image = None
    with pytest.raises(UsageError, match="plot\\(\\) needs the image"):
        r.plot()


def test_evaluate_takes_a_list_and_names_a_folder(tiny, tmp_path):
    assert evaluate(data=tiny["data"], predictions=[]).ap == 0.0
    with pytest.raises(DetectorError, match="a folder, not a JSON file"):
        evaluate(data=tiny["data"], predictions=tmp_path)


def test_a_16_bit_pil_image_is_scaled_as_the_file_would_be(tmp_path):
    grey = (np.random.default_rng(0).integers(0, 256, (64, 80)) * 257).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    det = Detector(SHAPES, device="cpu")
    from_file = det.predict(tmp_path / "g16.png")[0].image.astype(int)
    from_pil = det.predict(Image.open(tmp_path / "g16.png"))[0].image.astype(int)
    assert from_pil.mean() < 200 and abs(from_pil - from_file).max() <= 1


def test_a_generator_is_read_one_item_at_a_time():
    det = Detector(SHAPES, device="cpu")
    pulled = []

    def frames():
        for i in range(5):
            pulled.append(i)
            yield np.full((40, 40, 3), 30 * i, np.uint8)

    stream = det.predict(frames(), stream=True)
    next(stream)
    assert pulled == [0]  # not the whole generator first
    assert len(list(stream)) == 4


def test_skipped_files_belong_to_their_call(tmp_path):
    (tmp_path / "bad.png").write_text("not an image")
    Image.new("RGB", (40, 30)).save(tmp_path / "good.png")
    det = Detector(SHAPES, device="cpu")
    stream = det.predict(tmp_path, stream=True, errors="skip")
    det.predict(tmp_path / "good.png")  # another call on the same Detector in between
    assert len(list(stream)) == 1 and len(stream.skipped) == 1 and "bad.png" in stream.skipped[0]
    listed = det.predict(tmp_path, errors="skip")
    assert listed.skipped == stream.skipped


def test_folders_and_globs_take_videos_and_an_empty_folder_is_an_error(tmp_path):
    frame = np.asarray(Image.open(next(EXAMPLES.glob("*.jpg"))).convert("RGB"))
    (tmp_path / "vids").mkdir()
    write_video(tmp_path / "vids" / "a.webm", [frame] * 2)
    det = Detector(SHAPES, device="cpu")
    assert [r.frame for r in det.predict(tmp_path / "vids")] == [0, 1]
    assert [r.frame for r in det.predict(str(tmp_path / "vids" / "*.webm"))] == [0, 1]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DetectorError, match="a folder with no images or videos"):
        det.predict(tmp_path / "empty")


def test_an_unreadable_image_raises_or_is_skipped(tmp_path):
    (tmp_path / "bad.png").write_text("not an image")
    Image.new("RGB", (40, 30)).save(tmp_path / "good.png")
    det = Detector(SHAPES, device="cpu")
    with pytest.raises(DetectorError, match="bad.png: not a readable image"):
        det.predict(tmp_path)
    assert [r.path for r in det.predict(tmp_path, errors="skip")] == [str(tmp_path / "good.png")]
    assert len(det.skipped) == 1 and "bad.png" in det.skipped[0]
    with pytest.raises(UsageError, match="errors='maybe'"):
        det.predict(tmp_path, errors="maybe")


def test_the_model_owns_its_geometry_one_image_alone_equals_it_in_a_batch():
    det = Detector(SHAPES, device="cpu")
    images = [np.asarray(Image.open(f).convert("RGB")) for f in sorted(EXAMPLES.glob("*.jpg"))]
    alone = [det.predict(im, conf=0.05)[0] for im in images]
    batched = det.predict(images, conf=0.05, batch=3)
    for a, b in zip(alone, batched):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    assert torch.is_tensor(det.model(torch.zeros(1, 3, 300, 200, dtype=torch.uint8))[0]["boxes"])


# ------------------------------------------------------------- what a mutation pass found unpinned (issue 34)
def test_train_refuses_a_config_with_data_beside_it():
    from detector.engine.config import TrainConfig

    with pytest.raises(UsageError, match=r"not both \(data\)"):
        Detector("tiny_ssd").train(data="d", config=TrainConfig())


def test_a_checkpoint_trains_at_its_own_geometry_and_holds_last_pt_without_a_val_split(tmp_path, monkeypatch):
    """``Detector(checkpoint).train()`` starts from its weights at its own size, squashed as it was trained (the
    shipped shapes checkpoint predates the ``letterbox`` key: not letterboxed); a run without a val split writes
    no best.pt, and the Detector then holds last.pt."""
    import shutil

    import detector.engine.detect as engine

    seen = {}

    def fake_train(cfg):  # the engine's train, stood in for: what the API asks of it is the point here
        seen["cfg"] = cfg
        Path(cfg.out).mkdir(parents=True)
        shutil.copy(SHAPES, Path(cfg.out) / "last.pt")
        return {}

    monkeypatch.setattr(engine, "train", fake_train)
    data = synth_dataset(tmp_path / "s", "shapes", train=2, val=0, seed=0, size=64, workers=1)
    det = Detector(SHAPES, device="cpu")
    m = det.train(data=data, out=str(tmp_path / "run"))
    cfg = seen["cfg"]
    assert (cfg.model, cfg.img_size, cfg.letterbox, cfg.weights) == ("tiny_ssd_plus", 256, False, str(SHAPES))
    assert det.source == str(tmp_path / "run" / "last.pt") and not m.evaluated


def _shapes_image(tmp_path) -> Path:
    """A generated 256-px image holding shapes (the shipped shapes model's kind)."""
    synth_dataset(tmp_path / "img", "shapes", train=0, val=3, seed=1, size=256, workers=1)
    return min((tmp_path / "img").rglob("*.jpg"))


def test_a_checkpoint_without_category_ids_reports_ids_from_1(tmp_path):
    from detector.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(SHAPES)
    ckpt.pop("category_ids", None)
    save_checkpoint(ckpt, tmp_path / "old.pt")
    r = Detector(tmp_path / "old.pt", device="cpu").predict(_shapes_image(tmp_path), conf=0.3)[0]
    assert len(r) > 0
    assert [d["category_id"] for d in r.to_coco()] == [k + 1 for k in r.labels.tolist()]  # 1..5, as COCO counts


def test_img_size_is_free_for_a_checkpoint_and_fixed_for_an_onnx_graph(tmp_path):
    image = _shapes_image(tmp_path)
    assert len(Detector(SHAPES, device="cpu").predict(image, img_size=320, conf=0.3)[0]) > 0
    pytest.importorskip("onnxruntime")
    graph = Detector(ROOT / "models" / "tinyssd-shapes.onnx", device="cpu")
    assert len(graph.predict(image, img_size=256, conf=0.3)[0]) > 0  # its own size, given: fine
    with pytest.raises(UsageError, match="takes 256 px, the size it was exported at"):
        graph.predict(image, img_size=320)


def tensors_reachable(root, skip) -> int:
    """The elements of every tensor reachable from ``root`` through Python references, not through ``skip``."""
    import gc

    seen, stack, elements = {id(skip)}, [root], 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            elements += obj.numel()
            continue
        if isinstance(obj, (type, type(gc))):  # classes and modules lead everywhere
            continue
        stack.extend(gc.get_referents(obj))
    return elements


@pytest.mark.parametrize("path", [SHAPES, ROOT / "models" / "tinyssd-shapes.onnx"])
def test_a_loaded_model_holds_its_weights_once_and_its_description_is_typed(path):
    """``Detector.info`` is a :class:`ModelInfo` (no second copy of the weights, no optimizer state); the model's
    parameters are the only tensors the Detector holds."""
    from detector.api import ModelInfo

    det = Detector(path, device="cpu")
    assert isinstance(det.info, ModelInfo) and det.info.classes == det.names
    assert tensors_reachable(det, skip=det.model) == 0
    if path.suffix == ".pt":
        weights = sum(t.numel() for t in det.model.state_dict().values())
        assert weights > 1_000_000 and tensors_reachable(det, skip=None) >= weights  # the walk sees the model's
    assert (det.info.name, det.info.img_size, det.info.format) == ("tiny_ssd_plus", 256, path.suffix[1:])
    assert det.info.defaults.iou == 0.45 and det.info.defaults.max_det == 100 and det.info.metrics


def test_a_last_pt_leaves_its_training_state_behind(tmp_path):
    model = build_model("tiny_ssd", 1, img_size=64)
    big = torch.zeros(500_000)  # what a last.pt carries besides the weights: optimizer moments, RNG state
    save_checkpoint({"model": model.state_dict(), "model_name": "tiny_ssd", "classes": ["a"], "img_size": 64,
                     "optimizer": {"state": {0: {"exp_avg": big}}}, "rng": {"torch": torch.zeros(5000)}, "epoch": 3},
                    tmp_path / "last.pt")
    det = Detector(tmp_path / "last.pt", device="cpu")
    assert tensors_reachable(det, skip=det.model) == 0 and det.info.epoch == 3


SCRIPT = """
import sys
from detector import Detector
Detector("tiny_ssd").train(data=sys.argv[1], epochs=1, batch_size=4, img_size=64, workers=0, out=sys.argv[2],
                           verbose=sys.argv[3] == "1")
print("trained")
"""


@pytest.mark.parametrize("verbose", [True, False])
def test_a_script_sees_the_training_progress_unless_it_asks_for_quiet(shapes_yaml, tmp_path, verbose):
    """A script that set up no logging still sees a line per epoch on standard error (as Ultralytics shows its
    progress); verbose=False: nothing but the script's own output."""
    import subprocess
    import sys

    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(shapes_yaml), str(tmp_path / "run"), str(int(verbose))],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "trained"
    if verbose:
        assert "epoch 1/1: loss" in done.stderr and "train: 16 images" in done.stderr
    else:
        assert "epoch" not in done.stderr and "train:" not in done.stderr
