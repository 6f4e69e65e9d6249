"""``Detector.predict`` as a pipeline: decoding (and a video's frame reading), the model, and the drawing and
writing overlap, each in its own thread, so a 2-core machine spends its cores on all three at once.

    reader thread  ->  [decoded frames, bounded]  ->  the caller's thread: the model  ->  [results, bounded]  ->  writer thread

OpenCV's decoding and encoding, ONNX Runtime and PyTorch release the GIL while they work. Order is kept (one
thread per stage, first in first out); memory is bounded by the buffers between the stages, counted in images
and in bytes (a 9999 x 9999 photograph is 300 MB: it waits until the buffer is empty rather than pile up). An
error in a stage is raised in the caller's thread, at the next result; a caller that stops early stops the reader.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator

MAX_ITEMS = 16  # decoded images (or results) waiting between two stages at most
MAX_BYTES = 256 * 2**20  # and their pixels at most (one larger image is still let through, alone)
_END = object()


class Buffer:
    """A first-in first-out queue between two threads, bounded by ``max_items`` and ``max_bytes`` (an item larger
    than ``max_bytes`` waits for an empty buffer, then goes alone). ``close()`` wakes and stops both sides."""

    def __init__(self, max_items: int = MAX_ITEMS, max_bytes: int = MAX_BYTES):
        self.max_items, self.max_bytes = max_items, max_bytes
        self._items: deque = deque()
        self._bytes = 0
        self._cond = threading.Condition()
        self.closed = False

    def put(self, item, size: int = 0) -> bool:
        """Wait for room, then add ``item``; False when the buffer was closed meanwhile."""
        with self._cond:
            while not self.closed and self._items and (len(self._items) >= self.max_items
                                                       or self._bytes + size > self.max_bytes):
                self._cond.wait()
            if self.closed:
                return False
            self._items.append((item, size))
            self._bytes += size
            self._cond.notify_all()
            return True

    def get(self):
        """Wait for an item and take it; ``_END`` when the buffer is closed and empty."""
        with self._cond:
            while not self._items and not self.closed:
                self._cond.wait()
            if not self._items:
                return _END
            item, size = self._items.popleft()
            self._bytes -= size
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def discard(self) -> None:
        """Close and drop what waits (a caller that stopped early)."""
        with self._cond:
            self._items.clear()
            self._bytes = 0
            self.closed = True
            self._cond.notify_all()


def nbytes(item) -> int:
    """The bytes an item holds in pixels (its ``image``, or its ``image`` attribute's)."""
    image = getattr(item, "image", None)
    return int(getattr(image, "nbytes", 0) or 0)


class ReadAhead:
    """The items of ``source`` (an iterator) produced in a background thread, ahead of the caller, in order; an
    exception the source raises is raised by ``__next__`` where it came in the order."""

    def __init__(self, source: Iterator, max_items: int = MAX_ITEMS, max_bytes: int = MAX_BYTES):
        self._buffer = Buffer(max_items, max_bytes)
        self._source = source
        self._thread = threading.Thread(target=self._run, name="detector-read", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._buffer.put(("item", item), nbytes(item)):
                    break  # the caller stopped
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread, which raises it
            self._buffer.put(("error", e))
        finally:
            self._buffer.close()
            close = getattr(self._source, "close", None)
            if close is not None:  # a generator stopped early releases what it holds (a video file)
                close()

    def __iter__(self) -> ReadAhead:
        return self

    def __next__(self):
        got = self._buffer.get()
        if got is _END:
            raise StopIteration
        kind, value = got
        if kind == "error":
            raise value
        return value

    def close(self) -> None:
        """Stop reading (the thread ends at its next item) and drop what was read ahead."""
        self._buffer.discard()
        self._thread.join(timeout=60)


class WriteBehind:
    """``write(result)`` called for each result in a background thread, in order; ``close()`` waits for the last
    and then calls ``finish()``. An exception from ``write`` is raised by the next ``add`` or by ``close``; after
    one, ``close()`` calls ``abandon()`` (if given) instead of ``finish()``."""

    def __init__(self, write: Callable, finish: Callable[[], None], abandon: Callable[[], None] | None = None,
                 max_items: int = MAX_ITEMS, max_bytes: int = MAX_BYTES):
        self._write, self._finish, self._abandon = write, finish, abandon
        self._buffer = Buffer(max_items, max_bytes)
        self._error: BaseException | None = None
        self._failed = False
        self._thread = threading.Thread(target=self._run, name="detector-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (result := self._buffer.get()) is not _END:
            try:
                self._write(result)
            except BaseException as e:  # noqa: BLE001 - raised in the caller's thread
                self._error, self._failed = e, True
                self._buffer.discard()

    def add(self, result) -> None:
        if self._error is not None:
            self._raise()
        self._buffer.put(result, nbytes(result))

    def _raise(self) -> None:
        error, self._error = self._error, None
        raise error

    def close(self) -> None:
        """Write what waits, then finish (the last video closed, ``predictions.json`` written)."""
        self._buffer.close()
        self._thread.join()
        if self._failed:
            if self._abandon is not None:
                self._abandon()
            if self._error is not None:
                self._raise()
            return
        self._finish()
