"""nbgrader's Execute preprocessor, hardened for grading many unknown notebooks.

Plain ``nbgrader autograde`` loses a whole submission when its kernel dies or
ignores an interrupt, zeroes a test cell that wrote a warning to stderr, and keeps
every byte a runaway ``print`` loop emits. :class:`GuardedExecute` replaces
``Execute`` in the autograde pipeline (see :func:`autograde_config`) and adds a
time budget per notebook, a new kernel for a lost one (the later parts are still
graded), stderr shown as stdout, and a cap on the output kept; its traits say
how. :class:`SealedExecute` runs the test cells in a judge instead.

Every such event is a finding in ``resources["coursetools"]``, with each test's
running time; :class:`KeepFindings`, last in each of nbgrader's pipelines, saves
them in the notebook's metadata, where the worker reads them. Skipped cells get
an ``error`` output, so they score zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import importlib
import json
import os
import resource
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from queue import Empty
from time import monotonic, time

import nbformat
import psutil
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.connect import channel_socket_types
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import ensure_async, run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_output
from nbgrader.converters import Autograde
from nbgrader.preprocessors import (
    DeduplicateIds,
    Execute,
    NbGraderPreprocessor,
    OverwriteCells,
)
from traitlets import Bool, Dict, Integer, List, Type, Unicode
from traitlets.config import Config, PyFileConfigLoader

from coursetools import judge
from coursetools.course import GRADEBOOK, CourseError
from coursetools.results import TIME_CODES, Finding
from coursetools.sandbox import KERNEL_SOCKETS


def _error_output(ename: str, evalue: str):
    return new_output(
        "error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]
    )


def _message_size(content: dict) -> int:
    size = len(content.get("text", "") or "") + len(str(content.get("evalue", "")))
    size += len(str(content.get("ename", "")))
    size += len(json.dumps(content["metadata"])) if content.get("metadata") else 0
    size += sum(len(str(line)) for line in content.get("traceback") or [])
    for value in (content.get("data") or {}).values():
        size += len(value) if isinstance(value, str) else len(str(value))
    return size


def _cut_error(content: dict, limit: int = judge.MAX_ERROR) -> dict:
    """An error output of at most about 2 * `limit` characters: its message's
    head, and the last lines of its traceback, where the error is."""
    lines, size, tb = [], 0, content.get("traceback")
    for line in reversed([str(line)[:limit] for line in
                          (tb if isinstance(tb, list) else [])]):
        if size + len(line) > limit:
            break
        lines.insert(0, line)
        size += len(line)
    return {**content, "ename": str(content.get("ename"))[:limit],
            "evalue": str(content.get("evalue", ""))[:limit], "traceback": lines}


def _as_message(output: dict) -> dict:
    """The iopub message that would have carried `output`, for GuardedExecute.output."""
    kind = output["output_type"]
    return {"msg_type": kind, "header": {"msg_type": kind}, "parent_header": {},
            "content": output}


class GuardedExecute(Execute):
    notebook_timeout = Integer(
        300, help="Seconds the whole notebook may run; later cells are not run."
    ).tag(config=True)
    interrupt_grace = Integer(
        5, help="Seconds a timed-out kernel has to answer the interrupt."
    ).tag(config=True)
    max_restarts = Integer(
        2, help="Times a dead or stuck kernel is replaced by a new one in a notebook."
    ).tag(config=True)
    max_output_bytes = Integer(
        1_000_000, help="Output kept per cell, and 20 times it per notebook; the rest "
        "is dropped (a cell's first error is kept, cut to about 20,000 characters)."
    ).tag(config=True)

    def _event(self, code: str, cell, message: str) -> None:
        record(self._resources, code, message, cell)
        if code in TIME_CODES:  # when, on the clock: did another job run beside?
            _store(self._resources)["time_outs"].append(
                [round(self._cell_began, 3), round(time(), 3)])

    def preprocess(self, nb, resources=None, km=None):
        self._resources = resources = resources if resources is not None else {}
        self._notebook = resources.get("nbgrader", {}).get("notebook")
        self._base_timeout = self.timeout
        self._deadline = monotonic() + self.notebook_timeout
        self._stop_reason = None
        self._kept, self._dropped = Counter(), Counter()  # characters per cell
        self._bad = Counter()  # kernel messages dropped per cell: no valid output
        self._errored = set()  # cells that have kept an error output
        self._restarts = 0
        self._cell_began = time()
        self._killers = set()  # cells that lost a kernel: not run again in the next
        try:
            nb, resources = super().preprocess(nb, resources, km=km)
        finally:
            self.timeout = self._base_timeout
        self._backstop(nb)
        return nb, resources

    # -- one cell -------------------------------------------------------------
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        if self._stop_reason is None and monotonic() >= self._deadline:
            self._stop(cell, "notebook_timeout", "the notebook used up its "
                       f"{self.notebook_timeout} s time limit before this cell")
        if self._stop_reason is not None:
            cell.outputs = [_error_output("CellNotRun", self._stop_reason)]
            cell.execution_count = None
            return cell, resources

        remaining = self._deadline - monotonic()
        limited_by_budget = remaining < self._base_timeout
        self.timeout = max(1, int(min(self._base_timeout, remaining)))
        # What a timed-out cell shows its student (nbgrader's says "No reply").
        self.error_on_timeout = _error_output(
            "CellTimeoutError", judge.timeout_message(self.timeout))
        started, self._cell_began = monotonic(), time()
        self._timed_out = False  # set by the grader's own clock, never by an output
        try:
            cell, resources = self._run_cell(cell, resources, index)
        except DeadKernelError:
            cell.outputs.append(_error_output(
                "DeadKernelError", "the kernel died while running this cell "
                "(a crash, os._exit, or the memory cap)"))
            self._lost(cell, index, "kernel_died", f"kernel died in cell {index}", DIED)
        except CellTimeoutError as error:  # no idle after an interrupt
            self._timed_out = True
            cell.outputs.append(_error_output("CellTimeoutError", str(error)[:200]))
        finally:
            self.timeout = self._base_timeout
            nbg = cell.metadata.get("nbgrader", {})
            if nbg.get("grade"):
                seconds = _store(resources)["seconds"]
                seconds[nbg.get("grade_id")] = round(monotonic() - started, 3)

        # Not the outputs' word: a learner's own class CellTimeoutError had made one.
        if self._stop_reason is None and self._timed_out:
            self._event("timeout", cell,
                        f"cell {index} ran longer than {self.timeout} s")
            if limited_by_budget:
                self._stop(cell, "notebook_timeout", "the notebook used up its "
                           f"{self.notebook_timeout} s time limit")
            elif (answers := run_sync(self._kernel_answers)(
                    self.interrupt_grace)) is None:
                self._lost(cell, index, "kernel_died",
                           "the kernel died after a timeout", DIED)
            elif not answers:
                self._lost(cell, index, "unresponsive", "the kernel ignored the "
                           "interrupt after a timeout (KeyboardInterrupt caught?)")
        self._tidy_outputs(cell, index)
        return cell, resources

    async def _async_handle_timeout(self, timeout, cell=None):
        self._timed_out = True
        return await super()._async_handle_timeout(timeout, cell)

    def _run_cell(self, cell, resources, index):
        """Execute one cell in the kernel (SealedExecute sends tests elsewhere)."""
        return super().preprocess_cell(cell, resources, index)

    def _stop(self, cell, kind: str, reason: str) -> None:
        self._event(kind, cell, reason)
        self._stop_reason = f"not run: {reason}"

    async def _kernel_answers(self, wait: float) -> bool | None:
        """True when the kernel runs a no-op within `wait` seconds; None when it
        has died."""
        if not await ensure_async(self.kc.is_alive()):
            return None
        return await self._silent("", wait) is not None

    # -- a lost kernel --------------------------------------------------------
    def _lost(self, cell, index: int, code: str, message: str,
              reason: str | None = None) -> None:
        """Finding `code` in cell `index`: the kernel died or stopped answering. A
        new one takes its place, with the earlier cells run again, while restarts
        and time are left; else the later cells are not run, for `reason` (default
        `message`). Parts are graded independently: a crash must not cost the others."""
        self._event(code, cell, message)
        reason = reason or message
        self._killers.add(index)
        left = self._deadline - monotonic()
        why = reason.removeprefix("the ").removesuffix(" in an earlier cell")
        if self._restarts < self.max_restarts and left > 10:
            self._restarts += 1
            try:
                self._restart(index)
            except Exception as error:  # noqa: BLE001 (a second loss: stop here)
                reason = f"{reason}; a new kernel could not take its place ({error})"
            else:
                self._event("kernel_restarted", cell,
                            f"kernel restarted after cell {index}: the {why}; the "
                            "earlier cells were run again and the later ones graded")
                return
        self._stop_reason = f"not run: {reason}"

    def _restart(self, index: int) -> None:
        """A new kernel, launched as the first was, that has run the set-up and
        answer cells before cell `index` (not the test cells, nor a cell that
        lost a kernel or ran out of time: it would again)."""
        run_sync(self._async_cleanup_kernel)()
        self.km = self.kc = None
        self.create_kernel_manager()
        self.start_new_kernel()
        self.start_new_kernel_client()
        for number, earlier in enumerate(self.nb.cells[:index]):
            nbg = earlier.metadata.get("nbgrader", {})
            if (earlier.cell_type != "code" or not earlier.source.strip()
                    or number in self._killers
                    or _has_error(earlier, "CellTimeoutError")
                    or (nbg.get("grade") and not nbg.get("solution"))):
                continue
            wait = max(1.0, min(self._base_timeout, self._deadline - monotonic()))
            reply = run_sync(self._silent)(earlier.source, wait)
            if reply is None:
                raise RuntimeError(f"cell {number} did not finish when run again")

    async def _silent(self, code: str, wait: float):
        """Run `code` without output or history; its reply, or None after `wait` s."""
        msg_id = self.kc.execute(code, silent=True, store_history=False)
        return await self._reply_to(msg_id, wait)

    async def _reply_to(self, msg_id: str, wait: float):
        deadline = monotonic() + wait
        while (left := deadline - monotonic()) > 0:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=left))
            except Empty:
                return None
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg
        return None

    def _tidy_outputs(self, cell, index: int) -> None:
        moved = 0
        for output in cell.outputs:
            if output.output_type == "stream" and output.name == "stderr":
                output.name = "stdout"
                moved += 1
            if output.output_type == "error" and output.ename.endswith("MemoryError"):
                self._event("memory", cell, f"MemoryError in cell {index}")
        if moved:
            self._event("stderr", cell, f"cell {index} wrote to stderr")
        if dropped := self._dropped[index]:
            self._event(
                "huge_output",
                cell,
                f"cell {index}: {dropped:,} characters of output dropped",
            )
            note = f"\n[... {dropped:,} more characters of output not kept ...]\n"
            cell.outputs.append(new_output("stream", name="stdout", text=note))
        if bad := self._bad[index]:
            self._event("bad_message", cell, f"cell {index}: {bad:,} kernel messages "
                        "that make no valid output dropped")

    # -- output cap -----------------------------------------------------------
    def process_message(self, msg, cell, cell_index):
        # The kernel's messages are the student's to forge: an execution count
        # that is not a count becomes None, widget state (kept in the notebook) counts,
        # and a message that makes no valid output is dropped (else nbconvert
        # refuses the notebook).
        self._index, content = cell_index, msg["content"]
        try:
            count = content.get("execution_count")
            if count is not None and not (type(count) is int and count >= 0):
                content["execution_count"] = None
            if isinstance(content.get("text"), list):
                content["text"] = "".join(map(str, content["text"]))
            if msg["msg_type"].startswith("comm"):
                size = len(json.dumps(content["data"]))
                size += sum(map(len, msg.get("buffers") or []))
                if not self._take(cell_index, {cell_index: size}):
                    return None
            return super().process_message(msg, cell, cell_index)
        except (nbformat.ValidationError, LookupError, TypeError, AttributeError):
            self._bad[cell_index] += 1
            return None

    def _update_display_id(self, display_id, msg):
        # nbclient writes an update into every output with its display_id, without
        # output(): each of them counts, and an update that does not fit is refused.
        size, grow = _message_size(msg["content"]), Counter()
        for index, places in self._display_id_map.get(display_id, {}).items():
            outputs = self.nb.cells[index].outputs
            grow[index] += sum(size - _message_size(outputs[i]) for i in places)
        if self._take(self._index, grow):
            super()._update_display_id(display_id, msg)

    def _take(self, index: int, grow: dict) -> bool:
        """Count characters added to cells (cell index -> characters) if they fit,
        and to the notebook; else count them as dropped by cell `index`."""
        grow[None] = sum(grow.values())
        if any(self._kept[i] + n > (20 if i is None else 1) * self.max_output_bytes
               for i, n in grow.items() if n > 0):
            self._dropped[index] += grow[None]
            return False
        self._kept.update(grow)
        return True

    def on_cell_executed(self, cell, cell_index, execute_reply, **kwargs):
        # nbgrader appends, uncut, the reply's error that no output shows (a
        # timeout, or a _showtraceback that shows nothing): here it is an output.
        content = execute_reply["content"]
        if content.get("status") == "error" and not _has_error(cell,
                                                              content.get("ename")):
            error = {**_cut_error(content), "output_type": "error"}
            error["traceback"] = error["traceback"] or ["(traceback display was off)"]
            self.output(cell.outputs, _as_message(error), None, cell_index)

    def _backstop(self, nb) -> None:
        """However they came in, outputs past the notebook's budget (and room for
        the notes) go; an error stays an error: a test's score is read from it."""
        total, why = 0, "output not kept: the notebook's output is over its limit"
        for cell in nb.cells:
            for i, out in enumerate(cell.get("outputs", [])):
                total += _message_size(out)
                if total > 21 * self.max_output_bytes:
                    cell.outputs[i] = new_output("stream", name="stdout", text=why)
                    if "ename" in out:
                        cell.outputs[i] = _error_output(out.ename, why)
        if total > 21 * self.max_output_bytes:
            self._event("huge_output", None, f"{total:,} characters of output: "
                        "what is past the notebook's limit was replaced")

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] == "error" and cell_index not in self._errored:
            # What scores a test zero: always kept, but cut.
            self._errored.add(cell_index)
            msg = {**msg, "content": _cut_error(msg["content"])}
            self._kept[cell_index] += _message_size(msg["content"])
            self._kept[None] += _message_size(msg["content"])  # the notebook's
        else:
            size = _message_size(msg["content"])
            room = min(self.max_output_bytes - self._kept[cell_index],
                       20 * self.max_output_bytes - self._kept[None])
            if size > room and msg["msg_type"] == "stream" and room > 0:
                # Keep the head of the message that crosses the cap, so the
                # instructor sees what the output was.
                text = msg["content"]["text"]
                msg = {**msg, "content": {**msg["content"], "text": text[:room]}}
                self._dropped[cell_index] += len(text) - room
                size = room
            if not self._take(cell_index, {cell_index: size}):
                return None
        return super().output(outs, msg, display_id, cell_index)


