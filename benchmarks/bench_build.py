"""Time a clean build of the book (every chapter executed) and a no-change rebuild.

    python benchmarks/bench_build.py [--keep DIR]

Builds into a fresh temporary --path-output with the same flags as `make book`
(-n -W --keep-going), so nothing cached in the repository's _build/ helps, then
runs the same command again with nothing changed. Budget (2 CPU cores): clean
build at most 300 s, no-change rebuild at most 15 s. Exits 1 over budget or when
a build fails.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from coursetools.book import build as build_book

ROOT = Path(__file__).resolve().parents[1]
BUDGET = {"clean build": 300.0, "no-change rebuild": 15.0}


def build(output: Path) -> tuple[float, int, str]:
    start = time.perf_counter()
    result = build_book(ROOT, output)
    return time.perf_counter() - start, result.returncode, result.stdout + result.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--keep", type=Path, help="build here and keep it (must not exist)"
    )
    args = parser.parse_args()
    output = args.keep or Path(tempfile.mkdtemp(prefix="bench-book-"))
    ok = True
    try:
        for name in BUDGET:
            seconds, code, log = build(output)
            status = "ok" if code == 0 else f"FAILED (exit {code})"
            over = seconds > BUDGET[name]
            # Others may edit chapters meanwhile: say how much was really re-read.
            reread = re.search(
                r"updating environment: .*?(\d+ added, \d+ changed)", log
            )
            executed = log.count("Executed notebook in")
            print(
                f"{name:18s} {seconds:7.1f} s  (budget {BUDGET[name]:.0f} s)  {status}"
                + ("  OVER BUDGET" if over else "")
                + f"  [{reread[1] if reread else 'nothing re-read'}; "
                f"{executed} notebooks executed]",
                flush=True,
            )
            if code != 0:
                warnings = [
                    ln for ln in log.splitlines() if "WARNING" in ln or "ERROR" in ln
                ]
                print("\n".join(w for w in warnings if "IPKernelApp" not in w)[-3000:])
            ok = ok and code == 0 and not over
        pages = len(list((output / "_build" / "html").rglob("*.html")))
        print(f"{pages} HTML pages, cpus available: {os.cpu_count()}")
    finally:
        if args.keep is None:
            shutil.rmtree(output, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
