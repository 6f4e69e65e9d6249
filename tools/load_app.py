"""The demo under hostile load: many clients calling every handler, public and private, with large and bad
inputs, over raw HTTP on loopback.

    python tools/load_app.py                                        # 20 clients for 60 s
    python tools/load_app.py --clients 8 --seconds 15 --json runs/load.json
    python tools/load_app.py --deep 4                               # four 9999x9999 16-bit PNGs at once
    python tools/load_app.py --bodies                               # 200 MB bodies, 20 x 45 MB uploads

Starts ``python app.py`` on a free loopback port and speaks Gradio's queue protocol directly (upload the
files, ``POST /gradio_api/queue/join`` with the event's id, read ``/gradio_api/queue/data``), as any script can,
so the handlers the page marks private are called too. Each client calls the handlers in turn, with an input
drawn at random:
ordinary photos, a 36-megapixel JPEG, a 16-bit 7000x7000 PNG, a 20000x20000 PNG (refused from its header), a
text file named .png, a truncated JPEG, thousands of typed boxes, huge feature maps, numbers that are not
numbers. It reports, per handler, calls, p50/p95 latency and how many came back as errors (a Gradio error
event) or with a traceback in the reply; the server's peak resident memory (sampled from /proc every 0.1 s);
and whether the server still answers ``/detect`` afterwards. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_app import group_rss_mib, percentile, rss_mib, start_server


def make_inputs(folder: Path) -> dict[str, Path]:
    """The files the clients send."""
    rng = np.random.default_rng(0)
    files = {}
    for k, (h, w) in enumerate([(512, 512), (400, 600), (720, 480)]):
        files[f"photo{k}"] = folder / f"photo{k}.jpg"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(files[f"photo{k}"], quality=90)
    files["large"] = folder / "large.jpg"  # 36 megapixels
    Image.fromarray(np.tile(rng.integers(0, 255, (60, 60, 3), dtype=np.uint8), (100, 100, 1))).save(files["large"])
    files["deep"] = folder / "deep16.png"  # 16-bit greyscale, 49 megapixels
    Image.fromarray(np.tile(np.arange(7000, dtype=np.uint16) * 9, (7000, 1))).save(files["deep"])
    files["bomb"] = folder / "bomb.png"  # 400 megapixels in a few KB
    Image.new("1", (20000, 20000)).save(files["bomb"])
    files["text"] = folder / "notes.png"
    files["text"].write_text("not an image")
    files["truncated"] = folder / "truncated.jpg"
    files["truncated"].write_bytes(files["photo0"].read_bytes()[:2000])
    return files


class Client:
    """Gradio's queue protocol over one keep-alive connection."""

    def __init__(self, url: str, fn: dict[str, int]):
        import httpx

        self.base, self.fn = url.rstrip("/") + "/gradio_api", fn
        self.http = httpx.Client(timeout=180)

    def upload(self, path: Path) -> dict:
        with open(path, "rb") as f:
            r = self.http.post(f"{self.base}/upload", files={"files": (path.name, f, "application/octet-stream")})
        r.raise_for_status()
        return {"path": r.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    def call(self, name: str, data: list) -> tuple[str, str]:
        """``(outcome, reply text)``; outcome ``ok``, ``error`` (Gradio's error event) or ``refused`` (queue full)."""
        session = uuid.uuid4().hex[:12]
        r = self.http.post(f"{self.base}/queue/join", json={"data": data, "fn_index": self.fn[name],
                                                             "session_hash": session, "event_data": None})
        if r.status_code != 200:
            return ("refused" if r.status_code == 503 else f"http {r.status_code}"), r.text
        with self.http.stream("GET", f"{self.base}/queue/data", params={"session_hash": session}) as s:
            for line in s.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    text = json.dumps(msg.get("output"))
                    return ("ok" if msg.get("success") else "error"), text
        return "no reply", ""


def requests(files: dict[str, Path], model: str) -> dict[str, list]:
    """Per handler, a list of argument builders (client -> data)."""
    good = [k for k in files if k.startswith("photo")]
    heavy = ["large", "deep", "bomb", "text", "truncated"]
    any_file = lambda c: c.upload(files[random.choice(good + heavy)])
    return {
        "on_detect": [lambda c: [[any_file(c) for _ in range(random.randint(1, 3))], model, 0.25, 0.45, 100, []],
                      lambda c: [[c.upload(files[random.choice(good)])] * 20, model, 0.25, 0.45, 100, []],
                      lambda c: [[any_file(c)], model, "nan", 2.0, 1e9, ["no such class"]]],
        "detect": [lambda c: [any_file(c), 0.25, 0.45, 100, model],
                   lambda c: [any_file(c), 0.25, 0.45, 100, "not-a-model.pt"],
                   lambda c: [None, -1, "x", None, None]],
        "on_anchors": [lambda c: [any_file(c), 4, 4, "0.15", "1 2 0.5", False],
                       lambda c: [None, 100000, 100000, "0.1", "1", True],
                       lambda c: [None, 8, 8, " ".join(["0.1"] * 5000), "1", False],
                       lambda c: [None, "a", None, "x", "y", "z"]],
        "on_match": [lambda c: [any_file(c), "10 10 100 100\n50 50 200 200", 8, 8, "0.4 0.2", "1 2", 0.5],
                     lambda c: [None, "\n".join(f"{i} {i} {i + 50} {i + 50}" for i in range(8000)), 8, 8, "0.3", "1",
                                0.5],
                     lambda c: [None, "1 2 3 4", 1000, 1000, "0.1 0.2 0.3", "1 2 0.5", "nan"]],
        "on_nms": [lambda c: [any_file(c), model, 0.05, 0.45],
                   lambda c: [None, model, "x", 9]],
    }


def run(clients: int = 20, seconds: float = 60, weights: str | None = None, seed: int = 0) -> dict:
    random.seed(seed)
    tmp = Path(tempfile.mkdtemp(prefix="load-app-"))
    files = make_inputs(tmp)
    weights = weights or str(ROOT / "models" / "tinyssd-shapes.pt")
    server, url = start_server(weights, 4 * clients, tmp)
    try:
        config = json.loads(urllib.request.urlopen(url + "config", timeout=10).read())
        fn = {d["api_name"]: i for i, d in enumerate(config["dependencies"]) if d.get("api_name")}
        model = Path(weights).name
        table, calls = requests(files, model), []
        peak, stop = [rss_mib(server.pid)], threading.Event()
        idle = peak[0]
        lock = threading.Lock()

        def sample():
            while not stop.is_set():
                peak.append(rss_mib(server.pid))
                time.sleep(0.1)

        def client_loop(k: int):
            c, rng, names = Client(url, fn), random.Random(seed * 1000 + k), list(table)
            end, i = time.time() + seconds, k
            while time.time() < end:
                name, i = names[i % len(names)], i + 1  # every handler in turn, from a different one per client
                t0 = time.perf_counter()
                try:
                    outcome, text = c.call(name, rng.choice(table[name])(c))
                except Exception as e:  # noqa: BLE001 - a transport failure is a result to report
                    outcome, text = f"client {type(e).__name__}", str(e)
                with lock:
                    calls.append({"handler": name, "s": time.perf_counter() - t0, "outcome": outcome,
                                  "traceback": "Traceback" in text, "reply": text[:300] if outcome != "ok" else ""})

        threading.Thread(target=sample, daemon=True).start()
        threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        after = Client(url, fn).call("detect", [Client(url, fn).upload(files["photo0"]), 0.25, 0.45, 100, model])
        per = {}
        for name in table:
            mine = [c for c in calls if c["handler"] == name]
            per[name] = {"calls": len(mine), "p50_ms": round(percentile([c["s"] for c in mine], 50) * 1000),
                         "p95_ms": round(percentile([c["s"] for c in mine], 95) * 1000),
                         "errors": sum(c["outcome"] != "ok" for c in mine),
                         "tracebacks": sum(c["traceback"] for c in mine)}
        log = (tmp / "server.log").read_text()
        return {"clients": clients, "seconds": seconds, "calls": len(calls), "per_handler": per,
                "outcomes": {o: sum(c["outcome"] == o for c in calls) for o in {c["outcome"] for c in calls}},
                "server_rss_idle_mib": round(idle), "server_rss_peak_mib": round(max(peak)),
                "answers_after": after[0] == "ok" and '"detections"' in after[1],
                "server_log_tracebacks": log.count("Traceback"),
                "error_samples": sorted({f"{c['handler']}: {c['reply']}" for c in calls if c["outcome"] != "ok"})[:20]}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def hwm_mib(pid: int) -> float:
    """A process's peak resident memory so far (``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def deep_uploads(count: int = 4, side: int = 9999, weights: str | None = None, ordinary_after_s: float = 1.0) -> dict:
    """The case of issue 42, as a user makes it: ``count`` clients at once (``gradio_client``, ``handle_file``)
    each call ``/detect`` with the same ``side x side`` RGB 16-bit PNG of zeros (``cv2.imwrite`` at compression 9:
    a small file, 0.6 GB as decoded 16-bit), the app on its default model; ``ordinary_after_s`` later an ordinary
    user calls ``/detect`` with a 512x512 photograph. The server's process group's resident memory, summed and
    sampled every 0.2 s; whether every call was answered; how long the ordinary call took."""
    import cv2
    from gradio_client import Client as GradioClient
    from gradio_client import handle_file

    tmp = Path(tempfile.mkdtemp(prefix="load-deep-"))
    path = tmp / "deep16.png"
    cv2.imwrite(str(path), np.zeros((side, side, 3), np.uint16), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    photo = make_inputs(tmp)["photo0"]
    server, url = start_server(weights, 4 * count + 4, tmp)
    group = os.getpgid(server.pid)
    try:
        peak, stop = [group_rss_mib(group)], threading.Event()
        idle = peak[0]

        def sample():
            while not stop.is_set():
                peak.append(group_rss_mib(group))
                time.sleep(0.2)

        results: list = [None] * count
        ordinary: dict = {}

        def call(k: int):
            try:
                results[k] = GradioClient(url, verbose=False).predict(handle_file(str(path)), api_name="/detect")
            except Exception as e:  # noqa: BLE001 - reported
                results[k] = {"error": f"{type(e).__name__}: {e}"}

        def ordinary_call():
            client = GradioClient(url, verbose=False)
            time.sleep(ordinary_after_s)
            t = time.perf_counter()
            reply = client.predict(handle_file(str(photo)), api_name="/detect")
            ordinary.update(seconds=round(time.perf_counter() - t, 2), answered="detections" in reply)

        threading.Thread(target=sample, daemon=True).start()
        start = time.perf_counter()
        threads = [threading.Thread(target=call, args=(k,)) for k in range(count)]
        threads.append(threading.Thread(target=ordinary_call))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        return {"uploads": count, "side": side, "file_mib": round(path.stat().st_size / 2**20, 2),
                "server_rss_idle_mib": round(idle), "server_rss_peak_mib": round(max(peak)),
                "server_hwm_mib": round(hwm_mib(server.pid)),  # the app process's own peak, between samples too
                "seconds": round(time.perf_counter() - start, 1),
                "answered": sum(isinstance(r, dict) and "detections" in r for r in results),
                "replies": [r if not (isinstance(r, dict) and "detections" in r) else "ok" for r in results],
                "ordinary_seconds": ordinary.get("seconds"), "ordinary_answered": ordinary.get("answered", False),
                "server_log_tracebacks": (tmp / "server.log").read_text().count("Traceback")}
    finally:
        os.killpg(group, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def json_body(mib: int) -> bytes:
    """A well-formed queue call of ``mib`` MB (a string where the data goes), as a hostile script sends it."""
    return b'{"fn_index": 0, "session_hash": "hostile", "data": ["' + b"a" * (mib * 2**20) + b'"]}'


def hostile_bodies(uploads: int = 20, upload_mib: int = 45, weights: str | None = None) -> dict:
    """The bodies that once took the server down, while one ordinary user calls ``/detect`` over and over: one
    200 MB JSON body (with its length), three 100 MB JSON bodies at once without a length (chunked), then
    ``uploads`` concurrent uploads of ``upload_mib`` MB from one address. Per case, the HTTP statuses; the bytes
    the uploads added on the server's disk; the server's peak memory; the ordinary user's slowest call during
    the hostile requests against its calls before them (a stall shows as a gap)."""
    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="load-bodies-"))
    files = make_inputs(tmp)
    weights = weights or str(ROOT / "models" / "tinyssd-shapes.pt")
    upload_dir = tmp / "gradio"
    server, url = start_server(weights, 64, tmp, env={"GRADIO_TEMP_DIR": str(upload_dir)})
    base = url.rstrip("/") + "/gradio_api"
    try:
        config = json.loads(urllib.request.urlopen(url + "config", timeout=10).read())
        fn = {d["api_name"]: i for i, d in enumerate(config["dependencies"]) if d.get("api_name")}
        peak, stop, victim = [rss_mib(server.pid)], threading.Event(), []
        idle = peak[0]

        def sample():
            while not stop.is_set():
                peak.append(rss_mib(server.pid))
                time.sleep(0.05)

        def ordinary_user():
            c = Client(url, fn)
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    outcome, _ = c.call("detect", [c.upload(files["photo0"]), 0.25, 0.45, 100, Path(weights).name])
                except Exception as e:  # noqa: BLE001 - a failed call is a result to report
                    outcome = f"client {type(e).__name__}: {e}"
                victim.append((t0, time.perf_counter() - t0, outcome))

        threading.Thread(target=sample, daemon=True).start()
        user = threading.Thread(target=ordinary_user, daemon=True)
        user.start()
        time.sleep(3)  # the ordinary user's pace before anything hostile
        hostile_start = time.perf_counter()
        http = httpx.Client(timeout=120)
        result = {"json_200mb": http.post(f"{base}/queue/join", content=json_body(200),
                                          headers={"content-type": "application/json"}).status_code}

        def chunked_json(k: int, out: list):
            def body():
                whole = json_body(100)
                for i in range(0, len(whole), 2**20):
                    yield whole[i:i + 2**20]
            try:
                out[k] = httpx.post(f"{base}/queue/join", content=body(), timeout=120,
                                    headers={"content-type": "application/json"}).status_code
            except httpx.HTTPError as e:  # the server may close the connection once it has answered
                out[k] = type(e).__name__

        statuses: list = [None] * 3
        threads = [threading.Thread(target=chunked_json, args=(k, statuses)) for k in range(3)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        result["json_100mb_chunked_x3"] = statuses
        big = tmp / "upload.bin"
        big.write_bytes(np.random.default_rng(0).integers(0, 255, upload_mib * 2**20, dtype=np.uint8).tobytes())
        before = folder_bytes(upload_dir)

        def upload(k: int, out: list):
            try:
                with open(big, "rb") as f:
                    out[k] = httpx.post(f"{base}/upload", timeout=120,
                                        files={"files": (f"u{k}.bin", f, "application/octet-stream")}).status_code
            except httpx.HTTPError as e:
                out[k] = type(e).__name__

        statuses = [None] * uploads
        threads = [threading.Thread(target=upload, args=(k, statuses)) for k in range(uploads)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        time.sleep(1)  # Gradio moves the files into its cache after answering
        hostile_end = time.perf_counter()
        time.sleep(2)
        stop.set()
        user.join(timeout=60)
        during = [s for t0, s, _ in victim if t0 + s >= hostile_start and t0 <= hostile_end]
        calm = [s for t0, s, _ in victim if t0 + s < hostile_start]
        result.update({
            f"uploads_{uploads}x{upload_mib}mb": {str(code): statuses.count(code) for code in set(statuses)},
            "upload_mib_added": round((folder_bytes(upload_dir) - before) / 2**20),
            "server_rss_idle_mib": round(idle), "server_rss_peak_mib": round(max(peak)),
            "hostile_seconds": round(hostile_end - hostile_start, 1),
            "ordinary_calls_during": len(during),
            "ordinary_slowest_during_s": round(max(during), 2) if during else None,
            "ordinary_median_before_s": round(statistics.median(calm), 2) if calm else None,
            "ordinary_failures": sorted({o for _, _, o in victim if o != "ok"}),
            "server_log_tracebacks": (tmp / "server.log").read_text().count("Traceback")})
        return result
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--weights")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--deep", type=int, metavar="N", help="only the hostile case: N clients at once send /detect "
                        "a 9999x9999 RGB 16-bit PNG each, and an ordinary user a photograph; the server's peak "
                        "memory and the ordinary call's time")
    parser.add_argument("--bodies", action="store_true", help="only the hostile bodies: a 200 MB JSON body, three "
                        "100 MB chunked ones, 20 concurrent 45 MB uploads, while an ordinary user calls /detect")
    args = parser.parse_args()
    if args.bodies:
        print(json.dumps(hostile_bodies(weights=args.weights), indent=1))
        return
    if args.deep:
        print(json.dumps(deep_uploads(args.deep, weights=args.weights)))
        return
    result = run(args.clients, args.seconds, args.weights)
    print(f"{result['calls']} calls from {args.clients} clients in {args.seconds:g} s; outcomes {result['outcomes']}")
    print(f"{'handler':<11}{'calls':>7}{'p50 ms':>9}{'p95 ms':>9}{'errors':>8}{'tracebacks':>12}")
    for name, r in result["per_handler"].items():
        print(f"{name:<11}{r['calls']:>7}{r['p50_ms']:>9}{r['p95_ms']:>9}{r['errors']:>8}{r['tracebacks']:>12}")
    print(f"server RSS idle {result['server_rss_idle_mib']} MiB, peak {result['server_rss_peak_mib']} MiB; "
          f"answers afterwards: {result['answers_after']}; tracebacks in the server log (logged bugs): "
          f"{result['server_log_tracebacks']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
