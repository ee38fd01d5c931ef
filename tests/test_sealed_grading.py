"""Sealed grading against hostile submissions, all graded in one run.

hostile_catalog.py makes each case from the first notebook of the first
assignment: tricks that try to pass the tests from inside the kernel, code that
reads secrets, harms the course or other students, escapes or exhausts the
machine, files handed in beside the notebook, and answers that delegate to the
withheld reference. They are graded together with a correct submission, a blank
one and two classmates with full answers, in a copy of the course whose gradebook
already holds another student's grades. Then every case must have its expected
score and flag, and nothing outside the submissions' own results may have
changed: course files, other students' submissions, results and gradebook rows,
the repository's library; no process of the run may outlive it, and no line of a
submission may have run outside the sandbox.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import hostile_catalog
import nbformat
import nbtools
import pytest
from conftest import ASSIGNMENTS, ROOT
from coursetools.feedback import secret_lines as hidden_lines
from coursetools.grade import Settings, grade
from coursetools.results import TIME_CODES, StudentResult
from coursetools.sandbox import SANDBOX_UIDS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ASSIGNMENTS, reason="no assignments in solutions/"),
]

ASSIGNMENT = ASSIGNMENTS[0] if ASSIGNMENTS else None
SETTINGS = dict(jobs=2, timeout=10, notebook_timeout=60, memory_mb=2048, quiet=True)
NEVER = {"grading_error", "sandbox", "judge_setup_error"}  # flags no case may get
OLD = "ch00_before"  # an assignment graded before, with one student
ALUMNUS = "alumnus"
OTHER_KERNEL = "unsealed"

CASES = [
    "correct", "blank", "classmate_a", "classmate_b",
    # subverting the tests
    "hooks", "ast_transformer", "input_transformer", "patch_numpy", "patch_builtins",
    "withheld_noop", "tracer", "frame_peek", "late_solution", "exit_midway",
    "judge_takeover", "kernel_choice", "bridge_breaker",
    # reading secrets
    "snoop_files", "snoop_processes",
    # harming others
    "vandal", "killer", "forger", "lingerer",
    # escaping and exhausting
    "network", "fork_bomb", "memory_hog", "memfd_hog", "namespaces", "disk_filler",
    "huge_output", "loop_graded", "cpu_thread",
    # output past the cap, around GuardedExecute.output
    "display_update", "shared_display_id", "output_metadata", "reply_error",
    "judge_error", "forged_messages",
    # files beside the notebook, or instead of it
    "beside_files", "symlink_solution", "json_bomb",
    # delegating to the reference
    "ref_public", "ref_rebuilt", "ref_source",
]


@dataclass
class Run:
    course: Path
    tmp: Path
    canary: Path
    catalog: hostile_catalog.HostileCatalog
    cases: dict[str, hostile_catalog.Case]
    classmates: dict[str, str]
    summary: object
    before: dict
    alumnus_before: list
    leftovers: list[str]
    seconds: float


def digest(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def course_digest(course: Path) -> dict:
    found = {"nbgrader_config.py": digest(course)["nbgrader_config.py"]}
    for name in ("solutions", "exercises", "lib", "submitted"):
        found[name] = digest(course / name)
    return found


def host_ports() -> list[int]:
    """TCP ports listening on the host, which no sandbox may reach."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)[:20]


