"""The real gradebook: registering the assignment and merging workers' results.

Only the parent process writes here, one student at a time, so sqlite never sees
two writers. Manual scores and extensions that an instructor entered survive a
regrade: only automatic scores, comments, late penalties and flags are replaced.
"""

from __future__ import annotations

import contextlib
import warnings

from nbgrader.api import Gradebook
from sqlalchemy.exc import SAWarning

from coursetools.results import StudentResult


@contextlib.contextmanager
def opened(db_url: str):
    """nbgrader's gradebook, whose queries trip SQLAlchemy's autoflush warnings
    (harmless, and they would fill the instructor's terminal)."""
    with warnings.catch_warnings(), Gradebook(db_url) as gb:
        warnings.simplefilter("ignore", SAWarning)
        yield gb


def merge(gb: Gradebook, assignment: str, result: StudentResult) -> None:
    """Write one student's result into the gradebook `gb`, from :func:`opened`
    (a row even when ungraded). One gradebook serves a whole run: opening it (a
    new SQLAlchemy engine, a schema check, every query compiled again) costs
    about as much as merging a student, 0.03 s each when measured alone."""
    gb.update_or_create_student(result.student)
    kwargs = {"timestamp": result.timestamp} if result.timestamp else {}
    submission = gb.update_or_create_submission(assignment, result.student,
                                                **kwargs)
    flagged = result.needs_attention()
    for notebook in submission.notebooks:
        entry = result.notebooks.get(notebook.name)
        cells = entry.cells if entry is not None and entry.graded else {}
        for grade in notebook.grades:
            got = cells.get(grade.name)
            grade.auto_score = got.score if got else 0.0
            grade.needs_manual_grade = bool(got and got.needs_manual_grade)
        comments = entry.comments if entry is not None else {}
        for comment in notebook.comments:
            comment.auto_comment = comments.get(comment.name)
        notebook.late_submission_penalty = entry.late_penalty if entry else None
        notebook.flagged = flagged
    gb.db.commit()


# assignment_submissions is [] for an assignment the gradebook does not know.
def scores(db_url: str, assignment: str) -> tuple[dict, dict]:
    """(score, max_score) of every student with a submission of `assignment`: the
    score after the late penalty, as `nbgrader export` computes it; and (seconds
    past the due date and extension, points taken off for it) of each late one."""
    with opened(db_url) as gb:
        subs = gb.assignment_submissions(assignment)
        return ({sub.student_id: (max(0.0, sub.score - sub.late_submission_penalty),
                                  float(sub.max_score)) for sub in subs},
                {sub.student_id: (float(sub.total_seconds_late),
                                  float(sub.late_submission_penalty))
                 for sub in subs if sub.total_seconds_late})
