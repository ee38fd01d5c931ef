"""Grade every submission of one assignment: scores, feedback, and a report.

Usage::

    python -m coursetools.grade ASSIGNMENT [--jobs 2] [--timeout 60]
        [--notebook-timeout 300] [--memory-mb 2048] [--students a,b] [--force]
        [--no-feedback]

(or ``make grade ASSIGNMENT=ch02``; a unique prefix names the assignment).

Submissions are read from ``submitted/<student>/<assignment>/`` and never
modified. For each student the grader checks and repairs a copy of the notebooks
(:mod:`coursetools.checks`), autogrades it in a worker process with its own
scratch gradebook (:mod:`coursetools.worker`), merges the scores into
``gradebook.db`` from this process only, copies the graded notebook to
``autograded/`` and the feedback (hidden tests removed) to ``feedback/``. At the
end it exports every score to ``grades.csv`` and writes
``grading/<assignment>/report.md`` and ``report.csv``.

A student whose submission, source notebooks and settings are unchanged since
their last grading is skipped (``--force`` regrades), so an interrupted run is
resumed by running the same command again.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from coursetools import report, sandbox
from coursetools.course import (
    SUBMITTED_DIR,
    CourseError,
    find_root,
    nbgrader_env,
    resolve_assignment,
    run_nbgrader,
)

GRADES_CSV = "grades.csv"
REPORT_DIR = "grading"
# How a worker is started (a test swaps in a fake one).
WORKER_COMMAND = [sys.executable, "-m", "coursetools.worker"]
VERSION = "3"  # bump when grading changes in a way that should regrade everyone


@dataclass
class Settings:
    jobs: int = 2
    timeout: int = 60  # per cell, seconds
    notebook_timeout: int = 300  # per notebook, seconds
    memory_mb: int = 2048  # address-space cap of each kernel
    max_output_bytes: int = 1_000_000  # output kept per cell
    feedback: bool = True
    force: bool = False
    students: list[str] | None = None
    quiet: bool = False
    unsafe: bool = False  # grade without a sandbox (the report says so)

    def key(self) -> dict:
        return {
            "timeout": self.timeout,
            "notebook_timeout": self.notebook_timeout,
            "memory_mb": self.memory_mb,
            "max_output_bytes": self.max_output_bytes,
            "unsafe": self.unsafe,
            "version": VERSION,
        }


@dataclass
class Summary:
    assignment: str
    graded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    attention: list[str] = field(default_factory=list)
    report_md: Path | None = None
    report_csv: Path | None = None
    grades_csv: Path | None = None
    scores: dict = field(default_factory=dict)
    seconds: float = 0.0  # the whole run
    grading_seconds: float = 0.0  # workers only: without registration and export
    not_graded: dict = field(default_factory=dict)  # student -> why
    unsafe: bool = False


def students_with_submission(root: Path, assignment: str) -> list[str]:
    """Student ids that have a submitted/<student>/<assignment>/ folder."""
    submitted = root / SUBMITTED_DIR
    if not submitted.is_dir():
        return []
    return sorted(
        p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir()
    )


def _no_submissions(root: Path, assignment: str) -> str:
    """Why no submission was found, and what the folders should look like."""
    want = f"{SUBMITTED_DIR}/<student>/{assignment}/<notebook>.ipynb"
    submitted = root / SUBMITTED_DIR
    if not submitted.is_dir():
        return (
            f"no {SUBMITTED_DIR}/ folder in {root}: put each submission in {want} "
            f"(`nbgrader collect {assignment}` does it on a JupyterHub)"
        )
    found = sorted(
        str(p.relative_to(submitted)) for p in submitted.glob("*/*") if p.is_dir()
    )
    message = f"no submissions of {assignment}: expected {want} under {root}"
    if found:
        message += (
            f"; {SUBMITTED_DIR}/ holds {', '.join(found[:5])}"
            + (", ..." if len(found) > 5 else "")
            + f" (the folder must be named {assignment} in full)"
        )
    return message


def _misnamed_folders(root: Path, assignment: str) -> list[str]:
    """submitted/<student>/<short name>/ folders, e.g. ch01 for ch01_..."""
    return sorted(
        f"{SUBMITTED_DIR}/{p.parent.name}/{p.name}/"
        for p in (root / SUBMITTED_DIR).glob("*/*")
        if p.is_dir() and p.name != assignment and assignment.startswith(p.name)
    )


def submission_key(
    root: Path, assignment: str, student: str, settings: Settings
) -> str:
    """Hash of what determines a grade: the files handed in, the source, settings."""
    digest = hashlib.sha256(json.dumps(settings.key(), sort_keys=True).encode())
    for base in (
        root / SUBMITTED_DIR / student / assignment,
        root / "solutions" / assignment,
    ):
        for path in sorted(
            p for p in base.rglob("*") if p.is_file() and not p.is_symlink()
        ):
            digest.update(str(path.relative_to(base)).encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


# -- workers ------------------------------------------------------------------
class WorkerProcess:
    """One `python -m coursetools.worker`, fed one student at a time."""

    def __init__(
        self, root: Path, work: Path, assignment: str, worker_settings: dict, log: Path
    ):
        self.work = work
        work.mkdir(parents=True)
        command = [
            *WORKER_COMMAND,
            "--root",
            str(root),
            "--work",
            str(work),
            "--assignment",
            assignment,
            "--settings",
            json.dumps(worker_settings),
        ]
        self.log = log.open("a")
        # Unbuffered bytes: the selector watches the pipe itself, so no line may
        # wait in a Python-side buffer (a worker's "ready" and its first "done"
        # can arrive in one read when the first student is graded at once).
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            bufsize=0,
            env=nbgrader_env(),
            cwd=work,
            start_new_session=True,
        )
        self.student: str | None = None
        self.started = 0.0
        self._pending = b""

    def send(self, student: str) -> None:
        self.student, self.started = student, time.monotonic()
        self.token = secrets.token_hex(16)
        self.proc.stdin.write(f"{student} {self.token}\n".encode())

    def read_lines(self) -> list[str] | None:
        """The complete lines the worker has written so far; None once it exited."""
        data = os.read(self.proc.stdout.fileno(), 65536)
        if not data:
            return None
        *lines, self._pending = (self._pending + data).split(b"\n")
        return [line.decode(errors="replace") for line in lines]

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()
        self.log.close()

    def kill(self) -> None:
        """Stop the worker and every kernel it started."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        if not self.log.closed:
            self.log.close()


