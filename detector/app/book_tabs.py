"""The app's tabs of the book's figures: Anchors (``display_anchors``), Matching (anchors to ground-truth boxes, with
their offsets) and NMS (a model's candidates before and after suppression), on an upload or an example."""

from __future__ import annotations

import gradio as gr
import numpy as np

from detector.app.catalog import ModelCache, ModelEntry
from detector.app.components import HEAVY, Number, SafeImage, Slider, entry_of, guarded
from detector.app.figures import MATCH_HEADERS, anchors_figure, matching_figure, nms_figure
from detector.app.uploads import unit, upload


def _on_image(path: str | None, fallback: np.ndarray, make):
    """``make(image)`` of the upload at ``path`` (decoded inside the server's pixel budget) or of ``fallback``."""
    if not path:
        return make(fallback)
    with upload(path) as (image, _notes):
        return make(image)


def anchors_tab(photo: np.ndarray) -> None:
    """The book's ``display_anchors`` on an upload or a photograph."""

    @guarded(lambda message: (None, f"**{message}**"))
    def on_anchors(path, fh, fw, sizes, ratios, labels):
        return _on_image(path, photo, lambda image: anchors_figure(image, fh, fw, sizes, ratios, bool(labels)))

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
        r = _on_image(path, example_img, lambda image: matching_figure(image, boxes, fh, fw, sizes, ratios, thr))
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
            example_img: np.ndarray, own: dict) -> gr.Slider:
    """The model's candidates before NMS and what survives; returns the IoU slider (it follows the model)."""

    @guarded(lambda message: (None, None, f"**{message}**"))
    def on_nms(path, label, conf, iou):
        r = _on_image(path, example_img, lambda image: nms_figure(image, entry_of(entries, label), cache, unit(conf),
                                                                   unit(iou)))
        return r.before, r.after, r.summary

    gr.Markdown("The model's candidate boxes above the confidence threshold, before and after "
                "non-maximum suppression at the chosen IoU (per class).")
    with gr.Row():
        with gr.Column():
            n_img = SafeImage(example_path, type="filepath", image_mode=None, label="Image", height=300,
                              elem_id="nms-image")
            n_conf = Slider(0.0, 1.0, NMS_CONF, step=0.01, label="Confidence threshold")
            n_iou = Slider(0.0, 1.0, own["iou"], step=0.01, label="NMS IoU", elem_id="nms-iou")
            n_run = gr.Button("Run NMS", variant="primary")
            n_text = gr.Markdown(elem_id="nms-text")
        n_before = gr.Image(label="Before NMS", type="pil", elem_id="nms-before")
        n_after = gr.Image(label="After NMS", type="pil", elem_id="nms-after")
    n_run.click(on_nms, [n_img, model, n_conf, n_iou], [n_before, n_after, n_text], api_visibility="private",
                **HEAVY)
    return n_iou


NMS_CONF = 0.1  # the NMS tab starts low, so that there are candidates to suppress