def _has_error(cell, ename: str) -> bool:
    return any(o.output_type == "error" and o.ename == ename for o in cell.outputs)


# -- findings, through nbconvert's resources -----------------------------------
def _store(resources: dict) -> dict:
    store = resources.setdefault("coursetools", {})
    store.setdefault("findings", [])
    store.setdefault("seconds", {})
    store.setdefault("time_outs", [])  # [start, end] (epoch s) of each cell
    return store


def record(resources: dict, code: str, message: str, cell=None) -> None:
    """Note a finding about the notebook being processed (cell: the cell, if any)."""
    grade_id = cell.metadata.get("nbgrader", {}).get("grade_id") if cell else None
    _store(resources)["findings"].append(
        {"code": code, "message": message, "cell": grade_id})


class KeepFindings(NbGraderPreprocessor):
    """Last in a pipeline: save its findings in the notebook, for the next step.

    nbgrader runs the sanitize and the autograde pipelines as two conversions,
    each with fresh resources; the notebook is what goes from one to the next.
    """

    def preprocess(self, nb, resources):
        found = _store(resources)
        kept = nb.metadata.setdefault("coursetools", {})
        kept["findings"] = kept.get("findings", []) + found["findings"]
        kept["seconds"] = {**kept.get("seconds", {}), **found["seconds"]}
        kept["time_outs"] = kept.get("time_outs", []) + found["time_outs"]
        return nb, resources


