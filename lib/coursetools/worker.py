"""A grading worker: grades the students named on its stdin, one at a time.

Started by :mod:`coursetools.grade`, one per ``--jobs``. Each worker owns a
scratch nbgrader course (its own copy of the gradebook, its own kernelspec) so
workers never share an sqlite file; the parent merges their results into the real
gradebook, one writer at a time. One nbgrader process grades many students,
which saves the application start-up on every notebook.

Protocol: the parent writes a student id per line; the worker answers
``done <student>`` on stdout once ``<work>/results/<student>.json`` is written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from coursetools import checks, execute
from coursetools.feedback import hide_hidden_tests, secret_lines
from coursetools.sandbox import Sandbox, answer_names, judge_cells


def autograde_config(root: Path, course: Path, settings: dict, sealed: dict):
    """The course's nbgrader_config.py, pointed at the scratch course and hardened."""
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import Execute
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    extra = Config()
    extra.CourseDirectory.root = str(course)
    extra.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    extra.CourseDirectory.source_directory = "solutions"
    extra.CourseDirectory.submitted_directory = "submitted"
    extra.CourseDirectory.autograded_directory = "autograded"
    extra.CourseDirectory.feedback_directory = "feedback"
    extra.OverwriteCells.add_missing_cells = True
    extra.Execute.timeout = settings["timeout"]
    extra.GuardedExecute.notebook_timeout = settings["notebook_timeout"]
    extra.GuardedExecute.max_output_bytes = settings["max_output_bytes"]
    # The learner's kernel talks over Unix sockets in its connection folder:
    # it has no network, so no TCP port could reach it.
    extra.KernelManager.transport = "ipc"
    extra.KernelManager.ip = str(Path(sealed["comm"]) / "k")
    extra.KernelManager.connection_file = str(Path(sealed["comm"]) / "kernel.json")
    extra.SealedExecute.judge_names = sealed["names"]
    extra.SealedExecute.judge_cells = sealed["cells"]
    extra.SealedExecute.bridge_socket = str(Path(sealed["comm"]) / "judge.sock")
    extra.SealedExecute.comm_dir = sealed["comm"]
    extra.SealedExecute.judge_log = sealed["log"]
    pipeline = [
        execute.SealedExecute if p is Execute else p
        for p in Autograde.class_traits()["autograde_preprocessors"].default()
    ]
    extra.Autograde.autograde_preprocessors = pipeline
    config.merge(extra)
    return config


