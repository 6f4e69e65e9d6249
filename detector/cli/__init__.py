"""The ``detector`` command (``main``) and its subcommands: ``model`` (train, eval, predict, export), ``data``,
``classify``, ``demo``; ``common`` holds what they share. Only these modules see parsed arguments, and none of
them imports torch before a subcommand runs."""