# -- what a graded notebook shows ----------------------------------------------
QUIET_ERRORS = {  # reported by other findings, or not an anomaly at all
    "CellNotRun", "CellTimeoutError", "DeadKernelError", "KeyboardInterrupt",
    "NotImplementedError",  # an unanswered stub
}
DIED = "the kernel died in an earlier cell"  # what the cells after a lost one say


def output_findings(nb, notebook: str) -> list:
    """Errors outside the tests, and calls of the withheld reference."""
    found = []
    for index, cell in enumerate(nb.cells):
        nbg = cell.metadata.get("nbgrader", {})
        for output in cell.get("outputs", []):
            if output.output_type != "error":
                continue
            if output.ename == "ReferenceWithheldError":
                found.append(Finding("reference_called", output.evalue[:160], notebook,
                                     nbg.get("grade_id")))
            elif not nbg.get("grade") and output.ename not in QUIET_ERRORS and (
                    not output.ename.endswith("MemoryError")):
                found.append(Finding("error_outside_tests",
                                     f"{output.ename}: {output.evalue}"[:160], notebook,
                                     nbg.get("grade_id") or f"cell {index}"))
    return found


def cell_failures(nb) -> dict[str, str]:
    """grade id -> "Name: message" of the first error each graded cell shows."""
    failures = {}
    for cell in nb.cells:
        nbg = cell.metadata.get("nbgrader", {})
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if nbg.get("grade") and errors:
            failures[nbg["grade_id"]] = f"{errors[0].ename}: {errors[0].evalue}"[:500]
    return failures


