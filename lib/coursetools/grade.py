"""Grade every submission of one assignment: scores, feedback, and a report.

Usage: ``python -m coursetools.grade ASSIGNMENT [options]`` (``--help`` lists
them) or ``make grade ASSIGNMENT=ch02``; a unique prefix names the assignment.

Submissions are read from ``submitted/<student>/<assignment>/`` and never
modified. Each student is one job (:func:`coursetools.worker.run`) on a pool:
``--jobs`` local processes (``concurrent.futures``), or the workers of a Dask
cluster (``--scheduler``), which serves the same futures interface. Each job
gets the checked notebooks (:mod:`coursetools.checks`) and returns a
:class:`~coursetools.results.StudentResult`; this process alone writes the
gradebook, ``autograded/``, ``feedback/`` (hidden tests removed), ``grades.csv``,
and ``grading/<assignment>/`` (``report.md``, ``report.csv``,
``item_analysis.html`` and one state file per student).

A student whose submission, source notebooks and settings are unchanged since
their last grading is skipped (``--force`` regrades), so an interrupted run is
resumed by running the same command again. ``--report-only`` redraws the report
and the item analysis from the gradebook and the state files.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import hashlib
import html
import json
import multiprocessing
import multiprocessing.forkserver
import os
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
import unicodedata
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, fields
from pathlib import Path

import nbformat
from distributed import Client, KilledWorker
from nbgrader.utils import parse_utc

from coursetools import checks, execute, gradebook, report, sandbox, worker
from coursetools.course import (
    ANALYSIS_PAGE,
    AUTOGRADED_DIR,
    CELL_TIMEOUT,
    FEEDBACK_DIR,
    GRADEBOOK,
    GRADES_CSV,
    REPORT_DIR,
    SOURCE_DIR,
    SUBMITTED_DIR,
    CourseError,
    find_root,
    resolve_assignment,
    run_nbgrader,
)
from coursetools.results import Finding, StudentResult

VERSION = "4"  # bump when grading changes in a way that should regrade everyone
WORKER_PRELOAD = ["coursetools.worker", "nbgrader.apps"]
ATTEMPTS = 2  # a student whose grading fails is tried once more, then reported
MAX_ID_BYTES = 250  # a student's folder name, with ".json" after it, is a file name


@dataclass
class Settings:
    jobs: int = 2  # local worker processes (ignored with a scheduler)
    scheduler: str | None = None  # a Dask scheduler's address, e.g. tcp://host:8786
    timeout: int = CELL_TIMEOUT  # per cell, seconds
    notebook_timeout: int = 300  # per notebook, seconds
    memory_mb: int = 2048  # address-space cap of each kernel
    max_output_bytes: int = 1_000_000  # output kept per cell
    # BLAS and OpenMP threads per kernel; 0: this machine's cores / jobs, or 1 on
    # a cluster, whose workers run one process per core.
    kernel_threads: int = 0
    feedback: bool = True
    feedback_seconds: float = 60  # per student; past it, a page of scores only
    force: bool = False
    students: list[str] | None = None
    quiet: bool = False
    unsafe: bool = False  # grade without a sandbox (the report says so)
    report_only: bool = False

    def key(self) -> dict:
        """The settings a grade depends on: changing one regrades everyone."""
        names = ("timeout", "notebook_timeout", "memory_mb", "max_output_bytes",
                 "unsafe")
        return {**{n: getattr(self, n) for n in names}, "version": VERSION}

    def for_worker(self, notebooks: int) -> dict:
        return {
            **self.key(),
            "feedback": self.feedback,
            "feedback_seconds": self.feedback_seconds,
            "kernel_threads": self.kernel_threads or (1 if self.scheduler else max(
                1, (os.cpu_count() or 1) // max(1, self.jobs))),
            # A safety net above the notebooks' own limits.
            "budget": self.notebook_timeout * max(1, notebooks) + 60
            + self.feedback_seconds,
        }


@dataclass
class Summary:
    assignment: str
    graded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    attention: list[str] = field(default_factory=list)
    not_graded: dict[str, str] = field(default_factory=dict)  # student -> why
    attempts: dict[str, int] = field(default_factory=dict)
    workers: set[str] = field(default_factory=set)  # host:pid of each that graded
    scores: dict = field(default_factory=dict)
    report_md: Path | None = None
    grades_csv: Path | None = None
    seconds: float = 0.0  # the whole run
    grading_seconds: float = 0.0  # the pool only: without registration and export
    parent_seconds: float = 0.0  # of grading_seconds: checks and merges, one at a time


# -- the pool -----------------------------------------------------------------
@contextlib.contextmanager
def executor(settings: Settings, context, judge_imports: list[str] = ()):
    """A function that makes an executor, how many jobs it runs at once, and a
    function that gives the context to send with a job.

    Local processes are forked from Python's fork server once it has imported
    the grading code (each then starts in milliseconds, not seconds), never
    from this process, and are made again if one dies. Each forks its judges'
    server as it starts, with `judge_imports` (the assignment's, see
    ``worker.judge_imports``) imported, by the fork server if it did. On a Dask cluster
    (``distributed.Client``, the same futures interface) the context goes to
    every worker once, and again if the workers that held it died; each worker
    runs one job at a time in its own sandbox, as a local process does.
    """
    if settings.scheduler:
        with Client(settings.scheduler, timeout=30) as client:
            slots = sum(client.nthreads().values())
            if not slots:
                raise CourseError(f"the Dask cluster at {settings.scheduler} has no "
                                  "workers: start some with `dask worker`")
            scattered = [client.scatter(context, broadcast=True)]

            def shared():
                if scattered[0].status != "finished":  # lost with its workers
                    scattered[0] = client.scatter(context, broadcast=True)
                return scattered[0]

            yield (lambda: _DaskPool(client)), slots, shared
    else:
        try:
            yield (lambda: cf.ProcessPoolExecutor(
                settings.jobs, mp_context=multiprocessing.get_context("forkserver"),
                initializer=execute.start_judge_server, initargs=(judge_imports,))), \
                settings.jobs, lambda: context
        finally:
            worker.remove_orphaned_scratch()  # of workers killed in this run


def start_forkserver(preload: list[str], environment: dict[str, str]) -> None:
    """Start Python's fork server (one per process), that local workers are forked
    from, with `preload` imported (torch takes seconds) and `environment` set in
    it, as libraries read their thread counts as they load."""
    multiprocessing.set_forkserver_preload(list(dict.fromkeys(preload)))
    ours = dict(os.environ)
    os.environ.update(environment)
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        os.environ.clear()
        os.environ.update(ours)


class _DaskPool(cf.Executor):
    """client.submit, with each job's result in a concurrent.futures future that
    always ends. (Dask's own ClientExecutor leaves its future pending for good
    when a finished result is lost with its worker and cannot be made again.)"""

    def __init__(self, client):
        self.client = client

    def submit(self, fn, /, *args, **kwargs):
        mirror = cf.Future()
        mirror.remote = self.client.submit(fn, *args, **kwargs, pure=False, retries=0)

        def settle(remote) -> None:
            try:
                mirror.set_result(remote.result())
            except BaseException as error:  # noqa: BLE001 (cancelled, lost, raised)
                mirror.set_exception(error)

        mirror.remote.add_done_callback(settle)
        return mirror


def run_jobs(make, slots: int, students: list[str], context, make_job, on_result,
             work=worker.run) -> dict[str, str]:
    """Grade each student once; call ``on_result(result)`` as each comes back.

    `make()` makes an executor, and is called again when a local worker process
    dies and breaks its pool (on Dask, a new handle on the same client);
    `context()` is what each job takes with it. Each attempt carries a fresh
    random token; a result counts only with its own student and token and no
    grading error. A failed attempt is tried once more; after that the failure
    is the student's result, marked ``retryable`` so that it is never cached as
    final. A result with a cell that ran out of time while another job ran (its
    cores shared) is graded once more too, and the second result is final,
    with a ``graded_twice`` finding; one that ran out of time alone is final.
    Returns {student: why} for anyone the pool could not finish.
    """
    pools = [make()]  # the last is in use; each is waited for at the end
    queue, attempts, running = list(students), dict.fromkeys(students, 0), {}
    # When a worker process dies, every job running in that pool fails with it
    # (on Dask: every job it held, as KilledWorker, or as cancelled when the
    # context went with it), and only one of them can be the cause: each is
    # tried again alone, and only a failure alone counts as an attempt.
    suspects: set[str] = set()
    # When each job ran, on the clock (epoch s): finished ones as their workers
    # say, running ones from when they were handed to the pool (or later).
    spans: list[tuple[float, float]] = []
    handed: dict = {}
    first_try: dict[str, float] = {}  # seconds of a first attempt that timed out

    def submit(student: str) -> None:
        attempts[student] += 1
        try:
            job = make_job(student, secrets.token_hex(16))
        except Exception as error:  # noqa: BLE001 (one submission cannot stop all)
            failed = StudentResult.failed(student, "", "the submission could not be "
                                          f"read: {type(error).__name__}: {error}")
            failed.attempts = attempts[student]
            on_result(failed)
            return
        future = pools[-1].submit(work, context(), job)
        running[future] = (job, pools[-1])
        handed[future] = time.time()

    def finish(job, result: StudentResult | None, why: str | None) -> None:
        if why is None and result.errors:
            why = result.errors[-1]
        if why is not None and attempts[job.student] < ATTEMPTS:
            queue.append(job.student)
            return
        if why is not None:
            genuine = result is not None and result.errors and why == result.errors[-1]
            result = result if genuine else StudentResult.failed(
                job.student, result.assignment if result else "", why)
            result.retryable = True
        result.attempts = attempts[job.student]
        if job.student in first_try:  # result is set: a failure made one above
            result.findings.append(Finding(
                "graded_twice", f"graded twice: a cell ran out of time while another "
                f"job ran beside; the first attempt took {first_try[job.student]:.1f} "
                f"s, this one {result.seconds:.1f} s"))
            result.earlier_seconds = first_try[job.student]
        on_result(result)

    try:
        while queue or running:
            while queue and len(running) < 2 * slots:
                beside = {j.student for j, _ in running.values()}
                if suspects & ({queue[0]} | beside):
                    if not running:
                        submit(queue.pop(0))
                    break
                # Two students graded once more never run together: a student
                # can time out on purpose to be graded again beside the one
                # she starved (red-team pass 11).
                if queue[0] in first_try and first_try.keys() & beside:
                    break
                submit(queue.pop(0))
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in done:
                job, used = running.pop(future)
                handed_at = handed.pop(future)
                try:
                    result = future.result()
                except (BrokenProcessPool, cf.CancelledError, KilledWorker):
                    if used is pools[-1]:  # replace the broken pool once
                        used.shutdown(wait=False, cancel_futures=True)
                        pools.append(make())
                    if job.student in suspects:  # it ran alone: its own failure
                        finish(job, None, "the grading worker stopped unexpectedly")
                    else:
                        attempts[job.student] -= 1
                        suspects.add(job.student)
                        queue.append(job.student)
                    continue
                except Exception as error:  # noqa: BLE001 (a worker lost: retry)
                    finish(job, None, f"the grading worker failed: "
                                      f"{type(error).__name__}: {error}"[:300])
                    continue
                why = None
                if not isinstance(result, StudentResult) or (
                    (result.student, result.token) != (job.student, job.token)
                ):
                    why = "the worker answered for another job"
                    result = None
                else:
                    others = spans + [(handed[f], float("inf")) for f in running]
                    spans.append((result.started or handed_at,
                                  result.finished or time.time()))
                    if slots > 1 and result.ran_out_of_time() and \
                            attempts[job.student] < ATTEMPTS and \
                            result.ran_beside(others):
                        # Starved, perhaps, by processes of a classmate graded
                        # beside (red-team pass 8): once more, with other
                        # neighbours. A cell that timed out alone had its cores.
                        first_try[job.student] = result.seconds
                        queue.append(job.student)
                        continue
                finish(job, result, why)
    finally:
        # A broken pool's worker that died may not yet be reaped, and its scratch
        # folder is kept while it lives (test_a_killed_workers_scratch_folder...
        # failed so after test_sealed_grading): every pool's processes are joined.
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)  # Dask's: a no-op
    return {s: "the grader stopped before grading it"
            for s in students if attempts[s] == 0}


# -- the whole run ------------------------------------------------------------
def students_with_submission(root: Path, assignment: str) -> list[str]:
    """Student ids that have a submitted/<student>/<assignment>/ folder."""
    return sorted(p.parent.name for p in (root / SUBMITTED_DIR).glob(f"*/{assignment}")
                  if p.is_dir())


def _no_submissions(root: Path, assignment: str) -> str:
    """Why no submission was found, and what the folders should look like."""
    want = f"{SUBMITTED_DIR}/<student>/{assignment}/<notebook>.ipynb"
    submitted = root / SUBMITTED_DIR
    if not submitted.is_dir():
        return (f"no {SUBMITTED_DIR}/ folder in {root}: put each submission in "
                f"{want} (`nbgrader collect {assignment}` does it on a JupyterHub)")
    found = sorted(str(p.relative_to(submitted)) for p in submitted.glob("*/*")
                   if p.is_dir())
    message = f"no submissions of {assignment}: expected {want} under {root}"
    if found:
        message += (f"; {SUBMITTED_DIR}/ holds {', '.join(found[:5])}"
                    + (", ..." if len(found) > 5 else "")
                    + f" (the folder must be named {assignment} in full)")
    return message


def submission_key(root: Path, assignment: str, student: str, settings: Settings,
                   source: str) -> str:
    """Hash of what determines a grade: the files handed in, the source's digest
    and the settings."""
    digest = hashlib.sha256(json.dumps([settings.key(), source]).encode())
    folder = root / SUBMITTED_DIR / student / assignment
    if checks.linked(folder):  # graded as "symlink": what it points to is never read
        digest.update(b"linked")
    else:
        worker.add_folder(digest, folder)
    return digest.hexdigest()


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
                f"no submission of {assignment} from: {', '.join(unknown)}")
        students = [s for s in students if s in settings.students]
    if not students:
        raise CourseError(_no_submissions(root, assignment))
    out = root / REPORT_DIR / assignment
    summary = Summary(assignment)
    summary.not_graded = _not_graded(root, assignment, say)
    students = [s for s in students if s not in summary.not_graded]
    db_url = f"sqlite:///{root / GRADEBOOK}"
    if not settings.report_only:
        _grade_students(root, assignment, students, settings, summary, say, out,
                        db_url)
        summary.grades_csv = root / GRADES_CSV
        run_nbgrader(root, "export", f"--to={summary.grades_csv}")
    elif not (root / GRADEBOOK).exists():
        raise CourseError(f"no {GRADEBOOK} in {root}: grade {assignment} first")
    results = saved_results(out)
    summary.scores, late = gradebook.scores(db_url, assignment)
    for student in sorted(set(results) - set(summary.scores)):
        # Every graded student has a row (merge writes one even when ungraded):
        # this one was removed from the gradebook since (red-team pass 8).
        del results[student]
        summary.not_graded[student] = (
            f"not in the gradebook (removed from it?), only in {REPORT_DIR}/"
            f"{assignment}/state/: left out of the report; grade again to add it")
    summary.report_md = report.write(
        out, assignment, results, summary.scores, late, unsafe=settings.unsafe,
        not_graded=summary.not_graded)
    # Imported here: matplotlib would cost every grading worker a second to start.
    from coursetools import analysis

    analysis.write(out, assignment, results, summary.scores,
                   graded_cells(root, assignment))
    summary.attention = sorted((s for s, r in results.items() if r.needs_attention()),
                               key=report.by_name)
    summary.seconds = time.monotonic() - started
    _print_summary(summary, settings.unsafe, say)
    return summary


def saved_results(out: Path) -> dict[str, StudentResult]:
    """The state file of every student graded before, where it can be read."""
    results = {}
    for path in sorted((out / "state").glob("*.json")):
        with contextlib.suppress(ValueError, TypeError, KeyError):
            results[path.stem] = StudentResult.from_json(path.read_text())
    return results


def graded_cells(root: Path, assignment: str) -> list[tuple[str, str, float]]:
    """(notebook, grade id, points) of every graded cell, in the source's order."""
    found = []
    for path in sorted((root / SOURCE_DIR / assignment).glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            nbg = cell.metadata.get("nbgrader", {})
            if nbg.get("grade"):
                found.append((path.stem, nbg["grade_id"], float(nbg["points"])))
    return found


def _grade_students(root, assignment, students, settings, summary, say, out,
                    db_url) -> None:
    if not settings.unsafe and (why := sandbox.problem()):
        raise CourseError(
            f"cannot seal the grading here: {why}. Grades made without a sandbox are "
            "not protected from hostile submissions; to grade anyway, run again "
            "with --unsafe (make grade GRADE_ARGS=--unsafe)")
    # An allow-list that reaches an answer stops the grading here, before any job.
    sources = {p.stem: nbformat.read(p, as_version=4)
               for p in sorted((root / SOURCE_DIR / assignment).glob("*.ipynb"))}
    sandbox.kept_names(sandbox.rnnlib_dir(), *sandbox.allowances(sources))
    judge_imports = worker.judge_imports(sources)
    if not settings.scheduler:  # the workers' imports and their judges', as we register
        start_forkserver(
            WORKER_PRELOAD + execute.JUDGE_PRELOAD + judge_imports,
            worker.JUDGE_ENVIRONMENT)
    (out / "state").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="coursetools-grade-") as scratch:
        release_dir = Path(scratch) / "release"
        # Registers the assignment (its cells and points) in the gradebook, and
        # writes its student notebooks aside: exercises/ is never rewritten.
        run_nbgrader(root, "generate_assignment", assignment, "--force",
                     f"--CourseDirectory.release_directory={release_dir}")
        with sqlite3.connect(root / GRADEBOOK) as src, \
                sqlite3.connect(Path(scratch) / "template.db") as copy:
            src.backup(copy)  # a consistent copy: the workers' starting gradebook
        template = (Path(scratch) / "template.db").read_bytes()
        releases = {p.stem: p.read_text()
                    for p in sorted((release_dir / assignment).glob("*.ipynb"))}
    source = worker.source_digest(root, assignment)
    keys = {s: submission_key(root, assignment, s, settings, source) for s in students}
    saved = {} if settings.force else saved_results(out)
    in_gradebook = gradebook.scores(db_url, assignment)[0]
    summary.skipped = [s for s in students if s in saved and s in in_gradebook
                       and saved[s].key == keys[s]]
    todo = [s for s in students if s not in summary.skipped]
    say(f"{assignment}: {len(students)} submission(s), {len(todo)} to grade, "
        f"{len(summary.skipped)} unchanged since last graded (skipped)")
    if not todo:
        return
    context = worker.Context(
        run_id=secrets.token_hex(8), root=str(root), assignment=assignment,
        settings=settings.for_worker(len(releases)),
        source_digest=source,
        template_db=template, releases=releases, scratch_dir=tempfile.gettempdir())
    release_nbs = {n: nbformat.reads(t, as_version=4) for n, t in releases.items()}

    def make_job(student: str, token: str) -> worker.Job:
        started = time.monotonic()
        folder = root / SUBMITTED_DIR / student / assignment
        notebooks, submitted_as, findings = checks.check_submission(folder,
                                                                    release_nbs)
        stamp = _beside(folder, "timestamp.txt")
        handed_in_at = _head(stamp) if stamp else None
        try:  # nbgrader fails on a date it cannot read, with its own bug's error
            parse_utc(handed_in_at)
        except Exception:  # noqa: BLE001 (any text: a student wrote it)
            findings.append(Finding("bad_timestamp", "timestamp.txt does not hold a "
                                    f"date ({handed_in_at[:40]!r}); graded as if "
                                    "handed in on time"))
            handed_in_at = None
        summary.parent_seconds += time.monotonic() - started
        return worker.Job(
            student, token,
            {n: nbformat.writes(nb) if nb is not None else None
             for n, nb in notebooks.items()},
            submitted_as, findings, handed_in_at)

    def on_result(result: StudentResult) -> None:
        started = time.monotonic()
        # A grading error is never final: the next run grades them again.
        result.key = None if result.retryable else keys[result.student]
        _install_outputs(root, assignment, result)
        gradebook.merge(book, assignment, result)
        (out / "state" / f"{result.student}.json").write_text(result.to_json())
        summary.graded.append(result.student)
        if result.retryable:
            summary.not_graded[result.student] = result.errors[-1]
        summary.attempts[result.student] = result.attempts
        if result.worker:
            summary.workers.add(result.worker)
        summary.parent_seconds += time.monotonic() - started
        mark = "!" if result.needs_attention() else " "
        twice = (f"(graded twice, {result.seconds + result.earlier_seconds:.1f} s in "
                 "all) " if result.earlier_seconds else "")
        say(f"  {mark} {report.plain(result.student, lines=False):<24} "
            f"{result.seconds:6.1f} s {twice}({len(summary.graded)}/{len(todo)})")

    pool_started = time.monotonic()
    with executor(settings, context, judge_imports) as (pool, slots, shared), \
            gradebook.opened(db_url) as book:
        summary.not_graded.update(
            run_jobs(pool, slots, todo, shared, make_job, on_result))
    summary.grading_seconds = time.monotonic() - pool_started