def add_alumnus(course: Path) -> None:
    """A gradebook that already holds another assignment's grades."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.add_assignment(OLD)
        gb.add_notebook("old", OLD)
        for name in ("old_a", "old_b"):
            gb.add_grade_cell(name, "old", OLD, max_score=5, cell_type="code")
        gb.add_student(ALUMNUS, first_name="Ada", last_name="Before")
        gb.add_submission(OLD, ALUMNUS)
        for name, auto, manual in (("old_a", 5.0, None), ("old_b", 2.0, 3.5)):
            found = gb.find_grade(name, "old", OLD, ALUMNUS)
            found.auto_score, found.manual_score = auto, manual
        gb.db.commit()


def alumnus_rows(course: Path) -> list:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        student = gb.find_student(ALUMNUS)
        submission = gb.find_submission(OLD, ALUMNUS)
        rows = [(student.first_name, student.last_name, submission.score)]
        for nb in submission.notebooks:
            rows += [(g.name, g.auto_score, g.manual_score, g.extra_credit)
                     for g in nb.grades]
        return rows


def leftover_processes(marks: list[str]) -> list[str]:
    """Processes of the run: sandbox users' processes whose mounts or command
    line name its folders, and any process whose command line does. (The uid
    alone does not tell: another grading run on the machine uses the same.)"""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace"
            )
            status = (entry / "status").read_text()
            uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
            mounts = ""
            if uid in SANDBOX_UIDS:
                mounts = (entry / "mountinfo").read_text()
        except (OSError, AttributeError):
            continue  # gone meanwhile
        if any(m in cmdline or m in mounts for m in marks):
            found.append(f"pid {entry.name} uid {uid}: {cmdline[:160]}")
    return found


def copy_course(course: Path) -> None:
    """The assignment's source and release, the config and rnnlib, into `course`."""
    shutil.copy(ROOT / "nbgrader_config.py", course)
    for top in ("solutions", "exercises"):
        shutil.copytree(ROOT / top / ASSIGNMENT, course / top / ASSIGNMENT)
    shutil.copytree(ROOT / "lib" / "rnnlib", course / "lib" / "rnnlib",
                    ignore=shutil.ignore_patterns("__pycache__"))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    base = tmp_path_factory.mktemp("sealed")
    course, tmp, canary = base / "course", base / "t", base / "canary"
    for folder in (course, tmp, canary):
        folder.mkdir()
    copy_course(course)
    classmates = {f"classmate_{x}": f"MARKER-{secrets.token_hex(8)}" for x in "ab"}
    # Another kernel installed for the instructor (a conda env, say): plain
    # ipykernel, no sandbox. A submission may name it in its metadata.
    data_dir = base / "jupyter-data"
    spec = data_dir / "kernels" / OTHER_KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f",
                 "{connection_file}"],
        "display_name": "Python 3 (another environment)", "language": "python",
    }))
    world = hostile_catalog.World(
        course, ROOT, tmp, canary, ASSIGNMENT, classmates, host_ports(), OTHER_KERNEL,
        SETTINGS["memory_mb"],
    )
    catalog, cases = hostile_catalog.build(world)
    for case in cases:
        folder = course / "submitted" / case.student / ASSIGNMENT
        folder.mkdir(parents=True)
        for name, data in case.files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        for name, target in case.links.items():
            (folder / name).symlink_to(target)
    add_alumnus(course)
    before = course_digest(course)
    alumnus_before = alumnus_rows(course)

    # The grader's scratch folders go under `tmp`, so that the run's processes
    # can be told apart from any other grading on this machine.
    saved = {v: os.environ.get(v) for v in ("TMPDIR", "JUPYTER_DATA_DIR")}
    saved_tempdir = tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = str(tmp), None
    os.environ["JUPYTER_DATA_DIR"] = str(data_dir)
    started = time.monotonic()
    try:
        summary = grade(course, ASSIGNMENT, Settings(**SETTINGS))
    finally:
        for variable, value in saved.items():
            if value is None:
                os.environ.pop(variable)
            else:
                os.environ[variable] = value
        tempfile.tempdir = saved_tempdir
    seconds = time.monotonic() - started
    deadline = time.monotonic() + 10  # a kernel's sandbox may take a moment to go
    while (left := leftover_processes([str(tmp), str(course)])) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.5)
    return Run(course, tmp, canary, catalog, {c.student: c for c in cases},
               classmates, summary, before, alumnus_before, left, seconds)


# -- reading the results ---------------------------------------------------------
def codes(run: Run, student: str) -> set[str]:
    path = run.course / "grading" / ASSIGNMENT / "state" / f"{student}.json"
    return {f.code for f in StudentResult.from_json(path.read_text()).all_findings()}


def graded_notebook(run: Run, student: str) -> dict:
    """The autograded notebook (no cells when it was not graded)."""
    folder = run.course / "autograded" / student / ASSIGNMENT
    path = folder / f"{run.catalog.name}.ipynb"
    return nbtools.load(path) if path.exists() else {"cells": []}


def output_text(nb: dict, tests: bool = True) -> str:
    """Every output of the notebook's cells (of its non-test cells only)."""
    parts = []
    for cell in nb["cells"]:
        if not tests and nbtools.nbgrader_meta(cell).get("grade"):
            continue
        for output in cell.get("outputs", []):
            if "text" in output:
                parts.append(_joined(output["text"]))
            for value in output.get("data", {}).values():
                parts.append(_joined(value) if isinstance(value, (str, list))
                             else json.dumps(value))
            if output.get("output_type") == "error":
                parts += [output["ename"], output["evalue"], *output["traceback"]]
    return "\n".join(parts)