class _SealedConnections:
    """How the grader connects to a sandboxed kernel: once, never again.

    Its sockets are files in the sandbox's own folder, which the learner's user
    may write, reached through /proc/<pid>/root, where a symbolic link is read
    from the grader's root. ZeroMQ reconnects by path whenever a connection
    drops, so a learner who replaced a socket with a link to a host socket and
    closed the connection had the grader (root) connect there (red-team pass
    10). The first connection is made before any learner code runs (launch
    waits for the kernel's sockets); after that none is made again, and the
    heartbeat channel, which makes a new connection when a beat is missed, is
    not used: the kernel's process tells whether it is alive.
    """

    def _sealed(self) -> bool:
        return self.transport == "ipc" and self.ip.startswith("/proc/")

    def _create_connected_socket(self, channel: str, identity: bytes | None = None):
        if not self._sealed():
            return super()._create_connected_socket(channel, identity)
        sock = self.context.socket(channel_socket_types[channel])
        # What is still queued when a socket closes is for a kernel that was
        # killed: it never reconnects, and a linger of 1 s (jupyter_client's)
        # waited for it at every notebook's end, 0.9 s of 2.1.
        sock.linger = 0
        sock.reconnect_ivl = -1  # a dropped connection stays dropped
        if identity:
            sock.identity = identity
        sock.connect(self._make_url(channel))
        return sock


