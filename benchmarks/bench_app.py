"""Latency of the demo's ``/detect`` endpoint, end to end over HTTP, as scripts see it.

    python benchmarks/bench_app.py                                  # one client, 50 calls, 512-px images
    python benchmarks/bench_app.py --clients 20 --images 10         # the load test: 20 clients at once

Starts ``python app.py`` on a free loopback port (as users start it), calls ``/detect`` and reports per-call
latency (p50, p95, max), the server's own time per call, errors, and the server process's peak resident
memory (sampled from /proc). ``--client raw`` (default) speaks Gradio's REST protocol over one keep-alive
HTTP connection per client, as a script with ``httpx`` or ``curl`` does: upload the file, ``POST
/gradio_api/call/detect``, read the reply from the event stream. ``--client gradio`` uses ``gradio_client``,
which adds its own overhead (measured here at about 160 ms per call on an endpoint that does nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def group_rss_mib(pgid: int) -> float:
    """The resident memory of every process of the process group ``pgid``, summed (the app and anything it
    starts)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                total += rss_mib(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return total


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def make_images(folder: Path, count: int, size: int) -> list[Path]:
    from detector.data.synth import render

    paths = []
    for i in range(count):
        image, _, _ = render(11, "val", i, size=size)
        p = folder / f"bench-{i}.jpg"
        cv2.imwrite(str(p), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        paths.append(p)
    return paths


class RawClient:
    """``/detect`` over Gradio's REST API with one keep-alive connection: upload, call, read the event stream."""

    def __init__(self, url: str):
        import httpx

        self.base = url.rstrip("/") + "/gradio_api"
        self.http = httpx.Client(timeout=120)

    def detect(self, path: Path, conf: float, iou: float, max_det: int) -> dict:
        with open(path, "rb") as f:
            up = self.http.post(f"{self.base}/upload", files={"files": (path.name, f, "image/jpeg")})
        up.raise_for_status()
        data = [{"path": up.json()[0], "meta": {"_type": "gradio.FileData"}}, conf, iou, max_det, None]  # None: default model
        call = self.http.post(f"{self.base}/call/detect", json={"data": data})
        call.raise_for_status()
        event, payload = None, None
        with self.http.stream("GET", f"{self.base}/call/detect/{call.json()['event_id']}") as r:
            for line in r.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    payload = line[5:].strip()
        if event != "complete":
            raise RuntimeError(f"/detect ended with {event}: {payload}")
        return json.loads(payload)[0]


class LibClient:
    """``/detect`` through ``gradio_client``."""

    def __init__(self, url: str):
        from gradio_client import Client

        self.client = Client(url, verbose=False)

    def detect(self, path: Path, conf: float, iou: float, max_det: int) -> dict:
        from gradio_client import handle_file

        return self.client.predict(handle_file(str(path)), conf, iou, max_det, api_name="/detect")


def start_server(weights: str, queue_size: int, cwd: Path, extra: tuple[str, ...] = (),
                 env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """``python app.py`` on a free loopback port (``extra``: more of its flags; ``env``: added to its
    environment), its output in ``cwd/server.log``; returns once it serves."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    weights = str(Path(weights).resolve()) if weights else None  # the server runs in cwd: a path resolved first
    log = open(cwd / "server.log", "w")  # noqa: SIM115 - the server's lifetime
    model = ["--weights", weights] if weights else []  # none: the app's default model, as a user starts it
    server = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), *model,
                               "--queue-size", str(queue_size), *extra], cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, **(env or {})}, start_new_session=True)  # its own process group
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=2)
            return server, url
        except OSError:
            if server.poll() is not None:
                raise SystemExit(f"the app exited before serving: {(cwd / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
    server.kill()
    raise SystemExit("the app did not start in 120 s")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--images", type=int, default=50, help="calls per client")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--weights", default=str(ROOT / "models" / "tinyssd-shapes.onnx"),
                        help="a checkpoint or .onnx (default: the app's default model)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--client", choices=("raw", "gradio"), default="raw")
    parser.add_argument("--queue-size", type=int, help="the app's --queue-size (default: room for every client)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    make_client = RawClient if args.client == "raw" else LibClient
    tmp = Path(tempfile.mkdtemp(prefix="bench-app-"))
    images = make_images(tmp, 10, args.size)
    server, url = start_server(args.weights, args.queue_size or max(64, 2 * args.clients), tmp)
    try:
        peak = [rss_mib(server.pid)]
        idle_rss = peak[0]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak.append(rss_mib(server.pid))
                time.sleep(0.2)

        warm = make_client(url)
        for i in range(args.warmup):
            warm.detect(images[i % len(images)], 0.25, 0.45, 100)
        latencies, server_ms, errors = [], [], []
        lock = threading.Lock()

        def client_loop(k: int):
            client = make_client(url)
            for i in range(args.images):
                t = time.perf_counter()
                try:
                    out = client.detect(images[(k + i) % len(images)], 0.25, 0.45, 100)
                except Exception as e:  # noqa: BLE001 (a benchmark counts every failure)
                    with lock:
                        errors.append(repr(e)[:200])
                    continue
                dt = (time.perf_counter() - t) * 1000
                with lock:
                    if "error" in out:
                        errors.append(out["error"])
                    else:
                        latencies.append(dt)
                        server_ms.append(out["ms"])

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        stop.set()
        sampler.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = {
        "client": args.client, "clients": args.clients, "queue_size": args.queue_size or max(64, 2 * args.clients), "calls_per_client": args.images, "image_px": args.size, "calls": len(latencies),
        "errors": len(errors), "error_examples": errors[:3],
        "latency_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                       "max": max(latencies, default=float("nan")), "mean": statistics.fmean(latencies) if latencies else None},
        "server_ms_p50": percentile(server_ms, 50), "throughput_calls_per_s": len(latencies) / wall,
        "server_rss_mib": {"idle": idle_rss, "peak": max(peak)},
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs", "weights": args.weights,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
