"""How fast `make grade` is: notebooks per minute, by pool, side by side.

Usage: python benchmarks/bench_grading.py [--count 20] [--assignment ch02]
       [--runs one,two,dask,unsafe] [--hundred] [--control 8] [--kernel-threads 1]

A label may repeat (``--runs one,two,one,two,one,two``): the ratios then compare
the median rates, which a noisy machine moves less than a single run.

Generates --count submissions of one assignment (complete, blank and half-done
notebooks in turn, made from the release and the solutions) and grades the same
submissions in one run, each time in a fresh scratch course, with:

- ``one``: the local pool with 1 worker;
- ``two``: the local pool with 2 workers;
- ``dask``: a Dask ``LocalCluster`` of 2 worker processes (one thread each);
- ``unsafe``: 2 local workers without the sandbox (what sealing costs).

It prints each run's rate, the ratios the grading issue sets targets for (two
workers at least 1.9x one; Dask within 15 % of the local pool; sealed at least
0.75x unsafe), and each run's cost per notebook per worker, from which the
instructor guide projects how throughput grows with workers, and how much of
the cores sat idle or was stolen by the hypervisor (a virtual machine's host
running others: a ratio measured while it steals says little). --hundred then
grades 100 submissions with 2 local workers (target: at most 3 minutes on 2
cores). --control N first measures how this machine itself scales from one
process to two at once, N times each (medians): a pure-Python loop, and a stream of
Python starts that import what a kernel imports. The second is a ceiling that no
pool's 2-worker ratio can be expected to pass on this machine. Not a test: the
numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import coursetools.grade  # noqa: E402
import nbtools  # noqa: E402
from coursetools.course import resolve_assignment  # noqa: E402
from coursetools.grade import Settings, grade  # noqa: E402

RUNS = {  # label: (local jobs, Dask workers, unsafe)
    "one": (1, 0, False),
    "two": (2, 0, False),
    "dask": (2, 2, False),
    "unsafe": (2, 0, True),
}


def make_course(folder: Path, assignment: str, count: int) -> None:
    shutil.copy(ROOT / "nbgrader_config.py", folder)
    shutil.copytree(ROOT / "solutions" / assignment, folder / "solutions" / assignment)
    for source in sorted((ROOT / "solutions" / assignment).glob("*.ipynb")):
        solution = nbtools.load(source)
        release = nbtools.load(ROOT / "exercises" / assignment / source.name)
        ids = [nbtools.nbgrader_meta(c)["grade_id"]
               for c in nbtools.answer_cells(solution)]
        variants = [set(ids), set(), set(ids[: math.ceil(len(ids) / 2)])]
        for i in range(count):
            nb = nbtools.fill_answers(release, solution, variants[i % 3])
            nbtools.save(nb, folder / "submitted" / f"student{i:03d}" / assignment
                         / source.name)


@contextlib.contextmanager
def scheduler(workers: int):
    if not workers:
        yield None
        return
    import dask
    from distributed import LocalCluster

    # Started as the instructor guide starts workers (dask-worker.yaml).
    with dask.config.set(nbtools.dask_worker_settings()), LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True,
            dashboard_address=None, silence_logs=50) as cluster:
        yield cluster.scheduler_address


def cpu_ticks() -> list[int] | None:
    """The machine's CPU time so far (user nice system idle iowait irq softirq
    steal), from Linux's /proc/stat; None elsewhere."""
    with contextlib.suppress(OSError):
        with open("/proc/stat") as stat:
            return [int(v) for v in stat.readline().split()[1:9]]
    return None


def share(before, after) -> str:
    """How the machine's cores spent a run: idle, and taken by the hypervisor for
    other machines (steal), which makes a run slower for reasons of its own."""
    if not before or not after:
        return ""
    spent = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(spent) or 1
    return (f"; cores idle {100 * (spent[3] + spent[4]) / total:.0f} %, stolen "
            f"{100 * spent[7] / total:.0f} %")


@contextlib.contextmanager
def pool_phase(seen: dict):
    """Puts in `seen` how the cores spent the pool phase alone (the call to
    ``coursetools.grade.run_jobs``): registration and export, before and after
    it, run on one core and would blur what the workers leave idle."""
    real = coursetools.grade.run_jobs

    def measured(*args, **kwargs):
        before = cpu_ticks()
        try:
            return real(*args, **kwargs)
        finally:
            seen["pool"] = share(before, cpu_ticks())

    coursetools.grade.run_jobs = measured
    try:
        yield
    finally:
        coursetools.grade.run_jobs = real


