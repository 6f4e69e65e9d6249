"""Write the everyday photographs without raccoons that ``raccoon_false_positives.py`` scores a raccoon model on.

    python experiments/everyday_photos.py data/everyday

Twelve photographs that ship with Python packages (none of them in the raccoon set or used for its training):
scikit-image's astronaut, chelsea (a cat), coffee, rocket, camera, clock, coins, moon and hubble_deep_field
(grey ones as RGB), matplotlib's grace_hopper, scikit-learn's china and flower (left out, and said, when
scikit-learn is not installed), written as PNG with the pixels their packages decode. Their licences are their packages' (public domain or CC; see each package's data
README).
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

SKIMAGE = ("astronaut", "chelsea", "coffee", "rocket", "camera", "clock", "coins", "moon", "hubble_deep_field")


def photos() -> dict[str, np.ndarray]:
    import matplotlib.cbook
    import skimage.data

    out = {}
    for name in SKIMAGE:
        image = getattr(skimage.data, name)()
        out[f"{name}.png"] = np.stack([image] * 3, -1) if image.ndim == 2 else image[..., :3]
    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as im:
        out["grace_hopper.png"] = np.asarray(im.convert("RGB"))
    try:
        from sklearn.datasets import load_sample_image
    except ImportError:
        print("scikit-learn is not installed: china and flower left out (pip install scikit-learn)")
    else:
        out |= {f"{name}.png": load_sample_image(f"{name}.jpg") for name in ("china", "flower")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = photos()
    for name, image in written.items():
        Image.fromarray(image).save(out / name)  # PNG: the pixels as decoded, nothing re-encoded
    print(f"wrote {len(written)} photographs to {out}")


if __name__ == "__main__":
    main()
