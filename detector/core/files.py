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
