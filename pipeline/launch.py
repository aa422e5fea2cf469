"""The console script: the early start (`early`), then the CLI."""

from __future__ import annotations

import atexit

from . import early


def main() -> None:
    """`refaudit ...` and `python -m refaudit ...`."""
    early.start()  # before the imports below: they take ~0.3 s
    atexit.register(early.close)
    from .cli import main as cli_main

    cli_main()
