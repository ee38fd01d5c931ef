"""Every exercise under sealed grading: exact scores, and no path around the work.

For each assignment one grading run (``coursetools.grade``, sandbox on) takes
the solution (full marks), the blank release (0), a half-done submission (the
points of the parts it answers) and one submission per delegation form of
``delegation.py`` (0 on every part whose function delegates). Expected scores
come from the source notebook's structure, never from a grading run.
"""

from __future__ import annotations

import csv
import shutil

import delegation
import nbtools
import pytest
from conftest import ASSIGNMENTS, ROOT
from coursetools.grade import Settings, grade

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ASSIGNMENTS, reason="no assignments in solutions/"),
]


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def graded(request, tmp_path_factory):
    name = request.param
    course = tmp_path_factory.mktemp(f"delegation-{name[:4]}")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / name, course / "solutions" / name)
    shutil.copytree(ROOT / "exercises" / name, course / "exercises" / name)
    expected: dict[str, tuple[float, str]] = {}
    for source in sorted((course / "solutions" / name).glob("*.ipynb")):
        release = nbtools.load(course / "exercises" / name / source.name)
        exercise = delegation.Exercise(name, nbtools.load(source), release)
        submissions = {
            "full": (exercise.full, exercise.total),
            "blank": (release, 0.0),
            "half": exercise.half(),
        }
        for form, make_body in delegation.forms(exercise).items():
            nb, score = exercise.delegating(make_body)
            if score < exercise.total:  # the form applies to some function
                submissions[form] = (nb, score)
        for student, (nb, score) in submissions.items():
            nbtools.save(nb, course / "submitted" / student / name / source.name)
            total = expected.get(student, (0.0, ""))[0] + score
            expected[student] = (total, f"{exercise.total:g}")
    grade(course, name, Settings(jobs=2, quiet=True, feedback=False))
    with (course / "grades.csv").open() as handle:
        rows = {r["student_id"]: r for r in csv.DictReader(handle)
                if r["assignment"] == name}
    return name, expected, rows


def test_every_submission_gets_exactly_its_expected_score(graded):
    name, expected, rows = graded
    assert set(rows) == set(expected), f"{name}: graded {sorted(rows)}"
    wrong = {
        student: f"scored {float(rows[student]['score']):g}, expected {score:g}"
        for student, (score, _) in expected.items()
        if abs(float(rows[student]["score"]) - score) > 1e-9
    }
    assert not wrong, f"{name}: {wrong}"


def test_solution_full_blank_zero_and_every_form_was_tried(graded):
    name, expected, rows = graded
    assert float(rows["full"]["score"]) == float(rows["full"]["max_score"]) > 0
    assert float(rows["blank"]["score"]) == 0
    assert 0 < expected["half"][0] < expected["full"][0]
    # The forms that need no rnnlib twin apply to every exercise with a function.
    assert {"any_reference"} <= set(expected), f"{name}: {sorted(expected)}"
