"""Regenerate docs/report.png: the report.html of a `refaudit demo` run, in headless Chromium.

    .venv/bin/python docs/screenshot.py            # writes docs/report.png
    .venv/bin/python docs/screenshot.py out.png    # somewhere else

It runs the demo (an embedded PostgreSQL, a small sample database) into a temporary
directory, then Debian's `chromium --headless --screenshot` at 1280x900 (the first screen of
the report). REFAUDIT_CHROMIUM names another browser.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT = 1280, 900


def chromium() -> str:
    for name in (os.environ.get("REFAUDIT_CHROMIUM"), "chromium", "chromium-browser"):
        found = name and shutil.which(name)
        if found:
            return found
    sys.exit("docs/screenshot.py: no chromium found; apt-get install chromium, or set "
             "REFAUDIT_CHROMIUM")


def main(argv: list[str]) -> int:
    target = Path(argv[0]).resolve() if argv else HERE / "report.png"
    with tempfile.TemporaryDirectory(prefix="refaudit-shot-") as tmp:
        out = Path(tmp) / "demo"
        subprocess.run(
            [sys.executable, "-m", "refaudit", "demo", "--out", str(out), "--requests", "300"],
            check=True, stdout=subprocess.DEVNULL, cwd=tmp,
        )  # fmt: skip
        subprocess.run(
            [
                chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                f"--user-data-dir={Path(tmp) / 'profile'}", f"--screenshot={target}",
                f"--window-size={WIDTH},{HEIGHT}", (out / "report.html").as_uri(),
            ],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
        )  # fmt: skip
    print(f"{target}: {target.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
