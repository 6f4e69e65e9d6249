"""Our Faster R-CNN against torchvision's, on the same data, schedule, input size and seed.

    python benchmarks/bench_faster_rcnn.py --data data/shapes --device cuda --epochs 12 --size 512 --json fr.json
    python benchmarks/bench_faster_rcnn.py --data data/shapes --speed-only --steps 20          # speed, no AP

For each of ``ours`` (``detector.models.faster_rcnn``, ResNet-50 FPN body unless ``--backbone``) and ``torchvision``
(``fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)``): training images/s (batch 8, bf16
autocast on a GPU), inference images/s at batch 8 and ms at batch 1 (fp32), peak GPU memory, and unless
``--speed-only`` the val AP after ``--epochs`` of training with the same AdamW schedule, augmentation-free
resized inputs, and seed. torchvision gets its own transform with min_size = max_size = ``--size`` so that
both see ``size x size`` images.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from detector.data.check import prepare_split
from detector.data.loader import DetectionDataset, make_loader
from detector.data.records import default_category_ids
from detector.evaluation.coco import coco_evaluate
from detector.evaluation.ground_truth import records_document
from detector.models.faster_rcnn import faster_rcnn


class TorchvisionAdapter(torch.nn.Module):
    """torchvision's model behind this project's contract (uint8 batch in, labels 0..C-1 out)."""

    def __init__(self, num_classes: int, size: int):
        super().__init__()
        from torchvision.models.detection import fasterrcnn_resnet50_fpn

        self.net = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes + 1,
                                           min_size=size, max_size=size)

    def forward(self, images, targets=None):
        x = [im.float() / 255 for im in images]
        if self.training:
            t = [{"boxes": b[v], "labels": lab[v] + 1} for b, lab, v in zip(targets["boxes"], targets["labels"], targets["valid"])]
            return self.net(x, t)
        out = self.net(x)
        return [{"boxes": o["boxes"], "scores": o["scores"], "labels": o["labels"] - 1} for o in out]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(name, model, loader, val_records, classes, cat_ids, device, args) -> dict:
    model.to(device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    amp = device.type == "cuda"
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seen, t0, steps = 0, None, 0
    epochs = 1 if args.speed_only else args.epochs
    for _epoch in range(epochs):
        for batch in loader:
            if args.speed_only and steps == args.steps + 2:
                break
            if steps == 2:
                sync(device)
                t0, seen = time.perf_counter(), 0
            model.train()
            images = batch["images"].to(device)
            targets = {k: batch[k].to(device) for k in ("boxes", "labels", "valid")}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = sum(model(images, targets).values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(images)
            steps += 1
    sync(device)
    result = {"train_images_per_s": seen / (time.perf_counter() - t0)}
    model.eval()
    x8 = batch["images"][:8].to(device)
    with torch.no_grad():
        for bs, key in ((len(x8), "infer_images_per_s"), (1, "infer_ms_batch1")):
            for _ in range(3):
                model(x8[:bs])
            sync(device)
            t = time.perf_counter()
            for _ in range(10):
                model(x8[:bs])
            sync(device)
            dt = (time.perf_counter() - t) / 10
            result[key] = bs / dt if bs > 1 else dt * 1e3
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    if not args.speed_only:
        results = []
        loader_val = make_loader(DetectionDataset(val_records, args.size), 8, shuffle=False, workers=args.workers)
        k = 0
        gt = records_document(val_records, classes, cat_ids)
        ids = [im["id"] for im in gt["images"]]
        with torch.no_grad():
            for b in loader_val:
                for det, (h, w) in zip(model(b["images"].to(device)), b["orig_sizes"].tolist()):
                    s = torch.tensor([w, h, w, h], device=det["boxes"].device) / args.size
                    for (x1, y1, x2, y2), sc, lab in zip((det["boxes"] * s).tolist(), det["scores"].tolist(), det["labels"].tolist()):
                        results.append({"image_id": ids[k], "category_id": cat_ids[lab], "bbox": [x1, y1, x2 - x1, y2 - y1], "score": sc})
                    k += 1
        metrics, _ = coco_evaluate(gt, classes, cat_ids, results)
        result.update({"AP": metrics["AP"], "AP50": metrics["AP50"]})
    print(name, json.dumps({k: round(v, 4) for k, v in result.items()}))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/shapes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--backbone", default="tv_resnet50")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json")
    args = parser.parse_args()
    device = torch.device(args.device)
    data, train_records = prepare_split(args.data, "train")
    _, val_records = prepare_split(args.data, "val", data=data)
    cat_ids = default_category_ids(data.classes, data.category_ids)
    out = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "size": args.size}
    for name, build in (("ours", lambda: faster_rcnn(len(data.classes), backbone=args.backbone)),
                        ("torchvision", lambda: TorchvisionAdapter(len(data.classes), args.size))):
        torch.manual_seed(0)
        loader = make_loader(DetectionDataset(train_records, args.size), args.batch, shuffle=True, workers=args.workers,
                             drop_last=True, seed=0)
        out[name] = run(name, build(), loader, val_records, data.classes, cat_ids, device, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
