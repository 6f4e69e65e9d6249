"""``Detector``: one object per model, with ``train``, ``val``, ``predict`` and ``export``; the CLI and the app are
thin layers over it.

    from detector import Detector
    det = Detector("tiny_ssd_plus")                       # a new model: a registry name, model keywords as keywords
    det = Detector("models/tinyssd-shapes.pt")            # or a checkpoint, an .onnx file, "torchvision:NAME"
    det.train(data="data/shapes", epochs=30, out="runs/shapes")   # every TrainConfig field as a keyword
    m = det.val(data="data/shapes-test")                  # Metrics: .ap, .ap50, .per_class, .to_dict()
    for r in det.predict("photos/", conf=0.3, classes=["star"], stream=True):
        print(r.path, len(r), r.classes)                  # Results, boxes in the original image's pixels
    det.export("models/x.onnx")                           # the format from the suffix

Settings merge in one order: the project's defaults (:mod:`detector.engine.config`) < the model's own (what it
was trained, exported or imported with) < a recipe file (``config=``) < the keywords given.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path

import torch

from detector.api.info import ModelInfo, info_from_checkpoint, new_model_info
from detector.api.pipeline import ReadAhead, WriteBehind
from detector.api.results import Metrics, Prediction, Results, ResultsList
from detector.api.scoring import false_alarms, ground_truth_of, load_split, prepare_out, score
from detector.api.sources import Item, is_lazy, iter_items
from detector.api.writer import PredictionWriter, Skipped, check_out
from detector.core.errors import InputError, UsageError, setting
from detector.core.files import write_atomic
from detector.core.progress import voice
from detector.engine.config import TrainConfig, check_flags, check_img_size, read_recipe, recipe_under_flags
from detector.engine.distributed import main_process
from detector.engine.loop import resolve_device
from detector.engine.modes import EvalConfig, ExportConfig, PredictConfig
from detector.evaluation.predict import detect, predict_records
from detector.models.registry import MODELS, load_detector, model_from_checkpoint

logger = logging.getLogger("detector")
FILE_SUFFIXES = (".pt", ".pth", ".onnx")


def _as_text(settings: dict) -> dict:
    """Paths given as ``pathlib.Path`` (or any ``os.PathLike``) as the text the settings hold."""
    return {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in settings.items()}


def _keywords(config_cls: type, given: dict, what: str, exclude: tuple[str, ...] = ()) -> None:
    """A :class:`UsageError` naming the keywords ``config_cls`` has no field for (or that ``exclude`` names:
    settings the method takes as its own arguments)."""
    known = {f.name for f in fields(config_cls) if f.name not in ("command", "given", "overrides", *exclude)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise UsageError(f"{what}: no setting {', '.join(unknown)}; the settings are {', '.join(sorted(known))}")


class Detector:
    """A detector: a new model of the registry, a checkpoint (``.pt``), an exported ``.onnx`` graph or a zoo
    model (``torchvision:NAME``). ``device``: ``auto`` (a GPU when there is one), ``cpu``, ``cuda``, ``cuda:N``."""

    def __init__(self, model: str | Path = "tiny_ssd_plus", *, device: str = "auto", **model_kwargs):
        if not isinstance(device, str):
            raise UsageError(f"device={device!r}: must be text: auto, cpu, cuda, cuda:N or mps")
        if not isinstance(model, (str, os.PathLike)) or not str(model).strip():
            raise UsageError(f"model={model!r}: give a model's name ({', '.join(MODELS)}), a .pt or .onnx file, "
                             "or torchvision:NAME")
        check_flags(device=device)
        self.device = resolve_device(device)
        self.source = str(model)
        self.run: Path | None = None  # the run folder, after train()
        self.model: torch.nn.Module | None = None
        if self.source.startswith("torchvision:"):
            from detector.engine.zoo import zoo_checkpoint

            self._load(model_from_checkpoint(zoo_checkpoint(self.source), self.device, self.source), model_kwargs)
        elif Path(self.source).suffix.lower() in FILE_SUFFIXES or Path(self.source).exists():
            self._load(load_detector(self.source, self.device), model_kwargs)
        elif self.source in MODELS:
            self.info = new_model_info(self.source, model_kwargs)
        else:
            raise UsageError(f"{self.source}: neither a model ({', '.join(MODELS)}) nor a .pt/.onnx file that exists; "
                             "a zoo model is torchvision:NAME")

    def _load(self, loaded: tuple, model_kwargs: dict) -> None:
        """The model and its :class:`ModelInfo`; the checkpoint dict (a second copy of the weights, and a
        ``last.pt``'s optimizer state) is not kept."""
        if model_kwargs:
            raise UsageError(f"{self.source}: model keywords ({', '.join(model_kwargs)}) are for a new model; a "
                             "checkpoint is rebuilt as it was saved")
        self.model, ckpt = loaded
        self.info: ModelInfo = info_from_checkpoint(ckpt, self.source, self.model)

    # ------------------------------------------------------------------------------------------ what it is
    @property
    def names(self) -> list[str]:
        """The classes it detects (empty for a new model before training)."""
        return list(self.info.classes)

    @property
    def img_size(self) -> int | None:
        return self.info.img_size

    def _require_model(self, what: str) -> torch.nn.Module:
        if self.model is None:
            raise UsageError(f"{what}: {self.source} is a new model with no weights yet; train() it first, or load "
                             "a checkpoint: Detector('runs/NAME/best.pt')")
        return self.model

    def __repr__(self) -> str:
        classes = f", {len(self.names)} classes" if self.names else ""
        return f"Detector({self.source!r}, {self.info.name}{classes}, device={self.device.type})"

    # ------------------------------------------------------------------------------------------ train
    def train(self, data: str | Path | None = None, *, config: str | Path | TrainConfig | None = None,
              verbose: bool = True, **settings) -> Metrics:
        """Train (``detector train``): every :class:`~detector.engine.config.TrainConfig` field as a keyword, over a
        recipe file (``config``, YAML of the same fields) and over the model's own settings. A checkpoint's
        Detector starts the run from its weights. Afterwards the Detector holds the best model (``best.pt``)
        and ``self.run`` is the run folder. Returns the last evaluation's metrics (empty without a val split).
        ``verbose``: progress as the command line shows it (a line per epoch; a bar on a terminal), on standard
        error unless the script has set up logging; ``False``: nothing but warnings."""
        from detector.engine.detect import train

        if isinstance(config, TrainConfig):
            if settings or data is not None:
                raise UsageError(f"train(): give the settings in the TrainConfig or as keywords, not both "
                                 f"({', '.join([*(['data'] if data is not None else []), *settings])})")
            cfg = config
        else:
            _keywords(TrainConfig, settings, "train()")
            settings = _as_text(settings)
            values = self._own_train_settings()
            values.update(recipe_under_flags(read_recipe(config), settings) if config is not None else {})
            values.update(settings)
            if data is not None:
                values["data"] = str(data)
            cfg = TrainConfig(**values, given=tuple(settings) + (("data",) if data is not None else ()))
        cfg.check()
        if not isinstance(verbose, bool):
            raise UsageError(f"verbose={verbose!r}: True (progress on standard error) or False (quiet)")
        with voice(verbose):
            metrics = dict(train(cfg) or {})
        images = int(metrics.pop("images", 0))
        self.run = Path(cfg.resume).parent if cfg.resume else Path(cfg.out)
        if main_process():  # under torchrun the other ranks have waited for rank 0's files and leave them to it
            best = self.run / "best.pt" if (self.run / "best.pt").is_file() else self.run / "last.pt"
            self.source = str(best)
            self._load(load_detector(best, self.device), {})
        return Metrics(metrics, images)

    def _own_train_settings(self) -> dict:
        """The model's own training settings: its name and keywords (and, for a checkpoint, its input geometry
        and its weights as the start)."""
        keywords = dict(self.info.keywords)
        own = {"model": self.info.name, "model_kwargs": keywords}
        for geometry in ("img_size", "letterbox"):  # a new model's input geometry: settings of their own
            if geometry in keywords:
                own[geometry] = keywords.pop(geometry)
        if self.model is not None:
            if self.info.format == "onnx":
                raise UsageError(f"{self.source}: an ONNX graph cannot be trained; train its .pt checkpoint")
            own.update(img_size=self.info.img_size, letterbox=self.info.letterbox, weights=self.source)
        return own

    # ------------------------------------------------------------------------------------------ val
    def val(self, data: str | Path, **settings) -> Metrics:
        """COCO mAP with pycocotools (``detector eval``) on a split of ``data`` (default: ``val``, or all of a lone
        COCO file): every :class:`~detector.engine.config.EvalConfig` field as a keyword. ``out``: a folder
        for metrics.json, PR curves and the confusion matrix. ``negatives``: a folder of images without the
        model's classes; the share of them with a detection at or above each threshold (``Metrics.false_alarms``:
        the app's default 0.25, 0.5, and the model's own) is measured too."""
        model = self._require_model("val()")
        _keywords(EvalConfig, settings, "val()", exclude=("data",))
        cfg = EvalConfig(data=str(data), **_as_text(settings))
        cfg.check()
        prepare_out(cfg)
        split, dataset, records = load_split(cfg, read_images=True)
        if self.names != dataset.classes:
            raise InputError(f"{self.source} was trained on classes {self.names}, the data has {dataset.classes}")
        gt, category_ids = ground_truth_of(dataset, split, records)
        results = predict_records(model, records, category_ids, self.device, cfg.batch_size, cfg.workers,
                                  ids=[im["id"] for im in gt["images"]], max_pixels=cfg.max_pixels)
        metrics = score(cfg, dataset, gt, category_ids, results, self.source)
        if cfg.negatives is not None:
            every = [r for split_records in dataset.splits.values() for r in split_records]
            metrics.stats["false_alarms"] = false_alarms(self, cfg.negatives, cfg.max_pixels, cfg.skip_invalid,
                                                         annotated=every)
            if cfg.out:
                write_atomic(Path(cfg.out) / "metrics.json", json.dumps(metrics.stats, indent=2))
        return metrics

    # ------------------------------------------------------------------------------------------ predict
    def predict(self, source, *, stream: bool = False, errors: str = "raise", batch: int = 1,
                out: str | Path | None = None, save_txt: bool = False,
                **settings) -> list[Results] | Iterator[Results]:
        """Detect in ``source``: an image file, a folder, a glob, a video (frame by frame), a numpy array (RGB,
        HWC, uint8), a PIL image, or a list of them. Settings (:class:`~detector.engine.config.PredictConfig`):
        ``conf``, ``iou``, ``classes`` (names), ``max_det``, ``img_size``, ``max_pixels``, ``max_frames``,
        ``vid_stride``; those
        not given are the model's own (``self.info.defaults``), then the project's. Classes are filtered before
        ``max_det`` cuts.

        ``stream=True`` yields one :class:`Results` at a time (bounded memory over any number of images);
        otherwise a list. ``errors``: ``"raise"`` an :class:`InputError` at an unreadable image, or ``"skip"``
        it (logged, and listed in ``self.skipped``). ``batch``: images per model call. ``out``: a folder that
        gets what ``detector predict --out`` writes (each image drawn, ``predictions.json``, ``labels/`` with
        ``save_txt``, each video drawn with its frames' JSON; see :mod:`detector.api.writer`), as results come;
        the returned list or stream's ``writer`` says what was written."""
        model = self._require_model("predict()")
        if not isinstance(stream, bool):
            raise UsageError(f"stream={stream!r}: True (one result at a time) or False (a list)")
        if errors not in ("raise", "skip"):
            raise UsageError(f"errors={errors!r}: choose 'raise' or 'skip'")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise UsageError(f"batch={batch!r}: must be a whole number of at least 1")
        if not isinstance(save_txt, bool):
            raise UsageError(f"save_txt={save_txt!r}: True or False")
        cfg = self.predict_config(**settings)
        skipped: list[str] = []  # this call's
        self.skipped = skipped  # the last call's, for convenience (a list or a stream has its own .skipped)
        items = iter_items(source, cfg.max_pixels, cfg.skip_bad_frames, cfg.max_frames, cfg.vid_stride)
        writer = None
        if out is not None and not isinstance(out, (str, os.PathLike)):
            raise UsageError(f"out={out!r}: a folder (text or a Path) for the drawings and predictions.json")
        if out is not None:
            if not str(out).strip():
                raise UsageError(f"{setting('out', str(out))}: give a folder for the drawings and predictions.json")
            check_out(Path(out), source if isinstance(source, (list, tuple)) else [source])
            writer = PredictionWriter(Path(out), save_txt, vid_stride=cfg.vid_stride)
        elif save_txt:
            raise UsageError(f"{setting('save_txt', True)} writes labels into {setting('out')}: give that folder too")
        results = self._stream(model, items, cfg, errors, batch, skipped, writer, read_ahead=not is_lazy(source))
        return Prediction(results, skipped, writer) if stream else ResultsList(results, skipped, writer)

    def predict_config(self, **settings) -> PredictConfig:
        """The settings a ``predict`` call runs with: the keywords given, then the model's own
        (``self.info.defaults``), then the project's defaults (checked; class names checked against the
        model's). ``conf``, ``iou`` and ``max_det`` are always filled in."""
        _keywords(PredictConfig, settings, "predict()")
        cfg = PredictConfig(**settings)
        cfg.check()
        if cfg.classes:
            unknown = [n for n in cfg.classes if n not in self.names]
            if unknown:
                raise UsageError(f"{setting('classes', unknown)}: not a class of this model; its classes: "
                                 f"{', '.join(self.names)}")
        if cfg.img_size is not None:
            check_img_size(self.info.name, cfg.img_size)
            if self.info.format == "onnx" and cfg.img_size != self.info.img_size:
                raise UsageError(f"{setting('img_size', cfg.img_size)}: {self.source} takes {self.info.img_size} px, "
                                 f"the size it was exported at (export it again with {setting('img_size')} to change "
                                 "it)")
        own = self.info.defaults
        return replace(cfg, conf=own.conf if cfg.conf is None else cfg.conf,
                       iou=own.iou if cfg.iou is None else cfg.iou,
                       max_det=own.max_det if cfg.max_det is None else cfg.max_det)

    def _stream(self, model, items: Iterator[Item], cfg: PredictConfig, errors: str, batch: int,
                skipped: list[str], writer: PredictionWriter | None = None,
                read_ahead: bool = True) -> Iterator[Results]:
        """The pipeline (:mod:`detector.api.pipeline`): files decoded in a thread ahead of the model (a caller's
        own iterator is read as it goes), the model here, drawing and writing in a thread behind it."""
        source = ReadAhead(items) if read_ahead else items
        sink = None if writer is None else WriteBehind(writer.add, writer.close, writer.abandon)  # drawing, writing
        failed = False
        try:
            for group in self._batches(source, errors, batch, skipped):
                if isinstance(group, Skipped):  # in order: a video that failed part-way is removed, not finished
                    if sink is not None:
                        sink.add(group)
                    continue
                for r in self._run(model, group, cfg):
                    if sink is not None:
                        sink.add(r)
                    yield r
        except GeneratorExit:  # the consumer stopped early: what was written is finished
            raise
        except BaseException:
            failed = True
            raise
        finally:
            if read_ahead:
                source.close()
            if sink is not None:
                if failed:  # the first error is the one raised; the outputs of what was done are still finished
                    with contextlib.suppress(Exception):
                        sink.close()
                else:
                    sink.close()

    @staticmethod
    def _batches(items: Iterator[Item], errors: str, batch: int,
                 skipped: list[str]) -> Iterator[list[Item] | Skipped]:
        """Batches of ``batch`` readable items, in order; an unreadable one raises, or (``errors="skip"``) is
        logged and comes as a :class:`Skipped` after the batch before it."""
        pending: list[Item] = []
        for item in items:
            if item.error is not None:
                if errors == "raise":
                    raise item.exception or InputError(item.error)
                logger.warning("skipped: %s", item.error)
                skipped.append(item.error)
                if pending:
                    yield pending
                    pending = []
                yield Skipped(item.path)
                continue
            pending.append(item)
            if len(pending) == batch:
                yield pending
                pending = []
        if pending:
            yield pending

    def _run(self, model, items: list[Item], cfg: PredictConfig) -> list[Results]:
        class_ids = [self.names.index(n) for n in cfg.classes] if cfg.classes else None
        dets = detect(model, [i.image for i in items], self.device, conf=cfg.conf, iou=cfg.iou, classes=class_ids,
                      max_det=cfg.max_det, size=cfg.img_size)
        return [Results(d["boxes"], d["scores"], d["labels"], self.names, i.image.shape[:2], i.path, i.frame,
                        self.info.category_ids, i.image, i.fps) for d, i in zip(dets, items)]

    # ------------------------------------------------------------------------------------------ export
    def export(self, path: str | Path, **settings) -> Path:
        """Write the model for shipping (``detector export``): a small checkpoint (``.pt``: weights and description)
        or an ONNX graph with its postprocess (``.onnx``), the format from the suffix. Settings
        (:class:`~detector.engine.config.ExportConfig`): ``half``, ``img_size`` and ``dynamic_batch`` (ONNX),
        ``card`` (also the model card, PATH with ``.json``, measured on ``test_data``)."""
        from detector.api.shipping import export_model

        self._require_model("export()")
        if self.info.format == "onnx":
            raise UsageError(f"{self.source}: already an ONNX graph; export its .pt checkpoint")
        if not Path(self.source).is_file():
            raise UsageError(f"{self.source}: export() writes from a checkpoint file; save or train one first")
        _keywords(ExportConfig, settings, "export()", exclude=("out",))
        return export_model(self.source, path, load=Detector, **settings)

