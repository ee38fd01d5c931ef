"""Item analysis of one graded assignment, an HTML page beside report.md: the score
histogram, each test's pass rate, its most common failures (grouped once numbers
are masked), the flagged students and the time per test. Figures are matplotlib
SVG in data URIs, so the page works offline from file:// and runs no script; all
text that a student's code could have written is HTML-escaped, names included.
"""

from __future__ import annotations

import base64
import io
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from coursetools.course import ANALYSIS_PAGE
from coursetools.results import StudentResult

LOW_PASS_RATE = 0.5  # tests fewer than half the class passed are highlighted
TOP_GROUPS = 5  # failure groups shown per test
SHOWN_CHARS = 300  # longer failure messages are cut for display
NO_RESULT = "(no result: notebook missing, unreadable or without this cell)"
NO_MESSAGE = "(lost points without a failure message)"
# Okabe & Ito's palette, distinguishable with every common colour-vision deficiency.
BLUE, VERMILLION, ORANGE = "#0072B2", "#D55E00", "#E69F00"
# Text as paths (no font needed to view it), no TeX parsing of "$" in names, and
# fixed SVG ids, so the same results give the same page.
_STYLE = rc_context({"font.size": 11, "svg.fonttype": "path",
                     "text.parse_math": False, "svg.hashsalt": "item-analysis"})
# array(...) reprs and bracketed runs of numbers (printed arrays, lists); numbers
# not inside a name (h2, lstm1 stay).
_ARRAY = re.compile(r"array\(.*?\)|\[[-+\d\s.,eE\[\]]*\d[-+\d\s.,eE\[\]]*\]", re.S)
_NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


@dataclass
class ItemStats:
    """What the graded students did on one graded cell."""

    label: str  # "notebook/grade_id (points pt)"; no notebook when there is one
    full: int = 0
    partial: int = 0
    zero: int = 0
    by_hand: int = 0  # awaiting manual grading: left out of the pass rate
    seconds: list[float] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)  # pattern -> students
    examples: dict[str, str] = field(default_factory=dict)  # pattern -> 1st message

    @property
    def pass_rate(self) -> float | None:
        counted = self.full + self.partial + self.zero
        return self.full / counted if counted else None

    @property
    def most_failed(self) -> bool:
        return self.pass_rate is not None and self.pass_rate < LOW_PASS_RATE


def pattern(message: str) -> str:
    """The start of the message with arrays and numbers masked, so that one mistake
    made with different sizes or values falls into one group."""
    # Cut first: on a hostile message the regexes take time quadratic in its length.
    masked = _NUMBER.sub("#", _ARRAY.sub("[…]", message[:3 * SHOWN_CHARS]))
    return " ".join(masked.split())[:SHOWN_CHARS]


def _cut(message: str) -> str:
    return message if len(message) <= SHOWN_CHARS else message[:SHOWN_CHARS] + " …"


def item_stats(results: dict[str, StudentResult],
               tests: list[tuple[str, str, float]]) -> list[ItemStats]:
    """Per-test counts over the students whose grading did not fail; a notebook
    that was not graded counts as zero on each of its tests."""
    several = len({notebook for notebook, _, _ in tests}) > 1
    items = [ItemStats((f"{nb}/" if several else "") + f"{grade_id} ({points:g} pt)")
             for nb, grade_id, points in tests]
    for result in (r for r in results.values() if not r.errors):
        for item, (name, grade_id, _) in zip(items, tests, strict=True):
            notebook = result.notebooks.get(name)
            cells = notebook.cells if notebook and notebook.graded else {}
            cell = cells.get(grade_id)
            if cell and cell.seconds is not None:
                item.seconds.append(cell.seconds)
            if cell and cell.needs_manual_grade:
                item.by_hand += 1
            elif cell and cell.score >= cell.max_score:
                item.full += 1
            else:
                if cell and cell.score > 0:
                    item.partial += 1
                else:
                    item.zero += 1
                message = NO_RESULT if cell is None else cell.failure or NO_MESSAGE
                item.failures[key := pattern(message)] += 1
                item.examples.setdefault(key, message)
    return items


