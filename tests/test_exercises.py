"""The exercise notebooks: release in sync, validation, nothing given away.

Their grading (full, blank, half-done and delegating submissions, with exact
scores) is in test_exercise_grading.py."""

from __future__ import annotations

import re

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


def _opening_table(nb: dict) -> list[list[tuple[str, float]]]:
    """For each part (row) of the first markdown cell's table, its (kind, points):
    one pair, or one per kind for a part split as "build 1 + transfer 6"."""
    first = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    rows = []
    for line in nbtools.source(first).splitlines():
        row = line.strip().strip("|").split("|")
        cells = [c.strip().strip("*").lower() for c in row]
        kinds = [c for c in cells if c in ("build", "transfer")]
        numbers = [c for c in cells if c.replace(".", "", 1).isdigit()]
        # A total row ("| | **build 7 + transfer 15** | ...") names no part.
        split = next((s for s in (re.findall(r"(build|transfer) (\d+(?:\.\d+)?)", c)
                                  for c in cells)
                      if s and cells[0]
                      and " + ".join(f"{k} {p}" for k, p in s) in cells), None)
        if not line.lstrip().startswith("|") or not numbers:
            continue
        if split:
            parts = [(kind, float(points)) for kind, points in split]
            assert sum(p for _, p in parts) == float(numbers[-1]), line
            rows.append(parts)
        elif kinds:
            rows.append([(kinds[0], float(numbers[-1]))])
    return rows


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_opening_table_shows_the_split_and_meets_the_standard(name):
    """EXERCISES.md: 15-25 points, 4-6 parts, at least 60 % on transfer tasks."""
    for path in (ROOT / "solutions" / name).glob("*.ipynb"):
        nb = nbtools.load(path)
        total = sum(
            float(nbtools.nbgrader_meta(c)["points"]) for c in nbtools.test_cells(nb)
        )
        rows = _opening_table(nb)
        assert rows, f"{path}: the opening table lists no build / transfer parts"
        pairs = [pair for part in rows for pair in part]
        assert sum(p for _, p in pairs) == total, (
            f"{path}: the table's points {[p for _, p in pairs]} do not add up to "
            f"the test cells' {total:g}"
        )
        transfer = sum(p for kind, p in pairs if kind == "transfer")
        assert 15 <= total <= 25 and 4 <= len(rows) <= 6, (total, len(rows))
        assert transfer >= 0.6 * total, f"{path}: transfer {transfer:g} of {total:g}"


_PART_HEADING = re.compile(r"^## .*\(([^()]*\bpoints?\b[^()]*)\)\s*$")


def _parts(nb: dict) -> list[tuple[str, list[tuple[str, float]], float]]:
    """Each part's heading, its (kind, points) as the heading states them, and the
    points of the test cells between it and the next heading."""
    parts = []
    for cell in nb["cells"]:
        text = nbtools.source(cell)
        heading = next((line for line in text.splitlines() if line.startswith("## ")),
                       None)
        if cell["cell_type"] == "markdown" and heading:
            found = _PART_HEADING.match(heading)
            stated = found and re.findall(
                r"(build|transfer)\W+(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?) points?\W+"
                r"(build|transfer)", found.group(1))
            parts.append((heading, [(a or d, float(b or c)) for a, b, c, d in stated]
                          if stated else [], 0.0))
        elif nbtools.nbgrader_meta(cell).get("grade") and parts:
            heading, stated, points = parts[-1]
            parts[-1] = (heading, stated,
                         points + float(nbtools.nbgrader_meta(cell)["points"]))
    return [part for part in parts if part[1]]


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_each_part_heading_states_its_row_of_the_table_and_its_cells(name):
    """A part's heading ("(build, 3 points)") says what its row of the opening
    table says, and its test cells add up to it: when points move between cells
    or kinds, the three places move together."""
    for path in (ROOT / "solutions" / name).glob("*.ipynb"):
        nb = nbtools.load(path)
        parts, rows = _parts(nb), _opening_table(nb)
        assert len(parts) == len(rows), (path, [p[0] for p in parts])
        for (heading, stated, points), row in zip(parts, rows, strict=True):
            assert sorted(stated) == sorted(row), (heading, row)
            assert sum(p for _, p in stated) == points, (
                f"{heading}: its test cells hold {points:g} points")


# Test cells whose answer a printed line of the book gives: they are build, whatever
# else their part holds (review rev12 F4: ch06's `by_layer = h_n.view(2, 2, N, H)`
# and "ordered layer by layer, forward before backward" answer these two).
ANSWERED_BY_THE_BOOK = {
    "ch06_pytorch_keras": ("test_start_layers", "test_start_halves"),
}


@pytest.mark.parametrize("name", sorted(ANSWERED_BY_THE_BOOK))
def test_cells_the_book_answers_sit_in_build_parts(name):
    (path,) = (ROOT / "solutions" / name).glob("*.ipynb")
    nb = nbtools.load(path)
    heading = None
    for cell in nb["cells"]:
        text = nbtools.source(cell)
        # A part split in two ("## Part 6 (build 3 points, transfer 6 points)")
        # states each half's kind under its own "### " heading: the last one counts.
        headings = [line for line in text.splitlines()
                    if line.startswith(("## ", "### "))]
        if cell["cell_type"] == "markdown" and headings:
            heading = headings[-1]
        if nbtools.nbgrader_meta(cell).get("grade_id") in ANSWERED_BY_THE_BOOK[name]:
            kinds = set(re.findall(r"build|transfer", heading))
            assert kinds == {"build"}, (
                f"{nbtools.nbgrader_meta(cell)['grade_id']} sits in {heading!r}: "
                "a printed line answers it, so its points count as build")


def _printed_lines() -> set[str]:
    """Code lines that a learner can read: the chapters and the library."""
    lines = set()
    for path in [*(ROOT / "book").glob("*.md"), *(ROOT / "lib/rnnlib").glob("*.py")]:
        lines |= {ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()}
    return lines


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_no_answer_is_printed_in_the_book_or_the_library(name):
    """A graded answer cannot be earned by copying what the course prints."""
    printed = _printed_lines()
    for path in (ROOT / "solutions" / name).glob("*.ipynb"):
        for cell in nbtools.answer_cells(nbtools.load(path)):
            for region in nbtools.regions(
                nbtools.source(cell), nbtools.BEGIN_SOLUTION, nbtools.END_SOLUTION
            ):
                code = [
                    ln.strip() for ln in region
                    if len(ln.strip()) >= 16 and not ln.strip().startswith("#")
                ]
                copied = [ln for ln in code if ln in printed]
                assert len(copied) <= len(code) / 3, (
                    f"{path} {nbtools.nbgrader_meta(cell)['grade_id']}: "
                    f"{len(copied)} of {len(code)} lines are printed in book/ or "
                    f"lib/rnnlib/, e.g. {copied[:3]}"
                )
