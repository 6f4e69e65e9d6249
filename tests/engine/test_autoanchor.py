"""--anchors auto: the boxes as the model sees them, and a fit that raises coverage where the anchors are poor."""

from pathlib import Path

import numpy as np
import pytest
import torch

from detector.data.records import ImageRecord
from detector.engine.autoanchor import describe_fit, fit_anchors, input_boxes
from detector.models.tiny_ssd import tiny_ssd


def record(boxes, w: int = 256, h: int = 256) -> ImageRecord:
    return ImageRecord(Path("unused.png"), w, h, np.asarray(boxes, np.float32).reshape(-1, 4), np.zeros(len(boxes), int))


def test_input_boxes_by_hand():
    """A 200 x 100 image at 64: stretched, (50, 25, 150, 75) is (0.25, 0.25, 0.75, 0.75); letterboxed (scale 0.32,
    16 rows of padding above) its y's are (25 * 0.32 + 16) / 64 = 0.375 and (75 * 0.32 + 16) / 64 = 0.625."""
    records = [record([[50, 25, 150, 75]], w=200, h=100), record([]), record([[0, 0, 256, 128]])]
    torch.testing.assert_close(input_boxes(records, 64), torch.tensor([[0.25, 0.25, 0.75, 0.75], [0, 0, 1, 0.5]]))
    torch.testing.assert_close(input_boxes(records, 64, letterbox=True),
                               torch.tensor([[0.25, 0.375, 0.75, 0.625], [0, 0, 1, 0.5]]))
    assert input_boxes([record([])], 64).shape == (0, 4)


def test_fit_raises_coverage_where_the_anchors_are_poor():
    """Boxes of 4% to 12% of the side: the book's smallest anchor is 20%, so almost none is covered. The fit covers
    most of them, keeps 4 anchors per cell on 5 levels, and its sizes and ratios rebuild the model."""
    gen = torch.Generator().manual_seed(1)
    records = []
    for _ in range(40):
        wh = (torch.rand(5, 2, generator=gen) * 0.08 + 0.04) * 256
        xy = torch.rand(5, 2, generator=gen) * (256 - wh)
        records.append(record(torch.cat((xy, xy + wh), 1).numpy()))
    model = tiny_ssd(5)
    kwargs, report = fit_anchors(model, records, 256, generations=200)
    assert report["boxes"] == 200 and report["before"]["covered"] < 0.1
    assert report["after"]["covered"] > 0.7 and report["after"]["mean_iou"] > report["before"]["mean_iou"]
    assert report["used"] == "fitted" and kwargs == {"sizes": report["sizes"], "ratios": report["ratios"]}
    fitted = tiny_ssd(5, **kwargs)
    assert fitted.num_anchors == model.num_anchors == [4] * 5
    assert {k: v.shape for k, v in fitted.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    text = describe_fit(report)
    assert "using the fitted anchors" in text and f"{report['after']['covered'] * 100:.1f}%" in text


def test_too_few_boxes_keep_the_models_anchors():
    kwargs, report = fit_anchors(tiny_ssd(5), [record([[10, 10, 50, 50], [0, 0, 90, 200]])], 64)
    assert kwargs == {} and report["used"] == "model" and report["boxes"] == 2
    assert "fewer training boxes than the 10 sizes" in describe_fit(report)


def test_refuses_levels_with_different_ratios():
    model = tiny_ssd(5)
    model.anchor_gen.ratios[1] = (1.0, 3.0, 0.3)
    with pytest.raises(ValueError, match="one shared set"):
        fit_anchors(model, [record([[10, 10, 50, 50]])], 64)
