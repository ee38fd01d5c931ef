"""The grading pool's accounting, with fake jobs: every student exactly once.

A student counts as graded only when the job that was sent them returns their
own result with their token; a failed attempt (a dead worker process, an
exception, a forged or mistaken answer, a grading error) is retried once; after
that the failure is the student's result, marked retryable (never cached as
final). Runs on the real local pool (spawned processes), so a worker that dies
breaks the pool for real and the pool must replace it.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
from pathlib import Path
from unittest import mock

import jsonschema
import psutil
import pytest
from conftest import nested_past_path_max
from coursetools import execute, worker
from coursetools import grade as grade_module
from coursetools.results import Finding, StudentResult
from coursetools.worker import Job


def fake_work(context: dict, job: Job) -> StudentResult:
    """Grades nobody; behaves as the student's name says."""
    marks = Path(context["marks"])
    attempt = len(list(marks.glob(job.student + ".*"))) + 1
    (marks / f"{job.student}.{attempt}").touch()
    result = StudentResult(job.student, "a1", token=job.token,
                           worker=f"fake:{os.getpid()}")
    if job.student == "forger":  # answers for someone else
        result.student = "good"
    if job.student == "killed":  # as the watchdog's kill: no finalizer runs
        with (marks / "scratch-of-killed").open("a") as folders:
            print(worker.scratch_folder(context["scratch_dir"]), file=folders)
        os._exit(9)
    if job.student == "silent" or (job.student == "flaky" and attempt == 1):
        os._exit(3)  # the worker process dies mid-job
    if job.student == "wrong_token":
        result.token = "0" * 32
    if job.student == "error":
        result.errors = ["nbgrader failed"]
    if job.student == "raises":
        raise RuntimeError("the worker broke")
    if job.student == "starved" and attempt == 1 or job.student == "loops":
        result.findings = [Finding("timeout", "cell 3 timed out")]
    if job.student == "lone_loop":  # times out a second after the others ended
        began = time.time()
        time.sleep(1.5)
        result.findings = [Finding("timeout", "cell 3 timed out")]
        result.time_outs = [[began + 1.0, time.time()]]
        result.started, result.finished = began, time.time()
    if job.student == "quick":
        result.started = result.finished = time.time()
    return result


