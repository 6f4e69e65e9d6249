"""The demo under hostile load: many clients calling every handler, public and private, with large and bad
inputs, over raw HTTP on loopback.

    python tools/load_app.py                                        # 20 clients for 60 s
    python tools/load_app.py --clients 8 --seconds 15 --json runs/load.json

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
import random
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
from bench_app import percentile, rss_mib, start_server


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


def deep_uploads(count: int = 4, side: int = 9999, weights: str | None = None) -> dict:
    """``count`` clients at once each send ``/detect`` a ``side x side`` 16-bit PNG (each under the 100-megapixel
    cap): the server's peak resident memory, and whether every call was answered."""
    tmp = Path(tempfile.mkdtemp(prefix="load-deep-"))
    path = tmp / "deep16.png"
    Image.fromarray(np.tile((np.arange(side, dtype=np.uint32) * 6 % 65535).astype(np.uint16), (side, 1))).save(path)
    weights = weights or str(ROOT / "models" / "tinyssd-shapes.pt")
    server, url = start_server(weights, 4 * count, tmp)
    try:
        config = json.loads(urllib.request.urlopen(url + "config", timeout=10).read())
        fn = {d["api_name"]: i for i, d in enumerate(config["dependencies"]) if d.get("api_name")}
        clients = [Client(url, fn) for _ in range(count)]
        uploads = [c.upload(path) for c in clients]  # all on the server before any call
        peak, stop = [rss_mib(server.pid)], threading.Event()
        idle = peak[0]

        def sample():
            while not stop.is_set():
                peak.append(rss_mib(server.pid))
                time.sleep(0.05)

        results: list = [None] * count

        def call(k: int):
            results[k] = clients[k].call("detect", [uploads[k], 0.25, 0.45, 100, Path(weights).name])

        threading.Thread(target=sample, daemon=True).start()
        start = time.perf_counter()
        threads = [threading.Thread(target=call, args=(k,)) for k in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        return {"uploads": count, "side": side, "file_mib": round(path.stat().st_size / 2**20, 1),
                "server_rss_idle_mib": round(idle), "server_rss_peak_mib": round(max(peak)),
                "seconds": round(time.perf_counter() - start, 1),
                "answered": sum(r is not None and r[0] == "ok" and '"detections"' in r[1] for r in results)}
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
                        "a 9999x9999 16-bit PNG each; the server's peak memory")
    args = parser.parse_args()
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
