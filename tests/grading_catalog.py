"""Bad submissions, made from an assignment's release and solution, with the score
and the flag each should get.

Expected scores come from the source notebook's point structure (which test cells
come after the cell that breaks, which test cells belong to which answer), never
from a run of the grader.
"""

from __future__ import annotations

import ast
import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import delegation
import nbtools
import rnnlib


@dataclass
class Case:
    student: str
    expected_score: float
    flags: set[str] = field(default_factory=set)  # codes that must be reported
    files: dict[str, bytes] = field(default_factory=dict)  # file name -> content
    why: str = ""


SUBMIT_FILES = {"timestamp.txt": b"2026-12-01 09:30:00.000000 UTC",
                "submission_secret.txt": b"3f2b8c1e9a7d4e6f8b0c2d4e6f8a0b1c"}


def dump(nb: dict) -> bytes:
    return json.dumps(nb, indent=1).encode("utf-8")


class Catalog:
    """Everything derived from one notebook of one assignment."""

    def __init__(self, solution: dict, release: dict, name: str):
        self.solution, self.release, self.name = solution, release, name
        self.answer_ids = [
            nbtools.nbgrader_meta(c)["grade_id"] for c in nbtools.answer_cells(solution)
        ]
        self.full = nbtools.fill_answers(release, solution, set(self.answer_ids))
        self.tests = [
            c for c in solution["cells"] if nbtools.nbgrader_meta(c).get("grade")
        ]
        self.total = sum(float(nbtools.nbgrader_meta(c)["points"]) for c in self.tests)

    # -- the point structure --------------------------------------------------
    def order(self) -> list[str]:
        return [
            nbtools.nbgrader_meta(c).get("grade_id") for c in self.solution["cells"]
        ]

    def points_after(self, grade_id: str) -> float:
        ids = self.order()
        after = set(ids[ids.index(grade_id) + 1 :])
        return sum(
            float(nbtools.nbgrader_meta(c)["points"])
            for c in self.tests
            if nbtools.nbgrader_meta(c)["grade_id"] in after
        )

    def points_of_part(self, function: str) -> float:
        """Points of the test cells after the answer cell that defines function."""
        parts = delegation.Exercise(self.name, self.solution, self.release)
        return sum(
            parts.points(grade_id)
            for grade_id, _ in parts.parts
            if function in {f.name for f in parts.functions(grade_id)}
        )

    def functions(self, grade_id: str) -> list[ast.FunctionDef]:
        cell = self.answer(self.solution, grade_id)
        tree = ast.parse(nbtools.solution_body(cell))
        return [n for n in tree.body if isinstance(n, ast.FunctionDef)]

    # -- editing notebooks ----------------------------------------------------
    @staticmethod
    def answer(nb: dict, grade_id: str) -> dict:
        return next(
            c
            for c in nb["cells"]
            if nbtools.nbgrader_meta(c).get("grade_id") == grade_id
        )

    def with_code_after(self, grade_id: str, code: str) -> dict:
        nb = copy.deepcopy(self.full)
        cell = self.answer(nb, grade_id)
        cell["source"] = nbtools.source(cell) + "\n" + code
        return nb

    def file(self, nb: dict | bytes, name: str | None = None) -> dict[str, bytes]:
        data = nb if isinstance(nb, bytes) else dump(nb)
        return {name or f"{self.name}.ipynb": data}

    # -- the catalog ----------------------------------------------------------
    def cases(self) -> list[Case]:
        last = self.answer_ids[-1]
        total = self.total
        cases = [
            # As `nbgrader collect` leaves it: the submit command's two files beside.
            Case("correct", total, set(), {**self.file(self.full), **SUBMIT_FILES},
                 "the solution"),
            Case("blank", 0.0, set(), self.file(self.release), "the release as given"),
            # nbgrader fails on it with an AttributeError of its own (0.9.6).
            Case("bad_timestamp", total, {"bad_timestamp"},
                 {**self.file(self.full), "timestamp.txt": b"not a date"},
                 "a timestamp.txt that is not a date"),
            # release_feedback reads the side files; this one was not copied.
            Case("padded_timestamp", total, set(),
                 {**self.file(self.full), **SUBMIT_FILES, "timestamp.txt":
                  SUBMIT_FILES["timestamp.txt"] + b" " * 5000},
                 "a timestamp.txt padded past 4 kB"),
            Case(
                "loop",
                total,
                {"timeout"},
                self.file(self.with_code_after(last, "while True:\n    pass\n")),
                "an interruptible endless loop after the last answer",
            ),
            Case(
                "swallow",
                total - self.points_after(last),
                {"unresponsive", "kernel_restarted"},
                self.file(self.with_code_after(last, SWALLOW)),
                "a loop that ignores KeyboardInterrupt at the end of the last answer "
                "cell: a new kernel runs the later cells, without that cell",
            ),
            Case(
                "memory",
                total,
                {"memory"},
                self.file(
                    self.with_code_after(
                        last,
                        "import numpy\n"
                        "hog = [numpy.zeros(2**28, dtype=numpy.uint8)"
                        " for _ in range(200)]\n",
                    )
                ),
                "allocates 50 GB (untouched) after the last answer",
            ),
            Case(
                "crash",
                total - self.points_after(last),
                {"kernel_died", "kernel_restarted"},
                self.file(self.with_code_after(last, "import os\nos._exit(1)\n")),
                "kills its kernel at the end of the last answer cell: a new kernel "
                "runs the later cells, without that cell",
            ),
            Case(
                "huge_output",
                total,
                {"huge_output"},
                self.file(
                    self.with_code_after(
                        last, "for _ in range(30000):\n    print('x' * 100)\n"
                    )
                ),
                "prints 3 MB",
            ),
            # Red-team pass 6: pygments' systemd lexer took minutes over the
            # spaces, holding the GIL; Markdown had no bound of its own.
            Case(
                "long_markdown",
                total,
                {"long_text"},
                self.file(self.long_markdown()),
                "a block fenced as systemd with 20,000 spaces, and 150 kB of prose",
            ),
            Case(
                "stderr",
                total,
                {"stderr"},
                self.file(self.noisy()),
                "every answer function prints to stderr when called",
            ),
            Case(
                "deleted_test",
                total,
                {"cell_deleted"},
                self.file(self.delete_test()),
                "the first test cell deleted",
            ),
            Case(
                "edited_test",
                0.0,
                {"tampered"},
                self.file(self.edit_tests()),
                "blank, every test cell replaced by `pass`",
            ),
            Case(
                "points",
                total,
                {"points_changed"},
                self.file(self.change_points()),
                "a test cell claims 100 points",
            ),
            Case(
                "cell_type",
                total,
                {"cell_type_changed"},
                self.file(self.change_types()),
                "an answer cell and a test cell turned into markdown",
            ),
            Case(
                "duplicated",
                total,
                {"duplicated_cell"},
                self.file(self.duplicate()),
                "an answer cell and a test cell copied, ids included",
            ),
            Case(
                "renamed",
                total,
                {"renamed"},
                {**self.file(self.full, f"{self.name} (1).ipynb"), **SUBMIT_FILES},
                "the notebook saved under another name",
            ),
            Case(
                "stripped",
                total,
                {"metadata_restored"},
                self.file(self.strip()),
                "every cell's nbgrader metadata removed",
            ),
            Case(
                "invalid_json",
                0.0,
                {"invalid_json"},
                {**self.file(dump(self.full)[: len(dump(self.full)) // 2]),
                 **SUBMIT_FILES},
                "the file cut in half",
            ),
            Case(
                "non_utf8",
                0.0,
                {"not_utf8"},
                self.file(self.latin1()),
                "saved as Latin-1",
            ),
            Case(
                "import_error",
                total,
                {"error_outside_tests"},
                self.file(self.import_error()),
                "a first cell importing a missing module",
            ),
        ]
        # An answer function that calls a reference the grader withholds: an
        # rnnlib function of the same name, else the first one that the
        # notebook's allow-list leaves out.
        functions = self.functions_of_answers()
        same_name = [f for f in functions if hasattr(rnnlib, f.name)]
        withheld = [f"{m.partition('.')[2]}.{a}"
                    for m, a in delegation.withheld_references(self.solution)]
        if same_name or (functions and withheld):
            func = (same_name or functions)[0]
            target = func.name if same_name else withheld[0]
            cases.append(
                Case(
                    "reference",
                    total - self.points_of_part(func.name),
                    {"reference_called"},
                    self.file(self.call_reference(func.name, target)),
                    f"{func.name} returns rnnlib.{target}(...)",
                )
            )
        return cases

    def functions_of_answers(self) -> list[ast.FunctionDef]:
        return [f for gid in self.answer_ids for f in self.functions(gid)]

    def noisy(self) -> dict:
        nb = copy.deepcopy(self.full)
        for gid in self.answer_ids:
            names = [f.name for f in self.functions(gid)]
            if names:
                cell = self.answer(nb, gid)
                wraps = "".join(f"{n} = _noisy({n})\n" for n in names)
                cell["source"] = nbtools.source(cell) + "\n" + NOISY + wraps
        return nb

    def delete_test(self) -> dict:
        nb = copy.deepcopy(self.full)
        first_test = next(
            c for c in nb["cells"] if nbtools.nbgrader_meta(c).get("grade")
        )
        nb["cells"].remove(first_test)
        return nb

    def edit_tests(self) -> dict:
        nb = copy.deepcopy(self.release)
        for cell in nb["cells"]:
            if nbtools.nbgrader_meta(cell).get("grade"):
                cell["source"] = "pass\n"
        return nb

    def change_points(self) -> dict:
        nb = copy.deepcopy(self.full)
        next(c for c in nb["cells"] if nbtools.nbgrader_meta(c).get("grade"))[
            "metadata"
        ]["nbgrader"]["points"] = 100
        return nb

    def change_types(self) -> dict:
        nb = copy.deepcopy(self.full)
        first_test = next(
            c for c in nb["cells"] if nbtools.nbgrader_meta(c).get("grade")
        )
        for cell in (self.answer(nb, self.answer_ids[0]), first_test):
            cell["cell_type"] = "markdown"
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
        return nb

    def duplicate(self) -> dict:
        nb = copy.deepcopy(self.full)
        cells = nb["cells"]
        answer = self.answer(nb, self.answer_ids[0])
        cells.insert(cells.index(answer), copy.deepcopy(answer))
        test = next(c for c in cells if nbtools.nbgrader_meta(c).get("grade"))
        cells.insert(cells.index(test), copy.deepcopy(test))
        return nb

    def long_markdown(self) -> dict:
        nb = copy.deepcopy(self.full)
        nb["cells"][:0] = [
            {"cell_type": "markdown", "id": "fenced", "metadata": {},
             "source": "```systemd\n" + " " * 20_000 + "x\n```"},
            {"cell_type": "markdown", "id": "essay", "metadata": {},
             "source": "word " * 30_000},
        ]
        return nb

    def strip(self) -> dict:
        nb = copy.deepcopy(self.full)
        for cell in nb["cells"]:
            cell["metadata"].pop("nbgrader", None)
        return nb

    def latin1(self) -> bytes:
        nb = copy.deepcopy(self.full)
        nb["cells"].insert(
            0,
            {
                "cell_type": "markdown",
                "id": "note",
                "metadata": {},
                "source": "Notes by Zoë: café",
            },
        )
        return json.dumps(nb, indent=1, ensure_ascii=False).encode("latin-1", "replace")

    def import_error(self) -> dict:
        nb = copy.deepcopy(self.full)
        nb["cells"].insert(
            0,
            {
                "cell_type": "code",
                "id": "myimports",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": "import not_a_real_module_for_grading\n",
            },
        )
        return nb

    def call_reference(self, name: str, target: str) -> dict:
        """A notebook whose function `name` returns rnnlib.<target>(its arguments)."""
        nb = copy.deepcopy(self.full)
        module = "rnnlib" + ("." + target.rsplit(".", 1)[0] if "." in target else "")
        for gid in self.answer_ids:
            for func in self.functions(gid):
                if func.name == name:
                    args = [a.arg for a in func.args.args + func.args.kwonlyargs]
                    call = ", ".join(f"{a}={a}" for a in args)
                    cell = self.answer(nb, gid)
                    signature = ast.unparse(func.args)
                    cell["source"] = nbtools.source(cell) + (
                        f"\n\nimport {module}\n\ndef {name}({signature}):\n"
                        f"    return rnnlib.{target}({call})\n"
                    )
        return nb


SWALLOW = """import time
while True:
    try:
        time.sleep(0.05)
    except KeyboardInterrupt:
        pass
"""

NOISY = """import functools as _functools
import sys as _sys


def _noisy(function):
    @_functools.wraps(function)
    def wrapper(*args, **kwargs):
        print(f"debug: {function.__name__} called", file=_sys.stderr)
        return function(*args, **kwargs)
    return wrapper


"""


def build(root: Path, assignment: str) -> tuple[Catalog, list[Case]]:
    """The catalog for the first notebook of `assignment` in course `root`."""
    source = sorted((root / "solutions" / assignment).glob("*.ipynb"))[0]
    solution = nbtools.load(source)
    release = nbtools.load(root / "exercises" / assignment / source.name)
    catalog = Catalog(solution, release, source.stem)
    return catalog, catalog.cases()
