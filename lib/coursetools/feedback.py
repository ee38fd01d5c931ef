"""Student feedback without the hidden tests.

nbgrader's feedback shows each test cell as it ran, hidden tests included, and a
failing hidden assert prints its source lines in the traceback. Before feedback is
rendered, :func:`hide_hidden_tests` puts the released (visible) version back into
every read-only cell and replaces any traceback that quotes a hidden or solution
line by the error's name and message.
"""

from __future__ import annotations

import copy
import re

from coursetools.checks import grade_id, is_locked_cell, meta, text_of

BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# IPython quotes source as "     15     code" or "---> 15     code"
LINE_NUMBER = re.compile(r"^\s*(?:-*>)?\s*\d+\s")
HIDDEN_NOTE = (
    "(This check is one of the hidden tests, so its code is not shown. "
    "The message above says what went wrong.)"
)


def secret_lines(source_nb, min_length: int = 12) -> set[str]:
    """Stripped lines that only occur inside hidden-test regions.

    Solution lines are not secret here: a student's feedback shows their own
    answer cells, which may well contain the same lines.
    """
    secret, visible = set(), set()
    for cell in source_nb.cells:
        inside = False
        for line in text_of(cell).splitlines():
            stripped = line.strip()
            if stripped == BEGIN:
                inside = True
            elif inside and stripped == END:
                inside = False
            elif inside:
                secret.add(stripped)
            else:
                visible.add(stripped)
    return {s for s in secret - visible if len(s) >= min_length}


def hide_hidden_tests(graded_nb, release_nb, secret: set[str]):
    """A copy of an autograded notebook that is safe to show its student."""
    nb = copy.deepcopy(graded_nb)
    nb.metadata.pop("coursetools", None)  # the grader's findings are for instructors
    released = {grade_id(c): c for c in release_nb.cells if grade_id(c)}
    for cell in nb.cells:
        ref = released.get(grade_id(cell))
        if ref is not None and is_locked_cell(meta(ref)):
            cell.source = text_of(ref)
        for output in cell.get("outputs", []):
            if output.output_type != "error":
                continue
            text = ANSI.sub("", "\n".join(output.get("traceback", [])))
            if any(_quotes_secret(line, secret) for line in text.splitlines()):
                output.traceback = [f"{output.ename}: {output.evalue}", HIDDEN_NOTE]
    return nb


def _quotes_secret(line: str, secret: set[str]) -> bool:
    return "HIDDEN TESTS" in line or line.strip() in secret or (
        LINE_NUMBER.sub("", line, count=1).strip() in secret)
