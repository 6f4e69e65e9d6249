"""Videos through the one inference path: every frame detected, boxes in the frame's pixels, drawn into a WebM
that reads back with the same frames, and one JSON record per frame."""

import json

import cv2
import numpy as np
import pytest
from test_predict import EXPECTED, FixedBox, fake_detector

from detector.evaluation.video import VideoError, read_frames


def detect_video(model, clip, out, max_frames=None, max_pixels=10**8, classes=None) -> dict:
    """A video through the API's one path, written as ``detector predict`` and the app write it."""
    from dataclasses import asdict

    det = fake_detector(model)
    done = det.predict(clip, out=out, max_frames=max_frames, max_pixels=max_pixels, classes=classes)
    (video,) = done.writer.videos
    return asdict(video)


def write_clip(path, frames=12, size=(160, 96), fps=10):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        w.write(np.full((size[1], size[0], 3), 10 * i, np.uint8))
    w.release()
    return path


def test_every_frame_is_detected_drawn_and_recorded(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=12)  # 12 frames: one batch of 8 and one of 4
    r = detect_video(FixedBox(), clip, tmp_path / "out")
    assert (r["frames"], r["objects"], r["width"], r["height"]) == (12, 12, 160, 96)
    doc = json.loads((tmp_path / "out" / "clip.json").read_text())
    assert [f["frame"] for f in doc["frames"]] == list(range(12)) and doc["fps"] == pytest.approx(10)
    det = doc["frames"][5]["detections"]  # the one JSON shape of a detection: a COCO result naming class and file
    x1, y1, x2, y2 = EXPECTED[(96, 160)]
    assert det == [{"image_id": 6, "file_name": str(clip), "category_id": 9, "category": "b",
                    "bbox": pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.01), "score": pytest.approx(0.9)}]
    back = cv2.VideoCapture(r["video"])
    count = 0
    while back.read()[0]:
        count += 1
    assert r["video"].endswith(".webm") and count == 12


def test_video_limits_and_bad_files(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=12)
    with pytest.raises(VideoError, match=r"clip.mp4: 12 frames \(1 s\), more than the 5 taken \(max_frames=5\)"):
        detect_video(FixedBox(), clip, tmp_path / "o1", max_frames=5)
    with pytest.raises(VideoError, match="over the cap"):
        detect_video(FixedBox(), clip, tmp_path / "o2", max_pixels=160 * 96 - 1)
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with pytest.raises(VideoError, match="fake.mp4: not a readable video"):
        detect_video(FixedBox(), fake, tmp_path / "o3")
    only = detect_video(FixedBox(), clip, tmp_path / "o4", classes=["a"])  # class 1 ("b") filtered out
    assert only["objects"] == 0 and only["frames"] == 12


def test_a_truncated_video_is_reported_not_passed_as_complete(tmp_path, capsys):
    """A WebM cut in half still opens and declares all its frames: the frames that decode are not passed off as
    the whole video (exit 1 in the CLI) unless --skip-bad-frames, which keeps them and says how many."""
    from pathlib import Path

    from detector.cli.main import main

    whole = tmp_path / "whole.webm"
    w = cv2.VideoWriter(str(whole), cv2.VideoWriter_fourcc(*"VP80"), 10, (160, 96))
    rng = np.random.default_rng(0)
    for _ in range(60):
        w.write(rng.integers(0, 255, (96, 160, 3), dtype=np.uint8))  # noise: every frame a real share of the file
    w.release()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    info, frames = read_frames(cut)
    assert info["frames"] == 60
    with pytest.raises(VideoError, match=r"cut.webm: \d+ of its 60 frames could be decoded \(frame \d+ onwards"):
        list(frames)
    shipped = str(Path(__file__).resolve().parents[2] / "models" / "tinyssd-shapes.pt")
    args = ["predict", str(cut), "--weights", shipped, "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "p1")]) == 1
    said = capsys.readouterr()
    err = said.err
    assert "pass --skip-bad-frames to keep the frames that could be" in err and "Traceback" not in err
    # what was written of it is removed, and nothing claims it was written (hostile pass, 2026-12-06)
    assert sorted(p.name for p in (tmp_path / "p1").iterdir()) == [] and "wrote" not in said.out
    assert main([*args, "--out", str(tmp_path / "p2"), "--skip-bad-frames"]) == 0
    kept = json.loads((tmp_path / "p2" / "cut.json").read_text())
    assert 0 < len(kept["frames"]) < 60
    assert "of its 60 frames could be decoded" in capsys.readouterr().err
    assert len(list(read_frames(whole)[1])) == 60  # the whole file: no report


def test_vid_stride_detects_every_nth_frame_and_writes_them_at_their_rate(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=12, fps=12)
    det = fake_detector(FixedBox())
    done = det.predict(clip, out=tmp_path / "out", vid_stride=3)
    assert [r.frame for r in done] == [0, 3, 6, 9]
    doc = json.loads((tmp_path / "out" / "clip.json").read_text())
    assert [f["frame"] for f in doc["frames"]] == [0, 3, 6, 9] and doc["fps"] == pytest.approx(4)
    assert [f["time_s"] for f in doc["frames"]] == [0.0, 0.25, 0.5, 0.75]  # the source's clock
    assert [f["detections"][0]["image_id"] for f in doc["frames"]] == [1, 4, 7, 10]
    back = cv2.VideoCapture(str(tmp_path / "out" / "clip.webm"))
    assert back.get(cv2.CAP_PROP_FPS) == pytest.approx(4, abs=0.1)
    count = 0
    while back.read()[0]:
        count += 1
    assert count == 4


def test_a_video_that_is_not_one_is_one_line_and_leaves_nothing(tmp_path, capsys):
    """A text file named .mp4: one "skipped" line (FFmpeg's own notes silenced), exit 1, no empty predictions.json
    and no "0 detections in 0 images" claim."""
    from pathlib import Path

    from detector.cli.main import main

    fake = tmp_path / "talk.mp4"
    fake.write_text("not a video")
    shipped = str(Path(__file__).resolve().parents[2] / "models" / "tinyssd-shapes.pt")
    assert main(["predict", str(fake), "--weights", shipped, "--device", "cpu", "--out", str(tmp_path / "o")]) == 1
    said = capsys.readouterr()
    assert said.out == "" and said.err.count("\n") == 1 and "talk.mp4: not a readable video" in said.err
    assert list((tmp_path / "o").iterdir()) == []
