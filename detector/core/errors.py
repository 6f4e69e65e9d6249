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


class DetectorError(Exception):
    """The root of the library's errors; ``exit_code`` is the CLI's exit status for it."""

    exit_code = 1


class UsageError(DetectorError, ValueError):
    """A setting, flag or keyword value that cannot work (the CLI's exit status 2)."""

    exit_code = 2


class InputError(DetectorError):
    """Data, a file, a checkpoint or a run that cannot be used as it is (the CLI's exit status 1)."""

    exit_code = 1