def _not_graded(root: Path, assignment: str, say) -> dict[str, str]:
    """Students whose submission is not graded, and why: a folder under another
    name, or an id refused. A redrawn report (--report-only) lists them too."""
    def letters(name: str) -> str:  # "Ch06-PyTorch" is meant as ch06_pytorch...
        return "".join(c for c in name.lower() if c.isalnum())

    found = {}
    for stray in sorted((root / SUBMITTED_DIR).glob("*/*")):
        if stray.is_dir() and stray.name != assignment and letters(stray.name) and \
                letters(assignment).startswith(letters(stray.name)):
            why = (f"the folder must be named {assignment}: "
                   f"{SUBMITTED_DIR}/{stray.parent.name}/{stray.name}/")
            if (stray.parent / assignment).is_dir():
                say(f"warning: not graded, {report.plain(why)}")
            else:  # in the report, not only in a line that scrolls away
                found[stray.parent.name] = why
    for student in students_with_submission(root, assignment):
        if why := _id_problem(student):
            shown = report.plain(student[:40], lines=False)
            found[student] = (f"the folder name {SUBMITTED_DIR}/{shown} is {why}: "
                              "rename it")
    return found


def _id_problem(student: str) -> str | None:
    """Why a folder name cannot be a student id here, or None."""
    size = len(os.fsencode(student))
    if size > MAX_ID_BYTES:  # state/<student>.json must fit a file name
        return f"{size} bytes, more than the {MAX_ID_BYTES} the grader's files allow"
    if set(student) & set("*?["):  # nbgrader globs it, even after an escape
        return "a pattern to nbgrader (it has * ? or [), which finds others' files"
    if set(student) & set(',"') or not student.isprintable():
        return ("not one field of grades.csv, which nbgrader writes unquoted (it has "
                "a comma, a double quote or a character that is not printable)")
    if student[:1] in ("=", "+", "-", "@"):  # report.csv's guard changes the id
        return ("a formula to a spreadsheet that opens grades.csv (it starts with "
                "=, +, - or @)")
    if student != student.strip():
        return "padded with spaces, which nbgrader strips (it would grade another)"
    if not unicodedata.is_normalized("NFC", student):
        return "not in composed Unicode (NFC), so it prints as another id would"
    return None