def run_workers(
    root, assignment, todo, worker_settings, budget, scratch, on_result, jobs, log
):
    """Grade `todo` with `jobs` workers; call on_result(student, result) per student.

    Each student goes out with a fresh random token and counts as graded only
    when the worker that was sent them answers ``done <student> <token>`` and
    the result file carries the same token. A student whose grading fails
    (a worker died or timed out, or the result is missing or forged) is tried
    once more; after that the failure is their result, marked ``retryable``
    so that it is never cached as final. Returns {student: why} for anyone
    who could not be graded.
    """
    queue = list(todo)
    attempts = {student: 0 for student in todo}
    finished: set[str] = set()
    selector = selectors.DefaultSelector()
    serial = 0

    def spawn():
        nonlocal serial
        serial += 1
        settings = {**worker_settings, "slot": serial}
        worker = WorkerProcess(
            root, scratch / f"worker-{serial}", assignment, settings, log
        )
        selector.register(worker.proc.stdout, selectors.EVENT_READ, worker)
        return worker

    def feed(worker):
        if queue:
            student = queue.pop(0)
            attempts[student] += 1
            worker.send(student)
        else:
            worker.student = None
            selector.unregister(worker.proc.stdout)
            worker.close()

    def give_up_or_retry(student, why):
        if attempts[student] < 2:
            queue.append(student)
            return
        finished.add(student)
        on_result(
            student,
            {
                "student": student,
                "assignment": assignment,
                "notebooks": {},
                "errors": [why],
                "retryable": True,
            },
        )

    def failed(worker, why):
        student = worker.student
        selector.unregister(worker.proc.stdout)
        worker.kill()
        if student is not None:
            give_up_or_retry(student, why)
        if queue:
            feed(spawn())

    def accept(worker, line):
        parts = line.split()
        if len(parts) != 3 or parts[0] != "done" or worker.student is None:
            return False
        student, token = parts[1], parts[2]
        if student != worker.student or token != worker.token:
            return False
        path = worker.work / "results" / f"{student}.json"
        result = _load(path)
        if result is None or result.get("token") != token:
            return False
        result.pop("token", None)
        if result.get("errors") and attempts[student] < 2:
            queue.append(student)  # a grading error: once more, from scratch
        else:
            finished.add(student)
            if result.get("errors"):
                result["retryable"] = True
            on_result(student, result)
        worker.student = None
        return True

    for _ in range(min(jobs, len(queue))):
        feed(spawn())
    try:
        while selector.get_map():
            for key, _ in selector.select(timeout=1.0):
                worker = key.data
                lines = worker.read_lines()
                if lines is None:  # the worker exited
                    failed(
                        worker,
                        "the grading worker stopped unexpectedly "
                        f"(exit code {worker.proc.poll()})",
                    )
                    continue
                for line in lines:
                    if line.startswith("done "):
                        if accept(worker, line):
                            feed(worker)
                        else:
                            failed(worker, f"the worker answered {line[:80]!r}")
                            break
            for key in list(selector.get_map().values()):
                worker = key.data
                if worker.student and time.monotonic() - worker.started > budget:
                    failed(
                        worker, f"grading took longer than {budget} s and was stopped"
                    )
    finally:
        for key in list(selector.get_map().values()):
            key.data.kill()
    why = "the grader stopped before grading it"
    return {student: why for student in todo if student not in finished}