@pytest.fixture
def pool(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()

    def run(students, jobs=2, make_job=lambda student, token: Job(student, token, {},
                                                                 {})):
        seen: dict[str, list[StudentResult]] = {}
        settings = grade_module.Settings(jobs=jobs)
        # As grade() tells its workers: the fork server may hold an earlier
        # test's TMPDIR (test_sealed_grading sets one), the run's end looks here.
        context = {"marks": str(marks), "scratch_dir": tempfile.gettempdir()}
        with grade_module.executor(settings, context) as (made, slots, shared):
            not_graded = grade_module.run_jobs(
                made, slots, students, shared, make_job,
                lambda r: seen.setdefault(r.student, []).append(r), work=fake_work)
        attempts = {s: len(list(marks.glob(s + ".*"))) for s in students}
        return seen, not_graded, attempts

    return run


def test_every_student_comes_back_exactly_once(pool):
    students = ["good", "forger", "silent", "flaky", "wrong_token", "error",
                "raises", "good2"]
    seen, not_graded, attempts = pool(students)
    assert sorted(seen) == sorted(students) and not not_graded
    assert all(len(results) == 1 for results in seen.values()), seen
    for student in ("good", "good2", "flaky"):
        result = seen[student][0]
        assert result.errors == [] and not result.retryable, student
    for student in ("forger", "silent", "wrong_token", "error", "raises"):
        result = seen[student][0]
        assert result.retryable is True and result.errors, student
        assert result.attempts == 2, student
    assert seen["error"][0].errors == ["nbgrader failed"]
    assert "another job" in seen["forger"][0].errors[0]
    assert "stopped unexpectedly" in seen["silent"][0].errors[0]
    assert "RuntimeError: the worker broke" in seen["raises"][0].errors[0]
    # A dying worker breaks the jobs running beside it too: those run again,
    # alone, and only a failure alone counts. The student whose job kills its
    # worker is tried twice alone; nobody else loses an attempt to it.
    assert attempts["silent"] in (2, 3)  # runs: once beside others, twice alone
    for student in ("good", "good2", "wrong_token", "error", "raises", "forger"):
        assert seen[student][0].attempts == (1 if student.startswith("good") else 2)
    assert seen["flaky"][0].attempts in (1, 2)  # 2 only if it first ran alone


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_timeout_beside_others_is_graded_once_more(pool, jobs):
    """Red-team pass 8: busy processes of one student made the classmates graded
    beside time out, and those zeros were final. With one job at a time nobody is
    beside, and the first result stands."""
    seen, _, attempts = pool(["starved", "loops", "good"], jobs=jobs)
    assert attempts == {"starved": jobs, "loops": jobs, "good": 1}
    assert [f.code for f in seen["starved"][0].findings] == (
        ["timeout"] if jobs == 1 else ["graded_twice"])
    assert [f.code for f in seen["loops"][0].findings] == (
        ["timeout"] if jobs == 1 else ["timeout", "graded_twice"])
    assert all(len(results) == 1 and not results[0].retryable
               for results in seen.values())


def test_a_timeout_while_no_other_job_ran_is_final(pool):
    """The instructor walkthrough: a classmate finished seconds into a student's
    first attempt, and her endless loop was graded twice anyway, unsaid."""
    seen, _, attempts = pool(["lone_loop", "quick"], jobs=2)
    assert attempts == {"lone_loop": 1, "quick": 1}
    assert [f.code for f in seen["lone_loop"][0].findings] == ["timeout"]


def test_two_students_graded_once_more_never_run_together():
    """Red-team pass 11: a student who runs out of time on purpose is graded once
    more too, and both second attempts ran together at the end of the queue, so
    the classmate she had starved was starved again, finally."""
    import concurrent.futures as cf
    import threading
    import types

    running, beside, lock = set(), {}, threading.Lock()

    def work(context, job):
        with lock:
            running.add(job.student)
            attempt = len(beside.get(job.student, [])) + 1
        began = time.time()
        time.sleep({"mallory": 0.4, "bob": 0.3}.get(job.student, 0.02))
        with lock:
            running.discard(job.student)
            beside.setdefault(job.student, []).append(set(running))
        result = StudentResult(job.student, "a1", token=job.token, started=began,
                               finished=time.time())
        if job.student == "mallory" or (job.student == "bob" and
                                        "mallory" in beside["bob"][-1]):
            result.findings = [Finding("timeout", f"attempt {attempt} timed out")]
            result.time_outs = [[began, time.time()]]
        return result

    final = {}
    grade_module.run_jobs(
        lambda: cf.ThreadPoolExecutor(2), 2,
        ["mallory", "bob"] + [f"c{i}" for i in range(6)], dict,
        lambda student, token: types.SimpleNamespace(student=student, token=token),
        lambda result: final.setdefault(result.student, result), work)
    assert "mallory" in beside["bob"][0] and "mallory" not in beside["bob"][1]
    assert [f.code for f in final["bob"].findings] == ["graded_twice"]


def test_every_pool_is_waited_for_broken_ones_too():
    """A broken pool was left with shutdown(wait=False): its dead worker, not yet
    reaped, still owned its scratch folder when the run ended, so the folder
    (hidden tests, a gradebook copy) was kept."""
    import concurrent.futures as cf
    import types
    from concurrent.futures.process import BrokenProcessPool

    waited = []

    class Pool(cf.ThreadPoolExecutor):
        def shutdown(self, wait=True, *, cancel_futures=False):
            waited.append((id(self), wait))
            # Not cancelled: a thread pool's cancelled future is never "done"
            # to cf.wait (a process pool's broken one holds an exception).
            super().shutdown(wait=wait)

    pools = []

    def make():
        pools.append(Pool(2))
        return pools[-1]

    def work(context, job):
        if job.student == "killed":
            raise BrokenProcessPool("a worker died")
        return StudentResult(job.student, "a1", token=job.token)

    grade_module.run_jobs(
        make, 2, ["killed", "good"], dict,
        lambda student, token: types.SimpleNamespace(student=student, token=token),
        lambda result: None, work)
    assert len(pools) >= 2  # the first one broke
    assert {(id(pool), True) for pool in pools} <= set(waited)


def test_a_timeout_counts_as_beside_another_job_only_when_they_overlap():
    result = StudentResult("s", "a1", time_outs=[[10.0, 20.0]])
    assert not result.ran_beside([(0.0, 5.0), (20.5, 30.0)])
    assert not result.ran_beside([(0.0, 12.0)])  # 2 s of 10: it had its cores
    assert result.ran_beside([(0.0, 13.0)])
    assert result.ran_beside([(15.0, float("inf"))])  # still running
    unrecorded = StudentResult("s", "a1", started=10.0, finished=20.0)
    assert not unrecorded.ran_beside([(0.0, 9.0)])
    assert unrecorded.ran_beside([(15.0, 25.0)])
    assert StudentResult("s", "a1").ran_beside([])  # no times at all


def test_a_forged_answer_does_not_grade_its_victim(pool):
    seen, _, _ = pool(["forger"], jobs=1)
    assert "good" not in seen and seen["forger"][0].retryable


def test_a_killed_workers_scratch_folder_is_removed_when_the_run_ends(pool,
                                                                     tmp_path):
    """It holds a gradebook copy and notebooks with the hidden tests in them."""
    seen, _, attempts = pool(["killed", "good"])
    assert seen["killed"][0].retryable and not seen["good"][0].errors
    folders = (tmp_path / "marks" / "scratch-of-killed").read_text().split()
    assert len(folders) == attempts["killed"] >= 2
    assert not any(Path(folder).exists() for folder in folders)


def test_only_scratch_folders_of_ended_processes_are_removed():
    mine = worker.scratch_folder()
    unmarked = Path(tempfile.mkdtemp(prefix=worker.SCRATCH_PREFIX))
    reused = worker.scratch_folder()  # its pid now names a process started later
    pid = (reused / "owner").read_text().split()[0]
    (reused / "owner").write_text(f"{pid} 12345.0")
    try:
        worker.remove_orphaned_scratch()
        assert mine.is_dir() and unmarked.is_dir()
        assert not reused.exists()
    finally:
        for folder in (mine, unmarked, reused):
            shutil.rmtree(folder, ignore_errors=True)


def test_the_scratch_folder_of_an_unreaped_process_is_removed(tmp_path):
    """A worker killed a moment ago is a zombie until the fork server reaps it;
    its folder was kept when the run ended first (a flaky test, in some orders)."""
    record = tmp_path / "folder"
    child = os.fork()
    if child == 0:  # makes its folder and ends without a finalizer, as a kill does
        record.write_text(str(worker.scratch_folder()))
        os._exit(0)
    try:
        while psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.01)
        folder = Path(record.read_text())
        worker.remove_orphaned_scratch()
        assert not folder.exists()
    finally:
        os.waitpid(child, 0)


