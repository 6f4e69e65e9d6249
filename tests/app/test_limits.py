"""The app's limits before parsing: upload budgets (per client address and in all, oldest removed first, refused
beyond) and the request-body limit, on the middleware alone (the load test runs them in the real server)."""

import asyncio
import json

import pytest

from detector.app.limits import Refused, RequestLimits, UploadBudget

MB = 2**20


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def uploaded(budget, client, nbytes, path, clock=None):
    """Admit and finish one upload whose file is ``path`` (written with ``nbytes`` bytes)."""
    u = budget.admit(client, nbytes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 16)
    budget.finish(u, [str(path)])
    return u


def test_a_client_over_its_budget_loses_its_oldest_uploads_first_then_is_refused(tmp_path):
    clock = Clock()
    budget = UploadBudget(server_bytes=1000 * MB, client_bytes=100 * MB, grace_s=600, clock=clock)
    old = tmp_path / ("a" * 64) / "old.jpg"
    uploaded(budget, "1.1.1.1", 60 * MB, old)
    other = tmp_path / ("b" * 64) / "theirs.jpg"
    uploaded(budget, "2.2.2.2", 60 * MB, other)
    with pytest.raises(Refused) as e:  # the old one is still within its grace period: refused, nothing removed
        budget.admit("1.1.1.1", 60 * MB)
    assert e.value.status == 413 and "take 60 MB of your 100 MB" in e.value.message and old.exists()
    clock.now = 601
    budget.admit("1.1.1.1", 60 * MB)  # now the client's own oldest goes, never another client's
    assert not old.exists() and not old.parent.exists() and other.exists() and budget.removed == 1
    with pytest.raises(Refused, match="over this server's budget of 100 MB per client"):
        budget.admit("1.1.1.1", 101 * MB)


def test_the_server_budget_removes_anyones_oldest_then_refuses_with_503(tmp_path):
    clock = Clock()
    budget = UploadBudget(server_bytes=100 * MB, client_bytes=80 * MB, grace_s=600, clock=clock)
    first = tmp_path / ("c" * 64) / "first.png"
    uploaded(budget, "1.1.1.1", 50 * MB, first)
    clock.now = 300
    second = tmp_path / ("d" * 64) / "second.png"
    uploaded(budget, "2.2.2.2", 40 * MB, second)
    with pytest.raises(Refused) as e:
        budget.admit("3.3.3.3", 30 * MB)
    assert e.value.status == 503 and "upload space (100 MB)" in e.value.message
    clock.now = 700  # the first is past its grace period, the second not yet
    budget.admit("3.3.3.3", 30 * MB)
    assert not first.exists() and second.exists()
    assert budget.used() == 70 * MB


def test_reservations_count_while_uploads_arrive_and_failures_give_them_back():
    budget = UploadBudget(server_bytes=1000 * MB, client_bytes=100 * MB)
    pending = [budget.admit("1.1.1.1", 45 * MB) for _ in range(2)]  # two in flight at once
    with pytest.raises(Refused):
        budget.admit("1.1.1.1", 45 * MB)  # in-flight uploads cannot be removed: refused
    budget.finish(pending[0], None)  # that one failed (e.g. over max_file_size): its bytes are free again
    budget.admit("1.1.1.1", 45 * MB)


def test_files_removed_by_gradio_free_their_bytes(tmp_path):
    budget = UploadBudget(server_bytes=100 * MB, client_bytes=100 * MB)
    path = tmp_path / "e" / "f.jpg"
    uploaded(budget, "1.1.1.1", 90 * MB, path)
    path.unlink()  # Gradio's hourly cleanup
    budget.admit("1.1.1.1", 90 * MB)


def asgi_call(app, path, body_chunks, headers=()):
    """Drive an ASGI app with one POST; returns (status, body bytes, bytes the app read)."""
    messages = [{"type": "http.request", "body": c, "more_body": i < len(body_chunks) - 1}
                for i, c in enumerate(body_chunks)]
    sent, read = [], []

    async def receive():
        m = messages.pop(0) if messages else {"type": "http.disconnect"}
        read.append(len(m.get("body", b"")))
        return m

    async def send(m):
        sent.append(m)

    scope = {"type": "http", "method": "POST", "path": path, "headers": list(headers), "client": ("9.9.9.9", 1)}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"), sum(read)


async def echo_app(scope, receive, send):
    """Reads its whole body, answers with its length (and, for an upload, a file path)."""
    total = 0
    while True:
        m = await receive()
        total += len(m.get("body", b""))
        if not m.get("more_body"):
            break
    body = json.dumps(["/tmp/x/f.bin"] if scope["path"].endswith("/upload") else {"read": total}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_a_body_over_the_limit_is_refused_before_it_is_read():
    app = RequestLimits(echo_app, UploadBudget(100 * MB, 50 * MB), json_limit=1000)
    status, body, read = asgi_call(app, "/gradio_api/queue/join", [b"x" * 500] * 4,
                                   headers=[(b"content-length", b"2000")])
    assert status == 413 and b"over this server's limit" in body and read == 0  # not a byte read
    status, body, read = asgi_call(app, "/gradio_api/queue/join", [b"x" * 500] * 4)  # no length: counted
    assert status == 413 and read == 1500  # stopped at the chunk that passed the limit, the rest unread
    status, body, _ = asgi_call(app, "/gradio_api/queue/join", [b"x" * 500], headers=[(b"content-length", b"500")])
    assert status == 200 and json.loads(body) == {"read": 500}


def test_uploads_need_a_length_and_are_held_to_the_budget():
    budget = UploadBudget(100 * MB, 50 * MB)
    app = RequestLimits(echo_app, budget, json_limit=1000)
    assert asgi_call(app, "/gradio_api/upload", [b"x" * 10])[0] == 411
    status, body, read = asgi_call(app, "/gradio_api/upload", [b"x"], headers=[(b"content-length", str(60 * MB).encode())])
    assert status == 413 and read == 0 and b"per client" in body
    status, body, _ = asgi_call(app, "/gradio_api/upload", [b"x" * 3000], headers=[(b"content-length", b"3000")])
    assert status == 200 and budget.used("9.9.9.9") == 3000  # uploads are not held to the JSON limit
    assert budget.uploads[0].done and str(budget.uploads[0].paths[0]) == "/tmp/x/f.bin"
