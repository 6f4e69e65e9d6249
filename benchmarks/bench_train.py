"""Training throughput, images/s over whole epochs (not the last batch), on the bananas preset at 256x256.

    python benchmarks/bench_train.py --device cuda --images 1000 --epochs 3        # on a GPU
    python benchmarks/bench_train.py --images 128 --epochs 1 --batch 32             # a short run on a CPU

Three figures:
- ``book``: the book's loop (D2L 14.7): its TinySSD with anchors from ``d2l.multibox_prior`` on every forward,
  ``d2l.multibox_target``, cross-entropy + masked L1, SGD (lr 0.2, wd 5e-4), all images held in a tensor and
  served by a DataLoader, batch 32, fp32. Needs ``pip install --no-deps d2l==1.0.3``.
- ``ours``: ``tiny_ssd_plus`` trained the way ``detector train`` does: the device-resident data path with
  on-device augmentation, AdamW, ``--amp`` (bf16) on a GPU, channels_last, optional ``--compile``.
- ``network``: our network alone, forward and backward on a fixed batch (the ceiling for ``ours``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
from torch import nn

from detector.data.check import prepare_split
from detector.data.device import DeviceData
from detector.data.synth import synth_dataset
from detector.models.registry import build_model

SIZE = 256  # the images' side (--size)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def book_loop(records, device, epochs, batch_size):
    """The book's TinySSD training loop, as in D2L 14.7 (its model code, inlined)."""
    from bench_core import import_d2l

    d2l = import_d2l()
    import cv2

    from detector.data.images import read_image
    from detector.models.ssd import BOOK_RATIOS, BOOK_SIZES, down_sample_blk

    class BookTinySSD(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.num_classes, idx = num_classes, [64, 128, 128, 128, 128]
            self.blks = nn.ModuleList([nn.Sequential(down_sample_blk(3, 16), down_sample_blk(16, 32), down_sample_blk(32, 64)),
                                       down_sample_blk(64, 128), down_sample_blk(128, 128), down_sample_blk(128, 128),
                                       nn.AdaptiveMaxPool2d((1, 1))])
            self.cls = nn.ModuleList(nn.Conv2d(c, 4 * (num_classes + 1), 3, padding=1) for c in idx)
            self.bbox = nn.ModuleList(nn.Conv2d(c, 16, 3, padding=1) for c in idx)

        def forward(self, X):
            anchors, cls_preds, bbox_preds = [], [], []
            for i in range(5):
                X = self.blks[i](X)
                anchors.append(d2l.multibox_prior(X, sizes=BOOK_SIZES[i], ratios=BOOK_RATIOS))
                cls_preds.append(self.cls[i](X).permute(0, 2, 3, 1).flatten(1))
                bbox_preds.append(self.bbox[i](X).permute(0, 2, 3, 1).flatten(1))
            anchors = torch.cat(anchors, dim=1)
            cls_preds = torch.cat(cls_preds, 1).reshape(X.shape[0], -1, self.num_classes + 1)
            return anchors, cls_preds, torch.cat(bbox_preds, 1)

    images = torch.stack([torch.from_numpy(cv2.resize(read_image(r.path), (SIZE, SIZE))).permute(2, 0, 1) for r in records])
    labels = torch.stack([torch.tensor([[0, *(r.boxes[0] / SIZE).tolist()]]) for r in records])  # (N, 1, 5)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images.float(), labels), batch_size, shuffle=True)
    net = BookTinySSD(1).to(device)
    trainer = torch.optim.SGD(net.parameters(), lr=0.2, weight_decay=5e-4)
    ce, l1 = nn.CrossEntropyLoss(reduction="none"), nn.L1Loss(reduction="none")
    sync(device)
    t, n = time.perf_counter(), 0
    for _ in range(epochs):
        for X, Y in loader:
            X, Y = X.to(device), Y.to(device)
            trainer.zero_grad()
            anchors, cls_preds, bbox_preds = net(X)
            bbox_labels, bbox_masks, cls_labels = d2l.multibox_target(anchors, Y)
            cls = ce(cls_preds.reshape(-1, 2), cls_labels.reshape(-1)).reshape(X.shape[0], -1).mean(dim=1)
            bbox = l1(bbox_preds * bbox_masks, bbox_labels * bbox_masks).mean(dim=1)
            (cls + bbox).mean().backward()
            trainer.step()
            n += len(X)
    sync(device)
    return n / (time.perf_counter() - t)


def our_loop(records, device, epochs, batch_size, amp, compile_):
    model = build_model("tiny_ssd_plus", 1).to(device).to(memory_format=torch.channels_last)
    step = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    data = DeviceData(records, SIZE, device)
    g = torch.Generator(device=device).manual_seed(0)
    dtype = torch.bfloat16 if amp else None

    def epoch():
        n = 0
        for batch in data.batches(batch_size, drop_last=True, generator=g):
            with torch.autocast(device.type, dtype=dtype, enabled=amp):
                loss = sum(step(batch["images"], batch).values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(batch["images"])
        return n

    epoch()  # warm-up (and compilation)
    sync(device)
    t = time.perf_counter()
    n = sum(epoch() for _ in range(epochs))
    sync(device)
    return n / (time.perf_counter() - t)


def network_only(device, batch_size, amp, compile_, steps=20):
    model = build_model("tiny_ssd_plus", 1).to(device).to(memory_format=torch.channels_last)
    net = torch.compile(model.head_outputs) if compile_ else model.head_outputs
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    x = torch.randint(0, 256, (batch_size, 3, SIZE, SIZE), dtype=torch.uint8, device=device)

    def one():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            cls, box, _ = net(x)
            loss = cls.float().square().mean() + box.float().square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        one()
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        one()
    sync(device)
    return steps * batch_size / (time.perf_counter() - t)


def main() -> None:
    import os
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256, help="batch of ours and of the network-only figure")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--amp", choices=("auto", "on", "off"), default="auto", help="bf16 autocast (auto: on a GPU)")
    parser.add_argument("--skip-book", action="store_true")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--steps", type=int, default=20, help="timed steps of the network-only figure")
    parser.add_argument("--json")
    args = parser.parse_args()
    global SIZE
    SIZE = args.size
    device = torch.device(args.device)
    amp = device.type == "cuda" if args.amp == "auto" else args.amp == "on"
    with tempfile.TemporaryDirectory() as tmp:
        path = synth_dataset(tmp, "bananas", train=args.images, val=0, size=SIZE,
                             workers=os.cpu_count() or 1)
        _, records = prepare_split(path, "train", log=lambda s: None)
        res = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
               "images": args.images, "epochs": args.epochs, "batch": args.batch, "amp_bf16": amp, "compile": args.compile}
        if not args.skip_book:
            res["book_images_per_s"] = book_loop(records, device, args.epochs, 32)
            print(f"book loop (batch 32, fp32): {res['book_images_per_s']:.0f} images/s over whole epochs")
        res["ours_images_per_s"] = our_loop(records, device, args.epochs, args.batch, amp, args.compile)
        print(f"ours (batch {args.batch}, device data path): {res['ours_images_per_s']:.0f} images/s over whole epochs")
        res["network_images_per_s"] = network_only(device, args.batch, amp, args.compile, args.steps)
        print(f"network alone (batch {args.batch}): {res['network_images_per_s']:.0f} images/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
