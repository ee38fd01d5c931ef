"""The grading pool's accounting, with fake workers: every student exactly once.

A student counts as graded only when the worker that was sent them answers
with their token; a failed attempt is retried once; after that the failure is
the student's result, marked retryable (never cached as final).
"""

from __future__ import annotations

import sys
import textwrap

import pytest
from coursetools import grade as grade_module

FAKE_WORKER = textwrap.dedent(
    """
    import argparse, json, os, sys
    from pathlib import Path
    parser = argparse.ArgumentParser()
    for flag in ("--root", "--work", "--assignment", "--settings"):
        parser.add_argument(flag)
    args = parser.parse_args()
    results = Path(args.work) / "results"
    results.mkdir(parents=True, exist_ok=True)
    marks = Path(os.environ["FAKE_MARKS"])
    print("ready", flush=True)
    for line in sys.stdin:
        student, token = line.split()
        attempt = len(list(marks.glob(student + ".*"))) + 1
        (marks / f"{student}.{attempt}").touch()
        result = {"student": student, "notebooks": {}, "errors": [], "token": token}
        if student == "forger":  # claims to have graded someone else
            print(f"done good {token}", flush=True)
            continue
        if student == "silent" or (student == "flaky" and attempt == 1):
            sys.exit(3)
        if student == "wrong_token":
            result["token"] = "0" * 32
        if student == "error":
            result["errors"] = ["nbgrader failed"]
        (results / f"{student}.json").write_text(json.dumps(result))
        print(f"done {student} {token}", flush=True)
    """
)


@pytest.fixture
def pool(tmp_path, monkeypatch):
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER)
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("FAKE_MARKS", str(marks))
    monkeypatch.setattr(grade_module, "WORKER_COMMAND", [sys.executable, str(script)])
    seen: dict[str, list[dict]] = {}

    def run(students, jobs=2):
        not_graded = grade_module.run_workers(
            tmp_path, "a1", students, {}, 60, tmp_path / "scratch",
            lambda s, r: seen.setdefault(s, []).append(r), jobs, tmp_path / "log",
        )
        return seen, not_graded, marks

    (tmp_path / "scratch").mkdir()
    return run


def test_every_student_comes_back_exactly_once(pool):
    students = ["good", "forger", "silent", "flaky", "wrong_token", "error", "good2"]
    seen, not_graded, marks = pool(students)
    assert sorted(seen) == sorted(students) and not not_graded
    assert all(len(results) == 1 for results in seen.values()), seen
    for student in ("good", "good2", "flaky"):
        assert seen[student][0]["errors"] == [] and "retryable" not in seen[student][0]
    for student in ("forger", "silent", "wrong_token", "error"):
        assert seen[student][0].get("retryable") is True, student
        assert seen[student][0]["errors"], student
    attempts = {s: len(list(marks.glob(s + ".*"))) for s in students}
    assert attempts == {"good": 1, "good2": 1, "flaky": 2, "forger": 2,
                        "silent": 2, "wrong_token": 2, "error": 2}


def test_a_forged_line_does_not_grade_its_victim(pool):
    seen, _, _ = pool(["forger"], jobs=1)
    assert "good" not in seen
