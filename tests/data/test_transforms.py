import numpy as np
import torch

from detector.core.geometry import letterbox_geometry
from detector.data.device import augment_batch
from detector.data.transforms import MEAN_RGB, apply, eval_transforms, train_transforms


def scene(rng, size=128):
    """A black image with two solid rectangles of known colours and their boxes."""
    img = np.zeros((size, size, 3), np.uint8)
    boxes = []
    for color in ((255, 0, 0), (0, 255, 0)):
        w, h = rng.integers(16, 48, 2)
        x, y = rng.integers(0, size - w), rng.integers(0, size - h)
        img[y : y + h, x : x + w] = color
        boxes.append([x, y, x + w, y + h])
    return img, np.array(boxes, np.float32), np.array([0, 1])


def extent(img, channel):
    """The box around the pixels where ``channel`` clearly dominates (the rectangle of that colour)."""
    c = img.astype(int)
    mask = (c[..., channel] > 100) & (c[..., channel] > c[..., 1 - channel] + 60)
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) if len(xs) else None


def assert_boxes_follow_pixels(img, boxes, labels, tol):
    for box, label in zip(boxes, labels):
        ext = extent(img, int(label))
        assert ext is not None, "a kept box has no object pixels"
        np.testing.assert_allclose(ext, box, atol=tol)


def test_train_preset_boxes_follow_the_objects():
    rng = np.random.default_rng(0)
    t = train_transforms(96)
    kept = 0
    for seed in range(40):
        img, boxes, labels = scene(rng)
        # make the rectangles never overlap, so each colour's extent is its box
        if boxes[0, 0] < boxes[1, 2] and boxes[1, 0] < boxes[0, 2] and boxes[0, 1] < boxes[1, 3] and boxes[1, 1] < boxes[0, 3]:
            continue
        out, b, lab, idx = apply(t, img, boxes, labels, seed=seed)
        assert out.shape == (96, 96, 3) and lab.tolist() == labels[idx].tolist()
        assert_boxes_follow_pixels(out, b, lab, tol=2.5)  # boxes clipped by a crop follow the cut pixels
        kept += len(b)
    assert kept > 20


