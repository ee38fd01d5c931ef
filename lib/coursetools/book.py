"""Build the book as `make book` does, into any output folder.

The test suite and the build benchmark both call this, so they measure and check
the same command: `jupyter-book build -n -W --keep-going`, warnings as errors.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from coursetools.course import course_env


def build(root: Path, output: Path) -> subprocess.CompletedProcess:
    """Build the book at `root` into `output/_build/html`, capturing the log."""
    command = [
        str(Path(sys.executable).parent / "jupyter-book"),
        "build",
        str(root),
        "--path-output",
        str(output),
        "-n",
        "-W",
        "--keep-going",
    ]
    return subprocess.run(
        command, capture_output=True, text=True, env=course_env(root), cwd=root
    )
