"""The library's one error root. Everything it raises for a user's input is a :class:`DetectorError` with a
one-line message that names the file or setting, the place and the fix; anything else is a bug and keeps its
traceback.

    try:
        Detector("runs/x/best.pt").val(data="data/shapes")
    except DetectorError as e:          # the same message the CLI prints after "error: "
        print(e, e.exit_code)

Two branches, which decide the CLI's exit status in one place (``detector.cli.main``):
:class:`UsageError` (exit 2): a setting, flag or keyword that cannot work; :class:`InputError` (exit 1): data,
files, checkpoints, videos or a training run that cannot go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePath


class DetectorError(Exception):
    """The root of the library's errors; ``exit_code`` is the CLI's exit status for it."""

    exit_code = 1


class UsageError(DetectorError, ValueError):
    """A setting, flag or keyword value that cannot work (the CLI's exit status 2)."""

    exit_code = 2


class InputError(DetectorError):
    """Data, a file, a checkpoint or a run that cannot be used as it is (the CLI's exit status 1)."""

    exit_code = 1


# How messages name a setting: in Python terms (``img_size=5``, what a script wrote) unless the command line is
# running (``--img-size 5``): the CLI's ``main`` switches to flags for its command (:func:`cli_terms`).
_TERMS = {"cli": False}
_UNSET = object()


def setting(name: str, value=_UNSET, placeholder: bool = False) -> str:
    """A setting as the caller gave it: ``--img-size 5`` on the command line, ``img_size=5`` in Python (without
    ``value``: ``--img-size`` or ``img_size=``; ``placeholder``: ``value`` is a name such as ``N``, not quoted)."""
    if isinstance(value, PurePath):
        value = str(value)
    if _TERMS["cli"]:
        flag = "--" + name.replace("_", "-")
        if value is True:
            return flag  # a switch: --exist-ok
        if isinstance(value, (list, tuple)):
            value = " ".join(map(str, value))
        elif isinstance(value, str) and not value.strip():
            value = repr(value)  # --out '': seen
        return flag if value is _UNSET else f"{flag} {value}"
    if value is _UNSET:
        return f"{name}="
    return f"{name}={value}" if placeholder else f"{name}={value!r}"


def in_cli() -> bool:
    """Whether the command line is running (messages then say what to type there, not what to call)."""
    return _TERMS["cli"]


@contextmanager
def cli_terms() -> Iterator[None]:
    """Name settings as flags (``--img-size``) for the length of a ``with`` block: the CLI's commands."""
    before, _TERMS["cli"] = _TERMS["cli"], True
    try:
        yield
    finally:
        _TERMS["cli"] = before


class SetupError(DetectorError):
    """The installation cannot work (a pair of packages that do not match); the message says what to install."""

    exit_code = 1


def torch_pair() -> None:
    """Import torchvision beside torch, or raise a :class:`SetupError` in one line naming both versions and the
    install line: a torchvision built for another torch (a CUDA one beside a CPU torch, say) fails deep in its
    import with ``operator torchvision::nms does not exist``."""
    try:
        import torchvision  # noqa: F401
    except (RuntimeError, ImportError, OSError) as e:
        from importlib import metadata

        import torch

        def version(name: str) -> str:
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                return "(not installed)"

        base = torch.__version__.split("+")[0]
        major, minor = (int(v) for v in base.split(".")[:2])
        match = f"0.{minor + 15}" if major == 2 else "the one built for it"
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise SetupError(f"torch {torch.__version__} and torchvision {version('torchvision')} do not work together "
                         f"({reason}); install the torchvision made for this torch, from the same index: pip install "
                         f"'torch=={base}' 'torchvision=={match}.*' (a CPU-only machine: add --index-url "
                         "https://download.pytorch.org/whl/cpu)") from None
