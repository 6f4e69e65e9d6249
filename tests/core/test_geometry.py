"""The model's input geometry: fitting images to the square input and mapping boxes back, with literal cases."""

import cv2
import numpy as np
import pytest
import torch

from detector.core.geometry import MEAN_RGB, fit_image, fit_images, letterbox_geometry, resize, to_original


def chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)


def test_letterbox_geometry_literals():
    assert letterbox_geometry(100, 200, 64) == (32, 64, 16, 0)  # wide: rows 16..48
    assert letterbox_geometry(200, 100, 64) == (64, 32, 0, 16)  # tall: columns 16..48
    assert letterbox_geometry(101, 200, 64) == (32, 64, 16, 0)  # 32.32 rounds to 32
    assert letterbox_geometry(1, 1000, 64) == (1, 64, 31, 0)  # never below 1 px


def test_squash_and_letterbox_frames_map_literal_boxes_back():
    image = torch.zeros(3, 100, 200, dtype=torch.uint8)  # h 100, w 200
    x, frame = fit_image(image, 64)
    assert x.shape == (3, 64, 64) and frame == [100, 200, 64, 64, 0, 0]
    box = torch.tensor([[8.0, 20.0, 24.0, 40.0]])
    torch.testing.assert_close(to_original(box, torch.tensor(frame)), torch.tensor([[25.0, 31.25, 75.0, 62.5]]))
    x, frame = fit_image(image, 64, letterbox=True)
    assert frame == [100, 200, 32, 64, 16, 0]
    assert (x[:, :16] == torch.tensor(MEAN_RGB, dtype=torch.uint8).view(3, 1, 1)).all()  # the padding above
    torch.testing.assert_close(to_original(box, torch.tensor(frame)), torch.tensor([[25.0, 12.5, 75.0, 75.0]]))
    whole = to_original(torch.tensor([[0.0, 0.0, 64.0, 64.0]]), torch.tensor(frame))
    torch.testing.assert_close(whole, torch.tensor([[0.0, 0.0, 200.0, 100.0]]))  # the padding is not in the image


def test_resize_is_opencvs_bilinear_and_antialiased_from_twice_the_size():
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.integers(0, 255, (100, 120, 3), dtype=np.uint8), (0, 0), 2)
    ours = resize(chw(smooth), 64, 80).permute(1, 2, 0).numpy().astype(int)
    theirs = cv2.resize(smooth, (80, 64), interpolation=cv2.INTER_LINEAR).astype(int)
    assert np.abs(ours - theirs).max() <= 1  # fixed-point rounding apart
    stripes = np.zeros((256, 256, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: aliasing would keep only one of the two colours
    shrunk = resize(chw(stripes), 64, 64).float()
    assert (shrunk[..., 1:-1] - 127.5).abs().max() <= 1  # antialiased: the average grey (inside the border)
    flat = torch.full((3, 300, 100), 77, dtype=torch.uint8)
    assert (resize(flat, 64, 64) == 77).all() and resize(flat, 64, 64).dtype == torch.uint8
    assert resize(flat.float() / 255, 64, 64).dtype == torch.float32


def test_fit_images_takes_a_batch_at_size_as_it_is_and_a_ragged_list():
    batch = torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8)
    same, frames = fit_images(batch, 64)
    assert same is batch and frames.tolist() == [[64, 64, 64, 64, 0, 0]] * 2
    fitted, frames = fit_images([torch.zeros(3, 96, 160, dtype=torch.uint8), torch.zeros(3, 160, 96, dtype=torch.uint8)],
                                64, letterbox=True)
    assert fitted.shape == (2, 3, 64, 64)
    assert frames.tolist() == [[96, 160, 38, 64, 13, 0], [160, 96, 64, 38, 0, 13]]


@pytest.mark.parametrize("letterbox", [False, True])
def test_a_drawn_rectangle_comes_back_at_its_pixels(letterbox):
    image = np.full((96, 256, 3), 90, np.uint8)
    image[30:70, 40:140] = (250, 10, 10)  # (x1, y1, x2, y2) = (40, 30, 140, 70)
    x, frame = fit_image(chw(image), 128, letterbox)
    ys, xs = torch.nonzero((x.permute(1, 2, 0).int() - torch.tensor([250, 10, 10])).abs().max(-1).values <= 2,
                           as_tuple=True)
    found = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32)
    torch.testing.assert_close(to_original(found, torch.tensor(frame)), torch.tensor([[40.0, 30.0, 140.0, 70.0]]),
                               atol=2.0, rtol=0)