def test_a_submission_the_parent_cannot_read_fails_alone(pool):
    def make_job(student, token):
        if student == "unreadable":
            raise OSError(36, "File name too long")
        return Job(student, token, {}, {})

    seen, not_graded, _ = pool(["good", "unreadable", "good2"], make_job=make_job)
    assert sorted(seen) == ["good", "good2", "unreadable"] and not not_graded
    assert not seen["good"][0].errors and not seen["good2"][0].errors
    failed = seen["unreadable"][0]
    assert failed.retryable and failed.attempts == 1
    assert failed.errors == ["the submission could not be read: OSError: "
                             "[Errno 36] File name too long"]


def test_one_worker_grades_everyone_in_turn(pool):
    seen, not_graded, attempts = pool([f"s{i}" for i in range(5)], jobs=1)
    assert not not_graded and attempts == {f"s{i}": 1 for i in range(5)}
    assert len({r[0].worker for r in seen.values()}) == 1



WATCHDOG = """
import subprocess, sys, time
from coursetools.worker import Watchdog
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep({sleep})"])
watchdog = Watchdog(budget={budget}, grace=1.0)
code = child.wait(timeout=30)
watchdog.cancel()
time.sleep(2.5)  # past the grace: had the last resort not been called off,
print(code, flush=True)  # this would never be printed
"""