def _beside(folder: Path, name: str) -> Path | None:
    """A file nbgrader's submit writes beside the notebook, if it is one: a
    regular file, not a link, in a folder that is not one either."""
    path = folder / name
    usable = path.is_file() and not path.is_symlink() and not checks.linked(folder)
    return path if usable else None


def _head(path: Path, size: int = 100) -> str:
    """The first characters of a small text file a student hands in, of any size."""
    with path.open("rb") as handle:
        return handle.read(size).decode(errors="replace")


def _install_outputs(root: Path, assignment: str, result: StudentResult) -> None:
    """Write the files a worker made into autograded/ and feedback/."""
    student = result.student
    dirs = {kind: root / kind / student / assignment
            for kind in (AUTOGRADED_DIR, FEEDBACK_DIR)}
    keep = root / REPORT_DIR / assignment / worker.FEEDBACK_SOURCE_DIR / student
    for folder in [*dirs.values(), keep]:
        _remove(folder)
    for name, entry in result.notebooks.items():
        for folder, text, suffix in ((dirs[AUTOGRADED_DIR], entry.autograded, "ipynb"),
                                     (dirs[FEEDBACK_DIR], entry.feedback_html, "html"),
                                     (keep, entry.feedback_source, "ipynb")):
            if text is not None:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{name}.{suffix}").write_text(text)
        if not entry.graded:
            reasons = "; ".join(f.message for f in entry.findings) or "; ".join(
                result.errors)
            _not_graded_page(dirs[FEEDBACK_DIR], name, reasons)
        # `nbgrader fetch_feedback` asks for the page by the name handed in.
        handed = Path(entry.submitted_as or f"{name}.ipynb")
        if (entry.feedback_html is not None and handed.suffix == ".ipynb"
                and handed.parent == Path() and handed.stem not in result.notebooks):
            (dirs[FEEDBACK_DIR] / f"{handed.stem}.html").write_text(entry.feedback_html)
    # `nbgrader release_feedback` stops at the first page without both files
    # beside it, and publishes each page as a hash of its secret and name: a page
    # with no secret handed in (or one over 4 kB) gets one that no one knows.
    handed_in = root / SUBMITTED_DIR / student / assignment
    if dirs[FEEDBACK_DIR].is_dir():
        stamp, secret = (_beside(handed_in, name) for name in checks.NBGRADER_FILES)
        (dirs[FEEDBACK_DIR] / "timestamp.txt").write_text(  # release_feedback prints it
            report.plain(_head(stamp)) if stamp else "")
        (dirs[FEEDBACK_DIR] / "submission_secret.txt").write_text(
            _head(secret, 4096) if secret and secret.stat().st_size <= 4096
            else secrets.token_hex(16))


