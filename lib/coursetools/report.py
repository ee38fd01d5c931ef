"""The instructor's report: one row per student, and what needs a human look."""

from __future__ import annotations

import csv
import re
import unicodedata
from pathlib import Path

from coursetools.course import ANALYSIS_PAGE
from coursetools.results import StudentResult

UNSAFE_WARNING = (
    "**WARNING: these grades are not protected.** They were made with `--unsafe`, "
    "without a sandbox: a hostile submission could have read the hidden tests, "
    "changed its own or others' grades, or harmed the course files. Regrade on a "
    "machine where the sandbox works."
)
COLUMNS = ["student", "score", "max_score", "needs_attention", "issues", "details",
           "what_to_do"]



def by_name(student: str) -> tuple[str, str]:
    """Sort key for student ids as a person reads a list: case and accents
    aside ("alice" before "Zoë"), then byte order to break ties."""
    bare = "".join(c for c in unicodedata.normalize("NFKD", student)
                   if not unicodedata.combining(c))
    return bare.casefold(), student

def plain(text, lines: bool = True) -> str:
    """Text from a submission with each character that is not printable (a
    terminal escape, a carriage return, a bidi override; a newline too, unless
    `lines`) shown as its escape."""
    return "".join(c if c.isprintable() or (lines and c == "\n") else repr(c)[1:-1]
                   for c in str(text))


def _md(text) -> str:
    """Text from a submission, shown in report.md as one line of plain text: no
    markup, link, image or HTML of its own, nor a row or a section of the report."""
    text = re.sub(r"([\\`*\[\]<>|])", r"\\\1", plain(" ".join(str(text).split())))
    return text.replace("://", ":\\/\\/").replace("www.", "www\\.")  # no autolink


def _not_a_formula(value):
    """A spreadsheet runs a cell that starts with = + - @ (or a tab or return
    before one) as a formula: such text from a submission gets a leading '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def not_run(result: StudentResult) -> list[str]:
    """Per notebook, how many tests the grader never ran and the points they
    held: the findings name the cell where it stopped, not what that cost."""
    notes = []
    for name, notebook in result.notebooks.items():
        lost = [c for c in notebook.cells.values()
                if (c.failure or "").startswith("CellNotRun: ")]
        if lost:
            why = lost[0].failure.removeprefix("CellNotRun: not run: ").removesuffix(
                " before this cell")
            notes.append(f"{name}: {len(lost)} tests not run, "
                         f"{sum(c.max_score for c in lost):g} points lost ({why})")
    return notes


def _duration(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{max(1, round(seconds / 60))} min"


def write(folder: Path, assignment: str, results: dict[str, StudentResult],
          scores: dict[str, tuple[float, float]],
          late: dict[str, tuple[float, float]] | None = None,
          unsafe: bool = False, not_graded: dict[str, str] | None = None) -> Path:
    """report.md (attention list first) and report.csv; return report.md's path.

    `late` maps students to (seconds past their due date, extensions included,
    points taken off); lateness is noted, not flagged: the late-submission plugin
    sets its cost, and `scores` are after it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    late = late or {}
    rows = []
    for student, result in sorted(results.items(), key=lambda item: by_name(item[0])):
        score, max_score = scores.get(student, (0.0, 0.0))
        found = result.all_findings()
        labels = sorted({f.label for f in found})
        if student in late:
            seconds, penalty = late[student]
            labels.append(f"late by {_duration(seconds)}"
                          + (f", {penalty:g} points off" if penalty else ""))
        values = (student, score, max_score,
                  "yes" if result.needs_attention() else "no", "; ".join(labels),
                  " | ".join([f.text() for f in found] + not_run(result)),
                  "; ".join(dict.fromkeys(f.action for f in found if f.action)))
        rows.append(dict(zip(COLUMNS, values, strict=True)))
    with (folder / "report.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: _not_a_formula(plain(v) if isinstance(v, str) else v)
                          for k, v in row.items()} for row in rows)

    look = [r for r in rows if r["needs_attention"] == "yes"]
    n_late = sum(1 for r in rows if r["student"] in late)
    lines = [UNSAFE_WARNING, ""] if unsafe else []
    summary = "No submissions."
    if rows:
        summary = (f"{len(rows)} students, {len(look)} need a look"
                   + (f", {n_late} handed in late" if n_late else "")
                   + f". Scores are out of {max(r['max_score'] for r in rows):g}.")
    lines += [f"# Grading report: {assignment}", "", summary, "",
              "Item analysis (score histogram, pass rate and common failures per "
              f"test): [{ANALYSIS_PAGE}]({ANALYSIS_PAGE})", "",
              "What each note means: the instructor guide "
              "(book/instructor_guide.md), \"Reading the report\".", ""]
    if not_graded:
        lines += ["## Not graded", "", "| student | why |", "|---|---|"]
        lines += [f"| {_md(s)} | {_md(why)} |"
                  for s, why in sorted(not_graded.items(), key=lambda i: by_name(i[0]))]
        lines += ["", "A student not graded has no row for this assignment in "
                  "grades.csv unless an earlier run graded them (nbgrader exports "
                  "the gradebook): fix the folder and grade again, or enter the "
                  "grade by hand.", ""]
    row = "| {} | {:g} | {} |"
    if look:
        lines += ["## Needs a look", "", "| student | score | what | what to do |",
                  "|---|---|---|---|"]
        lines += [row.format(_md(r["student"]), r["score"], _md(r["issues"]))
                  + f" {r['what_to_do']} |" for r in look]
        lines += ["", "### Details", ""]
        lines += [f"- **{_md(r['student'])}**: {_md(r['details'])}" for r in look]
        lines += [""]
    lines += ["## Everyone", "", "| student | score | notes |", "|---|---|---|"]
    lines += [row.format(_md(r["student"]), r["score"], _md(r["issues"])) for r in rows]
    md_path = folder / "report.md"
    md_path.write_text("\n".join(lines) + "\n")
    return md_path
