"""``python -m detector ...`` is ``detector ...`` (torchrun runs it for ``--devices N``)."""

from detector.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
