"""The documentation's pictures, made from the shipped models so that they can be made again.

    PYTHONPATH=. python docs/make_figures.py                  # every picture (about 10 minutes on 2 CPU cores)
    PYTHONPATH=. python docs/make_figures.py --only app eval   # some of them

Each step runs the project's own commands (``detector anchors``, ``eval --out``, ``predict``, ``train``) or drives
the app (``python app.py``) in headless Chromium with Playwright, in a temporary folder, and writes small PNG/JPEG
files into ``docs/img/`` (and ``docs/demo-detect.png``, the README's picture):

- ``anchors``: ``anchors.png``, the book's anchors over a photograph (``detector anchors``).
- ``eval``: ``pr-curve.png`` and ``confusion-matrix.png`` from ``detector eval --out`` of the shipped shapes model
  on the 500 held-out images of its card (seed 1); prints the AP, which should be the card's 0.703.
- ``predict``: ``predicted.jpg``, a generated image as ``detector predict`` draws it with the shapes model.
- ``data``: ``data-show.jpg``, four generated training images after augmentation (``detector data show``).
- ``train``: ``results.png`` of a short run (``tiny_ssd_plus``, 200 generated images, 8 epochs at batch 8): the
  picture every run writes, not a model anyone should use.
- ``app``: the app's tabs: ``demo-detect.png`` (Detect, a generated example and a photograph), ``app-video.png``,
  ``app-anchors.png``, ``app-matching.png``, ``app-nms.png``, ``app-api.png``.
- ``raccoon``: ``demo-raccoon.jpg``, the app on the raccoon model and the val photograph ``raccoon-145.jpg``.

Needs Debian's ``chromium`` and the ``playwright`` package for ``app`` (as ``tests/app/test_app_e2e.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
IMG = DOCS / "img"
SHAPES = ROOT / "models" / "tinyssd-shapes.pt"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MAX_WIDTH = 1000  # pixels: wide enough to read a screenshot on the site, small enough to keep the files light
sys.path.insert(0, str(ROOT))  # this checkout's detector (the app step imports it), not an installed copy


def detector(*args: str, cwd: Path) -> str:
    """Run ``python -m detector ARGS`` from this checkout; its output (the command fails loudly)."""
    done = subprocess.run([sys.executable, "-m", "detector", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"detector {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout + done.stderr


def save(src: Path | Image.Image, name: str, width: int = MAX_WIDTH) -> Path:
    """``src`` at most ``width`` wide as ``docs/img/NAME`` (or ``docs/NAME`` for the README's picture): a PNG in
    256 colours (screenshots and plots survive it), a JPEG at quality 85."""
    image = (Image.open(src) if isinstance(src, Path) else src).convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
    out = (DOCS if name.startswith("demo-") else IMG) / name
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".png":
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)
    else:
        image.save(out, quality=85, optimize=True)
    print(f"wrote {out.relative_to(ROOT)} ({out.stat().st_size // 1024} KiB, {image.width}x{image.height})")
    return out


def anchors(tmp: Path) -> None:
    detector("anchors", "--out", str(tmp / "anchors.png"), cwd=tmp)
    save(tmp / "anchors.png", "anchors.png", width=640)


def evaluation(tmp: Path) -> None:
    detector("data", "synth", "--out", "shapes-test", "--train", "0", "--val", "500", "--seed", "1", cwd=tmp)
    out = detector("eval", "--weights", str(SHAPES), "--data", "shapes-test", "--out", "eval", cwd=tmp)
    print(next((line for line in out.splitlines() if "AP" in line), out[-300:]))
    save(tmp / "eval" / "pr_03_star.png", "pr-curve.png")
    save(tmp / "eval" / "confusion_matrix.png", "confusion-matrix.png")


def predict(tmp: Path) -> None:
    detector("data", "synth", "--out", "demo", "--train", "0", "--val", "8", "--seed", "7", cwd=tmp)
    detector("predict", "demo/val/images", "--weights", str(SHAPES), "--out", "predicted", cwd=tmp)
    drawn = sorted(p for p in (tmp / "predicted").iterdir() if p.suffix == ".jpg")
    save(drawn[5], "predicted.jpg", width=512)  # four shapes found, one small star missed


def data(tmp: Path) -> None:
    detector("data", "synth", "--out", "shapes", "--train", "4", "--val", "0", "--seed", "0", cwd=tmp)
    detector("data", "show", "shapes", "--out", "show", "--num", "4", "--seed", "2", cwd=tmp)
    shown = [Image.open(p).convert("RGB") for p in sorted((tmp / "show").glob("*.png"))]
    side = shown[0].height
    sheet = Image.new("RGB", (sum(i.width for i in shown) + 8 * (len(shown) - 1), side), "white")
    x = 0
    for image in shown:
        sheet.paste(image, (x, 0))
        x += image.width + 8
    save(sheet, "data-show.jpg")


def train(tmp: Path) -> None:
    detector("data", "synth", "--out", "small", "--train", "200", "--val", "50", "--seed", "0", cwd=tmp)
    detector("train", "--model", "tiny_ssd_plus", "--data", "small", "--epochs", "8", "--batch-size", "8",
             "--eval-every", "1", "--workers", "1", "--device", "cpu", "--out", "run", cwd=tmp)
    save(tmp / "run" / "results.png", "results.png")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app(tmp: Path) -> None:
    """The app as ``python app.py`` starts it (its default model), driven as a user would."""
    import cv2
    from playwright.sync_api import sync_playwright
    from skimage import data as skdata

    from detector.app.examples import make_examples

    example = make_examples(tmp / "ex", count=1)[0]
    photo = tmp / "coffee.jpg"  # a real photograph, which the shapes model knows nothing about
    Image.fromarray(skdata.coffee()).save(photo, quality=92)
    clip = tmp / "clip.mp4"
    frame = cv2.imread(str(example))
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (frame.shape[1], frame.shape[0]))
    for _ in range(10):
        writer.write(frame)
    writer.release()
    with running_app(tmp) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                    args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        drive_app(page, example, photo, clip, tmp)
        browser.close()


def raccoon(tmp: Path) -> None:
    """The app on the raccoon model (``python app.py --weights models/tinyssd-raccoon.onnx``) and the val photo
    ``raccoon-145.jpg``: ``demo-raccoon.jpg``."""
    from playwright.sync_api import sync_playwright

    with running_app(tmp, "--weights", str(ROOT / "models" / "tinyssd-raccoon.onnx")) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                    args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1200})
        page.goto(url)
        page.locator("input[type=file]").first.set_input_files([str(ROOT / "models" / "examples" / "raccoon-145.jpg")])
        page.wait_for_function("document.querySelector('#table')?.innerText.includes('raccoon-145.jpg')",
                               timeout=120_000)
        page.wait_for_function("[...document.querySelectorAll('#detections img')].some(i => i.naturalWidth > 0)",
                               timeout=60_000)
        page.wait_for_timeout(1000)
        shot(page, tmp, "demo-raccoon.jpg")
        print(page.locator("#table").inner_text()[:400])
        browser.close()


@contextlib.contextmanager
def running_app(tmp: Path, *flags: str):
    """``python app.py`` on a free port (with ``flags``), started and stopped; yields its URL."""
    port = free_port()
    log = open(tmp / "app.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), *flags], cwd=tmp, env=ENV,
                              stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"the app did not start:\n{(tmp / 'app.log').read_text()[-2000:]}") from None
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def shot(page, tmp: Path, name: str, full_page: bool = False, clip_to: str | None = None) -> None:
    """A screenshot of the page (or of the element ``clip_to``), saved small."""
    path = tmp / f"shot-{name}"
    if clip_to:
        page.locator(clip_to).screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=full_page)
    save(path, name)


def drive_app(page, example: Path, photo: Path, clip: Path, tmp: Path) -> None:
    page.locator("input[type=file]").first.set_input_files([str(example), str(photo)])
    page.wait_for_function("document.querySelector('#table')?.innerText.includes('coffee.jpg')", timeout=120_000)
    page.wait_for_function("[...document.querySelectorAll('#detections img')].filter(i => i.naturalWidth > 0)"
                           ".length >= 2", timeout=60_000)
    page.set_viewport_size({"width": 1280, "height": 1560})  # both images: the example and the photograph
    page.wait_for_timeout(1000)
    shot(page, tmp, "demo-detect.png")
    page.set_viewport_size({"width": 1280, "height": 1000})

    page.get_by_text("Video: boxes on every frame").click()
    page.locator("#video-in input[type=file]").set_input_files(str(clip))
    page.wait_for_timeout(500)
    page.get_by_role("button", name="Detect in video").click()
    page.wait_for_function("document.querySelector('#video-summary')?.innerText.includes('10 frames')",
                           timeout=120_000)
    page.wait_for_function("document.querySelector('#video-out video')?.readyState >= 2", timeout=60_000)
    page.evaluate("document.querySelector('#video-out video').currentTime = 0.5")
    page.get_by_text("Video: boxes on every frame").evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(1000)
    shot(page, tmp, "app-video.png")

    page.evaluate("window.scrollTo(0, 0)")
    page.get_by_role("tab", name="Anchors").click()
    page.get_by_role("button", name="Draw anchors").click()
    page.wait_for_function("document.querySelector('#anchors-text')?.innerText.includes('anchors:')", timeout=60_000)
    page.wait_for_timeout(1000)
    shot(page, tmp, "app-anchors.png")

    page.get_by_role("tab", name="Matching").click()
    page.get_by_role("button", name="Match").click()
    page.wait_for_function("/\\d+ of \\d+ anchors are positives/.test(document.body.innerText)", timeout=60_000)
    page.wait_for_function("document.querySelector('#match-out img')?.naturalWidth > 0", timeout=30_000)
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(1000)
    shot(page, tmp, "app-matching.png")

    page.get_by_role("tab", name="NMS").click()
    page.get_by_role("button", name="Run NMS").click()
    page.wait_for_function("document.body.innerText.includes('kept after NMS')", timeout=60_000)
    for side in ("before", "after"):
        page.wait_for_function(f"document.querySelector('#nms-{side} img')?.naturalWidth > 0", timeout=30_000)
    page.wait_for_timeout(1000)
    shot(page, tmp, "app-nms.png", full_page=True)

    page.get_by_role("tab", name="API").click()
    page.wait_for_function("document.querySelector('#api-usage')?.innerText.includes('/detect')", timeout=30_000)
    page.wait_for_timeout(500)
    shot(page, tmp, "app-api.png")


STEPS = {"anchors": anchors, "eval": evaluation, "predict": predict, "data": data, "train": train, "app": app,
         "raccoon": raccoon}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(STEPS), default=list(STEPS))
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    for name in args.only:
        with tempfile.TemporaryDirectory(prefix=f"figures-{name}-") as tmp:
            work = Path(args.keep) / name if args.keep else Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            print(f"== {name}")
            STEPS[name](work)


if __name__ == "__main__":
    main()
