"""Grade one student per job, in whichever process the pool runs the job.

:func:`run` is what :mod:`coursetools.grade` submits, one call per student, to a
``concurrent.futures`` process pool or a Dask cluster. A job carries everything
grading needs that is not in the course repository (the checked notebooks, the
release, a copy of the assignment's gradebook), and the result carries back
every file grading made, so a worker on another machine needs only the same
course checkout and virtual environment, never the instructor's disk.

Each process keeps one :class:`Grader` per run: its own scratch nbgrader course
(a gradebook copy, so no two processes write one sqlite file), its own sandbox
user, and nbgrader's API, made once and reused for every student it grades.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import functools
import hashlib
import html
import importlib.util
import itertools
import json
import multiprocessing.util
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import nbformat
import nbgrader.api
import psutil
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps import NbGraderAPI
from nbgrader.converters import GenerateFeedback
from nbgrader.nbgraderformat import common
from nbgrader.utils import parse_utc, temp_attrs
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SAWarning

from coursetools import checks, execute
from coursetools.course import (
    AUTOGRADED_DIR,
    FEEDBACK_DIR,
    GRADEBOOK,
    SOURCE_DIR,
    SUBMITTED_DIR,
    CourseError,
    find_root,
)
from coursetools.feedback import FeedbackExporter, hide_hidden_tests, secret_lines
from coursetools.results import CellResult, Finding, NotebookResult, StudentResult
from coursetools.sandbox import (
    IDLE_VARS,
    KERNEL_SOCKETS,
    LEARNER_HOME,
    THREAD_VARS,
    Sandbox,
    answer_names,
    judge_cells,
)

FEEDBACK_SOURCE_DIR = "feedback-src"  # the scratch course's hidden-tests-free copies
SCRATCH_PREFIX = "coursetools-grader-"


@dataclass(frozen=True)
class Context:
    """What every job of one grading run shares."""

    run_id: str  # a process keeps one Grader per run
    root: str  # the course checkout (a remote worker uses its own)
    assignment: str
    settings: dict  # Settings.for_worker()
    source_digest: str  # of solutions/<assignment>/: a worker's copy must match
    template_db: bytes  # the gradebook with the assignment registered
    releases: dict[str, str]  # notebook name -> the student version, JSON
    # The run's temporary directory: a fork server started by an earlier run in
    # this process keeps that run's TMPDIR, where the run's end would not look.
    scratch_dir: str = ""


@dataclass(frozen=True)
class Job:
    student: str
    token: str  # fresh for every attempt; the result must carry it back
    notebooks: dict[str, str | None]  # name -> checked JSON; None: not gradable
    submitted_as: dict[str, str | None]
    findings: list[Finding] = field(default_factory=list)  # from coursetools.checks
    timestamp: str | None = None


def add_folder(digest, base: Path) -> None:
    """Feed every regular file under `base` to `digest`: its path's length, its
    path and its bytes' own hash, so that two different folders never feed the
    same bytes. A file larger than a notebook may be is fed by its size and change
    time (it is never graded, and reading it could take minutes); one that cannot
    be read, by its error's number."""
    for path in checks.walk(base)["file"]:
        name = os.fsencode(path.relative_to(base))
        content = hashlib.sha256()
        try:
            stat = path.stat()
            if stat.st_size > checks.MAX_NOTEBOOK_MB * 2**20:
                content.update(b"%d %d" % (stat.st_size, stat.st_mtime_ns))
            else:
                with path.open("rb") as handle:  # a block at a time: any size fits
                    while block := handle.read(1 << 20):
                        content.update(block)
        except OSError as error:
            content = hashlib.sha256(f"unreadable {error.errno}".encode())
        digest.update(b"%d\0%s%s" % (len(name), name, content.digest()))


def source_digest(root: Path, assignment: str) -> str:
    digest = hashlib.sha256()
    add_folder(digest, root / SOURCE_DIR / assignment)
    return digest.hexdigest()