def watched(sleep: float, budget: float) -> str:
    """Run a job's stand-in (a child sleeping `sleep` s) under a Watchdog, in a
    process of its own: the watchdog ends every child of its process."""
    import subprocess
    import sys

    script = WATCHDOG.format(sleep=sleep, budget=budget)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_watchdog_ends_a_jobs_children_and_then_stands_down():
    assert int(watched(sleep=60, budget=0.3)) != 0  # killed long before its 60 s


def test_a_watchdog_cancelled_in_time_does_nothing():
    assert watched(sleep=0.5, budget=5) == "0"


def test_the_watchdog_ends_a_job_that_holds_the_gil():
    """Red-team pass 6: a regular expression of a pygments lexer held the GIL
    for minutes, and the watchdog's timers, threads of the same process, waited."""
    import signal
    import subprocess
    import sys

    script = ("import re\nfrom coursetools.worker import Watchdog\n"
              "watchdog = Watchdog(budget=0.5, grace=0.5)\n"
              "re.match(r'(a+)+$', 'a' * 40 + 'b')  # 2**40 steps in C\n"
              "print('never', flush=True)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL and done.stdout == ""


def test_work_in_a_child_reports_its_end_and_leaves_the_parent_as_it_was(tmp_path):
    """Feedback pages are made by worker.in_child: its result, its error, or its
    deadline (red-team pass 7: pages that took 24 minutes, or raised, cost the
    student's grade), and never the parent's finalizers (the scratch folder)."""
    import multiprocessing.util
    import re

    made = tmp_path / "made"
    assert worker.in_child(made.touch, 30) is None and made.exists()

    def fail():
        raise ValueError("boom")
    assert worker.in_child(fail, 30) == "ValueError('boom')"
    never = tmp_path / "finalized"
    guard = multiprocessing.util.Finalize(None, never.touch, exitpriority=0)
    assert worker.in_child(lambda: re.match(r"(a+)+$", "a" * 40 + "b"), 0.5) == (
        "it took more than 0.5 s")  # 2**40 steps in C, holding the GIL
    assert not never.exists()
    guard.cancel()


def printed_by(script: str) -> list[str]:
    """The words a Python script run in a process of its own printed."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


WATCHDOG_MEMORY = """
import subprocess, sys
from coursetools.worker import Watchdog
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep({sleep})"])
watchdog = Watchdog(budget=120, grace=30, memory_mb={memory_mb})
held = bytearray(200 * 2**20)  # what a kernel's unread output costs this process
for page in range(0, len(held), 4096):
    held[page] = 1  # resident
code = child.wait(timeout=60)
watchdog.cancel()
print(code, watchdog.flooded, flush=True)
"""


@pytest.mark.parametrize(("memory_mb", "sleep", "expected"),
                         [(64, 60, "killed True"), (1024, 1, "0 False")])
def test_the_watchdog_ends_a_jobs_children_when_the_process_outgrows_its_cap(
        memory_mb, sleep, expected):
    code, flooded = printed_by(WATCHDOG_MEMORY.format(sleep=sleep, memory_mb=memory_mb))
    assert ("killed" if int(code) != 0 else code, flooded) == tuple(expected.split())


WATCHDOG_CHILDREN = """
import subprocess, sys, time
from coursetools.worker import Watchdog
hold = ("held = bytearray(300 * 2**20)\\nfor page in range(0, len(held), 4096):\\n"
        "    held[page] = 1\\nprint(flush=True)\\nimport time; time.sleep({sleep})")
watchdog = Watchdog(budget=120, grace=30, memory_mb={memory_mb})
children = [subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE)
            for _ in range(3)]
