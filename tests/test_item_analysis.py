"""The item-analysis page (coursetools.analysis) on a small class made by hand.

Every expected number below is counted from the fixture, not read from the code.
The page is then opened from file:// in headless Chromium (browser_helpers): its
figures must render, it must run no script, and the hostile failure message must
show as text. Where Chromium cannot be had the browser test skips; under CI
(CI=true) it fails instead.
"""

from __future__ import annotations

import base64
import re
import time
from html.parser import HTMLParser

import pytest
from conftest import ARTIFACTS
from coursetools import analysis
from coursetools.results import CellResult, Finding, NotebookResult, StudentResult

TESTS = [  # (notebook, grade id, points) in source order: 10 points
    ("rnn_cells", "test_step_shape", 2.0),
    ("rnn_cells", "test_step_values", 3.0),
    ("rnn_cells", "test_backward", 3.0),
    ("lstm", "test_lstm", 2.0),
]
FULL = {grade_id: CellResult(points, points) for _, grade_id, points in TESTS}
HOSTILE = ("AssertionError: <script>alert(1)</script><img src=x onerror=alert(2)> "
           "ünïcödé")
NOT_DONE = "NotImplementedError: rnn_step_forward is still a stub"


def shape_error(got: tuple[int, int], expected: tuple[int, int]) -> str:
    return (f"AssertionError: rnn_step_forward: h_next has shape {got}, "
            f"expected {expected}")


def student(name: str, cells: dict[str, CellResult], findings=(), *, lstm=True):
    """A graded student: full marks except `cells`; lstm=False: no lstm notebook."""
    by_notebook = {}
    for notebook, grade_id, _ in TESTS:
        by_notebook.setdefault(notebook, {})[grade_id] = cells.get(
            grade_id, FULL[grade_id])
    if not lstm:
        del by_notebook["lstm"]
    notebooks = {name: NotebookResult(name, graded=True, cells=c)
                 for name, c in by_notebook.items()}
    return StudentResult(name, "rnn", notebooks=notebooks, findings=list(findings))


# Seven graded students and one grading error (gus). Totals out of 10:
# ada 10, ben 10, cy 2, dan 6.5, eve 7, fay 8, hal 8 -> mean 7.36, median 8.
CLASS = {
    "ada": student("ada", {"test_step_values": CellResult(3, 3, seconds=0.5)}),
    "ben": student("ben", {"test_step_values": CellResult(3, 3, seconds=1.5)}),
    "cy": student("cy", {
        "test_step_shape": CellResult(0, 2, failure=shape_error((3, 4), (4, 3))),
        "test_step_values": CellResult(0, 3, failure=NOT_DONE),
        "test_backward": CellResult(0, 3, failure=NOT_DONE)}),
    "dan": student("dan", {
        "test_step_shape": CellResult(0, 2, failure=shape_error((5, 2), (2, 5))),
        "test_backward": CellResult(
            1.5, 3, failure="AssertionError: dW_hh relative error 3.2e-02")}),
    "eve": student("eve", {"test_step_values": CellResult(
        0, 3, failure="CellTimeoutError: ran longer than 30 s", seconds=30.0)},
        [Finding("timeout", "cell ran longer than 30 s", "rnn_cells",
                 "test_step_values")]),
    "fay": student("fay", {}, [Finding("missing_notebook", "lstm.ipynb missing",
                                       "lstm")], lstm=False),
    "gus": StudentResult.failed("gus", "rnn", "Traceback\nRuntimeError: pool"),
    "hal": student("hal", {"test_step_shape": CellResult(0, 2, failure=HOSTILE)}),
}
SCORES = {"ada": (10.0, 10.0), "ben": (10.0, 10.0), "cy": (2.0, 10.0),
          "dan": (6.5, 10.0), "eve": (7.0, 10.0), "fay": (8.0, 10.0),
          "gus": (0.0, 10.0), "hal": (8.0, 10.0)}


class _Tables(HTMLParser):
    """The text of every table cell, as {section id: [row, ...]} with headers."""

    def __init__(self, html: str):
        super().__init__()
        self.section, self.tables, self.row, self.cell = "", {}, None, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.section = dict(attrs)["id"]
        elif tag == "tr":
            self.row = []
            self.tables.setdefault(self.section, []).append(self.row)
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.row.append(self.cell)
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    path = analysis.write(tmp_path_factory.mktemp("report"), "rnn", CLASS, SCORES,
                          TESTS)
    html = path.read_text(encoding="utf-8")
    return path, html, _Tables(html).tables


