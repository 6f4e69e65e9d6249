"""Write a mirrored copy of a Pascal VOC data set: every photograph flipped left to right, its boxes with it, the
split lists copied. A detector should find mirrored objects as well as the originals; a model that does much
better on the originals has learnt their unmirrored views (see docs/experiments/raccoon-false-alarms.md).

    python experiments/mirror_voc.py ../shared/datasets/raccoon --out data/raccoon-mirrored
    detector eval --weights models/tinyssd-raccoon.pt --data data/raccoon-mirrored

The photographs are saved again as JPEG at quality 98 (PNG stays PNG): the copy differs from the source by the
flip and that re-encoding only.
"""

import argparse
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from PIL import Image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    src, dst = Path(args.source), Path(args.out)
    if dst.resolve() == src.resolve():
        raise SystemExit(f"--out {dst}: the source itself; give another folder")
    for sub in ("Annotations", "JPEGImages"):
        (dst / sub).mkdir(parents=True, exist_ok=True)
    shutil.copytree(src / "ImageSets", dst / "ImageSets", dirs_exist_ok=True)
    xmls = sorted((src / "Annotations").glob("*.xml"))
    for xml in xmls:
        tree = ET.parse(xml)
        name = tree.getroot().findtext("filename")
        with Image.open(src / "JPEGImages" / name) as image:
            width = image.width
            image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(dst / "JPEGImages" / name, quality=98)
        for box in tree.getroot().iter("bndbox"):
            # VOC pixels are 1-based and inclusive: [xmin - 1, xmax] in a 0-based frame maps to [w - xmax, w - xmin + 1]
            xmin, xmax = float(box.findtext("xmin")), float(box.findtext("xmax"))
            box.find("xmin").text = f"{width - xmax + 1:g}"
            box.find("xmax").text = f"{width - xmin + 1:g}"
        tree.write(dst / "Annotations" / xml.name)
    print(f"{dst}: {len(xmls)} photographs mirrored, with their boxes")


if __name__ == "__main__":
    main()