for child in children:
    child.stdout.readline()  # its 300 MB are resident
codes = [child.wait(timeout=60) for child in children]
watchdog.cancel()
print(min(codes), watchdog.held_mb, watchdog.flooded, flush=True)
"""


@pytest.mark.parametrize(("memory_mb", "sleep", "stopped"), [(64, 60, True),
                                                              (1024, 1, False)])
def test_the_watchdog_stops_children_that_together_hold_more_than_the_cap_allows(
        memory_mb, sleep, stopped):
    # Red-team pass 8: the cap is per process, and each child gets one of its own.
    # Three children of 300 MB: past 2 * 64 + 512 MB, within 2 * 1024 + 512 MB.
    code, held_mb, flooded = printed_by(
        WATCHDOG_CHILDREN.format(sleep=sleep, memory_mb=memory_mb))
    assert flooded == "False"  # the worker itself did not grow
    if stopped:
        assert int(code) < 0 and 2 * memory_mb + 512 < int(held_mb) < 1000
    else:
        assert (int(code), int(held_mb)) == (0, 0)


WATCHDOG_AGAIN = """
import subprocess, sys
from coursetools.worker import Watchdog
hold = ("held = bytearray(300 * 2**20)\\nfor page in range(0, len(held), 4096):\\n"
        "    held[page] = 1\\nprint(flush=True)\\nimport time; time.sleep(20)")
watchdog = Watchdog(budget=120, grace=30, memory_mb=64)
for kernel in ("stopped", "its replacement"):
    children = [subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE)
                for _ in range(3)]
    for child in children:
        child.stdout.readline()
    print(max(child.wait(timeout=60) for child in children), flush=True)
grown = []  # the grader's own memory, 200 MB more each time
for _ in range(2):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(20)"])
    grown.append(bytearray(200 * 2**20))
    print(child.wait(timeout=60), flush=True)
watchdog.cancel()
"""


def test_the_watchdog_watches_the_kernel_that_replaces_a_stopped_one():
    # Red-team pass 11: the watchdog ended with its first stop, and the kernel
    # that replaced the stopped one (GuardedExecute._lost) made 2 million files
    # unwatched. Each time: 3 children of 300 MB, past 2 * 64 + 512 MB, and the
    # grader itself 200 MB larger, past 64 MB.
    codes = [int(code) for code in printed_by(WATCHDOG_AGAIN)]
    assert len(codes) == 4 and all(code < 0 for code in codes), codes


FORKS = """
import os, time
held = bytearray(300 * 2**20)
for page in range(0, len(held), 4096):
    held[page] = 1  # resident, then shared by the four forks below
forks = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        time.sleep(2)
        os._exit(0)
    forks.append(pid)
codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in forks]
os._exit(min(codes) != 0)
"""
WATCHDOG_SHARED = """
import subprocess, sys
from coursetools.worker import Watchdog
watchdog = Watchdog(budget=120, grace=30, memory_mb=256)
code = subprocess.run([sys.executable, "-c", FORKS], timeout=60).returncode
watchdog.cancel()
print(code, watchdog.held_mb, flush=True)
"""


def test_the_watchdog_counts_pages_that_forks_share_once():
    # Red-team pass 9: four forks of a process with 300 MB resident add up to
    # 1.2 GB of RSS, past 2 * 256 + 512 MB, though they hold 300 MB together (a
    # Pool's or a DataLoader's workers).
    code, held_mb = printed_by(WATCHDOG_SHARED.replace("FORKS", repr(FORKS)))
    assert (int(code), int(held_mb)) == (0, 0)


SOCKET_FILL = """
import resource, socket, time
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
if KIND == "netlink":  # route sockets, which the sandbox allows
    held = [socket.socket(socket.AF_NETLINK, socket.SOCK_RAW) for _ in range(PAIRS)]
    for one in held:
        one.bind((0, 0))  # a port id of its own: it can now be sent to
