"""The settings of a training run, each written once: its default, its comment and its ``--flag`` help.

``detector train`` and ``detector classify train`` generate their options from these fields
(:func:`detector.cli.common.add_config_arguments`); a field with ``cli=False`` is not a flag. This module
imports no torch, so the CLI's ``--help`` stays fast.

The values are checked in one place, :func:`check_flags` (a config's ``check()`` and the other commands' flags
call it): a value that cannot work is a :class:`ConfigError`, which the CLI reports as a usage error (exit 2).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from detector.core.errors import UsageError, setting
from detector.core.thresholds import MAX_DET
from detector.data.images import MAX_PIXELS
from detector.models.names import (
    ANCHOR_MODELS,
    BACKBONE_MIN_INPUT,
    BACKBONES,
    DETECTION_BODIES,
    DETECTOR_MIN_INPUT,
    DETECTORS,
)

BACKBONE_MODELS = ("resnet_ssd", "faster_rcnn")  # the detectors whose body --backbone and --freeze-stages set
from detector.models.recipes import INITS, OPTIMIZERS, RECIPE_FIELDS, SCHEDULES, Recipe, recipe_for

MINIMUM = {"epochs": 1, "batch_size": 1, "eval_every": 1, "workers": 0, "devices": 1, "max_det": 1, "max_frames": 1, "vid_stride": 1,
           "img_size": 1, "patience": 1, "freeze_stages": 0, "max_pixels": 1, "seed": 0, "count": 1, "num": 1,
           "ema_tau": 1}  # the smallest value of each integer flag
POSITIVE = ("lr", "time")  # floats that must be > 0 (and finite)
NON_NEGATIVE = ("warmup_epochs", "weight_decay", "hard_negatives")  # floats that must be >= 0 (and finite)
FRACTIONS = ("conf", "iou", "mosaic", "mixup")  # floats in [0, 1]
BELOW_ONE = ("multi_scale", "momentum")  # floats in [0, 1)
OPEN_UNIT = ("ema_decay",)  # floats in (0, 1)
EMA_TAU = 2000  # --ema-tau's default: updates over which the EMA's decay ramps up (Ultralytics)
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "init": INITS}  # text flags with a fixed set of values


class ConfigError(UsageError):
    """A flag value that cannot work (a usage error: exit 2); the message names the flag and what it takes."""


MAXIMUM = {"img_size": 8192, "max_det": MAX_DET}  # the largest value of an integer flag (8192 px: 64 megapixels)
NUMBERS = (*POSITIVE, *NON_NEGATIVE, *FRACTIONS, *BELOW_ONE, *OPEN_UNIT, "iou", "conf")  # floats (ints pass)


def _kind_problem(name: str, value) -> str | None:
    """What is wrong with the type of ``value`` for flag ``name`` (a recipe file or a script can give any)."""
    if name in MINIMUM and (isinstance(value, bool) or not isinstance(value, int)):
        return "must be a whole number"
    if name in NUMBERS and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return "must be a number"
    if (name in CHOICES or name == "device") and not isinstance(value, str):
        return "must be text"
    return None


def check_flags(**values) -> None:
    """Check flag values by their names (``batch_size=0`` is ``--batch-size 0``); raise one :class:`ConfigError`
    naming every bad value and what it takes. Names without a rule pass; None is an optional flag not given."""
    problems = []
    for name, value in values.items():
        if value is None:  # an optional flag not given
            continue
        flag = setting(name, value)
        if (kind := _kind_problem(name, value)) is not None:
            problems.append(f"{flag}: {kind}")
        elif name in MAXIMUM and value > MAXIMUM[name]:
            problems.append(f"{flag}: must be at most {MAXIMUM[name]}")
        elif name in MINIMUM and value < MINIMUM[name]:
            problems.append(f"{flag}: must be at least {MINIMUM[name]}")
        elif name in POSITIVE and not (math.isfinite(value) and value > 0):
            problems.append(f"{flag}: must be a positive number")
        elif name in NON_NEGATIVE and not (math.isfinite(value) and value >= 0):
            problems.append(f"{flag}: must be 0 or more")
        elif name in FRACTIONS and not 0 <= value <= 1:
            problems.append(f"{flag}: must be between 0 and 1")
        elif name in BELOW_ONE and not 0 <= value < 1:
            problems.append(f"{flag}: must be at least 0 and below 1")
        elif name in OPEN_UNIT and not 0 < value < 1:
            problems.append(f"{flag}: must be between 0 and 1 (both excluded)")
        elif name in CHOICES and value not in CHOICES[name]:
            problems.append(f"{flag}: choose one of {', '.join(CHOICES[name])}")
        elif name == "device" and not DEVICE.fullmatch(value):
            problems.append(f"{flag}: not a device; use auto, cpu, cuda, cuda:N (N the GPU's index) or mps")
    if problems:
        raise ConfigError("; ".join(problems))


CPU_BATCH, GPU_BATCH = 8, 32  # `detector train` without --batch-size


def default_batch_size(device_type: str, world: int = 1) -> int:
    """``detector train``'s global batch when ``--batch-size`` is not given: 8 on a CPU (four times the optimizer
    steps of 32 per epoch; it doubled val AP at equal wall time on this project's CPU measurements, see
    docs/experiments/batch-size.md), 32 on a GPU (a batch of 8 leaves it mostly idle); rounded up to a multiple
    of ``world``."""
    batch = CPU_BATCH if device_type == "cpu" else GPU_BATCH
    return -(-batch // world) * world


def check_img_size(model: str, size: int, table: dict[str, int] = DETECTOR_MIN_INPUT) -> None:
    """:class:`ConfigError` when ``model`` (a name in ``table``) cannot take ``size`` x ``size`` inputs."""
    if model in table and size < table[model]:
        raise ConfigError(f"{setting('img_size', size)}: too small for {model}, which needs at least {table[model]} px")


def multi_scale_sizes(size: int, fraction: float, min_size: int = 1, stride: int = 32) -> list[int]:
    """The input sizes ``--multi-scale fraction`` draws from: the multiples of ``stride`` in
    ``[size * (1 - fraction), size * (1 + fraction)]`` that are at least ``min_size`` (Ultralytics' rule)."""
    lo, hi = max(round(size * (1 - fraction), 6), min_size), round(size * (1 + fraction), 6)  # 320 * 0.9 is 288.00...06
    return list(range(math.ceil(lo / stride) * stride, math.floor(hi / stride) * stride + 1, stride))


def opt(default, help: str, cli: bool = True, **argparse_kwargs):
    """A config field whose command-line help (and argparse extras, e.g. ``choices``) lives beside its default."""
    metadata = {"help": help, "cli": cli, "argparse": argparse_kwargs}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


DEVICE_HELP = "cpu, cuda, cuda:1, or auto (cuda when available)"


@dataclass
class RunConfig:
    """What every training run has (``detector train``, ``detector classify train``): where it runs, how it is
    seeded, timed and stopped, and where it writes."""

    device: str = opt("auto", DEVICE_HELP)
    amp: bool = opt(False, "bf16 autocast (fp16 with loss scaling where bf16 is missing)")
    workers: int = opt(2, "DataLoader worker processes")
    seed: int = opt(0, "seeds the weights, the data order and the augmentation")
    resume: str | None = opt(None, "a last.pt to continue from (model, data and schedule come from it)")
    out: str = opt("runs/train", "the run folder: last.pt, best.pt, results.csv, results.png")
    eval_every: int = opt(5, "epochs between val evaluations (and the last epoch)")
    time: float | None = opt(None, "hours of training: the epochs are fitted to this budget from the measured epoch "
                             "time, the schedule with them (replaces --epochs)")
    patience: int | None = opt(None, "stop when the val metric (AP; top-1 for classifiers) has not improved for this "
                               "many epochs")
    config: str | None = opt(None, "a YAML file of these settings (a recipe, e.g. recipes/tinyssd-shapes.yaml); "
                             "flags given override it")
    exist_ok: bool = opt(False, "train into an --out that holds an earlier run (its last.pt, best.pt and results.csv "
                         "are replaced); without it such an --out is refused")
    command: str = opt("", "the command line, kept in the checkpoint", cli=False)
    given: tuple[str, ...] = opt((), "the fields set on the command line (with --resume, --epochs extends the run)",
                                 cli=False)


@dataclass
class TrainConfig(RunConfig):
    """``detector train``: a detector on a detection data set."""

    model: str = opt("tiny_ssd_plus", "the detector", choices=DETECTORS)
    data: str = opt("data/shapes", "a data set (see `detector data check`)")
    epochs: int = opt(60, "training epochs")
    batch_size: int | None = opt(None, f"the global batch (split over --devices); default: {CPU_BATCH} on a CPU, "
                                 f"{GPU_BATCH} on a GPU")
    lr: float = opt(3e-3, "AdamW peak learning rate")
    weight_decay: float = opt(5e-4, "not applied to biases and norm weights", cli=False)
    warmup_epochs: float = opt(1.0, "linear warm-up from lr / 10, then cosine down to lr / 100", cli=False)
    img_size: int = opt(256, "square input size in pixels")
    letterbox: bool = opt(False, "keep each image's aspect ratio: its longest side to --img-size, the rest padded with "
                          "the mean colour, in training (after the crop) and wherever the checkpoint is used")
    multi_scale: float = opt(0.0, "F: each batch at a size drawn from the multiples of 32 in img-size x [1 - F, "
                             "1 + F] (sizes the model cannot take left out); 0: off")
    mosaic: float = opt(0.0, "probability that a training image is a mosaic of 4 (YOLOv4); 0: off")
    mixup: float = opt(0.0, "probability that a training image is blended with another (its boxes added); 0: off")
    ema_decay: float | None = opt(None, "evaluate and save an exponential moving average of the weights with this "
                                  "decay (e.g. 0.9999; ramped up over the first --ema-tau steps)")
    ema_tau: int = opt(EMA_TAU, "with --ema-decay: the decay after n steps is D x (1 - exp(-n / tau)), so it ramps up "
                       "over the first few tau steps (Ultralytics' 2000); a short fine-tune from trained weights "
                       "can take a short one")
    anchors: str = opt("model", "SSD models: model: the model's anchor sizes; auto: sizes and ratios fitted to the "
                       "training boxes (k-means), with a coverage report", choices=("model", "auto"))
    compile: bool = opt(False, "torch.compile the model")
    data_path: str = opt("auto", "loader: DataLoader workers; device: decoded images kept on the device; "
                         "auto: device on a GPU", choices=("auto", "loader", "device"))
    skip_invalid: bool = opt(False, "drop invalid boxes and images (reported) instead of refusing the data")
    max_pixels: int = opt(MAX_PIXELS, "refuse images with more pixels (width x height), read from the header")
    negatives: str | None = opt(None, "a folder of images without objects, trained as background (negatives)")
    hard_negatives: float = opt(0.0, "W: every --eval-every epochs, the background images the model fires on (a "
                                "detection at 0.25 or more) are drawn W+1 times as often in the next epochs, the "
                                "epoch's length kept; 0: off")
    model_kwargs: dict = opt({}, 'JSON of model hyper-parameters, e.g. \'{"cls_loss": "focal"}\'')  # noqa: RUF009 (a factory)
    backbone: str | None = opt(None, "resnet_ssd/faster_rcnn: resnet18/34/50 (the book's), tv_resnet18/34/50 "
                               "(torchvision's), tv_mobilenet_v3_large (faster_rcnn); kept in the model's keywords",
                               choices=DETECTION_BODIES)
    freeze_stages: int = opt(0, "resnet_ssd/faster_rcnn: body parts kept fixed (1 = stem, ... 5)")
    pretrained: str | None = opt(None, "resnet_ssd/faster_rcnn: a `detector classify train` checkpoint, a "
                                 "torchvision state dict, or 'imagenet' (torchvision's weights from the torch hub cache)")
    weights: str | None = opt(None, "a detector checkpoint whose weights start this run (the same model and classes; "
                              "what Detector('x.pt').train() does)")
    sync_bn: bool = opt(False, "with DDP: BatchNorm over the global batch (torch's SyncBatchNorm on GPUs, its CPU "
                        "equivalent on CPUs)")

    def __post_init__(self) -> None:
        """``backbone`` and ``freeze_stages`` are the model's keywords (so the checkpoint rebuilds the body)."""
        if self.backbone or self.freeze_stages:
            self.model_kwargs = {**self.model_kwargs, "backbone": self.backbone or
                                 self.model_kwargs.get("backbone", "resnet18"), "freeze_stages": self.freeze_stages}

    def check(self) -> None:
        """:class:`ConfigError` for values that cannot work (before anything is loaded or built)."""
        _check(self, DETECTOR_MIN_INPUT)
        check_flags(multi_scale=self.multi_scale, mosaic=self.mosaic, mixup=self.mixup, ema_decay=self.ema_decay,
                    ema_tau=self.ema_tau, freeze_stages=self.freeze_stages, hard_negatives=self.hard_negatives)
        geometry = sorted({"img_size", "letterbox"} & set(self.model_kwargs))
        if geometry:
            what = "is a setting of its own" if len(geometry) == 1 else "are settings of their own"
            raise ConfigError(f"{setting('model_kwargs')}: {' and '.join(geometry)} {what}; give "
                              f"{' and '.join(setting(g) for g in geometry)} instead")
        if "num_classes" in self.model_kwargs:
            raise ConfigError(f"{setting('model_kwargs')}: num_classes is not a keyword to give: it is the data "
                              "set's number of classes")
        if (self.backbone or self.freeze_stages) and self.model not in BACKBONE_MODELS:
            raise ConfigError(f"{setting('backbone')} and {setting('freeze_stages')} need "
                              f"{' or '.join(setting('model', m) for m in BACKBONE_MODELS)}, not {self.model}")
        _check_recipe(self)


def _check_recipe(cfg: TrainConfig) -> None:
    """The training-recipe options that cannot go together with the model or the data path."""
    if cfg.anchors == "auto" and cfg.model not in ANCHOR_MODELS:
        raise ConfigError(f"{setting('anchors', 'auto')}: fits the anchor sizes of the SSD models "
                          f"({', '.join(ANCHOR_MODELS)}); {cfg.model} has none to fit")
    if cfg.anchors == "auto" and not cfg.resume and {"sizes", "ratios"} & set(cfg.model_kwargs):
        raise ConfigError(f"{setting('anchors', 'auto')} fits the sizes and ratios: leave them out of "
                          f"{setting('model_kwargs')} (or use {setting('anchors', 'model')})")
    if cfg.ema_decay is None and "ema_tau" in cfg.given:
        raise ConfigError(f"{setting('ema_tau', cfg.ema_tau)}: the ramp of the moving average that "
                          f"{setting('ema_decay')} turns on; give {setting('ema_decay')} too (e.g. 0.998)")
    loader_only = [setting(f) for f, on in (("letterbox", cfg.letterbox), ("mosaic", cfg.mosaic), ("mixup", cfg.mixup),
                                            ("hard_negatives", cfg.hard_negatives)) if on]
    if cfg.multi_scale and len(sizes := multi_scale_sizes(cfg.img_size, cfg.multi_scale,
                                                          DETECTOR_MIN_INPUT.get(cfg.model, 1))) < 2:
        raise ConfigError(f"{setting('multi_scale', cfg.multi_scale)}: with {setting('img_size', cfg.img_size)} and "
                          f"{cfg.model} that leaves {sizes or 'no size'} (multiples of 32 the model takes); give a larger fraction")
    if cfg.data_path == "device" and loader_only:
        raise ConfigError(f"{' and '.join(loader_only)}: done by the DataLoader path only; use "
                          f"{setting('data_path', 'loader')} (or auto)")


_KIND = {"int": "a whole number", "float": "a number", "str": "text", "bool": "true or false", "dict": "a mapping"}


def check_fields(cfg) -> None:
    """The types and choices of a config's fields, as a recipe file or a script may set them: a
    :class:`ConfigError` naming the first field that does not fit."""
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        flag = setting(f.name, value)
        choices = f.metadata.get("argparse", {}).get("choices")
        if value is None and f.type in ("int", "float", "str", "bool", "dict"):  # not optional
            raise ConfigError(f"{flag}: must be given ({_KIND[f.type]}); leave it out for the default")
        if f.type == "bool" and not isinstance(value, bool):
            raise ConfigError(f"{flag}: must be true or false")
        if f.type == "dict" and not isinstance(value, dict):
            raise ConfigError(f"{flag}: must be a mapping of keywords, e.g. {{\"cls_loss\": \"focal\"}}")
        if f.type in ("str", "str | None") and value is not None and not isinstance(value, str):
            raise ConfigError(f"{flag}: must be text")
        if choices and value is not None and value not in choices:
            raise ConfigError(f"{flag}: choose one of {', '.join(map(str, choices))}")


def _check(cfg, min_input: dict[str, int]) -> None:
    check_fields(cfg)
    names = ("epochs", "batch_size", "lr", "weight_decay", "warmup_epochs", "device", "workers", "eval_every", "time",
             "patience", "img_size", "seed", "max_pixels")
    check_flags(**{name: getattr(cfg, name, None) for name in names})
    check_img_size(cfg.model, cfg.img_size, min_input)


@dataclass
class ClassifyConfig(RunConfig):
    """``detector classify train``: one of the book's classification networks."""

    model: str = opt("resnet18", "the network", choices=BACKBONES)
    data: str = opt("data/shapes", "a detection data set (its box crops), an ImageFolder, fashion-mnist:ROOT or "
                    "cifar10:ROOT")
    epochs: int | None = opt(None, "training epochs (default: the network's recipe; on a small set, enough for "
                             "its minimum steps)")
    batch_size: int = opt(64, "the global batch (split over --devices)")
    optimizer: str | None = opt(None, "sgd or adamw (default: the network's recipe)", choices=OPTIMIZERS)
    lr: float | None = opt(None, "peak learning rate (of the body, with --pretrained; default: the network's recipe)")
    momentum: float | None = opt(None, "SGD momentum (default: the network's recipe)")
    schedule: str | None = opt(None, "after the warm-up: constant, or cosine down to lr / 100 (default: the "
                               "network's recipe)", choices=SCHEDULES)
    weight_decay: float | None = opt(None, "not applied to biases and norm weights", cli=False)
    warmup_epochs: float | None = opt(None, "linear warm-up from lr / 10", cli=False)
    init: str | None = opt(None, "xavier: the book's xavier_uniform_ weights (from scratch); default: PyTorch's",
                           cli=False)
    img_size: int | None = opt(None, "square input size in pixels (default: the network's recipe)")
    out: str = opt("runs/classify", "the run folder")
    eval_every: int = opt(1, "epochs between val evaluations (and the last epoch)")
    pretrained: str | None = opt(None, "a classifier checkpoint: its body starts this model, the head learns 10x "
                                 "faster")
    download: bool = opt(False, "download Fashion-MNIST / CIFAR-10 when missing")
    model_kwargs: dict = opt({}, 'JSON, e.g. \'{"batch_norm": true}\' for LeNet')  # noqa: RUF009 (a factory)
    overrides: tuple[str, ...] | None = opt(None, "the recipe's fields given a value (None: those not None)",
                                            cli=False)

    def __post_init__(self) -> None:
        """The fields left at None take the network's recipe (:meth:`recipe`)."""
        _, recipe = self.recipe()
        if not self.model_kwargs and not self.resume:
            self.model_kwargs = dict(recipe.model_kwargs)
        if self.overrides is None:
            self.overrides = tuple(f for f in RECIPE_FIELDS if getattr(self, f) is not None)
        for f in RECIPE_FIELDS:
            if getattr(self, f) is None:
                setattr(self, f, getattr(recipe, f))

    def recipe(self) -> tuple[str, Recipe]:
        """``(name, recipe)``: the network's default recipe (:func:`detector.models.recipes.recipe_for`)."""
        return recipe_for(self.model, self.model_kwargs, bool(self.pretrained))

    def recipe_line(self) -> str:
        """``recipe: alexnet (D2L ...): SGD lr 0.01 ...; flags override: --lr``: what this run trains with."""
        name, recipe = self.recipe()
        used = replace(recipe, model_kwargs=self.model_kwargs, **{f: getattr(self, f) for f in RECIPE_FIELDS})
        over = [f"--{f.replace('_', '-')} (recipe: {getattr(recipe, f)})" for f in self.overrides
                if getattr(self, f) != getattr(recipe, f)]
        if recipe.model_kwargs and self.model_kwargs != recipe.model_kwargs:
            over.append(f"--model-kwargs (recipe: {json.dumps(recipe.model_kwargs)})")
        return (f"recipe: {name} ({recipe.source}): {used.describe()}"
                + (f"; flags override: {', '.join(over)}" if over else ""))

    def check(self) -> None:
        """:class:`ConfigError` for values that cannot work (before anything is loaded or built)."""
        _check(self, BACKBONE_MIN_INPUT)
        check_flags(optimizer=self.optimizer, momentum=self.momentum, schedule=self.schedule, init=self.init)
        if self.optimizer != "sgd" and self.momentum and "momentum" in self.overrides:
            raise ConfigError(f"{setting('momentum', self.momentum)}: for {setting('optimizer', 'sgd')} only (this run uses {self.optimizer})")


def recipe_under_flags(recipe: dict, given, say=None) -> dict:
    """A recipe's settings under the ones given (flags or keywords): ``epochs`` given beats the recipe's ``time``
    (an hour budget that would otherwise fit the epochs to itself), which is then left out, said in one line."""
    if "time" in recipe and "epochs" in given and "time" not in given:
        import logging

        (say or logging.getLogger("detector").info)(
            f"{setting('epochs').rstrip('=')} given: the recipe's time budget ({recipe['time']} h) is not used; "
            f"{setting('time').rstrip('=')} keeps it")
        recipe = {k: v for k, v in recipe.items() if k != "time"}
    return recipe


def read_recipe(path: str | Path, config_cls: type = TrainConfig) -> dict:
    """The settings of a recipe file (YAML: a mapping of ``config_cls``'s field names to values); a
    :class:`ConfigError` naming the file for anything else."""
    import yaml

    path = Path(path)
    given = setting("config", str(path))
    try:
        values = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{given}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{given}: not a text file; a recipe is YAML (e.g. recipes/tinyssd-shapes.yaml)") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{given}: not YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{given}: must be a mapping of settings (e.g. 'epochs: 30'), got "
                          f"{type(values).__name__}")
    known = {f.name for f in fields(config_cls) if f.name not in ("config", "command", "given", "resume")}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{given}: no setting {', '.join(map(str, unknown))}; the settings are "
                          f"{', '.join(sorted(known))}")
    return {k: tuple(v) if isinstance(v, list) and k == "given" else v for k, v in values.items()}