# -- the whole run ------------------------------------------------------------
def grade(root: Path, assignment: str, settings: Settings | None = None) -> Summary:
    """Grade `assignment` under course folder `root`; return what happened."""
    settings = settings or Settings()
    started = time.monotonic()
    say = (lambda *a: None) if settings.quiet else print
    students = students_with_submission(root, assignment)
    if settings.students is not None:
        unknown = sorted(set(settings.students) - set(students))
        if unknown:
            raise CourseError(
                f"no submission of {assignment} from: {', '.join(unknown)}"
            )
        students = [s for s in students if s in settings.students]
    if not students:
        raise CourseError(_no_submissions(root, assignment))
    if not settings.unsafe:
        why = sandbox.problem()
        if why:
            raise CourseError(
                f"cannot seal the grading here: {why}. Grades made without a "
                "sandbox are not protected from hostile submissions; to grade "
                "anyway, run again with --unsafe (make grade GRADE_ARGS=--unsafe)"
            )
    strays = _misnamed_folders(root, assignment)
    if strays:
        say(
            f"warning: not graded, the folder must be named {assignment}: "
            + ", ".join(strays)
        )
    from coursetools import gradebook

    out = root / REPORT_DIR / assignment
    state_dir = out / "state"
    state_dir.mkdir(parents=True, exist_ok=True)
    (out / "workers.log").write_text("")
    db_path = root / "gradebook.db"
    db_url = f"sqlite:///{db_path}"
    summary = Summary(assignment)

    with tempfile.TemporaryDirectory(prefix="coursetools-grade-") as tmp:
        scratch = Path(tmp)
        release_dir = scratch / "release"
        gradebook.register(root, assignment, release_dir)
        gradebook.snapshot(db_path, scratch / "template.db")

        keys = {s: submission_key(root, assignment, s, settings) for s in students}
        todo = []
        for student in students:
            state = _load(state_dir / f"{student}.json")
            if (
                not settings.force
                and state
                and state.get("key") == keys[student]
                and gradebook.has_submission(db_url, assignment, student)
            ):
                summary.skipped.append(student)
            else:
                todo.append(student)
        say(
            f"{assignment}: {len(students)} submission(s), {len(todo)} to grade, "
            f"{len(summary.skipped)} unchanged since last graded (skipped)"
        )

        def on_result(student, result):
            # A grading error is never final: the next run grades them again.
            result["key"] = None if result.get("retryable") else keys[student]
            result["attention"] = report.needs_attention(result)
            _install_outputs(root, assignment, student, result, out, notebooks)
            gradebook.merge(db_url, assignment, student, result)
            (state_dir / f"{student}.json").write_text(
                json.dumps(result, indent=1, default=str)
            )
            summary.graded.append(student)
            mark = "!" if result["attention"] else " "
            say(
                f"  {mark} {student:<24} {result.get('seconds', 0):6.1f} s "
                f"({len(summary.graded)}/{len(todo)})"
            )

        notebooks = [p.stem for p in (root / "solutions" / assignment).glob("*.ipynb")]
        n_notebooks = len(notebooks)
        worker_settings = {
            **settings.key(),
            "feedback": settings.feedback,
            "template_db": str(scratch / "template.db"),
            "release_dir": str(release_dir / assignment),
            "kernel_threads": max(1, (os.cpu_count() or 1) // max(1, settings.jobs)),
            "uid_base": sandbox.SANDBOX_UID
            + sandbox.UIDS_PER_RUN * secrets.randbelow(sandbox.RUN_SLOTS),
        }
        budget = settings.notebook_timeout * max(1, n_notebooks) + 120
        workers_started = time.monotonic()
        if todo:
            summary.not_graded = run_workers(
                root,
                assignment,
                todo,
                worker_settings,
                budget,
                scratch,
                on_result,
                settings.jobs,
                out / "workers.log",
            )
        summary.grading_seconds = time.monotonic() - workers_started

    summary.grades_csv = root / GRADES_CSV
    run_nbgrader(root, "export", f"--to={summary.grades_csv}")
    results = {
        s: _load(state_dir / f"{s}.json") or {}
        for s in students_with_submission(root, assignment)
    }
    summary.scores = gradebook.scores(db_url, assignment)
    summary.unsafe = settings.unsafe
    summary.report_md, summary.report_csv = report.write(
        out,
        assignment,
        results,
        summary.scores,
        gradebook.seconds_late(db_url, assignment),
        unsafe=settings.unsafe,
        not_graded=summary.not_graded,
    )
    summary.attention = sorted(s for s, r in results.items() if r.get("attention"))
    summary.seconds = time.monotonic() - started
    _print_summary(summary, say)
    return summary


def _install_outputs(root, assignment, student, result, out, notebooks) -> None:
    """Copy the worker's graded notebooks and feedback into the course folders."""
    dirs = {
        kind: root / kind / student / assignment for kind in ("autograded", "feedback")
    }
    for folder in [*dirs.values(), out / "feedback-src" / student]:
        _remove(folder)
    for name, entry in result.get("notebooks", {}).items():
        for kind, key in (("autograded", "autograded"), ("feedback", "feedback")):
            if entry.get(key):
                dirs[kind].mkdir(parents=True, exist_ok=True)
                shutil.copy(entry[key], dirs[kind] / Path(entry[key]).name)
                entry[key] = str(dirs[kind] / Path(entry[key]).name)
        if entry.get("feedback_source"):
            keep = out / "feedback-src" / student
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(entry["feedback_source"], keep / f"{name}.ipynb")
            entry["feedback_source"] = str(keep / f"{name}.ipynb")
        if not entry.get("graded"):
            reasons = "; ".join(f["message"] for f in entry.get("flags", []))
            _not_graded_page(dirs["feedback"], name, reasons)
    for name in notebooks:  # a grading error: no notebook came back at all
        if name not in result.get("notebooks", {}):
            _not_graded_page(dirs["feedback"], name, "; ".join(result["errors"]))


def _not_graded_page(folder: Path, name: str, reasons: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.html").write_text(
        "<!DOCTYPE html><html><body><h1>"
        + html.escape(name)
        + ": not graded</h1><p>"
        + html.escape(reasons or "The notebook could not be graded.")
        + "</p><p>Score: 0. Please contact your instructor.</p></body></html>\n"
    )


def _remove(folder: Path) -> None:
    if folder.exists():
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.rmtree(folder)


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _print_summary(summary: Summary, say) -> None:
    values = [s for s, _ in summary.scores.values()]
    top = max((m for _, m in summary.scores.values()), default=0)
    mean = sum(values) / len(values) if values else 0
    say(
        f"graded {len(summary.graded)}, skipped {len(summary.skipped)} in "
        f"{summary.seconds:.0f} s; mean score {mean:.2f} / {top:g}"
    )
    if summary.attention:
        say(
            f"{len(summary.attention)} student(s) need a look: "
            f"{', '.join(summary.attention[:10])}"
            + (" ..." if len(summary.attention) > 10 else "")
        )
    else:
        say("no student needs a look")
    for student, why in sorted(summary.not_graded.items()):
        say(f"NOT GRADED: {student}: {why}")
    if summary.unsafe:
        say("WARNING: graded with --unsafe, without a sandbox: these grades are "
            "not protected from hostile submissions")
    say(f"report:   {summary.report_md}")
    say(f"grades:   {summary.grades_csv}")
    say(f"feedback: feedback/<student>/{summary.assignment}/")


def parse_args(argv: list[str]) -> tuple[str, Settings]:
    parser = argparse.ArgumentParser(
        prog="python -m coursetools.grade",
        description="Autograde submitted/<student>/<assignment>/, write feedback "
        "without hidden tests, export grades.csv and a report.",
    )
    parser.add_argument("assignment", help="assignment name or unique prefix (ch01)")
    parser.add_argument(
        "--jobs", "-j", type=int, default=2, help="students graded at once (default 2)"
    )
    parser.add_argument(
        "--timeout", type=int, default=60, help="seconds per cell (default 60)"
    )
    parser.add_argument(
        "--notebook-timeout",
        type=int,
        default=300,
        help="seconds per notebook in total (default 300)",
    )
    parser.add_argument(
        "--memory-mb",
        type=int,
        default=2048,
        help="memory (address space) cap per kernel, MB (default 2048)",
    )
    parser.add_argument("--students", help="comma-separated ids (default: everyone)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="regrade students whose submission did not change",
    )
    parser.add_argument(
        "--no-feedback", action="store_true", help="skip the HTML feedback"
    )
    parser.add_argument(
        "--unsafe",
        action="store_true",
        help="grade without a sandbox where none can be made (the report says "
        "that the grades are not protected)",
    )
    args = parser.parse_args(argv)
    settings = Settings(
        jobs=max(1, args.jobs),
        timeout=args.timeout,
        notebook_timeout=args.notebook_timeout,
        memory_mb=args.memory_mb,
        feedback=not args.no_feedback,
        force=args.force,
        unsafe=args.unsafe,
        students=[s for s in args.students.split(",") if s] if args.students else None,
    )
    return args.assignment, settings


def main(argv: list[str] | None = None) -> int:
    name, settings = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        root = find_root()
        summary = grade(root, resolve_assignment(root, name), settings)
    except CourseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    del summary
    return 0


if __name__ == "__main__":
    sys.exit(main())