def test_pass_rates_count_graded_students_only(page):
    _, _, tables = page
    rows = {row[0]: row[1:6] for row in tables["pass-rates"][1:]}
    # pass rate, full, partial, zero, by hand over the 7 graded students (not gus)
    assert rows == {
        "rnn_cells/test_step_shape (2 pt)": ["57%", "4", "0", "3", "0"],
        "rnn_cells/test_step_values (3 pt)": ["71%", "5", "0", "2", "0"],
        "rnn_cells/test_backward (3 pt)": ["71%", "5", "1", "1", "0"],
        "lstm/test_lstm (2 pt)": ["86%", "6", "0", "1", "0"],  # fay: no notebook
    }
    assert list(rows) == [f"{nb}/{g} ({p:g} pt)" for nb, g, p in TESTS]


def test_summary_counts_graded_flagged_and_not_graded(page):
    _, html, _ = page
    summary = re.search(r'id="summary">.*?</section>', html).group()
    assert "7 students graded; scores out of 10 points, mean 7.4, median 8;" in summary
    assert "3 flagged; 1 not graded" in summary  # eve, fay, gus; gus
    assert "missing or unreadable: 1;" in summary  # fay's lstm


def test_failures_with_different_numbers_form_one_group(page):
    _, html, tables = page
    failures = tables["failures"]
    shape = "AssertionError: rnn_step_forward: h_next has shape (#, #), expected (#, #)"
    # cy and dan of the three who lost points on test_step_shape; hal the third
    assert ["2", "67%", shape, shape_error((3, 4), (4, 3))] in failures
    masked = HOSTILE.replace("(1)", "(#)").replace("(2)", "(#)")
    assert ["1", "33%", masked, HOSTILE] in failures
    assert ["1", "100%", analysis.NO_RESULT, analysis.NO_RESULT] in failures  # fay
    assert "rnn_cells/test_step_shape (2 pt): students who lost points: 3" in html


