"""The app's limits before any parsing: request bodies and the space uploads take on the server.

An ASGI middleware in front of Gradio's routes (``serve`` passes it through ``launch(app_kwargs=...)``):

- a request body other than an upload holds at most ``JSON_LIMIT`` bytes (Gradio's calls carry file references,
  not files): a larger ``Content-Length`` is answered 413 before a byte is read, and a body without one is
  counted as it arrives and cut off at the limit, so no body is parsed, or held, beyond it;
- an upload (``POST .../upload``) states its ``Content-Length`` (411 otherwise) and is admitted against two
  budgets of bytes on the server: one per client address and one for the whole server. Over a budget, the
  oldest uploads (of that client, then of anyone) that are at least ``GRACE_S`` old are removed first; if that
  is not enough, the upload is refused (413 over the client's budget, 503 over the server's) with a line
  saying why and when to retry. Gradio's per-file ``max_file_size`` still applies inside.

Uploads carry no session in Gradio's protocol, so "a client" is its address: behind a proxy that hides the
callers' addresses, every caller shares one budget (give ``--client-upload-budget`` the server's budget there).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from starlette.exceptions import HTTPException

JSON_LIMIT = 2 * 1024**2  # bytes in a request body that is not an upload (the largest real one is ~200 KB)
GRACE_S = 600.0  # an upload younger than this is never removed for another (its call may still be queued)
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class Refused(Exception):
    """An upload the budgets cannot take: HTTP ``status`` and the line the client gets."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Upload:
    """One admitted upload request: when, from whom, its size, and (once answered) the files it made."""

    time: float
    client: str
    nbytes: int
    paths: list[Path] = field(default_factory=list)
    done: bool = False

    def gone(self) -> bool:
        """Every file it made was removed (by Gradio's hourly cleanup or by us)."""
        return self.done and not any(p.exists() for p in self.paths)


def mib(n: float) -> str:
    return f"{n / 2**20:.0f} MB"


class UploadBudget:
    """Bytes of uploads on the server, per client address and in all; see the module's docstring."""

    def __init__(self, server_bytes: int, client_bytes: int, grace_s: float = GRACE_S, clock=time.monotonic):
        self.server_bytes, self.client_bytes, self.grace_s, self.clock = server_bytes, client_bytes, grace_s, clock
        self.uploads: list[Upload] = []  # oldest first
        self.removed = 0  # uploads removed to make room (for the logs and the load test)

    def used(self, client: str | None = None) -> int:
        return sum(u.nbytes for u in self.uploads if client is None or u.client == client)

    def admit(self, client: str, nbytes: int) -> Upload:
        """Reserve ``nbytes`` for ``client``'s upload, removing old uploads to make room; :class:`Refused`
        when even that is not enough."""
        self.uploads = [u for u in self.uploads if not u.gone()]
        if nbytes > min(self.client_bytes, self.server_bytes):
            raise Refused(413, f"an upload of {mib(nbytes)} is over this server's budget of "
                               f"{mib(min(self.client_bytes, self.server_bytes))} per client; send fewer or smaller files")
        self._make_room(lambda u: u.client == client, self.client_bytes - nbytes, client)
        if self.used(client) + nbytes > self.client_bytes:
            raise Refused(413, f"your uploads of the last {self.grace_s / 60:.0f} minutes take {mib(self.used(client))} "
                               f"of your {mib(self.client_bytes)} on this server; try again in a few minutes")
        self._make_room(lambda u: True, self.server_bytes - nbytes, None)
        if self.used() + nbytes > self.server_bytes:
            raise Refused(503, f"the server's upload space ({mib(self.server_bytes)}) is taken by the last "
                               f"{self.grace_s / 60:.0f} minutes' uploads; try again in a few minutes")
        upload = Upload(self.clock(), client, nbytes)
        self.uploads.append(upload)
        return upload

    def _make_room(self, mine, room: int, client: str | None) -> None:
        """Remove the oldest finished uploads that ``mine`` selects, older than the grace period, until the bytes
        used (by ``client``, or in all) fit in ``room``."""
        now = self.clock()
        for u in [u for u in self.uploads if mine(u) and u.done and now - u.time >= self.grace_s]:
            if self.used(client) <= room:
                return
            remove_files(u.paths)
            self.uploads.remove(u)
            self.removed += 1

    def finish(self, upload: Upload, paths: list[str] | None) -> None:
        """The upload was answered with ``paths`` (None: it failed, and its reservation is returned)."""
        if paths is None:
            self.uploads = [u for u in self.uploads if u is not upload]
        else:
            upload.paths, upload.done = [Path(p) for p in paths], True


def remove_files(paths: list[Path]) -> None:
    """Remove uploaded files and the folders Gradio made for them (one per file, named by its hash)."""
    for p in paths:
        p.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # Gradio's folder (named by a hash), once it holds nothing else
            p.parent.rmdir()


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes its limit: FastAPI lets an HTTPException through its body
    parsing, so the client gets this 413 (not "error parsing the body")."""

    def __init__(self, limit: int):
        super().__init__(413, f"a request body over this server's limit of {mib(limit)}")


class RequestLimits:
    """The ASGI middleware: body limits and upload budgets, before Gradio reads a byte."""

    def __init__(self, app, budget: UploadBudget, json_limit: int = JSON_LIMIT):
        self.app, self.budget, self.json_limit = app, budget, json_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        raw_length = headers.get(b"content-length")
        try:
            length = int(raw_length) if raw_length is not None else None
        except ValueError:
            return await reply(send, 400, "Content-Length is not a number")
        if not scope["path"].rstrip("/").endswith("/upload"):
            if length is not None and length > self.json_limit:
                return await reply(send, 413, f"a request body of {mib(length)} is over this server's limit of "
                                              f"{mib(self.json_limit)}; upload files, then refer to them")
            return await self.counted(scope, receive, send, self.json_limit)
        if length is None:
            return await reply(send, 411, "an upload must state its Content-Length")
        client = (scope.get("client") or ("unknown", 0))[0]
        try:
            upload = self.budget.admit(client, length)
        except Refused as e:
            return await reply(send, e.status, e.message)
        answer: dict = {"status": None, "body": b""}

        async def keep_answer(message):
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body" and len(answer["body"]) < 1_000_000:
                answer["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.counted(scope, receive, keep_answer, length)
        finally:
            self.budget.finish(upload, uploaded_paths(answer))

    async def counted(self, scope, receive, send, limit: int):
        """Run the app with a ``receive`` that stops a body at ``limit`` bytes (413 if nothing was sent yet)."""
        seen, started = 0, False

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watch_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watch_send)
        except BodyTooLarge as e:
            if not started:
                await reply(send, 413, e.detail)


def uploaded_paths(answer: dict) -> list[str] | None:
    """The file paths Gradio answered an upload with, or None when it failed."""
    if answer["status"] != 200:
        return None
    try:
        paths = json.loads(answer["body"])
    except ValueError:
        return None
    return [p for p in paths if isinstance(p, str)] if isinstance(paths, list) else None


async def reply(send, status: int, message: str) -> None:
    body = message.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