class PromptKernelClient(_SealedConnections, AsyncKernelClient):
    def start_channels(self, shell=True, iopub=True, stdin=True, hb=True,
                       control=True) -> None:
        super().start_channels(shell, iopub, stdin, hb and not self._sealed(), control)

    async def wait_for_ready(self, timeout=None):
        """Ready once the kernel answers kernel_info and its iopub reaches us.

        jupyter_client's own then waits for 0.2 s of silence on iopub, idle time
        in every notebook; nbclient ignores messages of other requests anyway.
        """
        deadline = monotonic() + (timeout or float("inf"))
        asked = set()
        while monotonic() < deadline:
            asked.add(self.kernel_info())
            with contextlib.suppress(Empty):
                reply = await ensure_async(self.shell_channel.get_msg(timeout=1))
                # A kernel slower to start than 1 s answers the requests of the
                # first tries, one reply per try: any of them will do.
                if reply["parent_header"].get("msg_id") in asked:
                    # any message (ipykernel's welcome, this request's status)
                    # proves that our iopub subscription is connected
                    await ensure_async(self.iopub_channel.get_msg(timeout=0.2))
                    return self._handle_kernel_info_reply(reply)
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
        raise RuntimeError(f"Kernel didn't respond in {timeout} seconds")


class PromptKernelManager(_SealedConnections, AsyncKernelManager):
    """SealedExecute's kernel manager: its client is ready on the kernel's first
    answer, and the kernel's end (SealedExecute kills it: a sandbox keeps nothing
    to save) is polled every 5 ms instead of every 0.1 s."""

    client_factory = Type(PromptKernelClient)
    sandboxed = Bool(False, help="The kernel binds its sockets in its sandbox's "
                     "own tmpfs, reached through /proc/<pid>/root.").tag(config=True)

    async def _async_wait(self, pollinterval: float = 0.1) -> None:
        await super()._async_wait(pollinterval=0.005)

    async def _async_launch_kernel(self, kernel_cmd, **kw) -> None:
        if self.sandboxed:  # not the notebook's folder in the worker's scratch,
            kw["cwd"] = "/"  # which bwrap's /proc/<pid>/cwd would name
        await super()._async_launch_kernel(kernel_cmd, **kw)
        if not self.sandboxed:
            return
        # bwrap's child, the sandbox's first process, holds its mounts from the
        # moment the sockets' folder exists in its root until the sandbox ends.
        bwrap, folder = self.provisioner.process.pid, Path(self.ip).parent
        deadline = monotonic() + 30
        with contextlib.suppress(psutil.Error):  # bwrap has ended: no sandbox
            while monotonic() < deadline:
                for child in psutil.Process(bwrap).children():
                    if Path(f"/proc/{child.pid}/root{folder}").is_dir():
                        self.ip = f"/proc/{child.pid}/root{self.ip}"
                        await self._sockets_bound(deadline)
                        return
                await asyncio.sleep(0.002)
        raise RuntimeError("the kernel's sandbox did not start")

    async def _sockets_bound(self, deadline: float) -> None:
        """Wait until the kernel has bound its five sockets, before anyone
        connects (see _SealedConnections), and check that each is a socket."""
        ports = (self.shell_port, self.iopub_port, self.stdin_port, self.hb_port,
                 self.control_port)
        waiting = [f"{self.ip}-{port}" for port in ports]
        while waiting and monotonic() < deadline:
            if self.provisioner.process.poll() is not None:
                return  # the kernel ended: nbclient says so
            for path in list(waiting):
                with contextlib.suppress(FileNotFoundError):
                    if not stat.S_ISSOCK(os.lstat(path).st_mode):
                        raise RuntimeError(f"{path} is not the kernel's socket")
                    waiting.remove(path)
            await asyncio.sleep(0.002)

    def cleanup_ipc_files(self) -> None:
        if not self.sandboxed:  # a sandbox's sockets end with its tmpfs
            super().cleanup_ipc_files()