def output_size(cell: dict) -> int:
    """Characters of a cell's outputs, metadata included."""
    metadata = [o.get("metadata", {}) for o in cell.get("outputs", [])]
    return len(output_text({"cells": [cell]})) + len(json.dumps(metadata))


def _joined(text) -> str:
    return text if isinstance(text, str) else "".join(text)


def feedback_text(run: Run, student: str) -> str:
    pages = sorted((run.course / "feedback" / student / ASSIGNMENT).glob("*.html"))
    return "\n".join(
        html.unescape(re.sub(r"<[^>]+>", "", p.read_text())) for p in pages
    )


def lines_of(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines()}


def own_lines(case: hostile_catalog.Case) -> set[str]:
    """Every line the student handed in: showing them back is no leak."""
    found = set()
    for name, data in case.files.items():
        try:
            cells = json.loads(data)["cells"] if name.endswith(".ipynb") else []
        except (ValueError, RecursionError):
            cells = []  # not a notebook a parser can read
        for cell in cells:
            found |= lines_of(nbtools.source(cell))
    return found


# -- each case ---------------------------------------------------------------------
@pytest.mark.parametrize("student", CASES)
def test_case_gets_its_score_and_flags(run, student):
    if student not in run.cases:
        pytest.skip(f"{student} does not apply to {ASSIGNMENT}")
    case = run.cases[student]
    score, max_score = run.summary.scores[student]
    assert max_score == run.catalog.total
    assert score == pytest.approx(case.expected_score), (
        f"{student} scored {score:g}, expected {case.expected_score:g}: {case.why}"
    )
    found = codes(run, student)
    assert case.flags <= found, f"{student} should be flagged {case.flags}: {found}"
    if case.any_flag:
        assert case.any_flag & found, f"{student}: one of {case.any_flag}: {found}"
    assert not found & NEVER, f"{student}: {found & NEVER}"


@pytest.mark.parametrize("student", CASES)
def test_case_code_ran_and_printed_what_it_should(run, student):
    if student not in run.cases:
        pytest.skip(f"{student} does not apply to {ASSIGNMENT}")
    case = run.cases[student]
    text = output_text(graded_notebook(run, student))
    for needed in case.must_print:
        assert needed in text, f"{student}: its code did not get to print {needed!r}"
    for banned in case.must_not_print:
        assert banned not in text, f"{student} printed {banned!r}: {case.why}"
    for label, bound in case.bounds.items():
        values = [float(v) for v in re.findall(rf"^{label} (\d+)", text, re.M)]
        assert values, f"{student} printed no {label} line"
        assert max(values) <= bound, f"{student}: {label} {max(values):g} > {bound:g}"


def test_no_graded_notebook_keeps_more_output_than_its_cap(run):
    cap = Settings().max_output_bytes  # a cell's; 20 times it a notebook's
    over = {}
    for student in run.cases:
        nb = graded_notebook(run, student)
        sizes = [output_size(cell) for cell in nb["cells"]]
        widgets = len(json.dumps(nb.get("metadata", {}).get("widgets", {})))
        if max(sizes, default=0) > cap + 50_000 or sum(sizes) + widgets > 21 * cap:
            over[student] = (max(sizes, default=0), sum(sizes), widgets)
    assert not over, f"(largest cell, all cells, widget state): {over}"


# -- nothing else ------------------------------------------------------------------
def test_no_line_of_a_submission_ran_outside_the_sandbox(run):
    escaped = sorted(p.name for p in run.canary.iterdir())
    assert not escaped, f"student code ran outside the sandbox: {escaped}"


