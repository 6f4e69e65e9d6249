"""An exported ONNX detector run with ONNX Runtime, honouring the model contract of ``detector.core.contract``:
``model(images, post=...)`` returns one ``dict(boxes, scores, labels)`` per image, boxes in the input's pixels.
:func:`detector.models.registry.load_detector` returns one for a ``.onnx`` path, so ``predict``, ``eval`` and
the app run it as they run a checkpoint.

The graph (written by ``detector export --format onnx``, :mod:`detector.engine.onnx_export`) holds the network
and its postprocess. Inputs: ``images`` float ``[B, 3, S, S]`` RGB in [0, 1] (B is 1 unless exported with
``--dynamic-batch``), and optionally ``score_threshold`` (float), ``iou_threshold`` (float) and
``max_detections`` (int64), scalars with the export's values as defaults. Outputs, for the whole batch, by
decreasing score: ``boxes [K, 4]`` (xyxy in the input's pixels), ``scores [K]``, ``labels [K]`` (classes
0..C-1) and ``batch_index [K]`` (the image of each detection). The description a checkpoint carries (classes,
category ids, input size, ...) is in the model's metadata (``METADATA_KEYS``).

    model, info = load_onnx_detector("models/tinyssd-shapes.onnx")      # CUDA provider with device="cuda"
    detections = model(images_uint8_b3ss, post={"score_threshold": CONF})
"""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from detector.core.contract import check_images, post_settings
from detector.core.errors import UsageError, setting
from detector.core.geometry import fit_images, to_original
from detector.models.checkpoint import CheckpointError

FORMAT_KEY, FORMAT_VERSION = "detector_onnx", "1"  # marks a graph written by `detector export --format onnx`
JSON_KEYS = ("classes", "category_ids", "model_kwargs", "metrics", "post_defaults")  # stored as JSON text
TEXT_KEYS = ("model_name", "command", "source", "resize")
INT_KEYS = ("img_size", "epoch", "pre_nms_top_k")
FLOAT_KEYS = ("conf",)  # the model's own score threshold, when it has one
FLAG_KEYS = ("dynamic_batch", "half", "letterbox")  # "true" or "false"
METADATA_KEYS = (FORMAT_KEY, *JSON_KEYS, *TEXT_KEYS, *INT_KEYS, *FLOAT_KEYS, *FLAG_KEYS)
POST_INPUTS = {"score_threshold": np.float32, "nms_threshold": np.float32, "max_detections": np.int64}  # post key -> dtype
INPUT_NAMES = {"score_threshold": "score_threshold", "nms_threshold": "iou_threshold",
               "max_detections": "max_detections"}  # post key -> the graph's input
OUTPUT_NAMES = ("boxes", "scores", "labels", "batch_index")
INSTALL_HINT = "pip install -e '.[onnx]'"


def require(*packages: str, what: str = "ONNX") -> None:
    """:class:`CheckpointError` in one line naming the missing packages and the extra that installs them."""
    missing = [p for p in packages if find_spec(p) is None]
    if missing:
        raise CheckpointError(f"{what} needs {' and '.join(missing)} (not installed here): {INSTALL_HINT}")


def read_metadata(props: dict[str, str], path: Path | str) -> dict:
    """The model's metadata (strings) -> the description a checkpoint carries (``classes``, ``img_size``, ...);
    a :class:`CheckpointError` naming ``path`` when the graph was not written by ``detector export``."""
    if props.get(FORMAT_KEY) != FORMAT_VERSION:
        raise CheckpointError(f"{path}: an ONNX model, but not one written by `detector export --format onnx` "
                              f"(no '{FORMAT_KEY}' metadata), so its classes and input are unknown")
    try:
        info = {k: json.loads(props[k]) for k in JSON_KEYS if k in props}
        info.update({k: props[k] for k in TEXT_KEYS if k in props})
        info.update({k: int(props[k]) for k in INT_KEYS if k in props})
        info.update({k: float(props[k]) for k in FLOAT_KEYS if k in props})
        info.update({k: props.get(k) == "true" for k in FLAG_KEYS})
        problem = metadata_problem(info)
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: its detector metadata is incomplete or malformed ({e})") from None
    if problem:
        raise CheckpointError(f"{path}: its detector metadata is incomplete or malformed ({problem}); export it again")
    info.setdefault("category_ids", list(range(1, len(info["classes"]) + 1)))
    info["format"] = "onnx"
    return info


