"""The exercise notebooks: release in sync, validation, and a grading round trip."""

from __future__ import annotations

import csv
import math

import nbtools
import pytest
from conftest import ASSIGNMENTS, ROOT
from coursetools.course import run_nbgrader

pytestmark = pytest.mark.skipif(not ASSIGNMENTS, reason="no assignments in solutions/")


def notebooks(folder):
    return sorted(p.name for p in folder.glob("*.ipynb"))


def test_every_assignment_has_a_committed_release():
    for name in ASSIGNMENTS:
        released = ROOT / "exercises" / name
        assert released.is_dir(), f"exercises/{name}/ is missing: run `make exercises`"
        assert notebooks(released) == notebooks(ROOT / "solutions" / name)


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_is_exactly_what_nbgrader_generates(name, scratch_course):
    fresh = scratch_course / "exercises" / name
    committed = ROOT / "exercises" / name
    fresh_files = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    committed_files = sorted(
        p.relative_to(committed) for p in committed.rglob("*") if p.is_file()
    )
    assert committed_files == fresh_files, (
        "exercises/ and a fresh release differ in files"
    )
    for relative in fresh_files:
        if relative.suffix == ".ipynb":
            same = nbtools.load(fresh / relative) == nbtools.load(committed / relative)
        else:
            same = (fresh / relative).read_bytes() == (
                committed / relative
            ).read_bytes()
        assert same, (
            f"exercises/{name}/{relative} differs from what generate_assignment makes "
            "from solutions/: run `make exercises` and commit the result"
        )


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_sources_and_releases_hold_no_outputs(name):
    for folder in ("solutions", "exercises"):
        for path in (ROOT / folder / name).glob("*.ipynb"):
            for cell in nbtools.load(path)["cells"]:
                if cell["cell_type"] == "code":
                    assert cell["outputs"] == [], f"{path} has stored outputs"
                    assert cell["execution_count"] is None, f"{path} was executed"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_source_notebook_passes_its_own_tests(name, scratch_course):
    for path in (scratch_course / "solutions" / name).glob("*.ipynb"):
        result = run_nbgrader(scratch_course, "validate", str(path), check=False)
        output = result.stdout + result.stderr
        assert "Success! Your notebook passes all the tests." in output, output[-3000:]


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_blank_release_fails_every_test(name, scratch_course):
    for path in (scratch_course / "exercises" / name).glob("*.ipynb"):
        result = run_nbgrader(
            scratch_course, "validate", "--invert", str(path), check=False
        )
        output = result.stdout + result.stderr
        assert "Success! The notebook does not pass any tests." in output, output[
            -3000:
        ]


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_reveals_no_solution_or_hidden_test(name):
    for source_path in (ROOT / "solutions" / name).glob("*.ipynb"):
        secret = nbtools.secret_lines(nbtools.load(source_path))
        released = ROOT / "exercises" / name / source_path.name
        text = released.read_text(encoding="utf-8")
        assert nbtools.BEGIN_SOLUTION not in text and nbtools.BEGIN_HIDDEN not in text
        released_lines = {
            line.strip()
            for cell in nbtools.load(released)["cells"]
            for line in nbtools.source(cell).splitlines()
        }
        leaked = sorted(secret & released_lines)
        assert not leaked, (
            f"{released} shows solution or hidden-test lines: {leaked[:5]}"
        )


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_autograde_round_trip_scores_full_zero_and_partial(name, scratch_course):
    """Release -> three submissions -> autograde -> export: full, zero, in between."""
    for source_path in (scratch_course / "solutions" / name).glob("*.ipynb"):
        solution = nbtools.load(source_path)
        release = nbtools.load(scratch_course / "exercises" / name / source_path.name)
        answer_ids = [
            nbtools.nbgrader_meta(c)["grade_id"] for c in nbtools.answer_cells(solution)
        ]
        assert len(answer_ids) >= 2, "an exercise needs at least two answer cells"
        half = set(answer_ids[: math.ceil(len(answer_ids) / 2)])
        submissions = {
            "full": nbtools.fill_answers(release, solution, set(answer_ids)),
            "blank": release,
            "half": nbtools.fill_answers(release, solution, half),
        }
        for student, nb in submissions.items():
            target = scratch_course / "submitted" / f"{name}-{student}" / name
            nbtools.save(nb, target / source_path.name)

    students = [f"{name}-{s}" for s in ("full", "blank", "half")]
    # One nbgrader process grades all three: its start-up dominates the cost.
    run_nbgrader(scratch_course, "autograde", name, "--force")
    csv_path = scratch_course / f"grades-{name}.csv"
    run_nbgrader(scratch_course, "export", f"--to={csv_path}", f"--assignment={name}")
    with csv_path.open() as handle:
        rows = {
            r["student_id"]: r
            for r in csv.DictReader(handle)
            if r["assignment"] == name
        }
    score = {s: float(rows[s]["score"]) for s in students}
    max_score = float(rows[students[0]]["max_score"])
    assert max_score > 0
    assert score[f"{name}-full"] == max_score, f"the solution scored {score}"
    assert score[f"{name}-blank"] == 0, f"the blank release scored {score}"
    assert 0 < score[f"{name}-half"] < max_score, f"half the answers scored {score}"
