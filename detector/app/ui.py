"""The Gradio demo's page: ``python app.py`` or ``detector demo`` (127.0.0.1:7860), one function per tab.

    python app.py                                   # the bundled default model, http://127.0.0.1:7860
    python app.py --port 8000 --weights runs/shapes/best.pt
    detector demo --host 0.0.0.0                    # reachable from other machines (no public link)

Tabs: Detect (uploads, examples, model choice, thresholds, class filter, table, COCO-results JSON), Anchors,
Matching and NMS (the book's figures, on any image), API (the ``/detect`` endpoint for scripts and
``gradio_client``). The logic lives in the other modules of :mod:`detector.app`; this one only lays it out.
"""

from __future__ import annotations

import argparse
import logging
import socket
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
from starlette.middleware import Middleware

from detector.app.catalog import (
    DEFAULT_MODELS,
    ModelCache,
    ModelEntry,
    default_models_dirs,
    describe_checkpoint,
    discover_models,
    zoo_entries,
)
from detector.app.components import (
    HEAVY,
    CheckboxGroup,
    Dropdown,
    Number,
    SafeImage,
    Slider,
    bound_malloc_arenas,
    chosen_classes,
    entry_of,
    guarded,
    whole_number,
)
from detector.app.detect import ROW_HEADERS, api_detect, run_detect, run_video
from detector.app.examples import example_boxes_text, make_examples, photo_examples
from detector.app.figures import MATCH_HEADERS, anchors_figure, matching_figure, nms_figure
from detector.app.limits import RequestLimits, UploadBudget
from detector.app.uploads import BadInput, load_upload, unit
from detector.core.errors import UsageError
from detector.core.files import parse_size
from detector.core.thresholds import CONF, IOU
from detector.engine.loop import resolve_device
from detector.evaluation.video import VIDEO_SUFFIXES

EXAMPLES_DIR = Path("data/demo-examples")
API_USAGE = """Scripts can call the detector without the page:

```python
from gradio_client import Client, handle_file
client = Client("{url}")
result = client.predict(handle_file("photo.jpg"), {CONF}, {IOU}, 100, api_name="/detect")
print(result["detections"])   # [{{"class": ..., "score": ..., "box": [x1, y1, x2, y2]}}, ...]
result = client.predict(handle_file("photo.jpg"), {CONF}, {IOU}, 100, "{default}", api_name="/detect")
```
Arguments: image file, confidence, NMS IoU, max detections and, optionally, the model (one of {models};
default `{default}`). The reply also gives the image size, notes on conversions, the time in ms and the
device; bad input gives `{{"error": "..."}}`."""


def model_card_text(entry: ModelEntry | None) -> str:
    """The line under the model list: what the selected model detects, and where to go for other objects."""
    if entry is None:
        return "No model found."
    text = f"**{entry.label}** detects {entry.detects()}. {entry.summary}."
    if not entry.is_zoo:
        text += " For everyday objects (people, animals, cups, ...) choose a COCO model in the list."
    return text


def owner(entries: dict[str, ModelEntry], stem: str) -> str | None:
    """The label of the shipped model ``stem`` in the list (its ONNX graph first, as the default), or None."""
    return next((label for suffix in (".onnx", ".pt") for label, e in entries.items()
                 if Path(str(e.path)).name == stem + suffix), None)


def _read_image(path: str | None, fallback: np.ndarray) -> np.ndarray:
    return fallback if not path else load_upload(path)[0]