def run(assignment: str, count: int, jobs: int, workers: int, unsafe: bool,
        kernel_threads: int = 0):
    """Seconds: the whole run, its grading phase, the parent's share per student;
    and how the machine's cores spent the call to grade() and its pool phase."""
    seen = {"pool": ""}
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp, \
            scheduler(workers) as address, pool_phase(seen):
        course = Path(tmp)
        make_course(course, assignment, count)
        started = time.monotonic()
        settings = Settings(jobs=jobs, quiet=True, unsafe=unsafe, scheduler=address,
                            kernel_threads=kernel_threads)
        ticks = cpu_ticks()
        summary = grade(course, assignment, settings)
        assert not summary.not_graded, summary.not_graded
        cores = share(ticks, cpu_ticks())
        if cores and seen["pool"]:
            cores += f"; while the pool ran:{seen['pool'][1:]}"
        return time.monotonic() - started, summary.grading_seconds, \
            summary.parent_seconds / count, cores


def scaling(task, repeats: int) -> float:
    """Median over `repeats` of: 2 x one task's seconds / two at once's seconds."""
    ratios = []
    for _ in range(repeats):
        alone = task()
        seconds: list[float] = []
        both = [threading.Thread(target=lambda out=seconds: out.append(task()))
                for _ in "ab"]
        for thread in both:
            thread.start()
        for thread in both:
            thread.join()
        ratios.append(2 * alone / max(seconds))
    return statistics.median(ratios)


def timed(command: list[str], times: int) -> float:
    started = time.monotonic()
    for _ in range(times):
        subprocess.run(command, check=True)
    return time.monotonic() - started


def control(repeats: int) -> None:
    loop = [sys.executable, "-c", "sum(i * i for i in range(4_000_000))"]
    starts = [sys.executable, "-c", "import numpy, zmq, nbformat, ipykernel.kernelapp"]
    print(f"this machine, one process against two at once (medians of {repeats}): "
          f"a Python loop {scaling(lambda: timed(loop, 2), repeats):.2f}x, "
          f"Python starts importing a kernel's modules "
          f"{scaling(lambda: timed(starts, 6), repeats):.2f}x", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--assignment", default="ch02")
    parser.add_argument("--runs", default="one,two,dask")
    parser.add_argument("--hundred", action="store_true")
    parser.add_argument("--control", type=int, default=0, metavar="N")
    parser.add_argument("--kernel-threads", type=int, default=0, metavar="N",
                        help="BLAS threads per kernel in every run (default: "
                        "make grade's, the cores / the workers)")
    args = parser.parse_args()
    if args.control:
        control(args.control)
    assignment = resolve_assignment(ROOT, args.assignment)
    notebooks = len(list((ROOT / "solutions" / assignment).glob("*.ipynb")))
    print(f"{assignment}: {notebooks} notebook(s) per submission, "
          f"{args.count} submissions per run")
    rates = {}
    for label in args.runs.split(","):
        jobs, workers, unsafe = RUNS[label]
        seconds, grading, parent, cores = run(assignment, args.count, jobs, workers,
                                              unsafe, args.kernel_threads)
        rates.setdefault(label, []).append(args.count * notebooks / grading * 60)
        cost = (workers or jobs) * grading / (args.count * notebooks)
        print(f"{label:>7}: {seconds:6.1f} s ({seconds - grading:4.1f} s fixed + "
              f"{grading:5.1f} s grading): {rates[label][-1]:5.1f} notebooks/min, "
              f"{cost:.2f} worker-seconds per notebook; the parent {parent:.3f} s per "
              f"student{cores}", flush=True)
    for name, (a, b, target) in {
        "2 workers / 1 worker": ("two", "one", ">= 1.9"),
        "Dask LocalCluster / local pool": ("dask", "two", ">= 0.85"),
        "sealed / unsafe": ("two", "unsafe", ">= 0.75"),
    }.items():
        if a in rates and b in rates:
            ratio = statistics.median(rates[a]) / statistics.median(rates[b])
            runs = (len(rates[a]), len(rates[b]))
            print(f"{name}: {ratio:.2f} (target {target})" + (
                ", medians of {} and {} runs".format(*runs) if max(runs) > 1 else ""))
    if args.hundred:
        seconds, grading, _, cores = run(assignment, 100, 2, 0, False)
        print(f"100 submissions, 2 workers: {seconds:.0f} s = {seconds / 60:.2f} min "
              f"(target <= 3 min; {grading:.0f} s grading{cores})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
