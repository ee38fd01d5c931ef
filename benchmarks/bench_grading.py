"""How fast `make grade` is, and what sealing costs: notebooks per minute.

Usage: python benchmarks/bench_grading.py [--count 40] [--serial-count 0]
       [--jobs 2] [--assignment ch01]

Generates --count submissions of one assignment (a mix of complete, blank and
half-done notebooks, made from the release and the solutions) and grades the same
submissions with --jobs workers twice in one run, sealed (sandbox and judge) and
with --unsafe (judge, no sandbox), each in a fresh scratch course; then prints the
rates, the sealed/unsafe throughput ratio (target: at least 0.75, i.e. sealing
costs at most 25 %) and the sandbox's cost per notebook. --serial-count N also
grades N sealed submissions with one worker. Not a test: the numbers depend on
the machine and its load.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import nbtools  # noqa: E402
from coursetools.course import assignments, resolve_assignment  # noqa: E402
from coursetools.grade import Settings, grade  # noqa: E402


def make_course(folder: Path, assignment: str, count: int) -> list[str]:
    shutil.copy(ROOT / "nbgrader_config.py", folder)
    shutil.copytree(ROOT / "solutions" / assignment, folder / "solutions" / assignment)
    students = []
    for source in sorted((ROOT / "solutions" / assignment).glob("*.ipynb")):
        solution = nbtools.load(source)
        release = nbtools.load(ROOT / "exercises" / assignment / source.name)
        ids = [
            nbtools.nbgrader_meta(c)["grade_id"] for c in nbtools.answer_cells(solution)
        ]
        variants = [set(ids), set(), set(ids[: math.ceil(len(ids) / 2)])]
        for i in range(count):
            student = f"student{i:03d}"
            nb = nbtools.fill_answers(release, solution, variants[i % 3])
            nbtools.save(nb, folder / "submitted" / student / assignment / source.name)
            students.append(student)
    return sorted(set(students))


def run(assignment: str, count: int, jobs: int, unsafe: bool) -> tuple[float, float]:
    """(whole run, grading phase) in seconds."""
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        course = Path(tmp)
        make_course(course, assignment, count)
        started = time.monotonic()
        settings = Settings(jobs=jobs, quiet=True, unsafe=unsafe)
        summary = grade(course, assignment, settings)
        return time.monotonic() - started, summary.grading_seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--serial-count", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--assignment", default=None)
    args = parser.parse_args()
    names = assignments(ROOT)
    name = args.assignment or next((n for n in names if n.startswith("ch01")), names[0])
    assignment = resolve_assignment(ROOT, name)
    notebooks = len(list((ROOT / "solutions" / assignment).glob("*.ipynb")))
    print(f"{assignment}: {notebooks} notebook(s) per submission")
    rates = {}
    for label, count, jobs, unsafe in [
        ("serial", args.serial_count, 1, False),
        ("sealed", args.count, args.jobs, False),
        ("unsafe", args.count, args.jobs, True),
    ]:
        if count <= 0:
            continue
        seconds, grading = run(assignment, count, jobs, unsafe)
        fixed = seconds - grading  # registering the assignment, exporting grades
        per_minute = count * notebooks / grading * 60
        rates[label] = per_minute
        projected = fixed + 100 * grading / count
        print(
            f"{label:>8}: {count} submissions, {jobs} worker(s): {seconds:6.1f} s "
            f"({fixed:.1f} s fixed + {grading:.1f} s grading), "
            f"{per_minute:5.1f} notebooks/min; 100 submissions: about "
            f"{projected / 60:4.1f} min",
            flush=True,
        )
    if "sealed" in rates and "unsafe" in rates:
        ratio = rates["sealed"] / rates["unsafe"]
        # Worker-seconds per notebook, so the cost does not depend on --jobs.
        cost = args.jobs * 60 * (1 / rates["sealed"] - 1 / rates["unsafe"])
        print(
            f"sealed/unsafe throughput: {ratio:.2f} (target >= 0.75); the sandbox "
            f"costs {cost:+.2f} s per notebook per worker"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