MAX_IMG_SIZE = 8192  # the largest input the CLI accepts (--img-size)


def metadata_problem(info: dict) -> str | None:
    """What is wrong with an ONNX file's detector metadata (types and ranges), or None."""
    classes = info.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        return "'classes' must be a non-empty list of names"
    ids = info.get("category_ids", list(range(1, len(classes) + 1)))
    if not isinstance(ids, list) or len(ids) != len(classes) or not all(type(i) is int for i in ids):
        return f"'category_ids' must be {len(classes)} integers, one per class"
    if not 1 <= info.get("img_size", 0) <= MAX_IMG_SIZE:
        return f"'img_size' {info.get('img_size')} must be 1..{MAX_IMG_SIZE}"
    if "conf" in info and not 0 <= info["conf"] <= 1:
        return f"'conf' {info['conf']} must be between 0 and 1"
    post = info.get("post_defaults")
    keys = ("score_threshold", "nms_threshold", "max_detections")
    if not isinstance(post, dict) or any(type(post.get(k)) not in (int, float) for k in keys):
        return f"'post_defaults' must give {', '.join(keys)} as numbers"
    if not (0 <= post["score_threshold"] <= 1 and 0 <= post["nms_threshold"] <= 1 and post["max_detections"] >= 1):
        return f"'post_defaults' out of range: {post}"
    return None


def providers_for(device: torch.device | str, available: list[str]) -> list[str]:
    """ONNX Runtime's execution providers for ``device``: CUDA first when asked for and available, then CPU."""
    wants_cuda = torch.device(device).type == "cuda" and "CUDAExecutionProvider" in available
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if wants_cuda else ["CPUExecutionProvider"]


class OnnxDetector(nn.Module):
    """An ONNX Runtime session behind the model contract (eval only: it has no weights to train). The session's
    threads follow ``torch.get_num_threads()``, so one setting governs both backends."""

    def __init__(self, session, info: dict):
        super().__init__()
        self.session, self.info = session, info
        self.size = self.img_size = int(info["img_size"])
        self.letterbox, self.resize = bool(info.get("letterbox")), info.get("resize", "opencv")
        self.post_defaults = dict(info["post_defaults"])
        self.batch_limit = None if info.get("dynamic_batch") else 1  # a graph exported without --dynamic-batch
        given = session.get_inputs() + session.get_overridable_initializers()  # inputs, and inputs with defaults
        self.optional = {i.name for i in given} - {"images"}

    def train(self, mode: bool = True) -> OnnxDetector:
        if mode:
            raise RuntimeError("an ONNX detector runs inference only; train the PyTorch checkpoint instead")
        return super().train(False)

    def forward(self, images: Tensor | list[Tensor], targets=None, post: dict | None = None,
                size: int | None = None) -> list[dict[str, Tensor]]:
        """The model contract: images of any size are fitted to the graph's input (its export size, squashed or
        letterboxed as the checkpoint was trained, :mod:`detector.core.geometry`); boxes come back in each
        image's own pixels. ``size`` other than the export size is a :class:`UsageError`."""
        if targets is not None:
            raise ValueError("an ONNX detector computes no losses")
        if size is not None and size != self.size:
            raise UsageError(f"{setting('img_size', size)}: {self.info.get('source', 'this ONNX model')} takes {self.size} px, "
                             f"the size it was exported at (export it again with {setting('img_size')} to change it)")
        check_images(images)
        images, frames = fit_images(images, self.size, self.letterbox, self.resize)  # (B, 3, S, S), (B, 6)
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()  # (B, 3, S, S) as in the contract
        x = x.detach().cpu().contiguous().numpy()
        settings = post_settings(self.post_defaults, post)
        feed_post = {INPUT_NAMES[k]: np.asarray(settings[k], dtype) for k, dtype in POST_INPUTS.items()
                     if INPUT_NAMES[k] in self.optional}
        step = self.batch_limit or len(x)
        parts = []
        for start in range(0, len(x), step):  # one run for a dynamic-batch graph, one per image otherwise
            out = dict(zip(OUTPUT_NAMES, self.session.run(list(OUTPUT_NAMES), {"images": x[start:start + step], **feed_post})))
            out["batch_index"] = out["batch_index"] + start
            parts.append(out)
        joined = {k: np.concatenate([p[k] for p in parts]) for k in OUTPUT_NAMES}
        if (problem := outputs_problem(joined, len(x), len(self.info["classes"]))) is not None:
            raise CheckpointError(f"{self.info.get('source', 'the ONNX model')}: {problem}; the graph is not one "
                                  "`detector export` writes, or is damaged: export it again")
        detections = split_by_image(joined, len(x))
        cap = int(settings["max_detections"])
        detections = [{k: v[:cap] for k, v in d.items()} for d in detections]  # never more than asked for
        for d, frame in zip(detections, frames):
            d["boxes"] = to_original(d["boxes"], frame)
        return detections


