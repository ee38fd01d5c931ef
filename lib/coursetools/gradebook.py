"""The real gradebook: registering the assignment and merging workers' results.

Only the parent process writes here, one student at a time, so sqlite never sees
two writers. Manual scores and extensions that an instructor entered survive a
regrade: only automatic scores, comments, late penalties and flags are replaced.
"""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

from coursetools.course import run_nbgrader


def register(root: Path, assignment: str, release_dir: Path) -> None:
    """Create the gradebook if needed and record the assignment's cells and points.

    generate_assignment does that; its student notebooks go to `release_dir`, so
    the committed exercises/ is never rewritten by grading.
    """
    run_nbgrader(root, "generate_assignment", assignment, "--force",
                 f"--CourseDirectory.release_directory={release_dir}")


def snapshot(db_path: Path, copy_path: Path) -> None:
    """A consistent copy of an sqlite file (the workers' starting gradebook)."""
    with sqlite3.connect(db_path) as src, sqlite3.connect(copy_path) as dst:
        src.backup(dst)


def merge(db_url: str, assignment: str, student: str, result: dict) -> None:
    """Write one student's result into the gradebook (a row even when ungraded)."""
    with warnings.catch_warnings(), Gradebook(db_url) as gb:
        # nbgrader's add_submission trips SQLAlchemy's autoflush warnings: harmless
        warnings.simplefilter("ignore", SAWarning)
        gb.update_or_create_student(student)
        kwargs = {"timestamp": result["timestamp"]} if result.get("timestamp") else {}
        submission = gb.update_or_create_submission(assignment, student, **kwargs)
        for notebook in submission.notebooks:
            entry = result.get("notebooks", {}).get(notebook.name, {})
            grades = entry.get("grades", {}) if entry.get("graded") else {}
            for grade in notebook.grades:
                got = grades.get(grade.name)
                grade.auto_score = got["auto_score"] if got else 0.0
                grade.needs_manual_grade = bool(got and got["needs_manual_grade"])
            comments = entry.get("comments", {})
            for comment in notebook.comments:
                comment.auto_comment = comments.get(comment.name)
            notebook.late_submission_penalty = entry.get("late_penalty")
            notebook.flagged = bool(result.get("attention"))
        gb.db.commit()


def scores(db_url: str, assignment: str) -> dict[str, tuple[float, float]]:
    """(score, max_score) of every student with a submission of `assignment`."""
    found = {}
    with Gradebook(db_url) as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            return found
        for sub in gb.assignment_submissions(assignment):
            found[sub.student_id] = (float(sub.score), float(sub.max_score))
    return found


def seconds_late(db_url: str, assignment: str) -> dict[str, float]:
    """How late each late submission of `assignment` is (due date and extension)."""
    with Gradebook(db_url) as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            return {}
        return {
            sub.student_id: float(sub.total_seconds_late)
            for sub in gb.assignment_submissions(assignment)
            if sub.total_seconds_late
        }


def has_submission(db_url: str, assignment: str, student: str) -> bool:
    with Gradebook(db_url) as gb:
        try:
            gb.find_submission(assignment, student)
        except MissingEntry:
            return False
    return True