def detect_tab(entries: dict[str, ModelEntry], cache: ModelCache, model: gr.Dropdown, card: gr.Markdown,
               examples: list[Path], first: ModelEntry | None, downloads: Path | None = None,
               photos: list[Path] = ()) -> None:
    """Uploads (or examples), thresholds and a class filter in; drawings, a table and a JSON download out."""

    @guarded(lambda message: ([], "", f"- {message}", [], None))
    def on_detect(files, label, conf, iou, max_det, classes):
        entry = entry_of(entries, label)
        r = run_detect(files, entry, cache, unit(conf), unit(iou), whole_number(max_det), chosen_classes(classes, entry),
                       downloads=downloads)
        messages = "\n".join(f"- {m}" for m in r.messages)
        return r.images, r.summary, messages, r.rows, r.json_path

    @guarded(lambda message: (f"**{message}**", gr.update()))
    def on_model(label, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - Gradio's way to ask for progress
        entry = entries.get(label)
        if entry is not None and entry.is_zoo:  # loaded now: a download shows its progress here, offline says why
            first = "a download and an ONNX export" if "ONNX Runtime" in entry.summary else "a download"
            progress(0, desc=f"loading {entry.label} ({first} the first time)")
            cache.get(entry.path)
            entry.summary = entry.summary.replace("downloaded on first use", "downloaded")
        return model_card_text(entry), gr.update(choices=entry.classes if entry else [], value=[])

    with gr.Row():
        with gr.Column(scale=1):
            files = gr.File(file_count="multiple", label="Images (one or several)", height=140)
            # a row per example: its files, and the model it belongs to (a click selects that model too)
            shapes_model, raccoon_model = owner(entries, "tinyssd-shapes"), owner(entries, "tinyssd-raccoon")
            if examples:
                gr.Examples([[[str(p)], shapes_model or first.label] for p in examples], inputs=[files, model],
                            label=f"Examples (generated shapes, val){f': {shapes_model}' if shapes_model else ''}")
            if photos:
                gr.Examples([[[str(p)], raccoon_model or first.label] for p in photos], inputs=[files, model],
                            label=f"Examples (real photographs, raccoon val){f': {raccoon_model}' if raccoon_model else ''}")
            conf = Slider(0.0, 1.0, CONF, step=0.01, label="Confidence threshold")
            iou = Slider(0.0, 1.0, IOU, step=0.01, label="NMS IoU")
            max_det = Number(100, minimum=1, maximum=1000, precision=0, label="Max detections per image")
            classes = CheckboxGroup(first.classes if first else [], label="Only these classes "
                                       "(none ticked: all)")
            run = gr.Button("Detect", variant="primary")
        with gr.Column(scale=2):
            summary = gr.Markdown(elem_id="summary")  # above the images: the counts are seen without scrolling
            messages = gr.Markdown(elem_id="messages")
            gallery = gr.Gallery(label="Detections", columns=1, height="auto", object_fit="contain",
                                 allow_preview=True, elem_id="detections")
    table = gr.Dataframe(headers=ROW_HEADERS, label="Detections (sorted by score within each image; "
                         "boxes in the image's pixels)", interactive=False, elem_id="table")
    download = gr.File(label="Detections as COCO results JSON")
    video_section(entries, cache, model, conf, iou, downloads)
    inputs = [files, model, conf, iou, max_det, classes]
    outputs = [gallery, summary, messages, table, download]
    run.click(on_detect, inputs, outputs, api_visibility="private", **HEAVY)
    files.change(on_detect, inputs, outputs, api_visibility="private", **HEAVY)
    model.change(on_model, [model], [card, classes], api_visibility="private", **HEAVY)


def video_section(entries: dict[str, ModelEntry], cache: ModelCache, model: gr.Dropdown, conf, iou,
                  downloads: Path | None) -> None:
    """A short video in (mp4, webm; at most 30 s), the same video with boxes on every frame out, and the
    detections of each frame as JSON."""

    @guarded(lambda message: (None, None, f"**{message}**"))
    def on_video(file, label, c, i):
        return run_video(file, entry_of(entries, label), cache, unit(c), unit(i), downloads)

    with gr.Accordion("Video: boxes on every frame", open=False), gr.Row():
        with gr.Column(scale=1):
            clip = gr.File(label="A short video (mp4, webm; at most 30 s)", file_types=list(VIDEO_SUFFIXES),
                           elem_id="video-in")
            go = gr.Button("Detect in video", variant="primary")
        with gr.Column(scale=2):
            v_summary = gr.Markdown(elem_id="video-summary")
            drawn = gr.Video(label="Detections", elem_id="video-out", format=None)
            frames = gr.File(label="Detections per frame (JSON)")
    go.click(on_video, [clip, model, conf, iou], [drawn, frames, v_summary], api_visibility="private", **HEAVY)


def anchors_tab(photo: np.ndarray) -> None:
    """The book's ``display_anchors`` on an upload or a photograph."""

    @guarded(lambda message: (None, f"**{message}**"))
    def on_anchors(path, fh, fw, sizes, ratios, labels):
        return anchors_figure(_read_image(path, photo), fh, fw, sizes, ratios, bool(labels))

    gr.Markdown("The book's `display_anchors`: every cell of an H x W feature map gets one anchor per "
                "size (with the first ratio) and one per further ratio (with the first size).")
    with gr.Row():
        with gr.Column():
            a_img = SafeImage(type="filepath", image_mode=None, label="Image (empty: a photograph)", height=300,
                              elem_id="anchors-image")
            with gr.Row():
                a_h = Number(4, minimum=1, maximum=128, precision=0, label="Feature map H")
                a_w = Number(4, minimum=1, maximum=128, precision=0, label="Feature map W")
            a_sizes = gr.Textbox("0.15", label="Sizes (fractions of the image)")
            a_ratios = gr.Textbox("1, 2, 0.5", label="Ratios (width / height)")
            a_labels = gr.Checkbox(False, label="Write size and ratio on each anchor")
            a_run = gr.Button("Draw anchors", variant="primary")
        with gr.Column():
            a_out = gr.Image(label="Anchors", type="pil", value=anchors_figure(photo, 4, 4, "0.15", "1 2 0.5")[0])
            a_text = gr.Markdown(elem_id="anchors-text")
    a_run.click(on_anchors, [a_img, a_h, a_w, a_sizes, a_ratios, a_labels], [a_out, a_text],
                api_visibility="private", **HEAVY)


def on_click(boxes, pending, evt: gr.SelectData):
    """A click on the Matching tab's image: the first sets a corner, the second adds the box."""
    try:
        x, y = (float(v) for v in evt.index)
        if pending is not None:
            x0, y0 = (float(v) for v in pending)
    except (TypeError, ValueError):
        return boxes, None, "click on the image to set a corner"
    boxes = boxes if isinstance(boxes, str) else ""
    if pending is None:
        return boxes, [x, y], f"corner ({x:.0f}, {y:.0f}) set; click the opposite corner"
    line = ""
    x1, x2, y1, y2 = min(x0, x), max(x0, x), min(y0, y), max(y0, y)
    if x2 - x1 >= 2 and y2 - y1 >= 2:
        line = f"{x1:.0f} {y1:.0f} {x2:.0f} {y2:.0f}"
    text = (boxes.rstrip() + "\n" + line).strip() if line else boxes
    return text, None, f"box {line} added" if line else "too small: click two opposite corners"


def matching_tab(example_path: str | None, example_img: np.ndarray, example_box_text: str) -> None:
    """Ground-truth boxes typed or clicked; the anchors that become positives and their offsets."""

    @guarded(lambda message: (None, [], f"**{message}**"))
    def on_match(path, boxes, fh, fw, sizes, ratios, thr):
        r = matching_figure(_read_image(path, example_img), boxes, fh, fw, sizes, ratios, thr)
        return r.image, r.rows, r.summary

    gr.Markdown("Ground-truth boxes, one per line `x1 y1 x2 y2` in pixels (or click two opposite corners "
                "on the image). Each box first takes the anchor it overlaps most; then every other anchor "
                "whose best IoU reaches the threshold takes its best box. Positives are drawn in their "
                "box's colour; the table gives their offsets (weights 10, 10, 5, 5, as the book's).")
    pending = gr.State(None, time_to_live=600)  # a half-drawn box, forgotten after 10 minutes
    with gr.Row():
        with gr.Column():
            m_img = SafeImage(example_path, type="filepath", image_mode=None, label="Image (click to add box corners)",
                              height=300, elem_id="match-image")
            m_boxes = gr.Textbox(example_box_text, lines=4, label="Ground-truth boxes (x1 y1 x2 y2)")
            m_click = gr.Markdown()
            with gr.Row():
                m_h = Number(8, minimum=1, maximum=128, precision=0, label="Feature map H")
                m_w = Number(8, minimum=1, maximum=128, precision=0, label="Feature map W")
            m_sizes = gr.Textbox("0.45, 0.25, 0.12", label="Sizes")
            m_ratios = gr.Textbox("1, 2, 0.5", label="Ratios")
            m_thr = Slider(0.05, 0.95, 0.5, step=0.05, label="IoU threshold for positives")
            m_run = gr.Button("Match", variant="primary")
        with gr.Column():
            m_out = gr.Image(label="Positive anchors", type="pil", elem_id="match-out")
            m_text = gr.Markdown(elem_id="match-text")
    m_table = gr.Dataframe(headers=MATCH_HEADERS, label="Positive anchors and their offsets", interactive=False)
    m_img.select(on_click, [m_boxes, pending], [m_boxes, pending, m_click], api_visibility="private")
    m_run.click(on_match, [m_img, m_boxes, m_h, m_w, m_sizes, m_ratios, m_thr], [m_out, m_table, m_text],
                api_visibility="private", **HEAVY)


def nms_tab(entries: dict[str, ModelEntry], cache: ModelCache, model: gr.Dropdown, example_path: str | None,
            example_img: np.ndarray) -> None:
    """The model's candidates before NMS and what survives."""

    @guarded(lambda message: (None, None, f"**{message}**"))
    def on_nms(path, label, conf, iou):
        r = nms_figure(_read_image(path, example_img), entry_of(entries, label), cache, unit(conf), unit(iou))
        return r.before, r.after, r.summary

    gr.Markdown("The model's candidate boxes above the confidence threshold, before and after "
                "non-maximum suppression at the chosen IoU (per class).")
    with gr.Row():
        with gr.Column():
            n_img = SafeImage(example_path, type="filepath", image_mode=None, label="Image", height=300,
                              elem_id="nms-image")
            n_conf = Slider(0.0, 1.0, 0.1, step=0.01, label="Confidence threshold")
            n_iou = Slider(0.0, 1.0, IOU, step=0.01, label="NMS IoU")
            n_run = gr.Button("Run NMS", variant="primary")
            n_text = gr.Markdown(elem_id="nms-text")
        n_before = gr.Image(label="Before NMS", type="pil", elem_id="nms-before")
        n_after = gr.Image(label="After NMS", type="pil", elem_id="nms-after")
    n_run.click(on_nms, [n_img, model, n_conf, n_iou], [n_before, n_after, n_text], api_visibility="private",
                **HEAVY)


def api_tab(entries: dict[str, ModelEntry], default: str, cache: ModelCache, url: str) -> None:
    """``/detect``: the endpoint scripts call, and a form to try it."""

    @guarded(lambda message: {"error": message})
    def on_api(file, conf, iou, max_det, label=None):
        label = label or default
        if label not in entries:
            raise BadInput(f"unknown model {label!r}; the server has {sorted(entries)}")
        return api_detect(file, entries[label], cache, unit(conf), unit(iou), whole_number(max_det))

    gr.Markdown(API_USAGE.format(url=url, models=", ".join(f"`{k}`" for k in entries), default=default, CONF=CONF,
                                 IOU=IOU),
                elem_id="api-usage")
    with gr.Row():
        api_file = gr.File(label="Image file", file_count="single")
        with gr.Column():
            api_conf = Slider(0.0, 1.0, CONF, step=0.01, label="Confidence threshold")
            api_iou = Slider(0.0, 1.0, IOU, step=0.01, label="NMS IoU")
            api_max = Number(100, minimum=1, maximum=1000, precision=0, label="Max detections")
            api_model = Dropdown(list(entries), value=default, label="Model")
            api_run = gr.Button("Run /detect")
    api_out = gr.JSON(label="/detect reply")
    api_run.click(on_api, [api_file, api_conf, api_iou, api_max, api_model], api_out, api_name="detect", **HEAVY)


def build_app(entries: dict[str, ModelEntry], default: str, cache: ModelCache, examples: list[Path],
              url: str = "http://127.0.0.1:7860/", downloads: Path | None = None, photos: list[Path] = ()):
    """The Gradio Blocks of the demo (not launched). ``url``: where it will be served (for the API tab);
    ``downloads``: this server's private folder for the JSON downloads."""
    from skimage import data as skdata

    cat = skdata.chelsea()  # a real photograph for the anchors figure, as the book's cat and dog
    example_path = str(examples[0]) if examples else None
    example_img = load_upload(example_path)[0] if example_path else cat
    example_box_text = example_boxes_text(example_path) if example_path else "120 20 330 290"
    first = entries.get(default)
    # delete_cache: uploads and outputs Gradio keeps are removed after an hour (checked every 10 minutes)
    with gr.Blocks(title="detector: object detection from D2L", delete_cache=(600, 3600)) as demo:
        gr.Markdown("# detector\nObject detection from *Dive into Deep Learning*, chapter Computer Vision: "
                    "upload images and see what the model finds; explore anchors, matching and NMS.")
        with gr.Row():
            model = Dropdown(list(entries), value=default, label="Model", scale=2)
            card = gr.Markdown(model_card_text(first))
        with gr.Tab("Detect"):
            detect_tab(entries, cache, model, card, examples, first, downloads, photos)
        with gr.Tab("Anchors"):
            anchors_tab(cat)
        with gr.Tab("Matching"):
            matching_tab(example_path, example_img, example_box_text)
        with gr.Tab("NMS"):
            nms_tab(entries, cache, model, example_path, example_img)
        with gr.Tab("API"):
            api_tab(entries, default, cache, url)
    return demo


def resolve_models(weights: str | None) -> tuple[dict[str, ModelEntry], str]:
    """The dropdown's entries (the checkpoints found, then the zoo's COCO models) and the default label:
    ``--weights`` / ``--model`` if given (a file or ``torchvision:NAME``), else the bundled default."""
    zoo = zoo_entries()
    if weights and weights.startswith("torchvision:"):
        default = next((label for label, e in zoo.items() if e.path == weights), None)
        if default is None:
            raise UsageError(f"--weights {weights}: not a zoo model; choose one of "
                             f"{', '.join(e.path for e in zoo.values())}")
        return {**discover_models(default_models_dirs(), "runs"), **zoo}, default
    extra = [Path(weights)] if weights else []
    if weights and not Path(weights).is_file():
        raise SystemExit(f"error: --weights {weights}: no such file")
    if weights:
        describe_checkpoint(Path(weights))  # a clear error now rather than an empty dropdown
    entries = discover_models(default_models_dirs(), "runs", extra)
    if not entries:
        raise SystemExit("error: no model found: pass --weights PATH, or train one (detector train ...)")
    if weights:
        default = next(k for k, e in entries.items() if Path(e.path).resolve() == Path(weights).resolve())
    else:
        default = next((m for m in DEFAULT_MODELS if m in entries), next(iter(entries)))
    return {**entries, **zoo}, default


# The Detect tab's gallery: one column of whole images at their own aspect ratio, each with its caption, the
# page growing with them (Gradio's default is a fixed-height box of square, cropped cells that scrolls)
CSS = """
#detections .grid-wrap { height: auto !important; max-height: none !important; overflow: visible !important; }
#detections .grid-container { height: auto !important; grid-auto-rows: auto !important; }
#detections .gallery-item, #detections .thumbnail-item { height: auto !important; aspect-ratio: auto !important; }
#detections .thumbnail-item img { width: 100% !important; height: auto !important; object-fit: contain !important; }
"""
SESSION_CAPACITY = 200  # sessions whose state Gradio keeps (its default, 10,000, grows memory without bound)


def server_url(host: str, port: int) -> str:
    """The address users reach this server at: the host's name when serving on every interface."""
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}/"


