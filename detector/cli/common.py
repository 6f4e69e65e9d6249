"""What the ``detector`` subcommands share: the one-line error and its exit status; options generated from
the config dataclasses (one place for each default and its help); for the training commands the torchrun
relaunch of ``--devices N`` and the closing line. Nothing here imports torch."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from detector.api.settings import MAX_PIXELS, check_flags, read_recipe, recipe_under_flags
from detector.core.errors import UsageError

FLAG_TYPES = {"int": int, "float": float, "str": str, "str | None": str, "float | None": float, "int | None": int,
              "dict": str, "list[str] | None": str}  # dict: JSON text; a list: nargs or action="append"


def add_max_pixels_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-pixels", type=positive_int, default=MAX_PIXELS, metavar="N",
                        help="refuse images with more pixels (width x height), read from the header before "
                        "decoding (default: %(default)s)")


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def bounded_int(low: int, high: int):
    """argparse type: a whole number in ``[low, high]``."""

    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {text}")
        return value

    parse.__name__ = "int"  # argparse's "invalid int value" for text
    return parse


def finite_positive(text: str) -> float:
    """argparse type: a finite number above 0."""
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}


def parse_size(text: str) -> int:
    """``"50mb"``, ``"1gb"``, ``"500kb"`` or ``"1234"`` (bytes) -> bytes, as Gradio reads ``max_file_size``
    (binary units); a ``ValueError`` naming the text otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb)?\s*", str(text).lower())
    if not m:
        raise ValueError(f"must be a size such as 50mb, 1gb or 500kb, got {text}")
    return int(float(m.group(1)) * SIZE_UNITS[m.group(2) or "b"])


def file_size(text: str) -> int:
    """argparse type: a size such as ``50mb``, ``1gb``, ``500kb`` or bytes (Gradio's ``max_file_size``) -> bytes."""
    try:
        size = parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if size < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 byte, got {text}")
    return size


def count(text: str) -> int:
    """argparse type: a whole number of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


class Given(argparse.Action):
    """Store a flag's value and note its field as given on the command line (``args.given``): with
    ``--resume``, a given ``--epochs`` extends the run (see :func:`detector.engine.checkpoint.resumed_config`)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        namespace.given = (*getattr(namespace, "given", ()), self.dest)


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type) -> None:
    """One ``--flag`` per field of ``config_cls`` (a dataclass of :mod:`detector.engine.config`) that has
    ``cli=True``: its default, type and help come from the field."""
    for f in dataclasses.fields(config_cls):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            parser.add_argument(flag, action=Given, nargs=0, const=True, default=False, help=meta["help"])
            continue
        default = None if f.type == "dict" else f.default
        shown = "" if default in (None, "") else f" (default: {default})"
        extra = dict(meta.get("argparse", {}))
        action = extra.pop("action", Given)
        parser.add_argument(flag, action=action, type=FLAG_TYPES[f.type], default=default, help=meta["help"] + shown,
                            **extra)


def config_from_args(config_cls: type, args: argparse.Namespace, **values):
    """The config of the parsed ``args`` (their fields with ``cli=True``), with ``values`` on top. With
    ``--config FILE`` (a recipe), the file's settings come between the defaults and the flags given. ``dict``
    fields are parsed from JSON (a :class:`UsageError` naming the flag when they are not a JSON object)."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    recipe = read_recipe(args.config, config_cls) if getattr(args, "config", None) else {}
    given = set(getattr(args, "given", ()))
    recipe = recipe_under_flags(recipe, given)
    kwargs = {k: v for k, v in recipe.items() if k not in given and k not in values}
    for f in dataclasses.fields(config_cls):
        if not f.metadata.get("cli", True) or f.name in values or f.name in kwargs:
            continue
        value = getattr(args, f.name)
        if f.type == "dict":
            value = parse_json_object(value, "--" + f.name.replace("_", "-"))
        kwargs[f.name] = value
    if "given" in names and "given" not in values:
        kwargs["given"] = tuple(given | set(recipe))
    return config_cls(**kwargs, **values)


def settings_from_args(config_cls: type, args: argparse.Namespace) -> dict:
    """The values of ``config_cls``'s flags in ``args``, by field name: the keywords of an API call."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls) if f.metadata.get("cli", True)}


