"""What grading finds, as one typed model from the worker to the gradebook and report.

A :class:`Finding` is anything an instructor may need to know (a repaired cell, a
timeout, a file handed in beside the notebook); a :class:`StudentResult` is one
student's whole grading: scores per graded cell, findings per notebook, and the
files the worker made. The worker returns it, the pool checks it, the gradebook
and the report read it, and it is saved (without the files) as
``grading/<assignment>/state/<student>.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

# What a code means, in the words the report uses; codes in INFO are shown but
# do not need a look.
LABELS = {
    "not_utf8": "not UTF-8 (scored 0)",
    "invalid_json": "invalid JSON (scored 0)",
    "not_a_notebook": "not a notebook (scored 0)",
    "too_large": "notebook too large (scored 0)",
    "missing_notebook": "notebook missing",
    "extra_notebook": "extra notebook ignored",
    "renamed": "renamed notebook",
    "duplicated_cell": "duplicated graded cell",
    "unknown_cell": "unknown graded cell",
    "metadata_restored": "nbgrader metadata restored",
    "cell_type_changed": "cell type changed",
    "points_changed": "points changed (overwritten)",
    "metadata_changed": "cell settings changed (overwritten)",
    "tampered": "read-only/test cell edited (overwritten)",
    "cell_deleted": "deleted cell put back",
    "answer_missing": "answer cell missing",
    "grading_error": "grading error",
    "timeout": "cell timeout",
    "unresponsive": "kernel ignored interrupt",
    "notebook_timeout": "notebook time limit",
    "kernel_died": "kernel died",
    "kernel_stuck": "kernel stopped answering",
    "kernel_restarted": "kernel restarted",
    "memory": "memory cap hit",
    "huge_output": "huge output truncated",
    "long_text": "long text cell cut",
    "bad_message": "forged kernel message dropped",
    "reference_called": "called the withheld reference",
    "error_outside_tests": "error outside the tests",
    "stderr": "wrote to stderr (not penalised)",
    "extra_file": "file beside the notebook (ignored)",
    "symlink": "symbolic link handed in (ignored)",
    "bad_timestamp": "timestamp.txt unreadable (graded as on time)",
    "judge_setup_error": "set-up cell failed in the judge",
    "sandbox": "grading sandbox problem",
    "feedback_failed": "feedback page failed (scores kept)",
    "graded_twice": "graded twice (ran out of time beside another job)",
}
INFO = {"stderr", "graded_twice"}
# Findings that a classmate's busy processes, graded beside, can cause: graded
# again once before they are final (red-team pass 8).
TIME_CODES = {"timeout", "unresponsive", "notebook_timeout", "judge_setup_error"}
# What to do about each code, as the instructor guide's table in "Reading the
# report" says (tests/test_results.py holds them to it); INFO codes need nothing.
ACTIONS = {
    "ask for the file again": {"not_utf8", "invalid_json", "not_a_notebook",
                               "too_large"},
    "check the renamed one is theirs; put a misplaced notebook in the right folder "
    "and grade again": {"missing_notebook", "renamed"},
    "usually nothing": {"metadata_restored", "cell_type_changed", "unknown_cell",
                        "metadata_changed", "huge_output", "long_text"},
    "look if it happens often": {"tampered", "points_changed", "cell_deleted"},
    "read the notebook": {"duplicated_cell", "answer_missing", "bad_message", "timeout",
                          "unresponsive", "notebook_timeout", "kernel_died", "memory",
                          "kernel_stuck", "kernel_restarted",
                          "error_outside_tests"},
    "check that the right one was graded": {"extra_notebook"},
    "nothing: the score is right": {"reference_called"},
    "read the submission": {"symlink"},
    "read the notebook; the scores stand": {"feedback_failed"},
    "nothing, unless it was a notebook in disguise": {"extra_file"},
    "fix the assignment": {"judge_setup_error"},
    "ask when it was handed in, write that time in the file and grade again (a "
    "changed file regrades the student)": {"bad_timestamp"},
    "regrade it, then report a bug": {"sandbox", "grading_error"},
}


@dataclass(frozen=True)
class Finding:
    code: str  # machine-readable kind, a key of LABELS
    message: str  # one line for a human
    notebook: str = ""  # notebook name without .ipynb; "" for the whole submission
    cell: str | None = None  # grade id, or "cell 7" for a cell without one

    @property
    def label(self) -> str:
        return LABELS.get(self.code, self.code)

    @property
    def action(self) -> str:
        return next((a for a, codes in ACTIONS.items() if self.code in codes),
                    "" if self.code in INFO else "read the notebook")

    def text(self) -> str:
        where = f" (cell {self.cell})" if self.cell else ""
        if self.cell and self.cell.startswith("cell "):  # a cell without a grade id
            where = f" ({self.cell})"
        return (f"{self.notebook}: " if self.notebook else "") + self.message + where


@dataclass
class CellResult:
    """One graded cell of one student's notebook."""

    score: float
    max_score: float
    needs_manual_grade: bool = False
    failure: str | None = None  # "AssertionError: ..." when the test lost points
    seconds: float | None = None  # how long the test ran, when measured