class Worker:
    def __init__(self, root: Path, work: Path, assignment: str, settings: dict):
        import nbformat
        from nbgrader.apps import NbGraderAPI

        self.root, self.work, self.assignment = root, work, assignment
        self.settings = settings
        self.course = work / "course"
        self.course.mkdir(parents=True, exist_ok=True)
        (self.course / "solutions").mkdir(exist_ok=True)
        link = self.course / "solutions" / assignment
        if not link.exists():
            link.symlink_to(root / "solutions" / assignment)
        shutil.copy(settings["template_db"], self.course / "gradebook.db")
        self.results = work / "results"
        self.results.mkdir(exist_ok=True)
        release_dir = Path(settings["release_dir"])
        self.releases = {
            p.stem: nbformat.read(p, as_version=4)
            for p in sorted(release_dir.glob("*.ipynb"))
        }
        self.secret = set()
        by_name = {
            path.stem: nbformat.read(path, as_version=4)
            for path in sorted((root / "solutions" / assignment).glob("*.ipynb"))
        }
        sources = list(by_name.values())
        for nb in sources:
            self.secret |= secret_lines(nb)
        self.sandbox = Sandbox(
            root, work, sources, release_dir, settings, int(settings.get("slot", 0))
        )
        self.sandbox.kernelspec(work / "jupyter")
        sealed = {
            "comm": str(self.sandbox.comm),
            "names": sorted({n for nb in sources for n in answer_names(nb)}),
            "cells": {
                f"{name}/{grade_id}": cell  # grade ids are unique per notebook only
                for name, nb in by_name.items()
                for grade_id, cell in judge_cells(nb).items()
            },
            "log": str(work / "judge.log"),
        }
        self.api = NbGraderAPI(
            config=autograde_config(root, self.course, settings, sealed)
        )

    # -- one student ----------------------------------------------------------
    def grade(self, student: str) -> dict:
        started = time.monotonic()
        for sub in ("submitted", "autograded", "feedback", "feedback-src"):
            shutil.rmtree(self.course / sub / student, ignore_errors=True)
        folder = self.root / "submitted" / student / self.assignment
        checked = checks.check_submission(folder, self.releases)
        target = self.course / "submitted" / student / self.assignment
        target.mkdir(parents=True)
        # Only the notebooks and nbgrader's timestamp: any other file a student
        # hands in is flagged by the checks and never reaches the kernel.
        stamp = folder / "timestamp.txt"
        if stamp.is_file() and not stamp.is_symlink():
            shutil.copy(folder / "timestamp.txt", target / "timestamp.txt")
        import nbformat

        for c in checked:
            if c.notebook is not None:
                nbformat.write(c.notebook, target / f"{c.name}.ipynb")

        result = {
            "student": student,
            "assignment": self.assignment,
            "notebooks": {},
            "errors": [],
        }
        execute.EVENTS.clear()
        if any(c.notebook is not None for c in checked):
            outcome = self.api.autograde(
                self.assignment, student, force=True, create=True
            )
            if not outcome["success"]:
                result["errors"].append(_last_lines(outcome.get("error", "")))
        events = list(execute.EVENTS)
        self._collect_grades(student, checked, events, result)
        if self.settings.get("feedback", True):
            self._feedback(student, checked, result)
        result["seconds"] = round(time.monotonic() - started, 2)
        return result

    def _collect_grades(self, student, checked, events, result) -> None:
        from nbgrader.api import Gradebook, MissingEntry

        autograded = self.course / "autograded" / student / self.assignment
        with Gradebook(f"sqlite:///{self.course / 'gradebook.db'}") as gb:
            try:
                submission = gb.find_submission(self.assignment, student)
                timestamp = submission.timestamp
            except MissingEntry:
                submission, timestamp = None, None
            result["timestamp"] = timestamp.isoformat() if timestamp else None
            for c in checked:
                entry = {
                    "submitted_as": c.submitted_as,
                    "flags": [f.as_dict() for f in c.flags],
                    "events": [e for e in events if e.get("notebook") == c.name],
                    "graded": False,
                    "grades": {},
                    "comments": {},
                }
                path = autograded / f"{c.name}.ipynb"
                if c.notebook is not None and submission is not None and path.exists():
                    nb = gb.find_submission_notebook(c.name, self.assignment, student)
                    entry["graded"] = True
                    entry["late_penalty"] = nb.late_submission_penalty
                    entry["grades"] = {
                        g.name: {
                            "auto_score": g.auto_score,
                            "max_score": g.max_score,
                            "needs_manual_grade": g.needs_manual_grade,
                        }
                        for g in nb.grades
                    }
                    entry["comments"] = {m.name: m.auto_comment for m in nb.comments}
                    entry["autograded"] = str(path)
                    entry["events"] += _output_events(path)
                elif c.notebook is not None:
                    entry["flags"].append(
                        {
                            "code": "grading_error",
                            "message": "the notebook could not be graded",
                        }
                    )
                result["notebooks"][c.name] = entry

    def _feedback(self, student, checked, result) -> None:
        import nbformat
        from nbgrader.utils import temp_attrs

        source = self.course / "feedback-src" / student / self.assignment
        made = False
        for name, entry in result["notebooks"].items():
            if not entry["graded"]:
                continue
            graded = nbformat.read(entry["autograded"], as_version=4)
            safe = hide_hidden_tests(graded, self.releases[name], self.secret)
            source.mkdir(parents=True, exist_ok=True)
            nbformat.write(safe, source / f"{name}.ipynb")
            entry["feedback_source"] = str(source / f"{name}.ipynb")
            made = True
        if not made:
            return
        with temp_attrs(self.api.coursedir, autograded_directory="feedback-src"):
            outcome = self.api.generate_feedback(self.assignment, student, force=True)
        if not outcome["success"]:
            result["errors"].append(
                "feedback: " + _last_lines(outcome.get("error", ""))
            )
        out = self.course / "feedback" / student / self.assignment
        for name, entry in result["notebooks"].items():
            html = out / f"{name}.html"
            if html.exists():
                entry["feedback"] = str(html)


def _output_events(path: Path) -> list[dict]:
    """What the graded notebook's outputs say: errors outside tests, withheld calls."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    found = []
    quiet = {
        "CellNotRun",
        "CellTimeoutError",
        "DeadKernelError",
        "MemoryError",
        "NotImplementedError",  # an unanswered stub is not an anomaly
        "KeyboardInterrupt",
    }  # the interrupt after a timeout, reported as such
    for index, cell in enumerate(nb.cells):
        nbg = cell.metadata.get("nbgrader", {})
        for output in cell.get("outputs", []):
            if output.output_type != "error":
                continue
            if output.ename == "ReferenceWithheldError":
                found.append(
                    {
                        "kind": "reference_called",
                        "cell": nbg.get("grade_id"),
                        "detail": output.evalue[:160],
                    }
                )
            elif (
                not nbg.get("grade")
                and output.ename not in quiet
                and not output.ename.endswith("MemoryError")
            ):
                where = nbg.get("grade_id") or f"cell {index}"
                found.append(
                    {
                        "kind": "error_outside_tests",
                        "cell": where,
                        "detail": f"{output.ename}: {output.evalue}"[:160],
                    }
                )
    return found


def _last_lines(text: str, n: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--assignment", required=True)
    parser.add_argument("--settings", required=True, help="JSON")
    args = parser.parse_args()
    settings = json.loads(args.settings)
    os.environ["JUPYTER_PATH"] = str(args.work / "jupyter")
    threads = str(settings.get("kernel_threads", 1))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = threads
    os.chdir(args.work)
    worker = Worker(args.root, args.work, args.assignment, settings)
    print("ready", flush=True)
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 2:
            continue
        student, token = parts
        try:
            result = worker.grade(student)
        except Exception:  # noqa: BLE001 (one bad submission must not stop others)
            result = {
                "student": student,
                "assignment": args.assignment,
                "notebooks": {},
                "errors": [_last_lines(traceback.format_exc())],
            }
        result["token"] = token
        path = worker.results / f"{student}.json"
        path.write_text(json.dumps(result, indent=1, default=str))
        print(f"done {student} {token}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
