"""Where the course's folders are and how nbgrader is called on them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# The course's folders and files, as nbgrader_config.py names them too.
SOURCE_DIR = "solutions"
RELEASE_DIR = "exercises"
SUBMITTED_DIR = "submitted"
AUTOGRADED_DIR = "autograded"
FEEDBACK_DIR = "feedback"
GRADEBOOK = "gradebook.db"
GRADES_CSV = "grades.csv"
REPORT_DIR = "grading"  # grading/<assignment>/report.md, item_analysis.html, state/
ANALYSIS_PAGE = "item_analysis.html"

CELL_TIMEOUT = 60  # seconds a cell may run while grading, unless told otherwise


class CourseError(RuntimeError):
    """A problem with the course layout or an nbgrader run, stated for a human."""


def find_root() -> Path:
    """The folder holding nbgrader_config.py, searched upwards from the current
    directory, then from this package's checkout, so the tools work from anywhere
    inside the repository.
    """
    for start in (Path.cwd(), Path(__file__).resolve().parents[2]):
        for folder in [start.resolve(), *start.resolve().parents]:
            if (folder / "nbgrader_config.py").is_file():
                return folder
    raise CourseError(
        "no nbgrader_config.py found in the current folder or its parents: "
        "run this from inside the course repository"
    )


def assignments(root: Path) -> list[str]:
    """Every assignment name, i.e. every folder under solutions/, sorted."""
    source = root / SOURCE_DIR
    if not source.is_dir():
        raise CourseError(
            f"missing folder {source}: it should hold the source notebooks"
        )
    return sorted(
        p.name for p in source.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))
    )


def resolve_assignment(root: Path, name: str) -> str:
    """Full assignment name from an exact name or a unique prefix such as `ch01`."""
    names = assignments(root)
    if name in names:
        return name
    matches = [n for n in names if n.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(names) or "(none)"
    if not matches:
        raise CourseError(f"no assignment called {name!r}; known assignments: {known}")
    raise CourseError(f"{name!r} matches several assignments: {', '.join(matches)}")


def course_env(root: Path) -> dict[str, str]:
    """The Makefile's environment, for commands started from Python.

    This interpreter's bin folder comes first on PATH: nbgrader starts `alembic`
    from PATH, and notebooks' `python3` kernel must be this interpreter's.
    """
    bin_dir = str(Path(sys.executable).parent)
    return dict(
        os.environ,
        PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
        KERAS_BACKEND="torch",
        KERAS_HOME=str(root / ".keras"),
        PYTHONHASHSEED="0",
        OPENBLAS_NUM_THREADS="1",
    )


def run_nbgrader(
    root: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess:
    """Run `nbgrader <args>` in the course folder `root`, capturing its output."""
    command = [sys.executable, "-m", "nbgrader", *args]
    result = subprocess.run(
        command,
        cwd=root,
        env=course_env(root),
        capture_output=True,
        text=True,
    )
    if check and result.returncode != 0:
        raise CourseError(
            f"`nbgrader {' '.join(args)}` failed with exit code {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result