def test_every_student_is_graded_once_and_the_honest_ones_fully(run):
    assert not run.summary.not_graded, run.summary.not_graded
    assert sorted(run.summary.graded) == sorted(run.cases)
    again = sorted(s for s, n in run.summary.attempts.items() if n > 1)
    # A timeout beside other jobs is graded once more (red-team pass 8), no other;
    # one that timed out while no other job ran is not.
    timed_out = sorted(s for s, case in run.cases.items() if case.flags & TIME_CODES)
    assert set(again) <= set(timed_out), f"graded twice (first attempt failed): {again}"
    # The pool's processes graded everyone: none died and was replaced.
    assert len(run.summary.workers) == SETTINGS["jobs"], run.summary.workers
    silent = [s for s in run.cases
              if not list((run.course / "feedback" / s / ASSIGNMENT).glob("*.html"))]
    assert not silent, f"no feedback page for {silent}"
    with (run.course / "grades.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle)]
    # nbgrader exports a row for every student and assignment in the gradebook.
    count = Counter(r["student_id"] for r in rows if r["assignment"] == ASSIGNMENT)
    assert set(count) == {*run.cases, ALUMNUS} and set(count.values()) == {1}, count
    for student in ("correct", *run.classmates):
        assert run.summary.scores[student] == (run.catalog.total, run.catalog.total)
    old = {r["student_id"]: float(r["score"]) for r in rows if r["assignment"] == OLD}
    assert old.pop(ALUMNUS) == run.alumnus_before[0][2]
    assert set(old.values()) == {0.0}, old


def test_course_files_and_submissions_are_unchanged(run):
    after = course_digest(run.course)
    for name, files in run.before.items():
        assert after[name] == files, f"{name} changed"


def test_other_assignments_gradebook_rows_are_unchanged(run):
    assert alumnus_rows(run.course) == run.alumnus_before


def test_no_write_got_through(run):
    written = []
    for top in (run.course, ROOT / "lib"):
        for path in top.rglob("*"):
            if path.is_file() and hostile_catalog.WROTE.encode() in path.read_bytes():
                written.append(str(path))
    for top in (run.course, ROOT):
        written += [str(p) for p in top.glob("HOSTILE*")]
    assert not written, f"hostile writes got through: {written}"


def test_no_process_of_the_run_outlives_it(run):
    assert not run.leftovers, "\n".join(run.leftovers)


def test_classmates_results_are_their_own(run):
    for student, marker in run.classmates.items():
        page = feedback_text(run, student)
        assert marker in page, f"{student}'s feedback lost its own work"
        assert hostile_catalog.WROTE not in page
        assert codes(run, student) == set(), codes(run, student)
        assert marker in output_text(graded_notebook(run, student))


def test_no_secret_reaches_a_students_feedback_or_outputs(run):
    source = sorted((run.course / "solutions" / ASSIGNMENT).glob("*.ipynb"))[0]
    hidden = hidden_lines(nbformat.read(source, as_version=4))
    secret = nbtools.secret_lines(nbtools.load(source))  # solutions too
    assert hidden and secret - hidden, "the source notebook has nothing secret"
    leaks = []
    for student, case in run.cases.items():
        page = lines_of(feedback_text(run, student))
        graded = graded_notebook(run, student)
        shown = lines_of(output_text(graded, tests=False))
        own = own_lines(case)
        leaks += [f"{student} feedback: {s}" for s in sorted(page & hidden - own)[:3]]
        if case.blank:
            for where, seen in (("feedback", page), ("outputs", shown)):
                leaked = sorted(seen & secret - own)[:3]
                leaks += [f"{student} {where}: {s}" for s in leaked]
        everything = json.dumps(graded) + "\n".join(page)
        for other, marker in run.classmates.items():
            if other != student and marker in everything:
                leaks.append(f"{student} shows {other}'s marker")
    assert not leaks, "\n".join(leaks)


def test_no_submission_holds_up_the_run(run):
    # A notebook may use its time limit, no more (plus its worker's own work).
    limit = SETTINGS["notebook_timeout"] + 30
    slow = {}
    for student in run.cases:
        path = run.course / "grading" / ASSIGNMENT / "state" / f"{student}.json"
        seconds = json.loads(path.read_text()).get("seconds", 0)  # 0: not graded
        if seconds > limit:
            slow[student] = seconds
    assert not slow, f"over {limit} s: {slow} (the whole run: {run.seconds:.0f} s)"


# -- a lost kernel ------------------------------------------------------------------
def test_a_part_that_loses_its_kernel_costs_only_its_own_points(tmp_path):
    """A loop that appends without end in one answer (the kernel then ran out of
    memory while serving a test, and the bridge's connection broke, or the kernel
    stopped answering) and a cell that kills its kernel before the second
    answer: the later parts were
    "not run", and for the first the score depended on a race (walkthrough 12:
    12 or 21 of 25). Now the bridge answers the MemoryError and a new kernel
    grades the parts after a lost one. Three runs, two jobs side by side: the
    same score each time."""
    course = tmp_path / "course"
    course.mkdir()
    copy_course(course)
    (tmp_path / "canary").mkdir()
    world = hostile_catalog.World(course, ROOT, tmp_path, tmp_path / "canary",
                                  ASSIGNMENT, {"classmate_a": "unused"})
    catalog, _ = hostile_catalog.build(world)
    gid, func = catalog.lone_function(catalog.answer_ids)
    lost = sum(hostile_catalog._points(c) for c in catalog.tests_calling(func.name))
    appender = catalog.with_function(
        catalog.full, gid, func,
        "_out = []\nwhile True:\n    _out.append(__import__('numpy').zeros(16))\n")
    exit_code = catalog.guarded("exiter", "_os._exit(0)\n")
    exiter = catalog.with_cell(catalog.full, exit_code, catalog.answer_ids[1])
    expected = {"appender": catalog.total - lost, "exiter": catalog.total}
    for student, nb in (("appender", appender), ("exiter", exiter)):
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        for name, data in catalog.file(nb).items():
            (folder / name).write_bytes(data)
    settings = dict(SETTINGS, notebook_timeout=120, force=True)
    for _ in range(3):
        summary = grade(course, ASSIGNMENT, Settings(**settings))
        assert {s: summary.scores[s][0] for s in expected} == expected
        assert {"kernel_died", "kernel_restarted"} <= codes_in(course, "exiter")
        assert "kernel_restarted" in codes_in(course, "appender") or (
            "memory" in codes_in(course, "appender"))


def codes_in(course: Path, student: str) -> set[str]:
    path = course / "grading" / ASSIGNMENT / "state" / f"{student}.json"
    return {f.code for f in StudentResult.from_json(path.read_text()).all_findings()}


# -- a moved set-up cell (red-team pass 14) -------------------------------------------
MOVED_IN = next((a for a in ASSIGNMENTS if a.startswith("ch05")), None)


@pytest.mark.skipif(MOVED_IN is None, reason="ch05 is not in solutions/")
def test_a_set_up_cell_moved_above_the_imports_is_not_the_assignments_fault(tmp_path):
    """Nothing keeps locked cells in place. ch05's setup_part4 runs `np.load(...)`
    at its top; moved above the imports cell it fails in the judge as in the
    learner's kernel, and the report said "set-up cell failed in the judge: fix
    the assignment" (and, a time code, graded the student twice beside others).
    The same cell in its place is still checked: the honest student gets full
    marks and no finding."""
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    for top in ("solutions", "exercises"):
        shutil.copytree(ROOT / top / MOVED_IN, course / top / MOVED_IN)
    shutil.copytree(ROOT / "lib" / "rnnlib", course / "lib" / "rnnlib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (source,) = sorted((ROOT / "solutions" / MOVED_IN).glob("*.ipynb"))
    solution = nbtools.load(source)
    release = nbtools.load(ROOT / "exercises" / MOVED_IN / source.name)
    answers = {nbtools.nbgrader_meta(c)["grade_id"]
               for c in nbtools.answer_cells(solution)}
    honest = nbtools.fill_answers(release, solution, answers)
    mover = nbtools.fill_answers(release, solution, answers)
    moved = next(c for c in mover["cells"]
                 if nbtools.nbgrader_meta(c).get("grade_id") == "setup_part4")
    mover["cells"].remove(moved)
    mover["cells"].insert(0, moved)
    for student, nb in (("honest", honest), ("mover", mover)):
        nbtools.save(nb, course / "submitted" / student / MOVED_IN / source.name)
    summary = grade(course, MOVED_IN, Settings(jobs=1, timeout=30,
                                                notebook_timeout=300, quiet=True))

    def found(student):
        path = course / "grading" / MOVED_IN / "state" / f"{student}.json"
        result = StudentResult.from_json(path.read_text())
        return {f.code for f in result.all_findings()}

    assert summary.scores["honest"][0] == summary.scores["honest"][1] > 0
    assert found("honest") == set()
    assert summary.scores["mover"][0] < summary.scores["mover"][1]  # its own doing
    assert "error_outside_tests" in found("mover")
    assert not found("mover") & NEVER, found("mover")
    assert summary.attempts["mover"] == 1