else:
    held = [socket.socketpair(socket.AF_UNIX, KIND) for _ in range(PAIRS)]
print(flush=True)
time.sleep(SLEEP)
"""
WATCHDOG_SOCKETS = """
import os, subprocess, sys
from coursetools.worker import Watchdog
watchdog = Watchdog(budget=120, grace=30, memory_mb=1)
new_net = ["unshare", "--net"] if os.getuid() == 0 else ["unshare", "-rn"]
child = subprocess.Popen([*new_net, sys.executable, "-c", FILL], stdout=subprocess.PIPE)
child.stdout.readline()
code = child.wait(timeout=60)
watchdog.cancel()
print(code, watchdog.held_mb, flush=True)
"""


@pytest.mark.parametrize(("kind", "pairs", "stopped"), [
    ("SOCK_STREAM", 1400, True), ("SOCK_STREAM", 100, False),
    ("SOCK_DGRAM", 150, True), ("netlink", 1400, True)])
def test_the_watchdog_counts_what_a_sandboxs_sockets_may_queue(kind, pairs, stopped):
    # Red-team pass 9: 8 processes queued 1.8 GB in Unix sockets with 136 MB of
    # RSS. In a network namespace of its own, as a sandbox is, 2800 sockets may
    # queue 2800 default send buffers (about 600 MB), past 2 * 1 + 512 MB; 200 may
    # not. A datagram socket also holds up to 11 messages that senders since
    # closed left in it (pass 10), so 300 may queue about 770 MB, and 1400
    # netlink sockets about 600 MB. Nothing is sent: the bound is what the
    # sockets could hold.
    fill = SOCKET_FILL.replace("PAIRS", str(pairs)).replace(
        "SLEEP", "60" if stopped else "1").replace(
        "KIND", repr(kind) if kind == "netlink" else f"socket.{kind}")
    code, held_mb = printed_by(WATCHDOG_SOCKETS.replace("FILL", repr(fill)))
    if stopped:
        assert int(code) != 0 and int(held_mb) >= 2 * 1 + 512
    else:
        assert (int(code), int(held_mb)) == (0, 0)


FILES_FILL = """
import os, subprocess, time
# A tmpfs of its own, as a sandbox's /tmp (mounted once python runs from /tmp)
subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/tmp"], check=True)
for i in range(FILES):
    os.close(os.open(f"/tmp/{i}", os.O_CREAT | os.O_WRONLY, 0o600))
