"""Shared fixtures: the repository's layout and a scratch nbgrader course."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

from coursetools.course import assignments, run_nbgrader  # noqa: E402

ASSIGNMENTS = assignments(ROOT)


def chapter_files() -> list[Path]:
    return sorted((ROOT / "book").glob("ch[0-9][0-9]_*.md"))


@pytest.fixture(scope="session")
def scratch_course(tmp_path_factory) -> Path:
    """A copy of the course config and sources with a freshly generated release.

    Tests grade here, never in the repository, so they cannot touch a real
    gradebook or the committed exercises/.
    """
    course = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions", course / "solutions")
    for name in ASSIGNMENTS:
        run_nbgrader(course, "generate_assignment", name, "--force")
    return course
