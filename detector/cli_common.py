"""What the ``detector`` subcommands share: the one-line error and its exit status, and for the training
commands the torchrun relaunch of ``--devices N`` and the closing line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def fail(message: str, code: int = 1) -> int:
    """Print ``error: message`` to stderr and return the exit status ``code``."""
    print(f"error: {message}", file=sys.stderr)
    return code


def relaunch(args: argparse.Namespace, module: str, words: int) -> int | None:
    """With ``--devices N`` (N > 1) outside torchrun: run this same command as N DDP processes through torchrun
    and return its exit status; otherwise None. ``words``: how many subcommand words precede the options."""
    if getattr(args, "devices", 1) <= 1 or "WORLD_SIZE" in os.environ:
        return None
    from detector.distributed import launch, strip_devices

    return launch(module, strip_devices(args.argv[words:]), args.devices)


def report_done(args: argparse.Namespace, metrics_text: str) -> None:
    """``done: METRICS; weights in RUN/best.pt``, printed by rank 0 only (every rank runs the command)."""
    if os.environ.get("RANK", "0") == "0":
        run = Path(args.resume).parent if args.resume else Path(args.out)
        print(f"done: {metrics_text}; weights in {run}/best.pt")