@dataclass
class NotebookResult:
    name: str
    submitted_as: str | None = None  # file name in the submission, if any
    graded: bool = False
    cells: dict[str, CellResult] = field(default_factory=dict)  # by grade id
    comments: dict[str, str | None] = field(default_factory=dict)
    late_penalty: float | None = None
    findings: list[Finding] = field(default_factory=list)
    # Made by the worker and written into the course folders by the parent; not
    # kept in the state file.
    autograded: str | None = None  # the graded notebook, JSON text
    feedback_html: str | None = None
    feedback_source: str | None = None  # the notebook the feedback shows

    FILES = ("autograded", "feedback_html", "feedback_source")


@dataclass
class StudentResult:
    student: str
    assignment: str
    token: str = ""  # the job's token: a result is accepted only with its job's
    notebooks: dict[str, NotebookResult] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # the grader failed, not them
    findings: list[Finding] = field(default_factory=list)  # the submission as a whole
    timestamp: str | None = None
    seconds: float = 0.0
    worker: str = ""  # host:pid of the process that graded
    attempts: int = 1
    retryable: bool = False  # a grading error: never cached as final
    key: str | None = None  # hash of what the grade depends on (None: regrade)
    # Wall-clock times (epoch s): the job's, and each cell's that ran out of time.
    started: float = 0.0
    finished: float = 0.0
    time_outs: list = field(default_factory=list)  # [start, end] per cell
    earlier_seconds: float = 0.0  # a first attempt's, when it was graded again

    @classmethod
    def failed(cls, student: str, assignment: str, why: str) -> StudentResult:
        return cls(student, assignment, errors=[why], retryable=True)

    def all_findings(self) -> list[Finding]:
        """Every finding of the submission and its notebooks, each once."""
        found = list(self.findings)
        for notebook in self.notebooks.values():
            found += notebook.findings
        found += [Finding("grading_error", (e.splitlines() or ["unknown"])[-1])
                  for e in self.errors]
        return list(dict.fromkeys(found))

    def ran_beside(self, others: list[tuple[float, float]]) -> bool:
        """Other jobs (each [start, end], epoch s) ran for at least a quarter of
        a cell of this one that ran out of time; the whole job counts when the
        cells' times were not recorded. A neighbour that ended 2 s into a 65 s
        timeout did not starve it (walkthrough 12)."""
        if not self.time_outs and not self.started:
            return True  # nothing recorded: as before, graded again
        spans = self.time_outs or [[self.started, self.finished or self.started]]
        for start, end in spans:
            shared = sum(max(0.0, min(end, end_o) - max(start, start_o))
                         for start_o, end_o in others)
            if shared >= (end - start) / 4:
                return True
        return False

    def ran_out_of_time(self) -> bool:
        """A cell, the notebook or the judge's set-up ran out of time (or failed)."""
        return any(f.code in TIME_CODES for f in self.all_findings())

    def needs_attention(self) -> bool:
        return any(f.code not in INFO for f in self.all_findings())

    def to_json(self) -> str:
        no_files = dict.fromkeys(NotebookResult.FILES)
        saved = replace(self, notebooks={name: replace(nb, **no_files)
                                         for name, nb in self.notebooks.items()})
        return json.dumps(asdict(saved), indent=1)

    @classmethod
    def from_json(cls, text: str) -> StudentResult:
        data = json.loads(text)
        notebooks = {}
        for name, nb in data.pop("notebooks", {}).items():
            nb["cells"] = {g: CellResult(**c) for g, c in nb.get("cells", {}).items()}
            nb["findings"] = [Finding(**f) for f in nb.get("findings", [])]
            notebooks[name] = NotebookResult(**nb)
        data["findings"] = [Finding(**f) for f in data.get("findings", [])]
        return cls(**data, notebooks=notebooks)
