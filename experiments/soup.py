"""A uniform model soup of runs of one recipe (detector.engine.soup): their mean weights in OUT/last.pt, with the
runs' results.csv rows in OUT/results.csv (so that ``detector export --card`` on OUT/last.pt states the time of
all the runs together). The raccoon recipe's last step:

    python experiments/soup.py runs/raccoon-s0/last.pt runs/raccoon-s1/last.pt --out runs/raccoon-soup
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from detector.engine.checkpoint import save_checkpoint
from detector.engine.soup import average_checkpoints
from detector.models.checkpoint import CheckpointError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="last.pt of each run (two or more)")
    parser.add_argument("--out", required=True, help="folder for last.pt and results.csv")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        soup = average_checkpoints(args.checkpoints)
        rows = []
        for path in args.checkpoints:
            results = Path(path).parent / "results.csv"
            if results.is_file():
                rows += list(csv.DictReader(results.read_text().splitlines()))
        save_checkpoint(soup, out / "last.pt")
    except (CheckpointError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if rows:
        with open(out / "results.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    print(f"{out / 'last.pt'}: the mean of {len(args.checkpoints)} runs' weights")
    return 0


if __name__ == "__main__":
    sys.exit(main())