def _figure(fig: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/svg+xml;base64,{data}" alt="{escape(alt)}">'


@_STYLE
def _histogram(totals: list[float], max_points: float) -> str:
    step = max(1, -(-max_points // 40))  # one bar per point, at most 41 bars
    edges = [i * step - step / 2 for i in range(int(max_points // step) + 2)]
    mean, median = statistics.fmean(totals), statistics.median(totals)
    ax = (fig := Figure(figsize=(7, 3.6))).add_subplot()
    ax.hist(totals, bins=edges, color=BLUE, edgecolor="white")
    ax.axvline(mean, color=ORANGE, linewidth=2.5, label=f"mean {mean:.1f}")
    ax.axvline(median, color=VERMILLION, linewidth=2.5, linestyle="--",
               label=f"median {median:g}")
    ax.set(xlabel="score (points)", ylabel="students", xlim=(edges[0], edges[-1]))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper left")
    return _figure(fig, f"Histogram of {len(totals)} scores out of {max_points:g} "
                        f"points: mean {mean:.1f}, median {median:g}.")


@_STYLE
def _pass_rates(rated: list[ItemStats]) -> str:
    ax = (fig := Figure(figsize=(5, 0.9 + 0.34 * len(rated)))).add_subplot()
    # Low pass rates are hatched as well as red: not told by colour alone.
    bars = ax.barh([item.label for item in rated], [i.pass_rate for i in rated],
                   color=[VERMILLION if i.most_failed else BLUE for i in rated],
                   hatch=["//" if i.most_failed else "" for i in rated])
    ax.bar_label(bars, labels=[f"{item.pass_rate:.0%}" for item in rated], padding=3)
    ax.invert_yaxis()  # notebook order from the top
    ax.axvline(LOW_PASS_RATE, color="0.4", linestyle=":")
    ax.set(xlim=(0, 1.12), xlabel="students with full marks (%)")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    return _figure(fig, "Share of students with full marks per test: " + "; ".join(
        f"{item.label} {item.pass_rate:.0%}" for item in rated))


def _table(head: list[str], rows: list[list[str]], low: list[bool] | None = None
           ) -> str:
    """An HTML table of cells already escaped; rows where `low` is true shaded."""
    body = "".join(('<tr class="low">' if low and low[i] else "<tr>")
                   + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for i, row in enumerate(rows))
    heads = "".join(f"<th>{h}</th>" for h in head)
    return f"<table><thead><tr>{heads}</tr></thead><tbody>{body}</tbody></table>"


def _rates(items: list[ItemStats]) -> str:
    rows = [[escape(i.label), "—" if i.pass_rate is None else f"{i.pass_rate:.0%}",
             str(i.full), str(i.partial), str(i.zero), str(i.by_hand),
             f"{statistics.fmean(i.seconds):.2f}" if i.seconds else "—"]
            for i in items]
    rated = [item for item in items if item.pass_rate is not None]
    return f'<div class="side">{_pass_rates(rated) if rated else ""}' + _table(
        ["test", "pass rate", "full", "partial", "zero", "by hand", "mean s"],
        rows, [item.most_failed for item in items]) + "</div>"


def _failures(items: list[ItemStats]) -> str:
    blocks = []
    for item in (item for item in items if item.failures):
        lost = item.partial + item.zero
        rows = [[str(count), f"{count / lost:.0%}", f"<code>{escape(key)}</code>",
                 f"<code>{escape(_cut(item.examples[key]))}</code>"]
                for key, count in item.failures.most_common(TOP_GROUPS)]
        blocks.append(f"<h3>{escape(item.label)}: students who lost points: {lost}"
                      "</h3>" + _table(["students", "share", "pattern", "example"],
                                       rows))
    return "".join(blocks) or "<p>No test lost points.</p>"


def _times(items: list[ItemStats]) -> str:
    rows = [[escape(i.label), str(len(i.seconds)),
             f"{statistics.median(i.seconds):.2f}", f"{max(i.seconds):.2f}"]
            for i in items if i.seconds]
    return (_table(["test", "measured", "median s", "max s"], rows) if rows
            else "<p>Not measured.</p>")


def write(folder: Path, assignment: str, results: dict[str, StudentResult],
          scores: dict[str, tuple[float, float]],
          tests: list[tuple[str, str, float]]) -> Path:
    """Write folder/item_analysis.html and return its path.

    `scores` maps student -> (score, max score) from the gradebook; `tests` lists
    (notebook, grade id, points) of every graded cell in source order.
    """
    graded = {s: r for s, r in results.items() if not r.errors}
    totals = [scores[s][0] if s in scores else sum(
        c.score for nb in r.notebooks.values() for c in nb.cells.values())
        for s, r in graded.items()]
    max_points = max((m for _, m in scores.values()), default=0.0) or sum(
        points for _, _, points in tests)
    flagged = sorted(s for s, r in results.items() if r.needs_attention())
    missing = sum(1 for r in graded.values() if any(
        not (r.notebooks.get(nb) and r.notebooks[nb].graded) for nb, _, _ in tests))
    items = item_stats(results, tests)

    summary = (f"{len(graded)} students graded; scores out of {max_points:g} points"
               + (f", mean {statistics.fmean(totals):.1f}, median "
                  f"{statistics.median(totals):g}" if totals else "")
               + f"; {len(flagged)} flagged; {len(results) - len(graded)} not graded "
               "(a grading error: left out of everything below but the flagged "
               "students).")
    if missing:
        summary += (" Graded students with a notebook missing or unreadable: "
                    f"{missing}; they count as 0 on each of its tests.")
    flagged_rows = [[escape(s), "not graded" if results[s].errors else
                     f"{scores[s][0]:g}" if s in scores else "—",
                     escape("; ".join(sorted({f.label for f in
                                              results[s].all_findings()}))),
                     "; ".join(dict.fromkeys(f.action for f in
                                             results[s].all_findings() if f.action))]
                    for s in flagged]
    sections = [
        ("summary", "Summary", "Who is counted below.", f"<p>{escape(summary)}</p>"),
        ("histogram", "Score histogram", "How many students (bar height) got "
         "each score (points); a bar holds the scores from its left edge up to, "
         "not including, its right edge; the lines mark the class mean and median.",
         _histogram(totals, max_points) if totals else "<p>No scores.</p>"),
        ("pass-rates", "Pass rate per test", "Share of graded students with full "
         "marks on each test, in notebook order; hatched red bars and shaded rows: "
         f"fewer than {LOW_PASS_RATE:.0%} passed. Cells awaiting a hand grade are "
         "left out.", _rates(items)),
        ("failures", "Most common failures per test", "Messages that differ only "
         "in numbers or arrays (masked as # and […]) form one group; share is of "
         f"the students who lost points on the test; top {TOP_GROUPS} groups.",
         _failures(items)),
        ("flagged", "Flagged students", "Students whose grading found something "
         "that needs a look (details in report.md).",
         _table(["student", "score", "why", "what to do"], flagged_rows)
         if flagged_rows
         else "<p>None.</p>"),
        ("time", "Time per test", "Seconds each test cell ran, over the graded "
         "students whose time was measured.", _times(items)),
    ]
    toc = "".join(f'<li><a href="#{anchor}">{title}</a></li>'
                  for anchor, title, _, _ in sections)
    body = "".join(f'<section id="{anchor}"><h2>{title}</h2><p class="how">{how}'
                   f"</p>{content}</section>" for anchor, title, how, content
                   in sections)
    title = escape(f"Item analysis: {assignment}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ANALYSIS_PAGE
    path.write_text(f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                    f"<title>{title}</title><style>{_CSS}</style></head><body>"
                    f"<h1>{title}</h1><nav><ol>{toc}</ol></nav>{body}</body></html>\n",
                    encoding="utf-8")
    return path


_CSS = """
body{font:16px/1.45 system-ui,sans-serif;max-width:1400px;margin:auto;padding:1em}
.how{color:#555;font-style:italic} img{max-width:100%;height:auto}
table{border-collapse:collapse;margin:.5em 0;font-size:15px}
th,td{border:1px solid #bbb;padding:.2em .5em;text-align:left;vertical-align:top}
tr.low td{background:#fbe3d6;font-weight:600}
code{white-space:pre-wrap;word-break:break-word;font-size:14px}
.side{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
"""
