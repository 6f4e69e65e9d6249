"""What every ``detector`` subcommand shares: the one-line error and its exit status."""

from __future__ import annotations

import sys


def fail(message: str, code: int = 1) -> int:
    """Print ``error: message`` to stderr and return the exit status ``code``."""
    print(f"error: {message}", file=sys.stderr)
    return code