def autograde_config(root: Path, course: Path, settings: dict, comm: Path,
                     **sealed):
    """The course's nbgrader_config.py, pointed at a scratch course and hardened.

    `sealed` holds SealedExecute's judge_names, judge_cells and judge_log, and
    the release's cells for the repairs (``checks.RecordedOverwriteCells``).
    """
    from coursetools import checks  # here: checks imports this module

    # The folder names come from there (nbgrader_config.py imports course.py's).
    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    extra = Config()
    extra.CourseDirectory.root = str(course)
    extra.CourseDirectory.db_url = f"sqlite:///{course / GRADEBOOK}"
    extra.Execute.timeout = settings["timeout"]
    extra.GuardedExecute.notebook_timeout = settings["notebook_timeout"]
    extra.GuardedExecute.max_output_bytes = settings["max_output_bytes"]
    # The learner's kernel talks over Unix sockets, in its sandbox's own tmpfs (or,
    # unsealed, in its connection folder): it has no network, so no TCP port
    # could reach it.
    sealed_kernel = not settings.get("unsafe", False)
    extra.KernelManager.transport = "ipc"
    extra.KernelManager.ip = f"{KERNEL_SOCKETS}/k" if sealed_kernel else str(comm / "k")
    extra.PromptKernelManager.sandboxed = sealed_kernel
    extra.KernelManager.connection_file = str(comm / "kernel.json")
    extra.SealedExecute.bridge_socket = str(comm / "judge.sock")
    if len(os.fsencode(extra.SealedExecute.bridge_socket)) > 107:  # sun_path: 108
        raise CourseError(f"the grader's scratch folder {comm} is too long a path "
                          "for its sockets: set TMPDIR to a shorter folder, say /tmp")
    extra.SealedExecute.comm_dir = str(comm)
    extra.SealedExecute.kernel_manager_class = PromptKernelManager
    extra.SealedExecute.shutdown_kernel = "immediate"
    extra.GenerateFeedback.exporter_class = "coursetools.feedback.FeedbackExporter"
    extra.Exporter.optimistic_validation = True  # one schema check a pipeline
    extra.RecordedOverwriteCells.release_cells = sealed.pop("release_cells")
    for name, value in sealed.items():
        setattr(extra.SealedExecute, name, value)
    swaps = {Execute: SealedExecute, DeduplicateIds: checks.RecordedDeduplicateIds,
             OverwriteCells: checks.RecordedOverwriteCells}
    for pipeline in ("sanitize_preprocessors", "autograde_preprocessors"):
        default = Autograde.class_traits()[pipeline].default()
        setattr(extra.Autograde, pipeline,
                [swaps.get(p, p) for p in default] + [KeepFindings])
    config.merge(extra)
    return config