def serve(args: argparse.Namespace, block: bool = True):
    """Build and launch the demo from parsed arguments; returns the Blocks (``block=False``: not waiting)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    bound_malloc_arenas()
    entries, default = resolve_models(args.weights)
    cache = ModelCache(resolve_device(args.device))
    cache.get(entries[default].path)  # load now: a broken default fails at start, not on the first click
    downloads = Path(tempfile.mkdtemp(prefix="detector-demo-"))  # this server's own, mode 0700
    photos = photo_examples([d / "examples" for d in default_models_dirs()])
    demo = build_app(entries, default, cache, make_examples(EXAMPLES_DIR), server_url(args.host, args.port), downloads,
                     photos)
    demo.queue(max_size=args.queue_size, default_concurrency_limit=1)
    budget = UploadBudget(parse_size(args.upload_budget), parse_size(args.client_upload_budget))
    try:
        demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                    max_file_size=parse_size(args.max_file_size), prevent_thread_lock=not block, show_error=False,
                    footer_links=["api"], state_session_capacity=SESSION_CAPACITY, css=CSS,
                    app_kwargs={"middleware": [Middleware(RequestLimits, budget=budget)]})
    except OSError as e:
        raise SystemExit(f"error: cannot serve on {args.host}:{args.port} ({e}); is another demo running? "
                         "Pass --port") from None
    return demo
