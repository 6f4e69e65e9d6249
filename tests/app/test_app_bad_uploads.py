"""Every tab that takes an image names a bad upload in the page, in Chromium: a text file named .jpg, an empty file, a
truncated JPEG; a 16-bit RGB PNG is converted and used. The app as users start it (``python app.py``)."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from browser import open_app, screenshots
from PIL import Image
from test_app_e2e import app_url  # noqa: F401 - app_url: a fixture

# tab -> (its image input, its button, where it writes its text, what a good run writes there)
TABS = {
    "Anchors": ("anchors-image", "Draw anchors", "anchors-text", "anchors:"),
    "Matching": ("match-image", "Match", "match-text", "anchors are positives"),
    "NMS": ("nms-image", "Run NMS", "nms-text", "kept after NMS"),
}


@pytest.fixture
def bad_files(tmp_path) -> dict[str, Path]:
    files = {"text": tmp_path / "notes.jpg", "empty": tmp_path / "empty.jpg", "truncated": tmp_path / "cut.jpg",
             "deep": tmp_path / "deep16.png"}
    files["text"].write_text("not an image, whatever its name says")
    files["empty"].write_bytes(b"")
    photo = (np.random.default_rng(0).integers(0, 255, (300, 400, 3))).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "whole.jpg", quality=90)
    files["truncated"].write_bytes((tmp_path / "whole.jpg").read_bytes()[:4000])
    deep = np.zeros((240, 320, 3), np.uint16)
    deep[60:180, 80:240] = (60000, 20000, 40000)  # a 16-bit RGB PNG, as a scientific camera writes it
    cv2.imwrite(str(files["deep"]), deep, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return files


EXPECTED = {"text": "notes.jpg: not an image", "empty": "empty.jpg: empty file",
            "truncated": "cut.jpg: corrupt or truncated image"}


def text_of(page, element_id: str) -> str:
    return page.locator(f"#{element_id}").inner_text()


@pytest.mark.slow
def test_every_tab_names_a_bad_upload_and_takes_a_16_bit_png(app_url, bad_files, tmp_path):  # noqa: F811
    shots = screenshots(tmp_path)
    with open_app(app_url) as page:
        for kind, path in bad_files.items():  # the Detect tab: each upload detected at once, or named
            page.locator("input[type=file]").first.set_input_files(str(path))
            if kind == "deep":  # the only upload that decodes: the summary says what it found
                page.wait_for_function("document.querySelector('#summary')?.innerText.includes('on cpu')",
                                       timeout=60_000)
            else:
                page.wait_for_function(f"document.querySelector('#messages')?.innerText.includes({EXPECTED[kind]!r})",
                                       timeout=60_000)
        page.screenshot(path=str(shots / "detect-bad-uploads.png"), full_page=True)
        for tab, (image_id, button, text_id, good) in TABS.items():
            page.get_by_role("tab", name=tab).click()
            for kind, path in bad_files.items():
                page.locator(f"#{image_id} input[type=file]").set_input_files(str(path))
                page.wait_for_timeout(700)
                page.get_by_role("button", name=button).click()
                want = good if kind == "deep" else EXPECTED[kind]
                page.wait_for_function(f"document.querySelector('#{text_id}')?.innerText.includes({want!r})",
                                       timeout=60_000)
                said = text_of(page, text_id)
                assert "Traceback" not in said and "internal error" not in said, (tab, kind, said)
                page.screenshot(path=str(shots / f"{tab.lower()}-{kind}.png"), full_page=True)
                clear = page.locator(f"#{image_id} button[aria-label='Clear'], #{image_id} button[title='Clear']")
                if clear.count():
                    clear.first.click()
                    page.wait_for_timeout(300)
        assert "Traceback" not in page.content()
