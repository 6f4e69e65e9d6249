"""ONNX export: an SSD and its whole postprocess (softmax, decode, score threshold, top-k, class-aware NMS,
max detections) as one graph, with the checkpoint's description in the model's metadata.

    detector export --weights runs/shapes/best.pt --format onnx --out models/tinyssd-shapes.onnx --dynamic-batch

Exported with torch's dynamo exporter (``torch.onnx.export(dynamo=True)``). NMS is ONNX's
``NonMaxSuppression`` over ``[B, C, K]`` scores: each of the K candidates (the ``pre_nms_top_k`` best
(anchor, class) pairs of an image) scores only in its own class, so NMS never crosses classes or images, and no
box coordinates are shifted. The score threshold, NMS IoU and max detections are graph inputs with the export's
values as defaults, so the app's sliders and ``predict --iou`` work as they do with the checkpoint. The layout
of inputs, outputs and metadata is described in :mod:`detector.models.onnx_backend`, which runs the file.
Faster R-CNN is refused (see :data:`NOT_EXPORTABLE`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import Tensor, nn

from detector.core.boxes import decode, merge_boxes
from detector.models.checkpoint import CheckpointError, load_checkpoint
from detector.models.onnx_backend import FORMAT_KEY, FORMAT_VERSION, OUTPUT_NAMES, require
from detector.models.registry import load_detector
from detector.models.ssd import SSD

OPSET = 18
# Tried with torch 2.14 on `faster_rcnn` (resnet18 body): torch.export (the dynamo exporter's first step) stops at a
# guard on a data-dependent size in torchvision's batched_nms (`4*u13 > 4000`), and the TorchScript exporter
# (dynamo=False) at `aten::sort` with an out parameter; its per-image proposals and postprocess would need an
# export graph of their own, as the SSDs have here.
NOT_EXPORTABLE = {"faster_rcnn": "torch's exporter cannot trace its data-dependent proposals and NMS (torch.export "
                  "stops at a guard in batched_nms); predict, eval and the app run its .pt checkpoint"}
GRAPH_INPUTS = ("images", "score_threshold", "iou_threshold", "max_detections")
DYNAMIC_EXAMPLE_BATCH = 2  # torch.export specializes a dimension traced at size 1


class ExportError(CheckpointError):
    """A checkpoint that cannot be exported to ONNX; the message names it and says why in one line."""


@torch.library.custom_op("detector::onnx_nms", mutates_args=())
def onnx_nms(boxes: Tensor, scores: Tensor, iou_threshold: Tensor) -> Tensor:
    """ONNX's ``NonMaxSuppression`` in torch: ``boxes [B, K, 4]`` xyxy, ``scores [B, C, K]`` (candidates scoring
    below 0 take no part), ``iou_threshold`` a scalar -> ``selected [M, 3]`` rows ``(image, class, candidate)``;
    a box is removed when its IoU with a kept box of its image and class is above the threshold."""
    b, c, k = (scores >= 0).nonzero(as_tuple=True)  # (N,) each
    kept = torchvision.ops.batched_nms(boxes[b, k], scores[b, c, k], b * scores.shape[1] + c, float(iou_threshold))
    return torch.stack((b, c, k), 1)[kept]  # (M, 3)


@onnx_nms.register_fake
def _(boxes: Tensor, scores: Tensor, iou_threshold: Tensor) -> Tensor:
    return boxes.new_empty((torch.library.get_ctx().new_dynamic_size(), 3), dtype=torch.int64)


def _nms_translation():
    """The ONNX function for :func:`onnx_nms` (onnxscript is imported only when exporting)."""
    from onnxscript import FLOAT, INT64
    from onnxscript import opset18 as op

    def nms(boxes, scores, iou_threshold):
        every = op.Constant(value_ints=[2**62])  # max_output_boxes_per_class: all of them
        return op.NonMaxSuppression(boxes, scores, every, op.Reshape(iou_threshold, [1]),
                                    op.Constant(value_floats=[-0.5]))  # score_threshold: drops the -1 entries

    nms.__annotations__ = {"boxes": FLOAT, "scores": FLOAT, "iou_threshold": FLOAT, "return": INT64}  # its signature
    return {torch.ops.detector.onnx_nms.default: nms}


class SSDGraph(nn.Module):
    """An :class:`SSD` at a fixed input size with its postprocess, as one traceable function (the same steps as
    :func:`detector.core.ssd_ops.postprocess`, class-aware, written without Python loops or ``.tolist()``).

    ``forward(images [B, 3, S, S] float in [0, 1], score_threshold, iou_threshold, max_detections)`` ->
    ``boxes [K, 4]`` (xyxy pixels, clipped to the image), ``scores [K]``, ``labels [K]`` (0..C-1),
    ``batch_index [K]``, by decreasing score, at most ``max_detections`` per image."""

    def __init__(self, model: SSD, size: int):
        super().__init__()
        self.model, self.size = model.eval(), size
        with torch.no_grad():
            anchors = model.head_outputs(torch.zeros(1, 3, size, size))[2]  # (A, 4) normalized, fixed by the size
        self.register_buffer("anchors", anchors)
        self.pre_nms_top_k = model.post_defaults["pre_nms_top_k"]

    def forward(self, images: Tensor, score_threshold: Tensor, iou_threshold: Tensor, max_detections: Tensor):
        model = self.model
        cls_logits, offsets, _ = model.head_outputs(images)  # (B, A, S + 1), (B, A, 4)
        B, A = cls_logits.shape[:2]
        probs = cls_logits.float().softmax(-1)[..., 1:]  # (B, A, S): over every output, as the model
        if model.head_classes != model.num_classes:
            probs = probs[..., model.class_slots]  # (B, A, C): the classes' slots
        C = probs.shape[-1]
        if model.per_class_top_k:  # the best k anchors of each class (torchvision's SSD)
            k = A if self.pre_nms_top_k is None else min(int(self.pre_nms_top_k), A)
            top_scores, anchor = probs.transpose(1, 2).topk(k, dim=2)  # (B, C, k) each
            labels = torch.arange(C, device=probs.device)[None, :, None].expand(B, C, k).reshape(B, C * k)
            top_scores, anchor, k = top_scores.reshape(B, C * k), anchor.reshape(B, C * k), C * k  # (B, C*k)
        else:  # the best k (anchor, class) pairs of each image
            scores = probs.reshape(B, A * C)  # (B, A*C): index = anchor * C + class
            k = A * C if self.pre_nms_top_k is None else min(int(self.pre_nms_top_k), A * C)
            top_scores, top_idx = scores.topk(k, dim=1)  # (B, k) each, sorted
            anchor, labels = top_idx // C, top_idx % C  # (B, k) each
        picked = offsets.float().gather(1, anchor[..., None].expand(B, k, 4))  # (B, k, 4)
        boxes = decode(self.anchors[anchor], picked)  # (B, k, 4) normalized
        if model.clip_before_nms:
            boxes = boxes.clamp(0.0, 1.0)
        own = labels[:, None, :] == torch.arange(C, device=labels.device)[None, :, None]  # (B, C, k)
        passing = own & (top_scores >= score_threshold)[:, None, :]  # (B, C, k)
        nms_scores = torch.where(passing, top_scores[:, None, :], -1.0)  # (B, C, k): -1 takes no part
        selected = onnx_nms(boxes, nms_scores, iou_threshold)  # (M, 3): image, class, candidate
        image, cand = selected[:, 0], selected[:, 2]  # (M,) each
        order = top_scores[image, cand].argsort(descending=True)  # (M,): the whole batch by decreasing score
        image, cand = image[order], cand[order]
        mine = (image[:, None] == torch.arange(B, device=image.device)[None]).long()  # (M, B) one-hot image
        rank = (mine.cumsum(0) * mine).sum(1) - 1  # (M,) position within its image
        keep = rank < max_detections
        image, cand = image[keep], cand[keep]  # (K,) each
        kept = boxes[image, cand]  # (K, 4) normalized
        if model.nms_merge:  # the candidates of the same image and class, over the threshold (core.ssd_ops)
            same = (labels[image] == labels[image, cand][:, None]) & (top_scores[image] >= score_threshold)  # (K, k)
            weights = torch.where(same, top_scores[image], torch.zeros_like(top_scores[image]))
            kept = merge_boxes(kept, boxes[image], weights, iou_threshold)
        out = (kept * self.size).clamp(0, self.size)  # (K, 4) pixels of the input
        return out, top_scores[image, cand], labels[image, cand], image


def _metadata(ckpt: dict, model: SSD, size: int, dynamic_batch: bool, half: bool, source: str) -> dict[str, str]:
    from detector.data.records import default_category_ids

    post = {k: model.post_defaults[k] for k in ("score_threshold", "nms_threshold", "max_detections")}
    return {FORMAT_KEY: FORMAT_VERSION, "model_name": ckpt["model_name"], "classes": json.dumps(ckpt["classes"]),
            "category_ids": json.dumps(ckpt.get("category_ids") or default_category_ids(ckpt["classes"], None)),
            "model_kwargs": json.dumps(ckpt.get("model_kwargs", {})), "metrics": json.dumps(ckpt.get("metrics", {})),
            "post_defaults": json.dumps(post), "img_size": str(size), "epoch": str(int(ckpt.get("epoch", -1))),
            "pre_nms_top_k": str(int(model.post_defaults["pre_nms_top_k"] or -1)), "command": ckpt.get("command", ""),
            "source": source, "dynamic_batch": str(dynamic_batch).lower(), "half": str(half).lower(),
            "letterbox": str(bool(ckpt.get("letterbox", False))).lower(), "resize": model.resize}


def trace(graph: SSDGraph, dynamic_batch: bool):
    """The ONNX model (``onnx.ModelProto``) of ``graph``, batch 1 or a dynamic batch axis."""
    n = DYNAMIC_EXAMPLE_BATCH if dynamic_batch else 1
    post = graph.model.post_defaults
    args = (torch.rand(n, 3, graph.size, graph.size), torch.tensor(float(post["score_threshold"])),
            torch.tensor(float(post["nms_threshold"])), torch.tensor(int(post["max_detections"])))
    batch = {0: torch.export.Dim("batch", min=1, max=4096)} if dynamic_batch else None
    program = torch.onnx.export(graph, args, dynamo=True, opset_version=OPSET, input_names=list(GRAPH_INPUTS),
                                output_names=list(OUTPUT_NAMES), dynamic_shapes=(batch, None, None, None),
                                custom_translation_table=_nms_translation(), verbose=False)
    return program.model_proto


def with_defaults(proto, post: dict):
    """The threshold inputs get the export's values as defaults (initializers of the same name, which ONNX
    Runtime lets a caller override), so ``session.run(None, {"images": x})`` is enough."""
    from onnx import numpy_helper

    values = {"score_threshold": np.float32(post["score_threshold"]), "iou_threshold": np.float32(post["nms_threshold"]),
              "max_detections": np.int64(post["max_detections"])}
    for name, value in values.items():
        proto.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    return proto


def fp16_storage(proto):
    """Float32 weights stored as float16, each cast back to float32 in the graph: half the file, the same
    arithmetic as a ``--half`` checkpoint (fp16 weights, computed in fp32); ONNX Runtime folds the casts when it
    loads the model, so it runs as fast as the fp32 file."""
    from onnx import TensorProto, helper, numpy_helper

    inputs = {i.name for i in proto.graph.input}
    casts = []
    for init in proto.graph.initializer:
        if init.data_type != TensorProto.FLOAT or init.name in inputs or np.prod(init.dims) < 16:
            continue  # small constants (shapes, scalars) stay as they are
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "_fp16")
        init.CopyFrom(half)
        casts.append(helper.make_node("Cast", [half.name], [half.name[:-5]], to=TensorProto.FLOAT,
                                      name=f"{half.name[:-5]}_to_fp32"))
    nodes = casts + list(proto.graph.node)  # the casts before every use: nodes are in topological order
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    return proto


def slim(proto):
    """onnxslim's simplification (constant folding, dead nodes, fused shapes); the graph as it is when onnxslim
    is not installed."""
    try:
        import onnxslim
    except ImportError:
        return proto
    return onnxslim.slim(proto)


def export_onnx(weights: str | Path, out: str | Path, img_size: int | None = None, dynamic_batch: bool = False,
                half: bool = False, log=print, conf: float | None = None) -> dict:
    """Write ``out``: the detector of checkpoint ``weights`` and its postprocess as one ONNX graph at
    ``img_size`` (default: the checkpoint's), checked with ``onnx.checker``; ``conf``: the model's own score
    threshold kept in its metadata (default: the checkpoint's, if it has one). Returns the metadata written.
    Raises :class:`ExportError` for a model that cannot be exported, :class:`CheckpointError` for a file
    that cannot be read or written or a package that is missing."""
    require("onnx", "onnxscript", what="ONNX export")
    import onnx

    name = load_checkpoint(weights).get("model_name")
    if name in NOT_EXPORTABLE:
        raise ExportError(f"{weights}: {name} cannot be exported to ONNX: {NOT_EXPORTABLE[name]}")
    model, ckpt = load_detector(weights, "cpu")
    if not isinstance(model, SSD):
        raise ExportError(f"{weights}: {name} cannot be exported to ONNX: only the SSD family has an export graph")
    size = int(img_size or ckpt["img_size"])
    graph = SSDGraph(model.to(memory_format=torch.contiguous_format), size).eval()
    log(f"exporting {name} at {size} px, batch {'dynamic' if dynamic_batch else 1}, with torch.onnx (dynamo) ...")
    proto = slim(trace(graph, dynamic_batch))
    proto = with_defaults(proto, model.post_defaults)
    if half:
        proto = fp16_storage(proto)
    meta = _metadata(ckpt, model, size, dynamic_batch, half, Path(weights).name)
    if conf is not None or ckpt.get("conf") is not None:
        meta["conf"] = str(float(ckpt["conf"] if conf is None else conf))
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    out, tmp = Path(out), Path(out).with_name(f".{Path(out).name}.tmp")
    try:  # a temp file, then a rename: a failed write leaves any previous file whole
        out.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(proto, str(tmp))
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"{out}: could not write the ONNX model ({e.strerror or e})") from None
    return meta
