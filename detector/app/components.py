"""What every handler of the page shares: Gradio inputs that let a bad value reach the handler (Gradio's own
checks answer a bad value from raw HTTP with a bare "Error"; these look and behave in the page as Gradio's
own), the checks that turn such values into one message naming them, the guard that keeps any exception from
reaching Gradio, and the concurrency groups of the handlers that decode images or run a model."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Callable

import gradio as gr

from detector.app.catalog import ModelEntry
from detector.app.uploads import BadInput
from detector.core.errors import DetectorError


class Tolerant:
    """A component whose value reaches the handler even when Gradio's own check of it fails (a slider's "nan", a
    number past its maximum, a file that is not an image, a choice not in the list: all possible over raw HTTP),
    so that the handler names the problem in the page instead of Gradio's bare "Error"."""

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except Exception:  # noqa: BLE001 - whatever the check raises, the handler says it
            path = getattr(payload, "path", None)
            return str(path) if path else getattr(payload, "root", payload)


class SafeImage(Tolerant, gr.Image):
    def get_block_name(self) -> str:
        return "image"


class Slider(Tolerant, gr.Slider):
    def get_block_name(self) -> str:
        return "slider"


class Number(Tolerant, gr.Number):
    def get_block_name(self) -> str:
        return "number"


class Dropdown(Tolerant, gr.Dropdown):
    def get_block_name(self) -> str:
        return "dropdown"


class CheckboxGroup(Tolerant, gr.CheckboxGroup):
    def get_block_name(self) -> str:
        return "checkboxgroup"


# The concurrency groups of the handlers that decode images or run a model. Memory is bounded by the pixels of
# uploads held at once over all of them (uploads.PIXELS_HELD: one 100-megapixel upload and smaller ones beside it),
# not by these limits, which let an ordinary call go beside a huge one instead of queuing behind it:
HEAVY = {"concurrency_id": "heavy", "concurrency_limit": 2}  # the page's tabs (up to 16 images a call)
API_CALLS = {"concurrency_id": "api", "concurrency_limit": 6}  # /detect: one image a call
VIDEO = {"concurrency_id": "video", "concurrency_limit": 1}  # a video: up to 900 frames of 2 megapixels


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


LIBC = _libc()
M_ARENA_MAX = -8  # glibc's mallopt parameter


def bound_malloc_arenas(count: int = 2) -> None:
    """Few malloc arenas: Gradio runs handlers on many threads, and glibc's default of one arena per thread
    keeps each thread's freed image buffers, so the server's memory grows with the number of threads."""
    if LIBC is not None and hasattr(LIBC, "mallopt"):
        LIBC.mallopt(M_ARENA_MAX, count)


def release_memory() -> None:
    """Give freed memory back to the system after a request (large decoded images leave large free blocks)."""
    if LIBC is not None and hasattr(LIBC, "malloc_trim"):
        LIBC.malloc_trim(0)


def guarded(on_error: Callable[[str], tuple | dict]):
    """Wrap a handler so that no exception reaches Gradio: the library's errors (``DetectorError``, ``BadInput``
    among them) become their message in the page; anything else is logged with its traceback on the server and named in the page as an internal error."""

    def wrap(handler):
        @functools.wraps(handler)
        def run(*args, **kwargs):
            try:
                return handler(*args, **kwargs)
            except DetectorError as e:
                return on_error(str(e))
            except Exception as e:
                logging.getLogger("detector.app").exception("handler %s failed", handler.__name__)
                return on_error(f"internal error ({type(e).__name__}); the server's log has the details")
            finally:
                release_memory()

        return run

    return wrap


def whole_number(value) -> int | None:
    """Max detections as a whole number (empty: None, the model's own)."""
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise BadInput(f"max detections {value!r}: expected a whole number") from None


def chosen_classes(chosen, entry: ModelEntry) -> list[str]:
    """The class filter: names among the model's classes (none: all)."""
    chosen = [chosen] if isinstance(chosen, str) else list(chosen or [])
    unknown = [c for c in chosen if c not in entry.classes]
    if unknown:
        raise BadInput(f"classes {unknown!r} are not among the model's: {', '.join(entry.classes)}")
    return chosen


def entry_of(entries: dict[str, ModelEntry], label: str) -> ModelEntry:
    if not isinstance(label, str) or label not in entries:
        raise BadInput(f"unknown model {label!r}; the server has {', '.join(entries)}")
    return entries[label]
