"""The instructor's report: one row per student, and what needs a human look."""

from __future__ import annotations

import csv
from pathlib import Path

# What a code means, in the words the report uses. Codes not listed here are
# shown as they are. INFO codes are listed but do not need a look.
LABELS = {
    "not_utf8": "not UTF-8 (not graded)",
    "invalid_json": "invalid JSON (not graded)",
    "not_a_notebook": "not a notebook (not graded)",
    "missing_notebook": "notebook missing",
    "extra_notebook": "extra notebook ignored",
    "renamed": "renamed notebook",
    "duplicated_cell": "duplicated graded cell",
    "unknown_cell": "unknown graded cell",
    "metadata_restored": "nbgrader metadata restored",
    "cell_type_changed": "cell type changed",
    "points_changed": "points changed (overwritten)",
    "metadata_changed": "cell settings changed (overwritten)",
    "tampered": "read-only/test cell edited (overwritten)",
    "cell_deleted": "deleted cell put back",
    "answer_missing": "answer cell missing",
    "grading_error": "grading error",
    "timeout": "cell timeout",
    "unresponsive": "kernel ignored interrupt",
    "notebook_timeout": "notebook time limit",
    "kernel_died": "kernel died",
    "memory": "memory cap hit",
    "huge_output": "huge output truncated",
    "reference_called": "called the withheld reference",
    "error_outside_tests": "error outside the tests",
    "stderr": "wrote to stderr (not penalised)",
    "extra_file": "file beside the notebook (ignored)",
    "symlink": "symbolic link handed in (ignored)",
    "judge_setup_error": "set-up cell failed in the judge",
    "sandbox": "grading sandbox problem",
}
INFO = {"stderr"}


def issues(result: dict) -> list[dict]:
    """Every flag and event of a result, each {"code", "notebook", "message"}."""
    found = []
    for name, entry in result.get("notebooks", {}).items():
        for flag in entry.get("flags", []):
            found.append(
                {"code": flag["code"], "notebook": name, "message": flag["message"]}
            )
        for event in entry.get("events", []):
            where = f" (cell {event['cell']})" if event.get("cell") else ""
            found.append(
                {
                    "code": event["kind"],
                    "notebook": name,
                    "message": event["detail"] + where,
                }
            )
    for error in result.get("errors", []):
        found.append(
            {
                "code": "grading_error",
                "notebook": "",
                "message": error.splitlines()[-1] if error else "unknown",
            }
        )
    return _dedupe(found)


def _dedupe(found: list[dict]) -> list[dict]:
    seen, unique = set(), []
    for item in found:
        key = (item["code"], item["notebook"], item["message"])
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def _duration(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{max(1, round(seconds / 60))} min"


def needs_attention(result: dict) -> bool:
    return any(i["code"] not in INFO for i in issues(result))


def write(
    folder: Path,
    assignment: str,
    results: dict[str, dict],
    scores: dict[str, tuple[float, float]],
    late: dict[str, float] | None = None,
    unsafe: bool = False,
    not_graded: dict[str, str] | None = None,
) -> tuple[Path, Path]:
    """report.md (attention list first) and report.csv; return both paths.

    `late` maps students to seconds past their due date (extensions included);
    lateness is noted, not flagged: the late-submission plugin sets its cost.
    """
    folder.mkdir(parents=True, exist_ok=True)
    late = late or {}
    rows = []
    for student in sorted(results):
        result = results[student]
        score, max_score = scores.get(student, (0.0, 0.0))
        found = issues(result)
        labels = sorted({LABELS.get(i["code"], i["code"]) for i in found})
        if late.get(student):
            labels.append(f"late by {_duration(late[student])}")
        rows.append(
            {
                "student": student,
                "score": score,
                "max_score": max_score,
                "needs_attention": "yes" if needs_attention(result) else "no",
                "issues": "; ".join(labels),
                "details": " | ".join(
                    f"{i['notebook']}: {i['message']}"
                    if i["notebook"]
                    else i["message"]
                    for i in found
                ),
            }
        )
    csv_path = folder / "report.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(
            handle,
            fieldnames=list(rows[0])
            if rows
            else [
                "student",
                "score",
                "max_score",
                "needs_attention",
                "issues",
                "details",
            ],
        )
        writer.writeheader()
        writer.writerows(rows)

    look = [r for r in rows if r["needs_attention"] == "yes"]
    n_late = sum(1 for r in rows if late.get(r["student"]))
    lines = []
    if unsafe:
        lines += [
            "**WARNING: these grades are not protected.** They were made with "
            "`--unsafe`, without a sandbox: a hostile submission could have read "
            "the hidden tests, changed its own or others' grades, or harmed the "
            "course files. Regrade on a machine where the sandbox works.",
            "",
        ]
    lines += [
        f"# Grading report: {assignment}",
        "",
        f"{len(rows)} students, {len(look)} need a look"
        + (f", {n_late} handed in late" if n_late else "")
        + f". Scores are out of {rows[0]['max_score']:g}."
        if rows
        else "No submissions.",
        "",
    ]
    if not_graded:
        lines += ["## Not graded", "", "| student | why |", "|---|---|"]
        lines += [f"| {s} | {why} |" for s, why in sorted(not_graded.items())]
        lines += [""]
    if look:
        lines += ["## Needs a look", "", "| student | score | what |", "|---|---|---|"]
        lines += [f"| {r['student']} | {r['score']:g} | {r['issues']} |" for r in look]
        lines += ["", "### Details", ""]
        for r in look:
            lines.append(f"- **{r['student']}**: {r['details']}")
        lines.append("")
    lines += ["## Everyone", "", "| student | score | notes |", "|---|---|---|"]
    lines += [
        f"| {r['student']} | {r['score']:g} | {r['issues'] or ''} |" for r in rows
    ]
    md_path = folder / "report.md"
    md_path.write_text("\n".join(lines) + "\n")
    return md_path, csv_path