def parse_json_object(text: str | None, flag: str) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{flag} is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag} must be a JSON object such as '{{\"key\": 1}}', got {text!r}")
    return value


def new_run_folder(base: Path) -> Path:
    """``base``, or ``base2``, ``base3``, ... when it exists (Ultralytics' naming): the first free one, so that a
    new run never writes over an earlier one (made by whoever writes there first)."""
    k = 1
    while True:
        path = base if k == 1 else base.with_name(f"{base.name}{k}")
        if not path.exists() and not path.is_symlink():
            return path
        k += 1


def make_out_folder(path: Path) -> str | None:
    """Make the folder ``path`` (with its parents); ``None``, or the one-line error saying why it cannot be."""
    if path.is_symlink() and not path.exists():
        return f"--out {path}: a broken symbolic link (to {os.readlink(path)}); remove it or choose another folder"
    if path.exists() and not path.is_dir():
        return f"--out {path}: a file, not a folder; choose a folder"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"--out {path}: cannot write there ({e.strerror or e}); choose a folder you can write to"
    return None


def add_devices_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices", type=int, default=1, help="DDP over this many GPUs (or CPU processes) of this "
                        "node, through torchrun; --batch-size stays the global batch")


def relaunch(args: argparse.Namespace) -> int | None:
    """With ``--devices N`` (N > 1) outside torchrun: run this same command as N DDP processes through torchrun
    (``python -m detector ...``) and return its exit status; otherwise None."""
    if getattr(args, "devices", 1) <= 1 or "WORLD_SIZE" in os.environ:
        return None
    return launch(strip_devices(args.argv), args.devices)


TORCHRUN_LOG = re.compile(r"^[EWI]\d{4} .*torch/distributed/|^\*{20,}$")  # torchrun's own log lines


def launch(argv: list[str], devices: int) -> int:
    """Run ``python -m detector argv`` on ``devices`` processes of this node through torchrun (``--standalone``)
    and return its exit status. The processes' output passes through; torchrun's own log lines and, when a
    process fails, its report (a traceback of torchrun's, not of this program) are left out, and an error line
    every process says alike is said once."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={devices}",
           "-m", "detector", *argv]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, errors="replace")
    held: list[str] = []  # a traceback, until it is known whose
    said: set[str] = set()
    for line in proc.stderr:
        if line.startswith("Traceback (most recent call last)"):
            _release(held, said)
            held = [line]
        elif held:
            held.append(line)
            if "ChildFailedError" in line:  # torchrun's report of a failed process: the process said why
                held = None
                break
        elif not TORCHRUN_LOG.search(line):
            _release([line], said)
    if held is None:
        for _line in proc.stderr:  # the rest of torchrun's report
            pass
    else:
        _release(held, said)
    return proc.wait()


def _release(lines: list[str], said: set[str]) -> None:
    for line in lines:
        if line.startswith("error: "):
            if line in said:
                continue
            said.add(line)
        sys.stderr.write(line)
    sys.stderr.flush()


def strip_devices(argv: list[str]) -> list[str]:
    """``argv`` without ``--devices N`` / ``--devices=N``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--devices":
            skip = True
        elif not a.startswith("--devices="):
            out.append(a)
    return out


def run_training(args: argparse.Namespace, config_cls: type, train: Callable[[object], dict],
                 describe: Callable[[dict], str]) -> int:
    """A training command: build the config from the flags (and ``--config``'s recipe) and check its values,
    relaunch under torchrun for ``--devices N``, train, and close with one line. Errors are the library's
    (:class:`~detector.core.errors.DetectorError`), said by ``main``."""
    cfg = config_from_args(config_cls, args, command="detector " + shlex.join(args.argv))
    cfg.check()
    check_flags(devices=getattr(args, "devices", 1))
    status = relaunch(args)
    if status is not None:
        return status
    metrics = train(cfg)
    if metrics:
        report_done(cfg, describe(metrics))
    return 0


def report_done(cfg, metrics_text: str) -> None:
    """``done: METRICS; weights in RUN/best.pt``, printed by rank 0 only (every rank runs the command)."""
    if os.environ.get("RANK", "0") == "0":
        run = Path(cfg.resume).parent if cfg.resume else Path(cfg.out)
        print(f"done: {metrics_text}; weights in {run}/best.pt")