class SealedExecute(GuardedExecute):
    """GuardedExecute whose verdicts come from a judge the learner cannot reach.

    The learner's kernel (sandboxed by the kernelspec the worker writes, see
    :mod:`coursetools.sandbox`) runs answer cells, set-up cells and any cell a
    student added. Test cells run only in a judge process
    (:mod:`coursetools.judge`), which also runs the set-up cells and reaches the
    learner's answers through the bridge socket while the learner's kernel
    serves it. Hidden tests, expected values and the test helpers never enter
    the learner's process, and a cell's score is read from what the judge
    reports. The judge runs only the source notebook's own
    text of its test and set-up cells (``judge_cells``), whatever a submission
    holds.
    """

    judge_names = List(Unicode(), help="Names the answer cells define.").tag(
        config=True
    )
    judge_cells = Dict(
        help="'notebook/grade_id' -> {kind: test | setup, source}: what the judge "
        "runs, from the source notebook (see coursetools.sandbox.judge_cells)."
    ).tag(config=True)
    bridge_socket = Unicode(help="Unix socket path the judge listens on.").tag(
        config=True
    )
    judge_log = Unicode("", help="File for the judge's own stdout and stderr.").tag(
        config=True
    )
    comm_dir = Unicode(help="The learner kernel's connection folder.").tag(config=True)
    judge_memory_mb = Integer(
        4096, help="Address-space cap of the judge (it imports torch for tests)."
    ).tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        # A fresh connection folder (unsealed, the kernel's home is in it).
        shutil.rmtree(self.comm_dir)
        Path(self.comm_dir).mkdir()
        self._judge = _JudgeProcess(
            self.judge_names, self.bridge_socket, self.judge_log, self.judge_memory_mb
        )
        self._booted = False
        self._judged = set()  # the judge cells run so far, as "notebook/grade id"
        try:
            return super().preprocess(nb, resources, km=km)
        finally:
            self._judge.close()

    def _run_cell(self, cell, resources, index):
        if not self._booted:
            self._boot()
        nbg = cell.metadata.get("nbgrader", {})
        key = f"{self._notebook}/{nbg.get('grade_id')}"
        known = self.judge_cells.get(key)
        if known and known["kind"] == "test":
            self._judge_cell(cell, index, known["source"], keep_outputs=True)
            self._judged.add(key)
            return cell, resources
        cell, resources = super()._run_cell(cell, resources, index)
        if known:  # the assignment's own set-up code: the judge needs it too
            shadow = copy.deepcopy(cell)
            self._judge_cell(shadow, index, known["source"], keep_outputs=False)
            error = next((o for o in shadow.outputs if o.output_type == "error"), None)
            # Nor is a set-up cell run before a cell the assignment puts above it
            # (nothing keeps locked cells in place: red-team pass 14).
            mine = [k for k in self.judge_cells if k.startswith(f"{self._notebook}/")]
            in_order = self._judged.issuperset(mine[:mine.index(key)])
            self._judged.add(key)
            # The learner's kernel failing the judge is not the assignment's fault.
            if error is not None and error.ename != "LearnerGone" and in_order:
                self._event(
                    "judge_setup_error", cell, f"{error.ename}: {error.evalue}"[:160]
                )
        return cell, resources

    # -- the learner's kernel -------------------------------------------------
    def _kernel_lost(self, cell, index: int, interrupted: bool) -> None:
        """The kernel did not come back from serving a test: it died, ignored
        the interrupt a timeout sent, or, inside the time limit (a memory error
        while it answered, say), stopped answering."""
        if not run_sync(self.km.is_alive)():
            self._lost(cell, index, "kernel_died", f"kernel died in cell {index}", DIED)
        elif interrupted:
            self._lost(cell, index, "unresponsive",
                       "the kernel ignored the interrupt after a timeout")
        else:
            self._lost(cell, index, "kernel_stuck", "the kernel stopped answering in "
                       f"cell {index} (no timeout)", "the kernel stopped answering")

    def _restart(self, index: int) -> None:
        self._booted = False  # the new kernel serves the judge once booted
        super()._restart(index)

    def _boot(self) -> None:
        self._booted = True
        code = (
            "__course_serve__ = __import__('course_bridge').install("
            f"globals(), {self.bridge_socket!r})"
        )
        reply = run_sync(self._silent)(code, 60)
        if reply is None or reply["content"].get("status") != "ok":
            self._event("sandbox", None, "the grading bridge did not start")

    # -- one cell in the judge ------------------------------------------------
    def _judge_cell(self, cell, index: int, source: str, keep_outputs: bool) -> None:
        alive = bool(run_sync(self.km.is_alive)())
        if alive:  # the learner serves the judge's calls while the test runs
            serve_id = self.kc.execute("__course_serve__()", silent=True,
                                       store_history=False)
        timeout = max(1, int(self.timeout or 60))
        reply = self._judge.run(source, alive, timeout)
        if reply is None and alive:
            # A learner's function that never returns: stop it, the judge's
            # call then fails and the judge answers.
            run_sync(self.km.interrupt_kernel)()
            reply = self._judge.wait(self.interrupt_grace)
        if reply is None:
            self._judge.close()
            self._judge.start()
            reply = {"outputs": [
                _error_output("CellTimeoutError", judge.timeout_message(timeout))]}
            self._stop(cell, "timeout", f"a test ran longer than {timeout} s")
        # A test stopped at its time limit (the judge names a learner's own
        # CellTimeoutError otherwise, red-team pass 13).
        interrupted = any(
            o.get("ename") == "CellTimeoutError" for o in reply.get("outputs", []))
        if keep_outputs:  # a set-up cell's time is the kernel's
            self._timed_out = interrupted
        if alive:
            answered = run_sync(self._reply_to)(serve_id, self.interrupt_grace)
            if answered is None and run_sync(self.km.is_alive)():
                run_sync(self.km.interrupt_kernel)()
                answered = run_sync(self._reply_to)(serve_id, self.interrupt_grace)
            if answered is None and self._stop_reason is None:
                self._kernel_lost(cell, index, interrupted)
        # The judge caps their size (judge.MAX_OUTPUT).
        cell.outputs = [nbformat.from_dict(o) for o in reply.get("outputs", [])]
        if keep_outputs:  # counted, an error cut, like the kernel's outputs
            outputs, cell.outputs = cell.outputs, []
            for output in outputs:
                self.output(cell.outputs, _as_message(output), None, index)
            self.code_cells_executed += 1
            cell.execution_count = self.code_cells_executed


# What a judge imports before it runs a test; worker.py adds the imports of the
# assignment's test and set-up cells (torch, where they import it).
JUDGE_PRELOAD = ["numpy", "rnnlib", "coursetools.judge"]