def _not_graded_page(folder: Path, name: str, reasons: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.html").write_text(
        f"<!DOCTYPE html><html><body><h1>{html.escape(name)}: not graded</h1><p>"
        + html.escape(reasons or "The notebook could not be graded.")
        + "</p><p>Score: 0. Please contact your instructor.</p></body></html>\n")


def _remove(folder: Path) -> None:
    if folder.exists():
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.rmtree(folder)


def _print_summary(summary: Summary, unsafe: bool, say) -> None:
    values = [s for s, _ in summary.scores.values()]
    top = max((m for _, m in summary.scores.values()), default=0)
    mean = sum(values) / len(values) if values else 0
    say(f"graded {len(summary.graded)}, skipped {len(summary.skipped)} in "
        f"{summary.seconds:.0f} s; mean score {mean:.2f} / {top:g}")
    if summary.attention:
        say(f"{len(summary.attention)} student(s) need a look: "
            f"{report.plain(', '.join(summary.attention[:10]), lines=False)}"
            + (" ..." if len(summary.attention) > 10 else ""))
    else:
        say("no student needs a look")
    for student, why in sorted(summary.not_graded.items(),
                               key=lambda item: report.by_name(item[0])):
        say(f"NOT GRADED: {report.plain(student, lines=False)}: "
            f"{report.plain(why)[:2000]}")
    unlisted = [s for s in summary.not_graded if s not in summary.scores]
    if unlisted and summary.grades_csv:
        say(f"{len(unlisted)} not graded with no row in grades.csv for "
            f"{summary.assignment}: fix and grade again, or enter by hand")
    if unsafe:
        say("WARNING: graded with --unsafe, without a sandbox: these grades are "
            "not protected from hostile submissions")
    say(f"report:   {summary.report_md}")
    say(f"analysis: {summary.report_md.with_name(ANALYSIS_PAGE)}")
    if summary.grades_csv:
        say(f"grades:   {summary.grades_csv}")
    say(f"feedback: {FEEDBACK_DIR}/<student>/{summary.assignment}/")


