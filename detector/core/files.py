"""Writing output files whole or not at all: a temp file beside the target, then a rename, so that a full disk, a
killed process or an unwritable folder never leaves a half-written file or destroys the previous one.

    write_atomic(out / "predictions.json", json.dumps(results))   # InputError naming the file when it cannot
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from detector.core.errors import InputError

TMP_SUFFIX = ".tmp"  # ".NAME.tmp" beside NAME while it is written


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through ``.NAME.tmp`` and a rename; an :class:`InputError` naming the file (and
    nothing left behind) when it cannot be written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}{TMP_SUFFIX}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):  # under a file, say, there is no temp file to remove
            tmp.unlink(missing_ok=True)
        raise InputError(f"{path}: could not be written ({e.strerror or e}); the previous file, if any, is "
                         "unchanged") from None
    return path


def remove_stale_tmp(folder: str | Path) -> list[Path]:
    """Remove the ``.NAME.tmp`` files a killed write left in ``folder``; returns them."""
    stale = [p for p in Path(folder).glob(f".*{TMP_SUFFIX}") if p.is_file()] if Path(folder).is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


class JsonItems:
    """A JSON document whose list of items is written as the items come, so that its memory stays flat however
    many there are: ``head`` (text that opens the list, e.g. ``'{"frames": ['`` or ``'['``), the items as JSON,
    comma-separated, then ``tail`` (``']}'`` or ``']'``), into ``.NAME.tmp`` beside ``path``, renamed into place
    by :meth:`commit` (whole or not at all, as :func:`write_atomic`). ``count`` says how many were written."""

    def __init__(self, path: str | Path, head: str = "[", tail: str = "]"):
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}{TMP_SUFFIX}")
        self.head, self.tail, self.count = head, tail, 0
        self._file = None  # opened at the first item (or at commit): nothing on disk before

    def _open(self):
        if self._file is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.tmp, "w")  # noqa: SIM115 - open until commit() or discard()
                self._file.write(self.head)
            except OSError as e:
                raise InputError(f"{self.path}: could not be written ({e.strerror or e})") from None
        return self._file

    def add(self, item) -> None:
        import json

        file = self._open()
        try:
            file.write(("," if self.count else "") + json.dumps(item))
        except OSError as e:
            self.discard()
            raise InputError(f"{self.path}: could not be written ({e.strerror or e}); the previous file, if any, is "
                             "unchanged") from None
        self.count += 1

    def commit(self) -> Path:
        self._open()
        try:
            self._file.write(self.tail)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.discard()
            raise InputError(f"{self.path}: could not be written ({e.strerror or e}); the previous file, if any, is "
                             "unchanged") from None
        return self.path

    def discard(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            self._file.close()
        with contextlib.suppress(OSError):
            self.tmp.unlink(missing_ok=True)