print(flush=True)
time.sleep(SLEEP)
"""
WATCHDOG_FILES = """
import os, subprocess, sys
from coursetools.worker import Watchdog
watchdog = Watchdog(budget=120, grace=30, memory_mb=1)
own = ["unshare", "--net", "--mount"] if os.getuid() == 0 else ["unshare", "-rnm"]
child = subprocess.Popen([*own, sys.executable, "-c", FILL], stdout=subprocess.PIPE)
child.stdout.readline()
code = child.wait(timeout=60)
watchdog.cancel()
print(code, watchdog.held_mb, flush=True)
"""


@pytest.mark.parametrize(("files", "stopped"), [(300_000, True), (20_000, False)])
def test_the_watchdog_counts_the_files_in_a_sandboxs_tmpfs(files, stopped):
    # Red-team pass 11: an empty file holds about 1 KB of the kernel's memory
    # (1.6 KB with a long name), which no process's RSS shows, and each of the
    # sandbox's four tmpfs mounts takes 3 million of them. 300,000 files count
    # about 600 MB, past 2 * 1 + 512 MB; 20,000 about 40 MB.
    fill = FILES_FILL.replace("FILES", str(files)).replace(
        "SLEEP", "60" if stopped else "1")
    code, held_mb = printed_by(WATCHDOG_FILES.replace("FILL", repr(fill)))
    if stopped:
        assert int(code) != 0 and int(held_mb) >= 2 * 1 + 512
    else:
        assert (int(code), int(held_mb)) == (0, 0)


def test_any_file_name_or_depth_is_hashed_without_an_error(tmp_path):
    folder = tmp_path / "sub"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "ok.txt").write_text("x")
    weird = os.fsdecode(b"notes\xff\xfe.txt")  # not UTF-8
    (folder / weird).write_text("y")
    nested_past_path_max(folder, "deep.txt")
    import hashlib

    first, again = hashlib.sha256(), hashlib.sha256()
    worker.add_folder(first, folder)
    worker.add_folder(again, folder)
    assert first.hexdigest() == again.hexdigest()
    x, y = hashlib.sha256(b"x").digest(), hashlib.sha256(b"y").digest()
    expected = hashlib.sha256(b"8\0a/ok.txt" + x + b"11\0notes\xff\xfe.txt" + y)
    assert first.hexdigest() == expected.hexdigest()  # the deep folder is left out


def test_two_different_folders_never_hash_alike(tmp_path):
    """Pass 4's pair: one notebook that ends in another file's name and bytes fed
    the same bytes as the two files, when paths and contents were only joined."""
    import hashlib

    two, one = tmp_path / "two", tmp_path / "one"
    two.mkdir()
    one.mkdir()
    (two / "ch02.ipynb").write_bytes(b"{}")
    (two / "notes.txt").write_bytes(b"hello")
    (one / "ch02.ipynb").write_bytes(b"{}notes.txt\0hello")
    keys = []
    for folder in (two, one):
        digest = hashlib.sha256()
        worker.add_folder(digest, folder)
        keys.append(digest.hexdigest())
    assert keys[0] != keys[1]


def test_a_linked_submission_folder_is_never_read_for_its_key(tmp_path):
    """Red-team pass 5: every student's key is computed before grading starts,
    and one folder linked to /proc/self held the whole class's run for hours."""
    behind = tmp_path / "elsewhere"
    behind.mkdir()
    (behind / "nb.ipynb").write_text("a")
    (tmp_path / "submitted" / "mallory").mkdir(parents=True)
    (tmp_path / "submitted" / "mallory" / "a1").symlink_to(behind)

    def key():
        return grade_module.submission_key(tmp_path, "a1", "mallory",
                                           grade_module.Settings(), "source")

    before = key()
    (behind / "nb.ipynb").write_text("b")
    with mock.patch.object(Path, "open", side_effect=AssertionError("it was read")):
        assert key() == before