def parse_args(argv: list[str]) -> tuple[str, Settings]:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="python -m coursetools.grade",
        description="Autograde submitted/<student>/<assignment>/, write feedback "
        "without hidden tests, export grades.csv, a report and an item analysis.")
    parser.add_argument("assignment", help="assignment name or unique prefix (ch01)")
    parser.add_argument("--jobs", "-j", type=int, default=defaults.jobs,
                        help=f"local worker processes (default {defaults.jobs})")
    parser.add_argument("--scheduler", default=os.environ.get("SCHEDULER") or None,
                        help="grade on a Dask cluster: its scheduler's address, e.g. "
                        "tcp://host:8786 (default: $SCHEDULER, else local processes)")
    parser.add_argument("--timeout", type=int, default=defaults.timeout,
                        help=f"seconds per cell (default {defaults.timeout})")
    parser.add_argument("--notebook-timeout", type=int,
                        default=defaults.notebook_timeout,
                        help="seconds per notebook in total "
                        f"(default {defaults.notebook_timeout})")
    parser.add_argument("--memory-mb", type=int, default=defaults.memory_mb,
                        help="memory (address space) cap per kernel, MB "
                        f"(default {defaults.memory_mb})")
    parser.add_argument("--kernel-threads", type=int, default=defaults.kernel_threads,
                        help="BLAS and OpenMP threads per kernel (default: the "
                        "cores / --jobs, 1 with a scheduler)")
    parser.add_argument("--students", help="comma-separated ids (default: everyone)")
    parser.add_argument("--force", action="store_true",
                        help="regrade students whose submission did not change")
    parser.add_argument("--no-feedback", dest="feedback", action="store_false",
                        help="skip the HTML feedback")
    parser.add_argument("--feedback-seconds", type=float,
                        default=defaults.feedback_seconds,
                        help="time to make a student's pages; past it, a page of "
                        f"scores (default {defaults.feedback_seconds:g})")
    parser.add_argument("--unsafe", action="store_true",
                        help="grade without a sandbox where none can be made (the "
                        "report says that the grades are not protected)")
    parser.add_argument("--report-only", action="store_true",
                        help="only redraw report.md and item_analysis.html from the "
                        "gradebook and the saved results")
    args = parser.parse_args(argv)
    names = {f.name for f in fields(Settings)}
    settings = Settings(**{k: v for k, v in vars(args).items() if k in names})
    settings.jobs = max(1, settings.jobs)
    settings.kernel_threads = max(0, settings.kernel_threads)
    settings.students = [s for s in args.students.split(",") if s] \
        if args.students else None
    return args.assignment, settings


def main(argv: list[str] | None = None) -> int:
    name, settings = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        root = find_root()
        grade(root, resolve_assignment(root, name), settings)
    except CourseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # each student is saved as graded: nothing is lost
        print("interrupted: run the same command again to grade the rest",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
