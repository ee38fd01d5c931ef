"""Every exercise under sealed grading: exact scores, and no path around the work.

For each assignment one grading run (``coursetools.grade``, sandbox on) takes
the solution (full marks), the blank release (0), a half-done submission (the
points of the parts it answers), for each part a submission that answers every
other part (all the points but that part's: one mistake costs one part, so a
later part's tests must not lean on the learner's earlier ones) and one
submission per delegation form of ``delegation.py`` (0 on every part whose
function delegates). Expected scores come from the source notebook's structure,
never from a grading run.
"""

from __future__ import annotations

import copy
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


# A learner owns the kernel's copy of the bridge, so what it reports of its own
# work is its word. A submission here edits one answer and silences its kernel's
# report; the named test must still fail, on what the judge itself was handed.
# {assignment: (student, answer cell, (solution text, its replacement), test)}
SILENCED_BRIDGE = {
    "ch03_bptt": ("hides-in-place-changes", "ex_grad_check",
                  ("value[ix] = old  # put it back exactly",
                   "value[ix] = value[ix] + 2 * h - h  # off by a rounding"),
                  "test_grad_check_restores_params"),
}
SILENCE = ("import course_bridge  # in the sealed kernel only\n"
           "course_bridge.Codec.changed_arrays = lambda self: {}\n")


def silenced(exercise: delegation.Exercise) -> tuple[dict, float] | None:
    """The assignment's SILENCED_BRIDGE submission and its expected score."""
    if exercise.name not in SILENCED_BRIDGE:
        return None
    _, answer_id, (right, wrong), test_id = SILENCED_BRIDGE[exercise.name]
    nb = copy.deepcopy(exercise.full)
    cell = next(c for c in nbtools.answer_cells(nb)
                if nbtools.nbgrader_meta(c)["grade_id"] == answer_id)
    assert right in nbtools.source(cell), f"{answer_id} no longer holds {right!r}"
    cell["source"] = nbtools.source(cell).replace(right, wrong)
    nb["cells"].insert(1, {"cell_type": "code", "execution_count": None,
                           "id": "silence-bridge", "metadata": {}, "outputs": [],
                           "source": SILENCE})
    points = next(nbtools.nbgrader_meta(c)["points"] for c in exercise.solution["cells"]
                  if nbtools.nbgrader_meta(c).get("grade_id") == test_id)
    return nb, exercise.total - points


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
        if trick := silenced(exercise):
            submissions[SILENCED_BRIDGE[name][0]] = trick
        for grade_id, _ in exercise.parts:
            submissions[f"all-but-{grade_id}"] = exercise.all_but(grade_id)
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
    return name, expected, rows, course


def test_every_submission_gets_exactly_its_expected_score(graded):
    name, expected, rows, _ = graded
    assert set(rows) == set(expected), f"{name}: graded {sorted(rows)}"
    wrong = {
        student: f"scored {float(rows[student]['score']):g}, expected {score:g}"
        for student, (score, _) in expected.items()
        if abs(float(rows[student]["score"]) - score) > 1e-9
    }
    assert not wrong, f"{name}: {wrong}"


def test_solution_full_blank_zero_and_every_form_was_tried(graded):
    name, expected, rows, _ = graded
    assert float(rows["full"]["score"]) == float(rows["full"]["max_score"]) > 0
    assert float(rows["blank"]["score"]) == 0
    assert 0 < expected["half"][0] < expected["full"][0]
    # The forms that need no rnnlib twin apply to every exercise with a function.
    assert {"any_reference"} <= set(expected), f"{name}: {sorted(expected)}"
    # ch06 Part 6 in PyTorch: the course's GRU per sequence (by the notebook's
    # names or imported from rnnlib.gru), or the tests' own oracle, earns nothing.
    if name.startswith("ch06"):
        assert {"rnnlib_gru_alone", "rnnlib_gru_module_import",
                "ch06_test_oracle"} <= set(expected), (
            f"{name}: {sorted(expected)}")


def test_the_item_analysis_shows_every_test_and_opens_in_chromium(graded, chromium):
    name, expected, _, course = graded
    folder = course / "grading" / name
    page = folder / "item_analysis.html"
    assert "(item_analysis.html)" in (folder / "report.md").read_text()
    tests = [nbtools.nbgrader_meta(c)["grade_id"]
             for source in sorted((course / "solutions" / name).glob("*.ipynb"))
             for c in nbtools.load(source)["cells"]
             if nbtools.nbgrader_meta(c).get("grade")]
    chromium.get(page.as_uri())
    facts = chromium.execute_script("""
        return {
          images: Array.from(document.images).map(
            i => i.complete && i.naturalWidth > 0 && i.alt.length > 0),
          text: document.body.innerText,
          loaded: performance.getEntriesByType('resource').length,
        };""")
    errors = [e["message"] for e in chromium.get_log("browser")
              if e["level"] == "SEVERE"]
    assert not errors, errors
    assert facts["images"] and all(facts["images"]), facts["images"]
    assert facts["loaded"] == 0, "the page loads something from outside itself"
    assert f"{len(expected)} students graded" in facts["text"]
    missing = [t for t in tests if t not in facts["text"]]
    assert not missing, f"{name}: tests missing from the page: {missing}"
