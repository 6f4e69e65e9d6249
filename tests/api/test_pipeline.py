"""The predict pipeline (detector/api/pipeline.py): decoding, the model and the writing overlap in three threads,
results come in order, errors come where they happened, and memory stays flat over 1,000 images and a video of
3,000 frames (not timed: the speeds are benchmarks/bench_peers.py's)."""

import threading
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from detector import Detector
from detector.api.pipeline import Buffer, ReadAhead, WriteBehind
from detector.core.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
SHAPES = ROOT / "models" / "tinyssd-shapes.pt"


class OneBox(nn.Module):
    """A detector that costs nothing: one box, the image's middle, class 0, score 0.9 (the contract's shapes)."""

    img_size, num_classes = 64, 1

    def forward(self, images, targets=None, post=None, size=None):
        out = []
        for im in images:
            h, w = im.shape[-2:]
            out.append({"boxes": torch.tensor([[w / 4, h / 4, 3 * w / 4, 3 * h / 4]]), "scores": torch.tensor([0.9]),
                        "labels": torch.tensor([0])})
        return out


def fast_detector() -> Detector:
    det = Detector(SHAPES, device="cpu")
    det.model = OneBox()
    det.info = replace(det.info, classes=["thing"], category_ids=[1])
    return det


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


# ------------------------------------------------------------------------------------------------ the parts
def test_the_buffer_keeps_order_and_its_bounds():
    buffer = Buffer(max_items=3, max_bytes=100)
    assert buffer.put("a", 40) and buffer.put("b", 40)
    blocked = threading.Thread(target=buffer.put, args=("c", 40))  # 120 bytes > 100: waits for room
    blocked.start()
    time.sleep(0.1)
    assert blocked.is_alive()
    assert buffer.get() == "a"
    blocked.join(timeout=5)
    assert not blocked.is_alive() and buffer.get() == "b" and buffer.get() == "c"
    assert buffer.put("huge", 10_000)  # larger than the bound: let through when the buffer is empty
    assert buffer.get() == "huge"
    buffer.close()
    assert not buffer.put("late") and buffer.get() is not None  # closed: puts refused, get ends


def test_read_ahead_keeps_order_raises_where_the_error_came_and_stops_when_asked():
    def source():
        yield from range(5)
        raise InputError("broken at 5")

    reader, seen = ReadAhead(source()), []
    with pytest.raises(InputError, match="broken at 5"):
        while True:
            seen.append(next(reader))
    assert seen == [0, 1, 2, 3, 4]

    pulled = []

    def endless():
        k = 0
        while True:
            pulled.append(k)
            yield k
            k += 1

    reader = ReadAhead(endless(), max_items=4)
    assert [next(reader) for _ in range(3)] == [0, 1, 2]
    reader.close()  # a caller that stops early stops the reader: it does not run on
    n = len(pulled)
    time.sleep(0.2)
    assert len(pulled) == n <= 3 + 4 + 2


def test_write_behind_writes_in_order_and_raises_a_failed_write():
    written, finished = [], []
    sink = WriteBehind(written.append, lambda: finished.append(True))
    for k in range(50):
        sink.add(k)
    sink.close()
    assert written == list(range(50)) and finished == [True]

    abandoned = []

    def fails(x):
        if x == 3:
            raise InputError("disk full at 3")

    sink = WriteBehind(fails, lambda: finished.append("no"), lambda: abandoned.append(True))
    with pytest.raises(InputError, match="disk full at 3"):
        for k in range(1000):
            sink.add(k)
            time.sleep(0.001)
        sink.close()
    sink.close()  # after a failure: abandoned, not finished
    assert abandoned == [True] and finished == [True]


# ----------------------------------------------------------------------------------------------- through predict
def test_a_folder_comes_back_in_order_and_a_bad_file_is_named_in_its_place(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(40):
        Image_write(folder / f"{k:03d}.png", 32 + k)
    (folder / "020b.png").write_text("not an image")
    det = fast_detector()
    got = [r.path for r in det.predict(folder, stream=True, errors="skip", batch=3)]
    assert got == [str(p) for p in sorted(folder.iterdir()) if p.name != "020b.png"]
    with pytest.raises(InputError, match="020b.png"):
        list(det.predict(folder, stream=True))


def Image_write(path: Path, side: int) -> None:
    cv2.imwrite(str(path), np.full((side, side + 8, 3), side, np.uint8))


def write_images(folder: Path, count: int, w: int = 320, h: int = 240) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    for k in range(count):
        cv2.imwrite(str(folder / f"{k:04d}.jpg"), np.roll(base, k, axis=1))


def flat(samples: list[float], what: str) -> None:
    """Memory after the first quarter stays within 25 MB of its level then (a leak of the images, each 225 KB,
    would add over 150 MB by the end)."""
    quarter = len(samples) // 4
    early, late = max(samples[:quarter]), max(samples[quarter:])
    assert late - early < 25, f"{what}: RSS grew from {early:.0f} MB to {late:.0f} MB"


@pytest.mark.slow
def test_memory_stays_flat_over_1000_images_drawn_and_written(tmp_path):
    write_images(tmp_path / "in", 1000)
    det = fast_detector()
    samples = []
    for r in det.predict(tmp_path / "in", stream=True, batch=8, out=tmp_path / "out"):
        samples.append(rss_mb())
    assert len(samples) == 1000 and len(list((tmp_path / "out").glob("*.jpg"))) == 1000
    flat(samples, "1000 images")


@pytest.mark.slow
def test_memory_stays_flat_over_a_video_of_3000_frames(tmp_path):
    clip = tmp_path / "long.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30, (160, 120))
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    for k in range(3000):
        writer.write(np.roll(base, k, axis=1))
    writer.release()
    det = fast_detector()
    samples = []
    stream = det.predict(clip, stream=True, batch=8, out=tmp_path / "out")
    for _ in stream:
        samples.append(rss_mb())
    (video,) = stream.writer.videos
    assert video.frames == 3000 and len(samples) == 3000
    flat(samples, "3000 frames")