def outputs_problem(out: dict[str, np.ndarray], batch_size: int, num_classes: int) -> str | None:
    """What is wrong with a graph's outputs for a batch (shapes, labels and images in range, finite boxes and
    scores in [0, 1]), or None."""
    k = len(out["scores"])
    if out["boxes"].shape != (k, 4) or out["labels"].shape != (k,) or out["batch_index"].shape != (k,):
        return f"outputs of inconsistent shapes {[tuple(out[n].shape) for n in OUTPUT_NAMES]}"
    if k and not (0 <= out["labels"].min() and out["labels"].max() < num_classes):
        return f"labels {int(out['labels'].min())}..{int(out['labels'].max())} outside its {num_classes} classes"
    if k and not (0 <= out["batch_index"].min() and out["batch_index"].max() < batch_size):
        return f"image indices {int(out['batch_index'].min())}..{int(out['batch_index'].max())} outside a batch of {batch_size}"
    if not (np.isfinite(out["boxes"]).all() and np.isfinite(out["scores"]).all()):
        return "boxes or scores that are not finite numbers"
    if k and not (0 <= out["scores"].min() and out["scores"].max() <= 1):
        return "scores outside [0, 1]"
    if k and (out["boxes"][:, 2:] < out["boxes"][:, :2]).any():
        return "boxes whose corners are reversed (x2 < x1 or y2 < y1)"
    return None


def split_by_image(out: dict[str, np.ndarray], batch_size: int) -> list[dict[str, Tensor]]:
    """The graph's flat outputs (by decreasing score, ``batch_index [K]`` naming each one's image) -> one
    ``dict(boxes [N, 4], scores [N], labels [N])`` per image, each by decreasing score."""
    order = np.argsort(out["batch_index"], kind="stable")  # by image, keeping the score order within each
    counts = np.bincount(out["batch_index"], minlength=batch_size)[:batch_size]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    detections = []
    for start, n in zip(starts, counts):
        idx = order[start:start + n]
        detections.append({"boxes": torch.from_numpy(out["boxes"][idx].astype(np.float32)).reshape(-1, 4),
                           "scores": torch.from_numpy(out["scores"][idx].astype(np.float32)),
                           "labels": torch.from_numpy(out["labels"][idx].astype(np.int64))})
    return detections


def load_onnx_detector(path: Path | str, device: torch.device | str = "cpu") -> tuple[OnnxDetector, dict]:
    """``(model, info)`` for an exported ``.onnx``: ``info`` holds what consumers read from a checkpoint
    (``classes``, ``category_ids``, ``img_size``, ``model_name``, ...) and ``format: "onnx"``. Every failure is
    a :class:`CheckpointError` in one line naming the file: missing, not ONNX, not ours, onnxruntime missing."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    require("onnxruntime", what=f"running {path.name}")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the cores (torch's default), for both backends
    # no busy-waiting between calls: predict's reader and writer threads need the cores while the graph waits
    # for its next batch (spinning threads took them: 1.2-1.7x slower folders, docs/benchmarks.md)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    try:
        session = ort.InferenceSession(str(path), options, providers=providers_for(device, ort.get_available_providers()))
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own kinds for a corrupt or unusable file
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(f"{path}: not an ONNX model, or a damaged one ({reason})") from None
    info = read_metadata(session.get_modelmeta().custom_metadata_map, path)
    names = {i.name for i in session.get_inputs()}
    if "images" not in names or not set(OUTPUT_NAMES) <= {o.name for o in session.get_outputs()}:
        raise CheckpointError(f"{path}: its inputs and outputs are not those `detector export` writes")
    return OnnxDetector(session, info).eval(), info
