import d2l_reference as book
import pytest
import torch

from detector.core.anchors import MultiLevelAnchors, generate_anchors


def test_book_worked_example_561x728():
    # D2L 14.4.1: a 561 x 728 image, sizes (0.75, 0.5, 0.25), ratios (1, 2, 0.5)
    anchors = generate_anchors(561, 728, [0.75, 0.5, 0.25], [1, 2, 0.5])
    assert anchors.shape == (2042040, 4)
    first = anchors.reshape(561, 728, 5, 4)[250, 250, 0]
    # the book prints tensor([0.06, 0.07, 0.63, 0.82]); exactly: centre (250.5/728, 250.5/561),
    # width 0.75 * 561/728, height 0.75
    torch.testing.assert_close(first, torch.tensor([0.06, 0.07, 0.63, 0.82]), atol=0.005, rtol=0)
    cx, cy, w, h = 250.5 / 728, 250.5 / 561, 0.75 * 561 / 728, 0.75
    torch.testing.assert_close(first, torch.tensor([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))


@pytest.mark.parametrize("height, width", [(1, 1), (4, 4), (3, 7), (32, 32), (10, 2)])
@pytest.mark.parametrize("sizes, ratios", [([0.2, 0.272], [1, 2, 0.5]), ([0.5], [1]), ([0.3, 0.1], [0.5, 3])])
def test_same_values_and_order_as_book(height, width, sizes, ratios):
    ours = generate_anchors(height, width, sizes, ratios)
    theirs = book.multibox_prior(torch.zeros(1, 3, height, width), sizes, ratios)[0]
    assert ours.shape == theirs.shape == (height * width * (len(sizes) + len(ratios) - 1), 4)
    torch.testing.assert_close(ours, theirs)


def test_tiny_ssd_has_5444_anchors():
    # TinySSD at 256 x 256: feature maps 32, 16, 8, 4, 1 with 4 anchors per cell
    sizes = [[0.2, 0.272], [0.37, 0.447], [0.54, 0.619], [0.71, 0.79], [0.88, 0.961]]
    gen = MultiLevelAnchors(sizes, [1, 2, 0.5])
    anchors = gen([(32, 32), (16, 16), (8, 8), (4, 4), (1, 1)])
    assert gen.num_anchors_per_cell == [4] * 5
    assert anchors.shape == (5444, 4)
    torch.testing.assert_close(anchors[: 32 * 32 * 4], generate_anchors(32, 32, sizes[0], [1, 2, 0.5]))
    torch.testing.assert_close(anchors[-4:], generate_anchors(1, 1, sizes[4], [1, 2, 0.5]))


def test_multi_level_cache_returns_same_tensor_per_shape():
    gen = MultiLevelAnchors([[0.2], [0.5]], [[1, 2], [1]])
    a = gen([(4, 4), (2, 2)])
    assert gen([(4, 4), (2, 2)]) is a
    b = gen([(8, 8), (2, 2)])
    assert b is not a and b.shape == (8 * 8 * 2 + 2 * 2 * 1, 4)
    assert gen([(4, 4), (2, 2)], dtype=torch.float64).dtype == torch.float64


def test_bad_arguments():
    with pytest.raises(ValueError, match="sizes"):
        generate_anchors(4, 4, [], [1])
    with pytest.raises(ValueError, match="ratios"):
        generate_anchors(4, 4, [0.2], [0, 1])
    with pytest.raises(ValueError, match="positive integers"):
        generate_anchors(0, 4, [0.2], [1])
    with pytest.raises(ValueError, match="levels"):
        MultiLevelAnchors([[0.2], [0.4]], [[1], [1], [1]])
    with pytest.raises(ValueError, match="expected 2 feature maps"):
        MultiLevelAnchors([[0.2], [0.4]], [1])([(4, 4)])