def test_files_handed_in_are_hashed_and_read_a_block_at_a_time(tmp_path):
    """A student's large file must not take its size in the grading parent's
    memory, and one larger than a notebook may be is not read at all."""
    import hashlib
    import tracemalloc

    (tmp_path / "sub").mkdir()
    big = tmp_path / "sub" / "timestamp.txt"
    with big.open("wb") as handle:
        handle.write(b"2026-12-01 09:30:00 UTC")
        handle.truncate(48 * 2**20)  # sparse: the rest reads as zeros
    content = hashlib.sha256(big.read_bytes()).digest()
    expected = hashlib.sha256(b"17\0sub/timestamp.txt" + content).hexdigest()
    tracemalloc.start()
    try:
        digest = hashlib.sha256()
        worker.add_folder(digest, tmp_path)
        head = grade_module._head(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert digest.hexdigest() == expected
    assert head.startswith("2026-12-01 09:30:00 UTC") and len(head) == 100
    assert peak < 8 * 2**20, f"{peak / 2**20:.0f} MB held at once"
    (tmp_path / "huge").mkdir()
    huge = tmp_path / "huge" / "data.bin"
    with huge.open("wb") as handle:
        handle.truncate(2**40)  # a sparse terabyte: reading it would take hours
    stat = huge.stat()
    digest = hashlib.sha256()
    with mock.patch.object(Path, "open", side_effect=AssertionError("it was read")):
        worker.add_folder(digest, tmp_path / "huge")
    content = hashlib.sha256(b"%d %d" % (2**40, stat.st_mtime_ns)).digest()
    assert digest.hexdigest() == hashlib.sha256(b"8\0data.bin" + content).hexdigest()
# -- a worker's own costs ------------------------------------------------------
def synchronous(db: Path) -> int:
    """sqlite's setting on a new connection made as nbgrader's Gradebook makes it."""
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as connection:
        value = connection.execute(text("PRAGMA synchronous")).scalar()
    engine.dispose()
    return value


def test_only_the_scratch_gradebook_commits_without_fsync(tmp_path):
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    scratch = tmp_path / "coursetools-grader-x"
    scratch.mkdir()
    hook = functools.partial(worker._unsynced_under, f"{scratch}/")
    event.listen(Engine, "connect", hook)
    try:
        # 0 is OFF, 2 is FULL, sqlite's default; a sibling folder's name
        # starts with the scratch folder's
        assert [synchronous(scratch / "gradebook.db"),
                synchronous(tmp_path / "gradebook.db"),
                synchronous(tmp_path / "coursetools-grader-x2.db")] == [0, 2, 2]
    finally:
        worker._forget(scratch, hook)
    assert not scratch.exists() and not event.contains(Engine, "connect", hook)
    scratch.mkdir()
    assert synchronous(scratch / "again.db") == 2


def test_nbgraders_metadata_check_raises_the_same_errors_checking_its_schema_once(
        monkeypatch):
    from nbformat.v4 import new_code_cell
    from nbgrader.nbgraderformat import MetadataValidator, common

    monkeypatch.setattr(common, "jsonschema", jsonschema)
    good = {"grade": True, "grade_id": "t1", "locked": True, "points": 2,
            "schema_version": 3, "solution": False, "task": False}
    bad = [{**good, "points": "many"}, {**good, "grade_id": 7},
           {k: v for k, v in good.items() if k != "locked"}]

    def errors(cells):
        found = []
        for cell in cells:
            try:
                MetadataValidator().validate_cell(cell)
                found.append(None)
            except jsonschema.ValidationError as error:
                found.append((error.message, list(error.path)))
        return found

    cells = [new_code_cell("x", metadata={"nbgrader": m}) for m in [good, *bad]]
    theirs = errors(cells)
    assert theirs[0] is None and all(theirs[1:]), theirs
    worker._schema_checked_once()
    assert common.jsonschema is not jsonschema
    kind = jsonschema.validators.validator_for(MetadataValidator().schema)
    with mock.patch.object(kind, "check_schema",
                           side_effect=kind.check_schema) as check:
        assert errors(cells + cells) == theirs + theirs
    assert check.call_count == 1


def test_ctrl_c_ends_the_run_with_a_line_not_a_traceback(capsys, monkeypatch):
    monkeypatch.setattr(grade_module, "find_root", lambda: Path("course"))
    monkeypatch.setattr(grade_module, "resolve_assignment", lambda root, name: name)
    monkeypatch.setattr(grade_module, "grade",
                        mock.Mock(side_effect=KeyboardInterrupt))
    assert grade_module.main(["a1"]) == 130
    assert "run the same command again" in capsys.readouterr().err


def judge_server_of_this_worker() -> dict:
    server = execute._judge_servers[0]
    return {"forked_from_the_worker":
            psutil.Process(server.pid).cmdline() == psutil.Process().cmdline(),
            "has_the_judges_imports": "wave" in server.imported}


def test_a_local_worker_forks_its_judges_server_with_the_judges_imports():
    # As the worker starts, with one thread: its judges then start with the
    # assignment's imports done (wave stands for torch), made once per worker.
    settings = grade_module.Settings(jobs=1)
    with grade_module.executor(settings, {}, ["wave"]) as (made, _, _), \
            made() as pool:
        assert pool.submit(judge_server_of_this_worker).result(timeout=60) == {
            "forked_from_the_worker": True, "has_the_judges_imports": True}
