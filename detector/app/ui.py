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
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware

from detector.api.settings import MAX_DET, VIDEO_SUFFIXES
from detector.app.book_tabs import anchors_tab, matching_tab, nms_tab
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
    API_CALLS,
    HEAVY,
    VIDEO,
    CheckboxGroup,
    Dropdown,
    Number,
    Slider,
    bound_malloc_arenas,
    chosen_classes,
    entry_of,
    guarded,
    whole_number,
)
from detector.app.detect import ROW_HEADERS, api_detect, run_detect, run_video
from detector.app.examples import example_boxes_text, make_examples, photo_examples
from detector.app.limits import RequestLimits, UploadBudget
from detector.app.uploads import BadInput, load_upload, unit
from detector.core.errors import UsageError

EXAMPLES_DIR = Path("data/demo-examples")
API_USAGE = """Scripts can call the detector without the page:

```python
from gradio_client import Client, handle_file
client = Client("{url}")
result = client.predict(handle_file("photo.jpg"), api_name="/detect")    # the default model at its own settings
print(result["detections"])   # [{{"category": "...", "score": ..., "bbox": [x, y, w, h], ...}}, ...]
result = client.predict(handle_file("photo.jpg"), 0.5, None, None, "{default}", api_name="/detect")
```
Arguments: image file, confidence, NMS IoU, max detections (each None: the model's own, as in `Detector.predict`
and `detector predict`) and, optionally, the model (one of {models}; default `{default}`). Each detection is a
COCO result that names its class and file (`image_id`, `file_name`, `category_id`, `category`, `bbox` [x, y, w, h]
in the image's pixels, `score`), as in `predictions.json` and `Results.to_dict()`; the reply also gives the
image's size, notes on conversions, the time in ms and the device; bad input gives `{{"error": "..."}}`."""


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


@dataclass
class Thresholds:
    """The fields that start at the chosen model's own inference settings and move with it."""

    conf: gr.Slider
    iou: gr.Slider
    max_det: gr.Number
    classes: gr.CheckboxGroup


def detect_tab(entries: dict[str, ModelEntry], cache: ModelCache, model: gr.Dropdown, examples: list[Path],
               first: ModelEntry | None, own: dict, downloads: Path | None = None, photos: list[Path] = ()
               ) -> Thresholds:
    """Uploads (or examples), thresholds and a class filter in; drawings, a table and a JSON download out.
    ``own``: the first model's inference settings, where the fields start."""

    @guarded(lambda message: ([], "", f"- {message}", [], None))
    def on_detect(files, label, conf, iou, max_det, classes):
        entry = entry_of(entries, label)
        r = run_detect(files, entry, cache, unit(conf), unit(iou), whole_number(max_det), chosen_classes(classes, entry),
                       downloads=downloads)
        messages = "\n".join(f"- {m}" for m in r.messages)
        return r.images, r.summary, messages, r.rows, r.json_path

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
            conf = Slider(0.0, 1.0, own["conf"], step=0.01, label="Confidence threshold", elem_id="conf")
            iou = Slider(0.0, 1.0, own["iou"], step=0.01, label="NMS IoU", elem_id="iou")
            max_det = Number(own["max_det"], minimum=1, maximum=MAX_DET, precision=0,
                             label="Max detections per image", elem_id="max-det")
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
    video_section(entries, cache, model, conf, iou, max_det, downloads)
    inputs = [files, model, conf, iou, max_det, classes]
    outputs = [gallery, summary, messages, table, download]
    run.click(on_detect, inputs, outputs, api_visibility="private", **HEAVY)
    files.change(on_detect, inputs, outputs, api_visibility="private", **HEAVY)
    return Thresholds(conf, iou, max_det, classes)


def model_settings(entries: dict[str, ModelEntry], cache: ModelCache, label: str) -> dict:
    """The model's own inference settings (``Detector.info.defaults``), loading it (a zoo model: downloaded the
    first time)."""
    entry = entry_of(entries, label)
    return cache.get(entry.path).info.defaults.as_dict()


def video_section(entries: dict[str, ModelEntry], cache: ModelCache, model: gr.Dropdown, conf, iou, max_det,
                  downloads: Path | None) -> None:
    """A short video in (mp4, webm; at most 30 s), the same video with boxes on every frame out, and the
    detections of each frame as JSON, at the Detect tab's settings."""

    @guarded(lambda message: (None, None, f"**{message}**"))
    def on_video(file, label, c, i, m):
        return run_video(file, entry_of(entries, label), cache, unit(c), unit(i), whole_number(m), downloads)

    with gr.Accordion("Video: boxes on every frame", open=False), gr.Row():
        with gr.Column(scale=1):
            clip = gr.File(label="A short video (mp4, webm; at most 30 s)", file_types=list(VIDEO_SUFFIXES),
                           elem_id="video-in")
            go = gr.Button("Detect in video", variant="primary")
        with gr.Column(scale=2):
            v_summary = gr.Markdown(elem_id="video-summary")
            drawn = gr.Video(label="Detections", elem_id="video-out", format=None)
            frames = gr.File(label="Detections per frame (JSON)")
    go.click(on_video, [clip, model, conf, iou, max_det], [drawn, frames, v_summary], api_visibility="private",
             **VIDEO)