class JudgeServer:
    """The process that forks this worker's judges, each with its imports done.

    A local worker forks it as the worker starts: the worker then has one thread
    and everything the fork server it came from imported while the parent
    registered the assignment, torch included, so no judge imports anything
    again. A process that runs threads (a Dask worker, or any worker once its
    kernel clients run) must not be forked, so there it is started afresh and
    imports `JUDGE_PRELOAD` itself, once.
    """

    def __init__(self, preload: list[str]):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if threading.active_count() == 1:
            for module in preload:  # none, if the fork server had them
                importlib.import_module(module)
            sys.stdout.flush(), sys.stderr.flush()
            self.imported, self.pid = frozenset(sys.modules), os.fork()
            self.wait = functools.partial(os.waitpid, self.pid, 0)
            if self.pid == 0:  # never returns to the worker's code
                try:
                    ours.close()
                    os.closerange(3, theirs.fileno())  # the worker's pipes and files
                    os.closerange(theirs.fileno() + 1, os.sysconf("SC_OPEN_MAX"))
                    judge.serve(theirs)
                finally:
                    os._exit(0)
        else:
            self.imported = frozenset(preload)
            server = subprocess.Popen(
                [sys.executable, "-m", "coursetools.judge", "--serve",
                 str(theirs.fileno()), "--preload", json.dumps(preload)],
                stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),),
                start_new_session=True)
            self.pid, self.wait = server.pid, server.wait
        theirs.close()
        self.requests = ours

    def fork(self, argv: list[str], log_path: str, ends: tuple[int, int]):
        """A judge run with `argv`, its stdin and answer pipe `ends`: its pid and
        a pidfd (it is this server's child, not ours)."""
        socket.send_fds(self.requests, [json.dumps([argv, log_path]).encode()], ends)
        message, fds, _, _ = socket.recv_fds(self.requests, 64, 1)
        if not message or len(fds) != 1:
            raise OSError("the judges' server did not answer")
        return int(message), fds[0]

    def close(self) -> None:
        """It ends when its socket closes."""
        self.requests.close()
        self.wait()


_judge_servers: list[JudgeServer] = []  # this process's, once started


def start_judge_server(imports: list[str] = ()) -> JudgeServer:
    """This process's judge server, with `imports` added to `JUDGE_PRELOAD`;
    started again if it lacks one of those (a new assignment)."""
    JUDGE_PRELOAD.extend(imports)
    if _judge_servers and not set(JUDGE_PRELOAD) <= _judge_servers[0].imported:
        _judge_servers.pop().close()
    if not _judge_servers:
        _judge_servers.append(JudgeServer(list(dict.fromkeys(JUDGE_PRELOAD))))
    return _judge_servers[0]


def _fork_judge(argv: list[str], log_path: str, ends: tuple[int, int]):
    try:
        return start_judge_server().fork(argv, log_path, ends)
    except OSError:  # it died: a new one, once
        _judge_servers.pop().close()
        return start_judge_server().fork(argv, log_path, ends)


class _JudgeProcess:
    """The judge subprocess and its private answer pipe."""

    def __init__(self, names, socket_path: str, log: str, memory_mb: int):
        self.names, self.socket_path, self.log_path = names, socket_path, log
        self.memory = memory_mb * 2**20
        self.pid = None
        self.start()

    def start(self) -> None:
        Path(self.socket_path).unlink(missing_ok=True)
        read_end, write_end = os.pipe()
        commands, to_judge = os.pipe()
        self.commands = open(to_judge, "wb")  # noqa: SIM115 (closed in close())
        argv = ["--socket", self.socket_path, "--names", json.dumps(list(self.names))]
        try:
            self.pid, self.pidfd = _fork_judge(argv, self.log_path,
                                               (commands, write_end))
        finally:  # the judge's ends: ours are closed once it has them
            os.close(commands), os.close(write_end)
        # A learner can make the judge decode what it sends: cap what that costs.
        resource.prlimit(self.pid, resource.RLIMIT_AS, (self.memory, self.memory))
        self.reader = Connection(read_end, writable=False)  # the judge's replies
        ready = self.wait(60)
        if not ready or not ready.get("ready"):
            raise RuntimeError("the judge process did not start (see its log)")

    def run(self, code: str, connect: bool, timeout: float) -> dict | None:
        command = {"op": "run", "code": code, "connect": connect, "timeout": timeout}
        try:
            self.commands.write((json.dumps(command) + "\n").encode())
            self.commands.flush()
        except OSError:
            return None
        return self.wait(timeout + 5)

    def wait(self, seconds: float) -> dict | None:
        with contextlib.suppress(EOFError, OSError, ValueError):  # ended, or garbled
            if self.reader.poll(seconds):  # the judge sends each message whole
                return json.loads(self.reader.recv_bytes())
        return None

    def close(self) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):  # its session: a test's
                os.killpg(self.pid, signal.SIGKILL)  # children too
            with contextlib.suppress(ProcessLookupError):  # itself, if before its
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)  # setsid
            select.select([self.pidfd], [], [])  # readable once it has ended
            os.close(self.pidfd)
            self.pid = None
        for close in (self.commands.close, self.reader.close):
            with contextlib.suppress(OSError):
                close()
        Path(self.socket_path).unlink(missing_ok=True)
