"""Autograde every submission of one assignment, write feedback and a grades CSV.

Usage: python -m coursetools.grade ASSIGNMENT      (or: make grade ASSIGNMENT=ch01)

Submissions go in submitted/<student>/<assignment>/<notebook>.ipynb. The gradebook
is created on first use; the assignment is registered from solutions/ without
touching the committed exercises/.
"""

from __future__ import annotations

import sys
from pathlib import Path

from coursetools.course import (
    SUBMITTED_DIR,
    CourseError,
    find_root,
    resolve_assignment,
    run_nbgrader,
)

GRADES_CSV = "grades.csv"


def students_with_submission(root: Path, assignment: str) -> list[str]:
    """Student ids that have a submitted/<student>/<assignment>/ folder."""
    submitted = root / SUBMITTED_DIR
    if not submitted.is_dir():
        return []
    return sorted(p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir())


def register_assignment(root: Path, assignment: str) -> None:
    """Record the assignment's cells and points in the gradebook.

    generate_assignment does that; its student notebooks go to a scratch folder so
    that grading never rewrites exercises/.
    """
    scratch = root / "_build" / "grading-release"
    run_nbgrader(
        root,
        "generate_assignment",
        assignment,
        "--force",
        f"--CourseDirectory.release_directory={scratch}",
    )


def grade(root: Path, assignment: str) -> Path:
    """Autograde, generate feedback and export grades; return the CSV's path."""
    students = students_with_submission(root, assignment)
    if not students:
        raise CourseError(
            f"no submissions for {assignment}: expected "
            f"{SUBMITTED_DIR}/<student>/{assignment}/<notebook>.ipynb under {root}"
        )
    register_assignment(root, assignment)
    run_nbgrader(root, "autograde", assignment, "--force")
    run_nbgrader(root, "generate_feedback", assignment, "--force")
    csv_path = root / GRADES_CSV
    run_nbgrader(root, "export", f"--to={csv_path}")
    print(f"graded {len(students)} submission(s) of {assignment}")
    print(f"grades:   {csv_path}")
    print(f"feedback: {root / 'feedback'}/<student>/{assignment}/")
    return csv_path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m coursetools.grade ASSIGNMENT", file=sys.stderr)
        return 2
    try:
        root = find_root()
        grade(root, resolve_assignment(root, argv[0]))
    except CourseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
