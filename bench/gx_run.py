"""`python -m bench.gx_run URL DIR [RESULT_FORMAT]`: validate a `refaudit export-gx` directory
with Great Expectations (one checkpoint) and print the failing counts per refaudit check id as
JSON. The benchmark times this process end to end, as it times `refaudit run`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from refaudit.gx_export import run_with_gx


def main(argv: list[str]) -> int:
    url, directory = argv[0], Path(argv[1])
    result_format = argv[2] if len(argv) > 2 else "SUMMARY"
    outcome = run_with_gx(url, directory, result_format=result_format)
    print(json.dumps({"counts": outcome.counts, "broken": outcome.broken}))
    return 1 if outcome.broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
