"""`python -m bench.child RESULT.json ARGS...`: run `python ARGS...` and write its wall time,
exit code, CPU time and peak RSS to RESULT.json.

Why a launcher: Linux keeps a process's pre-`exec` peak in its `ru_maxrss`, so a child forked
straight from the benchmark (which holds the generator, numpy and pandas) would report the
benchmark's memory, not its own. This launcher is small, so its children's peak is their own.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time


def main() -> None:
    result, args = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    # byte-compiled modules, as an install has them (pip compiles a wheel's modules): an
    # environment with PYTHONDONTWRITEBYTECODE would otherwise have every run of a checkout
    # compile refaudit's own modules from source again (~90 ms)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    code = subprocess.call([sys.executable, *args], env=env)
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(result, "w", encoding="utf-8") as out:
        json.dump({"wall_s": wall, "exit_code": code, "peak_rss_kb": usage.ru_maxrss,
                   "cpu_s": usage.ru_utime + usage.ru_stime}, out)


if __name__ == "__main__":
    main()
