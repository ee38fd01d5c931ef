"""ch06 Part 6's visible tests: the values stored in them, and what their code shows.

The visible cases compare with values stored in their cells, which
tools/ch06_visible_values.py computes with the oracle of the hidden regions. A
stored value that no longer matches the oracle (a cell's weights or batch changed,
the literal not rewritten) would grade every learner against the wrong numbers.
"""

from __future__ import annotations

import copy
import io
import re
import sys
import tokenize

import nbtools
import pytest
from conftest import ASSIGNMENTS, ROOT

sys.path.insert(0, str(ROOT / "tools"))
import ch06_visible_values as values  # noqa: E402

pytestmark = pytest.mark.skipif(values.NOTEBOOK.parent.name not in ASSIGNMENTS,
                                reason="no ch06 in solutions/")


@pytest.fixture(scope="module")
def solution():
    return nbtools.load(values.NOTEBOOK)


@pytest.fixture(scope="module")
def cases(solution):
    return values.cases(solution)


def test_every_stored_value_is_the_oracles(cases):
    assert len(cases) >= 9, [c["cell"] for c in cases]
    problems = values.differences(cases)
    assert not problems, (
        f"{problems}: run `python tools/ch06_visible_values.py --write`, then "
        "`python -m coursetools.generate ch06`")


def test_greedy_cases_are_far_from_ties(cases):
    """greedy_decode is graded on ids, exactly: at every step the oracle decodes,
    visible and hidden, the best score leads the second by values.MIN_MARGIN or
    more, so float32 rounding in a correct answer cannot change an argmax."""
    assert len(values.MARGINS) > 100, len(values.MARGINS)
    assert min(values.MARGINS) >= values.MIN_MARGIN, min(values.MARGINS)


def _first_expected_changed(solution, grade_id: str, change):
    """A copy of the notebook whose cell `grade_id` stores change(x) in place of
    the first number x of its first expected value."""
    nb = copy.deepcopy(solution)
    (cell,) = [c for c in nb["cells"]
               if nbtools.nbgrader_meta(c).get("grade_id") == grade_id]
    text = nbtools.source(cell)
    number = re.search(r'"expected": np\.reshape\(\[(-?0\.\d+)', text)[1]
    cell["source"] = text.replace(number, change(number), 1)
    return nb


def test_a_changed_stored_value_is_reported(solution):
    """The check reads the literals themselves: one digit changed is found."""
    nb = _first_expected_changed(solution, "test_start_layers",
                                 lambda number: str(float(number) + 1e-6))
    problems = values.differences(values.cases(nb))
    assert len(problems) == 1 and "test_start_layers" in problems[0], problems
    assert "expected differs" in problems[0], problems


def test_rewriting_restores_the_stored_values(solution):
    nb = _first_expected_changed(solution, "test_start_halves", lambda number: "0.5")
    values.rewrite(nb, values.cases(nb))
    assert not values.differences(values.cases(nb))


def _code_names(text: str) -> set[str]:
    """The names a cell's code uses, its comments and strings left out."""
    return {token.string for token in
            tokenize.generate_tokens(io.StringIO(text).readline)
            if token.type == tokenize.NAME}


def test_visible_cells_do_not_compute_which_states_make_a_layer():
    """Part 6's visible test cells never build h_n from the expected start: code
    that lays the expected (2, N, 2H) out as h_n (4, N, H) to make the wrong
    candidates states which of h_n's rows make each layer's row, the answer of
    test_start_layers (review rev06d F1). The candidates are stored literals."""
    release = next((ROOT / "exercises").glob("ch06_*/ch06.ipynb"))
    nb = nbtools.load(release)
    shown = {nbtools.nbgrader_meta(c).get("grade_id"): _code_names(nbtools.source(c))
             for c in nb["cells"] if nbtools.nbgrader_meta(c).get("grade")}
    part6 = ("test_start_layers", "test_start_halves",
             "test_greedy_starts_from_encoder",
             "test_greedy_feeds_its_predictions", "test_greedy_stops_at_eos")
    assert set(part6) <= set(shown)
    building = [grade_id for grade_id in part6 if "h_n" in shown[grade_id]]
    assert not building, f"{building} use a name h_n in their visible code"