# -- the pool's entry point ---------------------------------------------------
_graders: dict[str, Grader] = {}
# What a judge runs with: one BLAS and OpenMP thread (its tests are small, and a
# worker's cores go to its kernels) that sleeps when idle, and no plotting
# window. Libraries read these as they load: in the fork server, for local workers.
JUDGE_ENVIRONMENT = {**dict.fromkeys(THREAD_VARS, "1"), **IDLE_VARS,
                     "MPLBACKEND": "Agg"}
_one_at_a_time = threading.Lock()  # a Dask worker with several threads: queue


def run(context: Context, job: Job) -> StudentResult:
    """Grade one student; every failure becomes the result, never an exception."""
    with _one_at_a_time:
        started, began = time.monotonic(), time.time()
        watchdog = Watchdog(context.settings["budget"],
                            memory_mb=context.settings["memory_mb"])
        try:
            if context.run_id not in _graders:  # a new run: the last one's is done
                while _graders:
                    _graders.popitem()[1].close()
                _graders[context.run_id] = Grader(context)
            result = _graders[context.run_id].grade(job)
        except Exception:  # noqa: BLE001 (one bad submission must not stop others)
            result = StudentResult.failed(
                job.student, context.assignment, _last_lines(traceback.format_exc())
            )
        finally:
            watchdog.cancel()
        if watchdog.flooded:
            result.findings.append(Finding(
                "memory", "the kernel sent more output than the grader could hold "
                f"(over {context.settings['memory_mb']} MB, its own memory cap); the "
                "kernel was stopped"))
        if watchdog.held_mb:
            result.findings.append(Finding(
                "memory", f"the kernel, its processes and the judge held "
                f"{watchdog.held_mb} MB together (with what their sockets may "
                "queue and their files cost), more than twice the cap of "
                f"{context.settings['memory_mb']} MB each may hold; the kernel was "
                "stopped"))
        result.token = job.token
        result.worker = f"{socket.gethostname()}:{os.getpid()}"
        result.seconds = round(time.monotonic() - started, 2)
        result.started, result.finished = round(began, 3), round(time.time(), 3)
        return result