def test_hostile_messages_are_shown_as_text(page):
    _, html, _ = page
    assert "<script" not in html.lower()
    assert "onerror=alert" not in html.replace("&lt;img src=x onerror=alert", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" \
        in html
    assert "ünïcödé" in html
    assert html.count("<img ") == 2  # the two figures, not the student's


def test_flagged_students_and_their_labels(page):
    _, _, tables = page
    assert tables["flagged"][1:] == [
        ["eve", "7", "cell timeout", "read the notebook"],
        ["fay", "8", "notebook missing", "check the renamed one is theirs; put a "
         "misplaced notebook in the right folder and grade again"],
        ["gus", "not graded", "grading error", "regrade it, then report a bug"],
    ]


def test_share_of_a_failure_counts_partial_scorers_too(page):
    _, html, tables = page
    # test_backward: cy lost all 3 points (NOT_DONE), dan kept 1.5 of them; each
    # of the two groups is 1 of the 2 students who lost points.
    assert "rnn_cells/test_backward (3 pt): students who lost points: 2" in html
    dan = "AssertionError: dW_hh relative error 3.2e-02"
    assert ["1", "50%", "AssertionError: dW_hh relative error #", dan] in (
        tables["failures"])


def test_histogram_and_time_per_test(page):
    _, html, tables = page
    figure = re.search(r'id="histogram">.*?<img src="data:image/svg\+xml;base64,'
                       r'([^"]+)" alt="([^"]+)"', html)
    assert figure, "no histogram"
    assert base64.b64decode(figure.group(1)).lstrip().startswith(b"<?xml")
    assert "7 scores out of 10 points: mean 7.4, median 8" in figure.group(2)
    # seconds measured on test_step_values only: 0.5, 1.5 and eve's 30
    assert tables["time"][1:] == [
        ["rnn_cells/test_step_values (3 pt)", "3", "1.50", "30.00"]]


def test_no_students(tmp_path):
    html = analysis.write(tmp_path, "rnn", {}, {}, TESTS).read_text()
    assert "0 students graded" in html and "No scores." in html
    assert "<img" not in html and "No test lost points." in html
    assert "Not measured." in html and "<p>None.</p>" in html


def test_one_student_everyone_full_marks(tmp_path):
    only = {"ada": student("ada", {})}
    html = analysis.write(tmp_path, "rnn", only, {"ada": (10.0, 10.0)}, TESTS
                          ).read_text()
    rows = _Tables(html).tables["pass-rates"][1:]
    assert [row[1] for row in rows] == ["100%"] * 4
    assert html.count("<img ") == 2 and 'class="low"' not in html
    assert "No test lost points." in html


def test_a_test_no_one_passed_and_long_messages(tmp_path):
    long = "AssertionError: " + "x" * 5000
    everyone = {s: student(s, {"test_lstm": CellResult(0, 2, failure=long)})
                for s in ("ada", "ben")}
    html = analysis.write(tmp_path, "rnn", everyone, {}, TESTS).read_text()
    row = _Tables(html).tables["pass-rates"][-1]
    assert row[:5] == ["lstm/test_lstm (2 pt)", "0%", "0", "0", "2"]
    assert html.count('<tr class="low">') == 1
    assert long not in html and long[: analysis.SHOWN_CHARS] + " …" in html


def test_exactly_half_passing_is_not_highlighted(tmp_path):
    """Fewer than half is low; one of two students with full marks is not."""
    two = {"ada": student("ada", {}),
           "ben": student("ben", {"test_lstm": CellResult(0, 2, failure="no")})}
    html = analysis.write(tmp_path, "rnn", two, {}, TESTS).read_text()
    row = _Tables(html).tables["pass-rates"][-1]
    assert row[:5] == ["lstm/test_lstm (2 pt)", "50%", "1", "0", "1"]
    assert 'class="low"' not in html
    assert not analysis.ItemStats("t", full=1, zero=1).most_failed
    assert analysis.ItemStats("t", full=1, partial=1, zero=1).most_failed


def test_a_time_of_zero_seconds_is_measured(tmp_path):
    """0.0 s is a measurement (a fast test), unlike None (not measured)."""
    fast = {"ada": student("ada", {"test_lstm": CellResult(2, 2, seconds=0.0)}),
            "ben": student("ben", {"test_lstm": CellResult(2, 2, seconds=0.5)})}
    html = analysis.write(tmp_path, "rnn", fast, {}, TESTS).read_text()
    # ada's 0.0 and ben's 0.5: median 0.25, max 0.5
    assert _Tables(html).tables["time"][1:] == [
        ["lstm/test_lstm (2 pt)", "2", "0.25", "0.50"]]


def test_huge_hostile_messages_are_grouped_quickly():
    # unclosed brackets and parentheses make the masking regexes backtrack
    start = time.perf_counter()
    for message in ("[" + "1" * 10**6, "array(" * 10**5, "x" * 10**7):
        assert len(analysis.pattern(message)) <= analysis.SHOWN_CHARS
    assert time.perf_counter() - start < 1


def test_a_class_of_1000_renders_in_seconds(tmp_path):
    tests = [("big", f"test_{i:02d}", 1.0) for i in range(20)]
    results = {}
    for n in range(1000):
        cells = {g: CellResult(float((n + i) % 3 > 0), 1.0, seconds=0.01 * i,
                               failure=None if (n + i) % 3 else
                               f"AssertionError: got {n}, expected {i}")
                 for i, (_, g, _) in enumerate(tests)}
        results[f"s{n:04d}"] = StudentResult(f"s{n:04d}", "big", notebooks={
            "big": NotebookResult("big", graded=True, cells=cells)})
    start = time.perf_counter()
    html = analysis.write(tmp_path, "big", results, {}, tests).read_text()
    seconds = time.perf_counter() - start
    print(f"1000 students x 20 tests: {seconds:.2f} s, {len(html) / 1e3:.0f} kB")
    assert seconds < 5
    # one group per test: 'got #, expected #' whatever the numbers
    assert html.count("AssertionError: got #, expected #") == 20


def test_page_in_chromium(page, chromium):
    from selenium.common.exceptions import NoAlertPresentException

    path, _, _ = page
    # The browser is the session's: drop what earlier tests' pages logged (a
    # feedback page's policy blocking a student's image, on purpose).
    chromium.get_log("browser")
    chromium.get(path.as_uri())
    facts = chromium.execute_script("""
        return {
          title: document.title,
          scripts: document.scripts.length,
          images: Array.from(document.images).map(i => ({
            complete: i.complete, width: i.naturalWidth, alt: i.alt})),
          tables: Array.from(document.querySelectorAll('table')).map(
            t => t.getBoundingClientRect().height),
          text: document.body.innerText,
          loaded: performance.getEntriesByType('resource').map(e => e.name),
        };""")
    with pytest.raises(NoAlertPresentException):
        chromium.switch_to.alert  # noqa: B018 - reading it is the check
    ARTIFACTS.mkdir(exist_ok=True)
    chromium.save_screenshot(str(ARTIFACTS / "item-analysis.png"))
    errors = [e["message"] for e in chromium.get_log("browser")
              if e["level"] == "SEVERE"]
    assert not errors, errors
    assert facts["title"] == "Item analysis: rnn"
    assert facts["scripts"] == 0
    assert facts["loaded"] == [], "the page loads something from outside itself"
    assert len(facts["images"]) == 2
    assert all(i["complete"] and i["width"] > 0 and i["alt"] for i in facts["images"])
    assert len(facts["tables"]) == 7 and all(h > 0 for h in facts["tables"])
    assert "<script>alert(1)</script><img src=x onerror=alert(2)>" in facts["text"]
