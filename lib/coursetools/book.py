"""Build the book as `make book` does, into any output folder.

The test suite and the build benchmark both call this, so they measure and check
the same command: `jupyter-book build -n -W --keep-going`, warnings as errors.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def build_env(root: Path) -> dict[str, str]:
    """The Makefile's environment, for callers that did not come through make."""
    bin_dir = str(Path(sys.executable).parent)
    return dict(
        os.environ,
        PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
        KERAS_BACKEND="torch",
        KERAS_HOME=str(root / ".keras"),
        PYTHONHASHSEED="0",
        OPENBLAS_NUM_THREADS="1",
    )


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
        command, capture_output=True, text=True, env=build_env(root), cwd=root
    )
