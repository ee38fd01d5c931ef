"""The grading pipeline on a catalog of bad submissions, graded in one run.

Each case in grading_catalog.py says what score and flag it must get. They are
graded together with a correct submission, in a fresh copy of the course without
a gradebook (as on a fresh clone), with small time limits.
"""

from __future__ import annotations

import csv
import hashlib
import html
import re
import shutil
import tempfile
from pathlib import Path

import grading_catalog
import nbtools
import pytest
from conftest import ASSIGNMENTS, ROOT
from coursetools.course import run_nbgrader
from coursetools.feedback import secret_lines
from coursetools.grade import Settings, grade
from coursetools.results import StudentResult
from nbgrader.api import Gradebook
from nbgrader.utils import notebook_hash

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ASSIGNMENTS, reason="no assignments in solutions/"),
]

ASSIGNMENT = next(
    (a for a in ASSIGNMENTS if a.startswith("ch01")),
    ASSIGNMENTS[0] if ASSIGNMENTS else None,
)
SETTINGS = dict(jobs=2, timeout=10, notebook_timeout=60, memory_mb=2048, quiet=True)


def digest(folder):
    return {
        p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def graded(tmp_path_factory):
    """A fresh course, the whole catalog submitted, graded once."""
    course = tmp_path_factory.mktemp("grading-course")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    shutil.copytree(ROOT / "exercises" / ASSIGNMENT, course / "exercises" / ASSIGNMENT)
    catalog, cases = grading_catalog.build(course, ASSIGNMENT)
    for case in cases:
        folder = course / "submitted" / case.student / ASSIGNMENT
        folder.mkdir(parents=True)
        for name, data in case.files.items():
            (folder / name).write_bytes(data)
    before = {
        "submitted": digest(course / "submitted"),
        "exercises": digest(course / "exercises"),
    }
    assert not (course / "gradebook.db").exists()
    summary = grade(course, ASSIGNMENT, Settings(**SETTINGS))
    return course, catalog, {c.student: c for c in cases}, summary, before


def grades_csv(course):
    with (course / "grades.csv").open() as handle:
        return {
            r["student_id"]: r
            for r in csv.DictReader(handle)
            if r["assignment"] == ASSIGNMENT
        }


def report_rows(course):
    with (course / "grading" / ASSIGNMENT / "report.csv").open() as handle:
        return {r["student"]: r for r in csv.DictReader(handle)}


def codes(course, student):
    state = (course / "grading" / ASSIGNMENT / "state" / f"{student}.json").read_text()
    return {f.code for f in StudentResult.from_json(state).all_findings()}


CASES = [
    "correct",
    "blank",
    "bad_timestamp",
    "padded_timestamp",
    "loop",
    "swallow",
    "memory",
    "crash",
    "huge_output",
    "stderr",
    "deleted_test",
    "edited_test",
    "points",
    "cell_type",
    "duplicated",
    "renamed",
    "stripped",
    "invalid_json",
    "non_utf8",
    "import_error",
    "reference",
]


@pytest.mark.parametrize("student", CASES)
def test_case_gets_its_score_and_flag(graded, student):
    course, catalog, cases, summary, _ = graded
    if student not in cases:
        pytest.skip(f"{student} does not apply to {ASSIGNMENT}")
    case = cases[student]
    score, max_score = summary.scores[student]
    assert max_score == catalog.total
    assert score == pytest.approx(case.expected_score), f"{student}: {case.why}"
    found = codes(course, student)
    assert case.flags <= found, f"{student} should be flagged {case.flags}, got {found}"
    attention = report_rows(course)[student]["needs_attention"] == "yes"
    assert attention == bool(case.flags - {"stderr"}), found


def test_every_student_has_a_row_and_the_correct_one_full_marks(graded):
    course, catalog, cases, summary, _ = graded
    rows = grades_csv(course)
    assert set(rows) == set(cases)
    assert float(rows["correct"]["score"]) == catalog.total
    assert set(report_rows(course)) == set(cases)
    assert sorted(summary.graded) == sorted(cases)


def test_submissions_and_release_are_never_modified(graded):
    course, _, _, _, before = graded
    assert digest(course / "submitted") == before["submitted"]
    assert digest(course / "exercises") == before["exercises"]


def test_fresh_course_gets_a_gradebook_and_feedback(graded):
    course, _, cases, _, _ = graded
    assert (course / "gradebook.db").is_file()
    for student in cases:
        pages = list((course / "feedback" / student / ASSIGNMENT).glob("*.html"))
        assert pages, f"no feedback for {student}"


@pytest.mark.parametrize("student", ["correct", "renamed"])
def test_nbgrader_release_feedback_publishes_the_pages(graded, tmp_path, student):
    # It reads the submit command's two files beside each page and names the
    # released page by a hash of the secret and the notebook's name, which
    # fetch_feedback takes from the file the student handed in.
    course, catalog, cases, _, _ = graded
    folder = course / "feedback" / student / ASSIGNMENT
    for name, data in grading_catalog.SUBMIT_FILES.items():
        assert (folder / name).read_bytes() == data
    done = run_nbgrader(course, "release_feedback", ASSIGNMENT, f"--student={student}",
                        f"--Exchange.root={tmp_path}",
                        "--CourseDirectory.course_id=rnn", check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    secret = grading_catalog.SUBMIT_FILES["submission_secret.txt"].decode()
    handed_in = next(n for n in cases[student].files if n.endswith(".ipynb"))
    released = tmp_path / "rnn" / "feedback" / (
        notebook_hash(secret=secret, notebook_id=handed_in[:-len(".ipynb")]) + ".html")
    assert released.read_bytes() == (folder / f"{catalog.name}.html").read_bytes()


def test_nbgrader_release_feedback_releases_every_page(graded, tmp_path):
    """It stops at the first page without both side files beside it: most of
    the catalog hands in none, and one a timestamp padded past 4 kB."""
    course, _, cases, _, _ = graded
    done = run_nbgrader(course, "release_feedback", ASSIGNMENT,
                        f"--Exchange.root={tmp_path}",
                        "--CourseDirectory.course_id=rnn", check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    pages = list((course / "feedback").glob(f"*/{ASSIGNMENT}/*.html"))
    assert {p.parent.parent.name for p in pages} == set(cases)
    handed_in = {s for s, c in cases.items() if "submission_secret.txt" in c.files}
    made = [(p.parent / "submission_secret.txt").read_text() for p in pages
            if p.parent.parent.name not in handed_in]
    assert len(set(made)) == len(made)  # a secret no one else has, each
    published = {notebook_hash(secret=(p.parent / "submission_secret.txt").read_text(),
                               notebook_id=p.stem) for p in pages}
    assert {p.stem for p in (tmp_path / "rnn" / "feedback").glob("*.html")} == published
    folder = course / "feedback" / "padded_timestamp" / ASSIGNMENT
    stamp = grading_catalog.SUBMIT_FILES["timestamp.txt"].decode()
    assert (folder / "timestamp.txt").read_text() == (stamp + " " * 100)[:100]


def test_feedback_hides_hidden_tests(graded):
    course, _, cases, _, _ = graded
    secret = set()
    for path in (course / "solutions" / ASSIGNMENT).glob("*.ipynb"):
        import nbformat

        secret |= secret_lines(nbformat.read(path, as_version=4))
    assert secret, "the source notebook has no hidden tests to hide"
    for page in (course / "feedback").rglob("*.html"):
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        lines = {line.strip() for line in text.splitlines()}
        assert "BEGIN HIDDEN TESTS" not in text, page
        leaked = sorted(secret & lines)
        assert not leaked, f"{page} shows hidden lines: {leaked[:3]}"


def test_calling_the_reference_is_explained(graded):
    course, _, cases, _, _ = graded
    if "reference" not in cases:
        pytest.skip("no answer function has a reference in rnnlib")
    graded_nb = nbtools.load(
        course
        / "autograded"
        / "reference"
        / ASSIGNMENT
        / f"{grading_catalog.build(course, ASSIGNMENT)[0].name}.ipynb"
    )
    text = "\n".join(str(o) for c in graded_nb["cells"] for o in c.get("outputs", []))
    assert "ReferenceWithheldError" in text
    assert "not available while your notebook is graded" in text
    page = next((course / "feedback" / "reference" / ASSIGNMENT).glob("*.html"))
    assert "not available while your notebook is graded" in html.unescape(
        page.read_text()
    )


def test_regrading_skips_finished_students_and_keeps_scores(graded):
    course, _, cases, summary, _ = graded
    again = grade(course, ASSIGNMENT, Settings(**SETTINGS))
    assert again.graded == [] and sorted(again.skipped) == sorted(cases)
    assert again.scores == summary.scores
    forced = grade(
        course,
        ASSIGNMENT,
        Settings(**SETTINGS, force=True, students=["correct", "blank", "stripped"]),
    )
    assert sorted(forced.graded) == ["blank", "correct", "stripped"]
    assert forced.scores == summary.scores


def test_report_only_redraws_the_report_and_analysis_without_grading(graded):
    course, _, cases, summary, _ = graded
    folder = course / "grading" / ASSIGNMENT
    before = {p: (folder / p).read_text() for p in ("report.md", "item_analysis.html")}
    autograded = digest(course / "autograded")
    for name in before:
        (folder / name).unlink()
    redrawn = grade(course, ASSIGNMENT, Settings(**SETTINGS, report_only=True))
    assert redrawn.graded == [] and redrawn.skipped == []
    assert redrawn.scores == summary.scores
    assert {p: (folder / p).read_text() for p in before} == before
    assert digest(course / "autograded") == autograded  # nothing was regraded
    assert f"{len(cases)} students graded" in before["item_analysis.html"]


def test_a_late_submission_shows_its_score_after_the_penalty(graded, tmp_path):
    """The report, its CSV and the run's scores agree with grades.csv (nbgrader's
    export): a walkthrough found the report showing 22 where the grade was 0."""
    course = tmp_path / "course"
    shutil.copytree(graded[0], course)
    with (course / "nbgrader_config.py").open("a") as handle:
        handle.write('\nc.LateSubmissionPlugin.penalty_method = "zero"\n')
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:  # 30 min late
        gb.update_or_create_assignment(ASSIGNMENT, duedate="2026-12-01 09:00:00 UTC")
    summary = grade(course, ASSIGNMENT, Settings(**SETTINGS, force=True,
                                                 students=["correct"]))
    total = graded[3].scores["correct"][0]
    assert total > 0 and summary.scores["correct"] == (0.0, total)
    row = report_rows(course)["correct"]
    assert float(row["score"]) == 0.0
    assert f"late by 30 min, {total:g} points off" in row["issues"]
    assert float(grades_csv(course)["correct"]["score"]) == 0.0
    assert summary.scores["blank"] == graded[3].scores["blank"]  # not late: no stamp


def test_a_page_that_cannot_be_made_in_time_leaves_the_scores(graded, tmp_path):
    """Red-team pass 7: a page whose rendering outlived the job's budget (ANSI
    escapes, attachments) or raised (a 5,000-digit line number) made the student
    'not graded', 0, every run. Pages now come from a child process with its own
    deadline: here too short for any page."""
    course = tmp_path / "course"
    shutil.copytree(graded[0], course)
    summary = grade(course, ASSIGNMENT, Settings(**SETTINGS, force=True, students=[
        "correct"], feedback_seconds=0.001))
    assert summary.scores["correct"] == graded[3].scores["correct"]
    assert "feedback_failed" in codes(course, "correct")
    page = next((course / "feedback" / "correct" / ASSIGNMENT).glob("*.html"))
    text = html.unescape(page.read_text())
    assert "could not be made" in text and "<table>" in text and "test_" in text
    assert "it took more than 0.001 s" in report_rows(course)["correct"]["details"]


def test_a_file_that_cannot_be_read_keeps_its_hand_in_time(graded):
    """nbgrader reads timestamp.txt only while it autogrades, and an unreadable
    notebook is never autograded: the grader reads it then."""
    stamps = {s: r["timestamp"] for s, r in grades_csv(graded[0]).items()}
    assert stamps["invalid_json"].startswith("2026-12-01 09:30:00")
    assert stamps["invalid_json"] == stamps["correct"]


def test_misnamed_and_overlong_folders_are_reported_as_not_graded(graded, tmp_path,
                                                                 capsys):
    """A misnamed folder was one warning at the start of the run, a folder name
    of 251-255 bytes crashed it (state/<name>.json is too long a name), and one
    with glob characters was never graded, every run (red-team pass 5)."""
    course = tmp_path / "course"
    shutil.copytree(graded[0], course)
    short, overlong = ASSIGNMENT.split("_")[0], "x" * 251
    misspelt = ASSIGNMENT.replace("_", "-").capitalize()
    # red-team pass 6: a name that nbgrader's unquoted export turns into rows of
    # grades.csv (one a full score for blank), one that nbgrader strips to
    # another's, one that prints as another's (NFD), one that clears the terminal
    forged = f"zz,,,,0.0,0.0,0.0,1\n{ASSIGNMENT},,,blank,,,,99,0,99,99"
    odd = {forged: "grades.csv", "blank ": "padded with spaces",
           "jose\u0301": "composed Unicode", "eve\x1bc": "grades.csv",
           "=1+2": "a formula", "@SUM(1+9)": "a formula"}  # pass 7
    for student, folder in (("gina", short), ("correct", short), ("hal", misspelt),
                            (overlong, ASSIGNMENT), ("[c]orrect*", ASSIGNMENT),
                            *((name, ASSIGNMENT) for name in odd)):
        shutil.copytree(course / "submitted" / "correct" / ASSIGNMENT,
                        course / "submitted" / student / folder)
    summary = grade(course, ASSIGNMENT, Settings(**{**SETTINGS, "quiet": False}))
    said = capsys.readouterr().out
    for name, why in odd.items():
        assert why in summary.not_graded[name], name
    assert set(grades_csv(course)) == set(grades_csv(graded[0]))  # no forged row
    assert "\x1b" not in said and "NOT GRADED: eve\\x1bc: " in said
    assert "\nNOT GRADED: zz,,,,0.0,0.0,0.0,1\\nch" in said  # the id on one line
    why = f"must be named {ASSIGNMENT}: submitted/gina/{short}/"
    assert summary.graded == [] and why in summary.not_graded["gina"]
    assert f"submitted/hal/{misspelt}/" in summary.not_graded["hal"]
    assert "251 bytes, more than the 250" in summary.not_graded[overlong]
    # nbgrader globs the id, even escaped: it graded a classmate's folder for it
    assert "a pattern to nbgrader" in summary.not_graded["[c]orrect*"]
    assert "correct" not in summary.not_graded  # graded from the right folder
    report = (course / "grading" / ASSIGNMENT / "report.md").read_text()
    not_graded = report.split("## Not graded")[1].split("##")[0]
    assert "gina" in not_graded and overlong in not_graded
    assert "correct" not in not_graded
    # Red-team pass 8: a redrawn report had no "Not graded" section at all.
    redrawn = grade(course, ASSIGNMENT, Settings(**SETTINGS, report_only=True))
    assert redrawn.not_graded == summary.not_graded
    assert (course / "grading" / ASSIGNMENT / "report.md").read_text() == report


def test_a_student_removed_from_the_gradebook_leaves_the_report(graded, tmp_path):
    """Red-team pass 8: after the guide's `nbgrader db student remove`, the report
    listed the student at 0 of 0, said "Scores are out of 0" (the first row's
    maximum), and the item analysis still counted their old score."""
    course = tmp_path / "course"
    shutil.copytree(graded[0], course)
    total = graded[3].scores["correct"][1]
    removed = min(graded[3].scores)  # the first row, alphabetically
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.remove_student(removed)
    summary = grade(course, ASSIGNMENT, Settings(**SETTINGS, report_only=True))
    assert "not in the gradebook" in summary.not_graded[removed]
    assert removed not in report_rows(course)
    report = (course / "grading" / ASSIGNMENT / "report.md").read_text()
    assert f"Scores are out of {total:g}." in report
    page = (course / "grading" / ASSIGNMENT / "item_analysis.html").read_text()
    assert f"{len(graded[3].scores) - 1} students graded" in page


def test_no_scratch_folder_outlives_its_run(graded, tmp_path):
    """Each worker copies the gradebook and the autograded notebooks, hidden
    tests included, into a scratch folder: an instructor walkthrough found 24
    left in /tmp after its runs (a pool's worker process never runs atexit)."""
    def scratch_folders():
        places = {Path(tempfile.gettempdir()), Path("/tmp")}
        return {p for place in places for p in place.glob("coursetools-*")}

    course = tmp_path / "course"
    shutil.copytree(graded[0], course)
    before = scratch_folders()
    summary = grade(course, ASSIGNMENT, Settings(**SETTINGS, force=True,
                                                 students=["correct", "blank"]))
    assert sorted(summary.graded) == ["blank", "correct"]
    assert scratch_folders() - before == set()


def test_a_grading_error_names_the_error_that_stopped_nbgrader(graded, tmp_path):
    """Under a 40 MB cap the kernel dies loading numpy: the reason given is that,
    not nbgrader's closing "see the above traceback" (its API returns the
    failure's traceback in its log)."""
    course = tmp_path / "course"
    shutil.copytree(graded[0], course)
    settings = Settings(**{**SETTINGS, "memory_mb": 40}, students=["correct"],
                        force=True)
    why = grade(course, ASSIGNMENT, settings).not_graded["correct"]
    assert why.endswith("RuntimeError: Kernel died before replying to kernel_info")
    assert "see the" not in why