def test_train_preset_is_deterministic_under_a_seed():
    img, boxes, labels = scene(np.random.default_rng(1))
    t = train_transforms(64)
    a, b = apply(t, img, boxes, labels, seed=5), apply(t, img, boxes, labels, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    outs = {apply(t, img, boxes, labels, seed=s)[0].tobytes() for s in range(6)}
    assert len(outs) > 3


def test_eval_presets_scale_boxes():
    img = np.zeros((50, 100, 3), np.uint8)
    boxes, labels = np.array([[10, 10, 30, 40]], np.float32), np.array([0])
    _, b, _, _ = apply(eval_transforms(200), img, boxes, labels)
    np.testing.assert_allclose(b, [[20, 40, 60, 160]], atol=1e-3)
    out, b, _, _ = apply(eval_transforms(200, letterbox=True), img, boxes, labels)
    assert out.shape == (200, 200, 3)
    np.testing.assert_allclose(b, [[20, 70, 60, 130]], atol=1e-3)  # scale 2, 50 px of padding on top


def test_letterbox_geometry_is_the_presets():
    """One rule for where an image lands in the letterbox: the function (used by the inference path) and
    albumentations' LongestMaxSize + centred PadIfNeeded (used by the presets) agree, rounding included."""
    assert letterbox_geometry(100, 200, 64) == (32, 64, 16, 0)  # scale 0.32, 16 rows of padding above and below
    assert letterbox_geometry(200, 100, 64) == (64, 32, 0, 16)
    assert letterbox_geometry(45, 90, 65) == (32, 65, 16, 0)  # 32.5 rounds to even; the odd row goes below
    assert letterbox_geometry(7, 300, 64) == (1, 64, 31, 0)
    for (h, w) in [(100, 200), (45, 90), (91, 45), (7, 300), (333, 101), (64, 64), (10, 11)]:
        for size in (64, 65, 97):
            image = np.full((h, w, 3), 255, np.uint8)
            out = eval_transforms(size, letterbox=True)(image=image, bboxes=np.zeros((0, 4)), labels=np.zeros(0),
                                                        indices=np.zeros(0))["image"]
            ys, xs = np.nonzero((out == 255).all(-1))
            new_h, new_w, top, left = letterbox_geometry(h, w, size)
            assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == (top, top + new_h, left, left + new_w), (h, w, size)
            assert (out[:top] == MEAN_RGB).all() and (out[top + new_h:] == MEAN_RGB).all()


def test_train_preset_letterbox_keeps_the_aspect():
    """With letterbox the train preset scales both axes alike (after its crop), so a box that no crop cut keeps
    its shape; without it, a wide image is squashed."""
    rng = np.random.default_rng(2)
    ratios = {}
    for letterbox in (False, True):
        t, found = train_transforms(96, letterbox=letterbox), []
        for seed in range(30):
            img, boxes, labels = scene(rng)
            img, boxes = np.ascontiguousarray(img[::2]), boxes * [1, 0.5, 1, 0.5]  # 128 x 64: twice as wide
            if (boxes[0, :2] < boxes[1, 2:]).all() and (boxes[1, :2] < boxes[0, 2:]).all():
                continue  # overlapping rectangles: a colour's extent is not its box
            out, b, lab, idx = apply(t, img, boxes, labels, seed=seed)
            assert out.shape == (96, 96, 3)
            assert_boxes_follow_pixels(out, b, lab, tol=2.5)
            sx, sy = (b[:, 2] - b[:, 0]) / (boxes[idx, 2] - boxes[idx, 0]), (b[:, 3] - b[:, 1]) / (boxes[idx, 3] - boxes[idx, 1])
            found += (sx / sy).tolist()
        ratios[letterbox] = np.array(found)
    assert (np.abs(ratios[True] - 1) < 0.05).mean() > 0.6  # the others were cut by a crop
    assert (np.abs(ratios[False] - 1) < 0.05).mean() < 0.3


def test_device_augmentation_boxes_follow_the_objects():
    rng = np.random.default_rng(2)
    images, boxes = [], []
    for _ in range(32):
        while True:
            img, b, _ = scene(rng, 128)
            if not (b[0, 0] < b[1, 2] and b[1, 0] < b[0, 2] and b[0, 1] < b[1, 3] and b[1, 1] < b[0, 3]):
                break
        images.append(torch.from_numpy(img).permute(2, 0, 1))
        boxes.append(torch.from_numpy(b) / 128)
    images, boxes = torch.stack(images), torch.stack(boxes)
    valid = torch.ones(32, 2, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    out, new_boxes, new_valid = augment_batch(images, boxes, valid, g)
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert ((new_boxes >= 0) & (new_boxes <= 1)).all()
    checked = 0
    for i in range(32):
        img = out[i].permute(1, 2, 0).numpy()
        for k in range(2):
            if new_valid[i, k]:
                ext = extent(img, k)
                assert ext is not None
                np.testing.assert_allclose(ext, new_boxes[i, k].numpy() * 128, atol=3.5)
                checked += 1
    assert checked > 30
    again = augment_batch(images, boxes, valid, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], out) and torch.equal(again[1], new_boxes)


def test_train_preset_steps_draw_independently():
    """The zoom-out and the flip are decided apart: an image at its own scale is seen mirrored about half the
    time (albumentations' set_random_seed seeded every step alike, so the flip came exactly with the zoom-out)."""
    img = np.zeros((60, 80, 3), np.uint8)
    img[:, :40, 0] = 255  # red left half, blue right half, no object: the crop keeps the whole image
    img[:, 40:, 2] = 255
    t = train_transforms(64)
    _count_zoom_and_flip(img, lambda seed: apply(t, img, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), seed))
    # the same for a preset built with a seed and run once (its first draws)
    _count_zoom_and_flip(img, lambda seed: apply(train_transforms(64, seed=seed), img, np.zeros((0, 4), np.float32),
                                                 np.zeros(0, np.int64)))


def _count_zoom_and_flip(img, run):
    seen = {}
    for seed in range(200):
        out = run(seed)[0].astype(int)
        red, blue = out[..., 0] - out[..., 2], out[..., 2] - out[..., 0]
        zoomed_out = bool(((np.abs(red) < 60) & (out.max(-1) < 200)).mean() > 0.05)  # the mean-colour canvas
        mirrored = bool(red[:, 32:].sum() > red[:, :32].sum())  # red went right
        assert (red > 60).any() and (blue > 60).any()
        seen[zoomed_out, mirrored] = seen.get((zoomed_out, mirrored), 0) + 1
    assert sorted(seen) == [(False, False), (False, True), (True, False), (True, True)], seen
    assert min(seen.values()) >= 30, seen  # each of the four about 50 of 200