def api_tab(entries: dict[str, ModelEntry], default: str, cache: ModelCache, url: str) -> None:
    """``/detect``: the endpoint scripts call, and a form to try it. A setting left empty (None) is the chosen
    model's own, as in the API and the CLI."""

    @guarded(lambda message: {"error": message})
    def on_api(file, conf=None, iou=None, max_det=None, label=None):
        label = label or default
        if label not in entries:
            raise BadInput(f"unknown model {label!r}; the server has {sorted(entries)}")
        return api_detect(file, entries[label], cache, optional_unit(conf, "confidence"),
                          optional_unit(iou, "NMS IoU"), whole_number(max_det))

    gr.Markdown(API_USAGE.format(url=url, models=", ".join(f"`{k}`" for k in entries), default=default),
                elem_id="api-usage")
    with gr.Row():
        api_file = gr.File(label="Image file", file_count="single")
        with gr.Column():
            api_conf = Number(None, minimum=0, maximum=1, label="Confidence threshold (empty: the model's own)")
            api_iou = Number(None, minimum=0, maximum=1, label="NMS IoU (empty: the model's own)")
            api_max = Number(None, minimum=1, maximum=MAX_DET, precision=0,
                             label="Max detections (empty: the model's own)")
            api_model = Dropdown(list(entries), value=default, label="Model")
            api_run = gr.Button("Run /detect")
    api_out = gr.JSON(label="/detect reply")
    api_run.click(on_api, [api_file, api_conf, api_iou, api_max, api_model], api_out, api_name="detect", **API_CALLS)


def optional_unit(value, what: str) -> float | None:
    """A threshold in [0, 1], or None (empty: the model's own)."""
    return None if value in (None, "") else unit(value, what)


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
    own = model_settings(entries, cache, default)  # where the thresholds start: the default model's own

    @guarded(lambda message: (f"**{message}**", *[gr.update()] * 5))
    def on_model(label, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - Gradio's way to ask for progress
        entry = entries.get(label)
        if entry is None:
            return model_card_text(None), *[gr.update()] * 5
        if entry.is_zoo:  # loaded now: a download shows its progress here, offline says why
            first = "a download and an ONNX export" if "ONNX Runtime" in entry.summary else "a download"
            progress(0, desc=f"loading {entry.label} ({first} the first time)")
        settings = model_settings(entries, cache, label)
        entry.summary = entry.summary.replace("downloaded on first use", "downloaded")
        return (model_card_text(entry), gr.update(choices=entry.classes, value=[]),
                gr.update(value=settings["conf"]), gr.update(value=settings["iou"]),
                gr.update(value=settings["max_det"]), gr.update(value=settings["iou"]))

    # delete_cache: uploads and outputs Gradio keeps are removed after an hour (checked every 10 minutes)
    with gr.Blocks(title="detector: object detection from D2L", delete_cache=(600, 3600)) as demo:
        gr.Markdown("# detector\nObject detection from *Dive into Deep Learning*, chapter Computer Vision: "
                    "upload images and see what the model finds; explore anchors, matching and NMS.")
        with gr.Row():
            model = Dropdown(list(entries), value=default, label="Model", scale=2)
            card = gr.Markdown(model_card_text(first))
        with gr.Tab("Detect"):
            fields = detect_tab(entries, cache, model, examples, first, own, downloads, photos)
        with gr.Tab("Anchors"):
            anchors_tab(cat)
        with gr.Tab("Matching"):
            matching_tab(example_path, example_img, example_box_text)
        with gr.Tab("NMS"):
            nms_iou = nms_tab(entries, cache, model, example_path, example_img, own)
        with gr.Tab("API"):
            api_tab(entries, default, cache, url)
        # another model: its card, its classes, and the thresholds at its own settings
        model.change(on_model, [model], [card, fields.classes, fields.conf, fields.iou, fields.max_det, nms_iou],
                     api_visibility="private", **HEAVY)
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
    cache = ModelCache(args.device)
    cache.get(entries[default].path)  # load now: a broken default fails at start, not on the first click
    downloads = Path(tempfile.mkdtemp(prefix="detector-demo-"))  # this server's own, mode 0700
    photos = photo_examples([d / "examples" for d in default_models_dirs()])
    demo = build_app(entries, default, cache, make_examples(EXAMPLES_DIR), server_url(args.host, args.port), downloads,
                     photos)
    demo.queue(max_size=args.queue_size, default_concurrency_limit=1)
    budget = UploadBudget(args.upload_budget, args.client_upload_budget)  # bytes (the CLI's file_size)
    try:
        demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                    max_file_size=args.max_file_size, prevent_thread_lock=not block, show_error=False,
                    footer_links=["api"], state_session_capacity=SESSION_CAPACITY, css=CSS,
                    app_kwargs={"middleware": [Middleware(RequestLimits, budget=budget)]})
    except OSError as e:
        raise SystemExit(f"error: cannot serve on {args.host}:{args.port} ({e}); is another demo running? "
                         "Pass --port") from None
    return demo
