"""nbgrader's Execute preprocessor, hardened for grading many unknown notebooks.

Plain ``nbgrader autograde`` loses a whole submission when its kernel dies or
ignores an interrupt, zeroes a test cell that wrote a warning to stderr, and keeps
every byte a runaway ``print`` loop emits. :class:`GuardedExecute` replaces
``Execute`` in the autograde pipeline (see ``worker.autograde_config``) and:

- gives the whole notebook a time budget (``notebook_timeout``) on top of the
  per-cell ``timeout``; cells left when it runs out are not run;
- after a cell times out, checks within ``interrupt_grace`` seconds that the
  kernel answered the interrupt; if it did not, the remaining cells are not run;
- records a dead kernel on the cell that killed it and skips the rest, keeping
  the points already earned;
- turns stderr output into stdout, so a warning is shown but no longer zeroes a
  test cell (errors still do: they are ``error`` outputs, not stderr);
- keeps at most ``max_output_bytes`` of output per cell (errors are always kept).

Every such event is appended to :data:`EVENTS`, which the worker reads after each
notebook. Skipped cells get an ``error`` output, so they score zero.
"""

from __future__ import annotations

from queue import Empty
from time import monotonic

from jupyter_core.utils import ensure_async, run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute
from traitlets import Integer

EVENTS: list[dict] = []


def _error_output(ename: str, evalue: str):
    return new_output(
        "error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]
    )


def _timeout_reply(seconds: int) -> dict:
    """What a timed-out cell shows its student (nbgrader says "No reply")."""
    text = (
        f"this cell ran longer than {seconds} s and was stopped; look for a loop "
        "that never ends, or code far slower than it needs to be"
    )
    return {
        "ename": "CellTimeoutError",
        "evalue": text,
        "traceback": [f"CellTimeoutError: {text}"],
    }


def _message_size(content: dict) -> int:
    size = len(content.get("text", "") or "")
    for value in (content.get("data") or {}).values():
        size += len(value) if isinstance(value, str) else len(str(value))
    return size


class GuardedExecute(Execute):
    notebook_timeout = Integer(
        300, help="Seconds the whole notebook may run; later cells are not run."
    ).tag(config=True)
    interrupt_grace = Integer(
        5, help="Seconds a timed-out kernel has to answer the interrupt."
    ).tag(config=True)
    max_output_bytes = Integer(
        1_000_000, help="Output kept per cell; the rest is dropped (errors are kept)."
    ).tag(config=True)

    def _event(self, kind: str, cell, detail: str) -> None:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id") if cell else None
        EVENTS.append(
            {
                "kind": kind,
                "notebook": self._notebook,
                "cell": grade_id,
                "detail": detail,
            }
        )

    def preprocess(self, nb, resources=None, km=None):
        self._notebook = (resources or {}).get("nbgrader", {}).get("notebook")
        self._base_timeout = self.timeout
        self._deadline = monotonic() + self.notebook_timeout
        self._stop_reason = None
        self._kept, self._dropped = {}, {}
        try:
            return super().preprocess(nb, resources, km=km)
        finally:
            self.timeout = self._base_timeout

    # -- one cell -------------------------------------------------------------
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        if self._stop_reason is None and monotonic() >= self._deadline:
            self._stop(
                cell,
                "notebook_timeout",
                f"the notebook used up its "
                f"{self.notebook_timeout} s time limit before this cell",
            )
        if self._stop_reason is not None:
            cell.outputs = [_error_output("CellNotRun", self._stop_reason)]
            cell.execution_count = None
            return cell, resources

        remaining = self._deadline - monotonic()
        limited_by_budget = remaining < self._base_timeout
        self.timeout = max(1, int(min(self._base_timeout, remaining)))
        self.error_on_timeout = _timeout_reply(self.timeout)
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            cell.outputs.append(
                _error_output(
                    "DeadKernelError",
                    "the kernel died while running this cell "
                    "(a crash, os._exit, or the memory cap)",
                )
            )
            self._event("kernel_died", cell, f"kernel died in cell {index}")
            self._stop_reason = "not run: the kernel died in an earlier cell"
        except CellTimeoutError as error:  # no idle after an interrupt
            cell.outputs.append(_error_output("CellTimeoutError", str(error)[:200]))
        finally:
            self.timeout = self._base_timeout

        if self._stop_reason is None and _has_error(cell, "CellTimeoutError"):
            self._event(
                "timeout", cell, f"cell {index} ran longer than {self.timeout} s"
            )
            if limited_by_budget:
                self._stop(
                    cell,
                    "notebook_timeout",
                    f"the notebook used up its {self.notebook_timeout} s time limit",
                )
            elif not run_sync(self._kernel_answers)(self.interrupt_grace):
                self._stop(
                    cell,
                    "unresponsive",
                    "the kernel ignored the interrupt "
                    "after a timeout (KeyboardInterrupt caught?)",
                )
        self._tidy_outputs(cell, index)
        return cell, resources

    def _stop(self, cell, kind: str, reason: str) -> None:
        self._event(kind, cell, reason)
        self._stop_reason = f"not run: {reason}"

    async def _kernel_answers(self, wait: float) -> bool:
        """True when the kernel runs a no-op within `wait` seconds."""
        if not await ensure_async(self.kc.is_alive()):
            self._event("kernel_died", None, "the kernel died after a timeout")
            self._stop_reason = "not run: the kernel died in an earlier cell"
            return True
        msg_id = self.kc.execute("", silent=True, store_history=False)
        deadline = monotonic() + wait
        while (left := deadline - monotonic()) > 0:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=left))
            except Empty:
                break
            if msg["parent_header"].get("msg_id") == msg_id:
                return True
        return False

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
        dropped = self._dropped.get(index, 0)
        if dropped:
            self._event(
                "huge_output",
                cell,
                f"cell {index}: {dropped:,} characters of output dropped",
            )
            note = f"\n[... {dropped:,} more characters of output not kept ...]\n"
            cell.outputs.append(new_output("stream", name="stdout", text=note))

    # -- output cap -----------------------------------------------------------
    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] != "error":
            size = _message_size(msg["content"])
            kept = self._kept.get(cell_index, 0)
            if kept + size > self.max_output_bytes:
                self._dropped[cell_index] = self._dropped.get(cell_index, 0) + size
                return None
            self._kept[cell_index] = kept + size
        return super().output(outs, msg, display_id, cell_index)


def _has_error(cell, ename: str) -> bool:
    return any(o.output_type == "error" and o.ename == ename for o in cell.outputs)
