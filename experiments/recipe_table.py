"""The table of a recipe ablation (``experiments/recipe_ablation.sh``): one row per run, from its ``results.csv``.

    python experiments/recipe_table.py runs/ablation-raccoon [runs/ablation-shapes ...]

Per run: epochs done in the budget, mean training images/s, val AP/AP50 at the last epoch (what the budget gave)
and the best AP with its epoch, and the difference of the last AP from the ``default`` run of the same folder.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def summarize(csv_path: Path) -> dict:
    rows = list(csv.DictReader(csv_path.open()))
    scored = [r for r in rows if r["AP"]]
    last = scored[-1] if scored else {}
    best = max(scored, key=lambda r: float(r["AP"])) if scored else {}
    speeds = [float(r["images_per_s"]) for r in rows]
    return {"epochs": len(rows), "img_s": sum(speeds) / max(len(speeds), 1),
            "AP": float(last.get("AP") or "nan"), "AP50": float(last.get("AP50") or "nan"),
            "best_AP": float(best.get("AP") or "nan"), "best_AP50": float(best.get("AP50") or "nan"),
            "best_epoch": int(best.get("epoch") or 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args()
    print("| data | run | epochs | train img/s | val AP | val AP50 | AP vs default | best AP (epoch) | best AP50 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for folder in args.folders:
        runs = {p.parent.name: summarize(p) for p in sorted(folder.glob("*/results.csv"))}
        base = runs.get("default", {}).get("AP", float("nan"))
        for name, r in runs.items():
            print(f"| {folder.name} | {name} | {r['epochs']} | {r['img_s']:.1f} | {r['AP']:.3f} | {r['AP50']:.3f} | "
                  f"{r['AP'] - base:+.3f} | {r['best_AP']:.3f} ({r['best_epoch']}) | {r['best_AP50']:.3f} |")


if __name__ == "__main__":
    main()