class Watchdog:
    """Ends a job that runs past its budget, above the notebooks' own limits.

    First its kernels and judges, so that nbclient gives up on the notebook; if
    the job still has not ended `grace` seconds later, the whole process: the
    pool sees a dead worker and tries the student once more, alone. That last
    step is a process of its own (:data:`KEEPER`), as a thread's timer does not
    fire while C code holds the GIL (red-team pass 6: a regular expression of a
    pygments lexer, for hours).

    The same happens when this process grows by more than `memory_mb`: a
    kernel's output waits here until it is read, and while a test runs in the
    judge nothing reads it, so a kernel could otherwise fill this memory. And
    when this process's children hold more than twice `memory_mb` together (a
    kernel and a judge, each capped at `memory_mb`, and 512 MB for the rest):
    the cap is per process, and a kernel's children each get one of their own
    (red-team pass 8: four exec'd children held 3.7 GB under a 1 GB cap).
    """

    def __init__(self, budget: float, grace: float = 60, memory_mb: int = 0):
        self.done, self.flooded, self.held_mb = threading.Event(), False, 0
        self.keeper = _keeper()
        self._tell(f"{budget + grace}")
        self.timer = threading.Timer(budget, self._stop_children)
        self.timer.daemon = True
        self.timer.start()
        if memory_mb:
            me, growth = psutil.Process(), memory_mb * 2**20
            children_limit = (2 * memory_mb + 512) * 2**20
            threading.Thread(target=self._watch_memory, args=(
                me, me.memory_info().rss + growth, growth, children_limit),
                daemon=True).start()

    def _tell(self, deadline: str) -> None:
        with contextlib.suppress(OSError):  # a keeper that died is made again
            self.keeper.stdin.write(f"{deadline}\n".encode())
            self.keeper.stdin.flush()

    def _watch_memory(self, me, limit: int, growth: int, children_limit: int) -> None:
        # To the job's end: a stopped kernel is replaced by a new one, which had
        # run unwatched (red-team pass 11: 2.5 GB of files, after one stop).
        for tick in itertools.count():
            if self.done.wait(0.1):
                return
            if me.memory_info().rss > limit:
                self.flooded = True
                self._stop_children()
                limit = me.memory_info().rss + growth  # what was read is kept
                continue
            if tick % 5 == 0:  # reading every child's RSS costs more: 2 times a second
                children = self._children()
                queued = _kernel_bound(children)
                held = sum(_memory(child, "rss") for child in children) + queued
                if held > children_limit:
                    # RSS counts a page that n forked processes share n times (a
                    # Pool's or a DataLoader's workers zeroed honest students,
                    # red-team pass 9); PSS counts it once but takes 2.5 ms a
                    # process to read, so only a sum over the limit is re-read.
                    held = sum(_memory(child, "pss") for child in children) + queued
                if held > children_limit:
                    self.held_mb = max(self.held_mb, held // 2**20)
                    self._stop_children()

    def _children(self) -> list:
        return [child for child in psutil.Process().children(recursive=True)
                if child.pid != self.keeper.pid]

    def _stop_children(self) -> None:
        for child in self._children():
            with contextlib.suppress(psutil.Error):
                child.kill()

    def cancel(self) -> None:
        self.done.set()
        self.timer.cancel()
        self._tell("-")


def _memory(process, kind: str) -> int:
    try:
        info = process.memory_info() if kind == "rss" else process.memory_full_info()
        return getattr(info, kind)
    except psutil.Error:  # ended since it was listed
        return 0


def _kernel_bound(children) -> int:
    """At most what the sandboxes hold in the kernel: their sockets' queues and
    the files in their tmpfs mounts.

    No process's RSS holds it (8 processes queued 1.8 GB with 136 MB of RSS,
    red-team pass 9). A socket's queued bytes count against its sender's buffer,
    which a sandbox may not enlarge (sandbox_launch), so each socket adds the
    default send buffer, and a netlink socket two (pass 10: 762 MB queued in
    them, uncounted). A datagram socket also holds what senders that have
    since closed queued to it, up to the namespace's max_dgram_qlen (10 in a new
    namespace) messages of a buffer each, one more than that counted (red-team
    pass 10: 3 GB queued so, counted as 287 MB). A file costs an inode and a
    dentry, however empty (pass 11: 2 million took 2.5 GB of slab). The worker's own
    namespaces, where the judge and an unsandboxed kernel live, are not counted.
    """
    namespaces = {}
    for pid in [os.getpid(), *(child.pid for child in children)]:
        with contextlib.suppress(OSError):
            namespaces.setdefault(os.readlink(f"/proc/{pid}/ns/net"), pid)
    buffers, files, own_mounts = 0, 0, os.readlink("/proc/self/ns/mnt")
    for pid in list(namespaces.values())[1:]:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/unix", "rb") as table:
            next(table)  # a header line, then one a socket; its 5th field the type
            buffers += sum(DATAGRAM_BUFFERS if line.split()[4] == b"0002" else 1
                           for line in table)
        # A netlink socket's queue is bounded by its receive buffer, which a
        # sandbox may not enlarge either, plus the one message that passes it.
        # Only a bound socket is listed, and only it can receive; the kernel's
        # own sockets (port id 0, the 3rd field) are not the learner's.
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/netlink") as table:
            next(table)
            buffers += 2 * sum(line.split()[2] != "0" for line in table)
        theirs = False  # another mount namespace: a sandbox's tmpfs mounts
        with contextlib.suppress(OSError):
            theirs = os.readlink(f"/proc/{pid}/ns/mnt") != own_mounts
        for folder in TMPFS_FOLDERS if theirs else ():
            with contextlib.suppress(OSError):
                used = os.statvfs(f"/proc/{pid}/root{folder}")
                files += used.f_files - used.f_ffree
    return buffers * SEND_BUFFER + files * FILE_BYTES


def _default_send_buffer() -> int:
    try:
        return int(Path("/proc/sys/net/core/wmem_default").read_text())
    except (OSError, ValueError):
        return 212992  # Linux's default


SEND_BUFFER = _default_send_buffer()
# The sandbox's writable folders, each a tmpfs of its own, and the most slab a
# file in one costs: 1,014 bytes empty, 1,559 with a 255-byte name (Linux 6.18).
TMPFS_FOLDERS = ("/tmp", LEARNER_HOME, "/dev/shm", KERNEL_SOCKETS)
FILE_BYTES = 2048
DATAGRAM_BUFFERS = 1 + 10 + 1  # its own sends, max_dgram_qlen + 1 others' messages


# Kills its parent, the worker, at the deadline it was last sent (in seconds from
# then; "-" for none); ends when the worker does.
KEEPER = """
import os, select, signal, sys, time
worker, deadline = int(sys.argv[1]), None
while os.getppid() == worker:
    wait = 1.0 if deadline is None else min(1.0, max(0.0, deadline - time.monotonic()))
    if select.select([0], [], [], wait)[0]:
        told = os.read(0, 4096).split()
        if not told:
            break
        deadline = None if told[-1] == b"-" else time.monotonic() + float(told[-1])
    elif deadline is not None and time.monotonic() >= deadline:
        os.kill(worker, signal.SIGKILL)
        break
"""
_keepers: list[subprocess.Popen] = []


def _keeper() -> subprocess.Popen:
    """This process's keeper, started with its first job."""
    if not _keepers or _keepers[0].poll() is not None:
        _keepers[:] = [subprocess.Popen([sys.executable, "-c", KEEPER,
                                         str(os.getpid())], stdin=subprocess.PIPE)]
    return _keepers[0]


# -- one process's grader ------------------------------------------------------
class Grader:
    def __init__(self, context: Context):
        # nbgrader's autograde trips SQLAlchemy's autoflush warnings: harmless,
        # and this process's stderr is the instructor's terminal.
        warnings.simplefilter("ignore", SAWarning)
        _schema_checked_once()
        # nbgrader opens the gradebook ten times a student, each time with a new
        # SQLAlchemy engine that compiled every query again: the last one is kept.
        nbgrader.api.create_engine = functools.lru_cache(maxsize=1)(create_engine)
        self.assignment = assignment = context.assignment
        self.settings = settings = context.settings
        root = Path(context.root)
        if not (root / SOURCE_DIR / assignment).is_dir():
            root = find_root()  # another machine: its own checkout
        if source_digest(root, assignment) != context.source_digest:
            raise CourseError(
                f"{root / SOURCE_DIR / assignment} on {socket.gethostname()} differs "
                "from the instructor's: give every worker the same course commit"
            )
        base = context.scratch_dir if os.path.isdir(context.scratch_dir) else None
        remove_orphaned_scratch(base)  # a killed process's finalizer never ran
        self.work = scratch_folder(base)
        # nbgrader commits to the scratch gradebook about 46 times a notebook,
        # each with an fsync; the copy is thrown away when the run ends.
        unsynced = functools.partial(_unsynced_under, f"{self.work}/")
        event.listen(Engine, "connect", unsynced)
        # multiprocessing's own exit runs these finalizers; atexit's never runs
        # in a pool's (or a Dask nanny's) worker process
        self.close = multiprocessing.util.Finalize(
            self, _forget, (self.work, unsynced), exitpriority=0)
        self.course = self.work / "course"
        (self.course / SOURCE_DIR).mkdir(parents=True)
        source = root / SOURCE_DIR / assignment
        (self.course / SOURCE_DIR / assignment).symlink_to(source)
        (self.course / GRADEBOOK).write_bytes(context.template_db)
        self.releases = {name: nbformat.reads(text, as_version=4)
                         for name, text in context.releases.items()}
        sources = {
            path.stem: nbformat.read(path, as_version=4)
            for path in sorted(source.glob("*.ipynb"))
        }
        self.secret = set().union(*(secret_lines(nb) for nb in sources.values()))
        self.sandbox = Sandbox(self.work, sources, settings)
        # The kernel that nbclient starts is the sandboxed one written here.
        self.sandbox.kernelspec(self.work / "jupyter")
        os.environ["JUPYTER_PATH"] = str(self.work / "jupyter")
        # For the judges, started from here (the kernel's env is the kernelspec's).
        os.environ.update(JUDGE_ENVIRONMENT)
        cells = {f"{name}/{grade_id}": cell  # grade ids: unique per notebook
                 for name, nb in sources.items()
                 for grade_id, cell in judge_cells(nb).items()}
        execute.start_judge_server(judge_imports(sources))  # a new one if it lacks them
        config = execute.autograde_config(
            root, self.course, settings, self.sandbox.comm,
            judge_names=sorted({n for nb in sources.values()
                                for n in answer_names(nb)}),
            judge_cells=cells,
            judge_log=str(self.work / "judge.log"),
            release_cells={name: checks.reference_cells(nb)
                           for name, nb in self.releases.items()},
        )
        self.api = NbGraderAPI(config=config)
        if settings["feedback"]:
            self._warm_feedback()

    def grade(self, job: Job) -> StudentResult:
        student = job.student
        for sub in (SUBMITTED_DIR, AUTOGRADED_DIR, FEEDBACK_DIR, FEEDBACK_SOURCE_DIR):
            shutil.rmtree(self.course / sub / student, ignore_errors=True)
        target = self.course / SUBMITTED_DIR / student / self.assignment
        target.mkdir(parents=True)
        if job.timestamp:
            (target / "timestamp.txt").write_text(job.timestamp)
        for name, text in job.notebooks.items():
            if text is not None:
                (target / f"{name}.ipynb").write_text(text)
        result = StudentResult(student, self.assignment,
                               findings=[f for f in job.findings if not f.notebook])
        for name in self.releases:
            result.notebooks[name] = NotebookResult(
                name, job.submitted_as.get(name),
                findings=[f for f in job.findings if f.notebook == name])
        if any(text is not None for text in job.notebooks.values()):
            outcome = self.api.autograde(self.assignment, student, force=True,
                                         create=True)
            if not outcome["success"]:
                result.errors.append(_why(outcome))
        self._collect(job, result)
        if result.timestamp is None and job.timestamp:  # nothing autograded to read it
            with contextlib.suppress(Exception):  # any text: a student wrote it
                result.timestamp = parse_utc(job.timestamp).isoformat()
        if self.settings["feedback"]:
            self._feedback(student, result)
        return result

    def _collect(self, job: Job, result: StudentResult) -> None:
        autograded = self.course / AUTOGRADED_DIR / job.student / self.assignment
        with Gradebook(f"sqlite:///{self.course / GRADEBOOK}") as gb:
            try:
                submission = gb.find_submission(self.assignment, job.student)
            except MissingEntry:
                submission = None
            if submission is not None and submission.timestamp:
                result.timestamp = submission.timestamp.isoformat()
            for name, entry in result.notebooks.items():
                path = autograded / f"{name}.ipynb"
                if job.notebooks.get(name) is None:
                    continue
                if submission is None or not path.exists():
                    entry.findings.append(Finding(
                        "grading_error", "the notebook could not be graded", name))
                    continue
                nb = nbformat.read(path, as_version=4)
                found = nb.metadata.get("coursetools", {})
                entry.findings += [Finding(**f, notebook=name)
                                   for f in found.get("findings", [])]
                entry.findings += execute.output_findings(nb, name)
                result.time_outs += found.get("time_outs", [])
                failures = execute.cell_failures(nb)
                record = gb.find_submission_notebook(name, self.assignment, job.student)
                entry.graded = True
                entry.late_penalty = record.late_submission_penalty
                entry.cells = {
                    g.name: CellResult(
                        g.auto_score or 0.0, g.max_score, bool(g.needs_manual_grade),
                        failures.get(g.name) if (g.auto_score or 0) < g.max_score
                        else None, found.get("seconds", {}).get(g.name))
                    for g in record.grades}
                entry.comments = {c.name: c.auto_comment for c in record.comments}
                entry.autograded = path.read_text()

    def _warm_feedback(self) -> None:
        """Render each release's page once here, so that each child that makes a
        student's pages starts with the templates compiled and the given cells
        highlighted (a ch02 page: 0.25 s cold, 0.03 s warm)."""
        config = GenerateFeedback(coursedir=self.api.coursedir, parent=self.api).config
        for name, release in self.releases.items():
            notebook = copy.deepcopy(release)
            for cell in notebook.cells:
                if cell.metadata.get("nbgrader", {}).get("grade"):
                    cell.metadata.nbgrader.score = 0
            FeedbackExporter(config=config).from_notebook_node(notebook, {"nbgrader": {
                "notebook": name, "score": 0, "max_score": 0, "late_penalty": 0}})

    def _feedback(self, student: str, result: StudentResult) -> None:
        """The pages, made by a child process: rendering reads what the student
        wrote (nbconvert, bleach, pygments), so a page that fails or takes too
        long costs that page, never the scores already made."""
        source = self.course / FEEDBACK_SOURCE_DIR / student / self.assignment
        pages = self.course / FEEDBACK_DIR / student / self.assignment
        graded = {n: e for n, e in result.notebooks.items() if e.graded}
        if not graded:
            return

        def render() -> None:
            for name, entry in graded.items():
                notebook = nbformat.reads(entry.autograded, as_version=4)
                safe = hide_hidden_tests(notebook, self.releases[name], self.secret)
                source.mkdir(parents=True, exist_ok=True)
                nbformat.write(safe, source / f"{name}.ipynb")
            with temp_attrs(self.api.coursedir,
                            autograded_directory=FEEDBACK_SOURCE_DIR):
                outcome = self.api.generate_feedback(self.assignment, student,
                                                     force=True)
            if not outcome["success"]:
                raise RuntimeError(_why(outcome)[-300:])

        seconds = self.settings["feedback_seconds"]
        failed = in_child(render, seconds)
        for name, entry in graded.items():
            page = pages / f"{name}.html"
            if failed is None and page.exists():
                entry.feedback_source = (source / f"{name}.ipynb").read_text()
                entry.feedback_html = page.read_text()
            else:
                entry.findings.append(Finding("feedback_failed", (
                    f"its feedback page could not be made ({failed or 'no page'}); "
                    "the student gets one with the scores only"), name))
                entry.feedback_html = scores_page(name, entry)


def in_child(work, seconds: float) -> str | None:
    """Run `work()` in a forked child process that the kernel ends after `seconds`
    (a timer signal's default action: no Python runs it, so C code holding the
    GIL is stopped too). None when it returned, else what stopped it."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never back into the caller's code or finalizers
        code = 1
        try:
            os.close(reader)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))  # 0: never
            work()
            code = 0
        except BaseException as error:  # noqa: BLE001 (reported, then exit)
            os.write(writer, repr(error)[:500].encode(errors="replace"))
        finally:
            os._exit(code)
    os.close(writer)
    with open(reader, "rb") as pipe:
        said = pipe.read().decode(errors="replace")
    status = os.waitpid(pid, 0)[1]
    if os.WIFSIGNALED(status):
        return (f"it took more than {seconds:g} s"
                if os.WTERMSIG(status) == signal.SIGALRM else "it was stopped")
    return None if os.waitstatus_to_exitcode(status) == 0 else said or "it failed"


def scores_page(name: str, entry: NotebookResult) -> str:
    """A feedback page with a notebook's scores only, for one whose own page
    could not be made."""
    rows = "".join(f"<tr><td>{html.escape(grade_id)}</td><td>{cell.score:g} of "
                   f"{cell.max_score:g}</td></tr>" for grade_id, cell in
                   entry.cells.items())
    total = sum(c.score for c in entry.cells.values())
    most = sum(c.max_score for c in entry.cells.values())
    return (f"<!DOCTYPE html><html><body><h1>{html.escape(name)}: {total:g} of {most:g}"
            "</h1><p>Your notebook was graded, but the page that shows it could not "
            "be made; your instructor has been told.</p><table><tr><th>test</th>"
            f"<th>score</th></tr>{rows}</table></body></html>\n")


def _unsynced_under(folder: str, connection, _record) -> None:
    """SQLAlchemy's connect hook: commits to a sqlite file under `folder` are not
    flushed to disk (still atomic: a crash of this process loses nothing)."""
    if isinstance(connection, sqlite3.Connection) and connection.execute(
            "PRAGMA database_list").fetchone()[2].startswith(folder):
        connection.execute("PRAGMA synchronous = OFF")


def _schema_checked_once() -> None:
    """nbgrader checks each cell's metadata with ``jsonschema.validate``, which
    first checks nbgrader's schema itself against JSON Schema's meta-schema: 1.2
    ms a cell, about 0.07 s a ch02 notebook. Here each schema is checked once a
    process, and each cell still against it, with the same error raised."""
    validators = {}

    def validate(instance, schema) -> None:
        key = json.dumps(schema, sort_keys=True)
        if key not in validators:
            kind = jsonschema.validators.validator_for(schema)
            kind.check_schema(schema)
            validators[key] = kind(schema)
        error = jsonschema.exceptions.best_match(validators[key].iter_errors(instance))
        if error is not None:
            raise error

    common.jsonschema = types.SimpleNamespace(validate=validate)


def scratch_folder(base: str | None = None) -> Path:
    """A new folder in `base` (the temporary directory), marked with its owner."""
    work = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=base))
    me = psutil.Process()
    (work / "owner").write_text(f"{me.pid} {me.create_time()!r}")
    return work


def remove_orphaned_scratch(base: str | None = None) -> None:
    """Remove the scratch folders in `base` whose owner process has ended (one
    killed never ran its finalizer), leaving unmarked ones and the living's."""
    for work in Path(base or tempfile.gettempdir()).glob(SCRATCH_PREFIX + "*"):
        with contextlib.suppress(OSError, ValueError):
            pid, started = (work / "owner").read_text().split()
            with contextlib.suppress(psutil.NoSuchProcess):
                owner = psutil.Process(int(pid))
                # A zombie has ended: a worker killed just now that the fork
                # server has not reaped yet (its folder was kept, by chance).
                if (repr(owner.create_time()) == started
                        and owner.status() != psutil.STATUS_ZOMBIE):
                    continue
            shutil.rmtree(work, ignore_errors=True)


def _forget(work: Path, unsynced) -> None:
    event.remove(Engine, "connect", unsynced)
    shutil.rmtree(work, ignore_errors=True)


def judge_imports(sources: dict) -> list[str]:
    """The installed modules that the notebooks' test and set-up cells import."""
    return imported_modules(cell["source"] for nb in sources.values()
                            for cell in judge_cells(nb).values())


def imported_modules(sources) -> list[str]:
    """The installed modules that these cells import, in the order first seen."""
    found = []
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.append(node.module)
    # find_spec of the top-level name only: a submodule's would import its parent.
    return [m for m in dict.fromkeys(found)
            if importlib.util.find_spec(m.split(".")[0]) is not None]


def _why(outcome: dict) -> str:
    """What stopped one of nbgrader's API calls. Its "error" is only the closing
    NbGraderException; the traceback of the failure is in its "log"."""
    return _last_lines(outcome.get("log", "") + "\n" + outcome.get("error", ""))


def _last_lines(text: str, n: int = 6) -> str:
    """The end of a log, ending on its last real error rather than nbgrader's
    closing "see the above traceback"."""
    lines = text.strip().splitlines()
    errors = [i for i, line in enumerate(lines)
              if ("Error" in line or "Exception" in line)
              and "NbGraderException" not in line and "see the" not in line]
    end = errors[-1] + 1 if errors else len(lines)
    return "\n".join(line[:300] for line in lines[max(0, end - n):end])
