"""The judge: runs a notebook's test cells where the learner's code cannot reach.

Started by :class:`coursetools.execute.SealedExecute`, one per graded notebook,
as ``python -m coursetools.judge --socket PATH --names JSON``. It never runs a
line of the learner's code. It runs the notebook's set-up cells and its test
cells (hidden tests included) in its own namespace, where each name that the
assignment's answer cells define is a copy of the learner's value or, for a
function, a :class:`~coursetools.bridge.RemoteFunction` that calls into the
learner's kernel over the bridge socket. numpy, rnnlib and the test
helpers here are the judge's own, so patching them in the learner's kernel
changes nothing, and the test's variables live in a process the learner cannot
read.

Protocol with the grader: one JSON object per line on stdin,
``{"op": "run", "code": ..., "connect": true, "timeout": 60}``, each answered by
one JSON message (a ``multiprocessing.connection`` frame) on the file descriptor
given by ``--reply-fd``, ``{"outputs": [...], "status": "ok" | "error"}``. Its
stdout and stderr are the grader's log, never the answer channel, so nothing a
test prints can be taken for an answer.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import io
import json
import linecache
import os
import signal
import socket
import sys
import traceback
from multiprocessing.connection import Connection

from coursetools import bridge
from coursetools.sandbox_launch import exit_with_parent

MAX_OUTPUT = 1_000_000
MAX_ERROR = 10_000  # characters of an error's name, and of its message
CELL_FILE = "<test cell>"  # with the cell's number: "<test cell 3>"
# Errors that only the grader raises, and reads as events (a timeout, a lost
# kernel): a learner's own class of one of these names is shown as its own.
GRADERS_ERRORS = {"CellTimeoutError", "DeadKernelError", "CellNotRun"}


def timeout_message(seconds: float) -> str:
    """What a student reads about a test stopped at its time limit (here or in
    :mod:`coursetools.execute`, when the judge itself did not answer)."""
    return (f"this cell ran longer than {seconds:g} s and was stopped; look for a "
            "loop that never ends, or code far slower than it needs to be")


class LearnerGone(RuntimeError):
    """The learner's kernel did not answer (died, hung, or refused to serve)."""


class CellTimeoutError(LearnerGone):
    """A learner's function did not return within the cell's time limit.

    Named as nbclient names a timed-out cell, so that the grader reports it as
    a timeout (and not as a broken connection).
    """


class Opaque:
    """A learner value that cannot cross; using it says why."""

    def __init__(self, name: str, why: str):
        self._name, self._why = name, why

    def _explain(self, *args, **kwargs):
        raise TypeError(
            f"{self._name} is {self._why}; the grader can only pass numbers, "
            "strings, arrays, lists, tuples, dicts and functions"
        )

    __call__ = __getattr__ = __getitem__ = __iter__ = __len__ = _explain
    __array__ = __float__ = __int__ = __bool__ = _explain

    def __repr__(self) -> str:
        return f"<{self._name}: cannot be graded, {self._why}>"


class _NoIPython:
    """What ``get_ipython()`` gives set-up cells here: magics do nothing."""

    def run_line_magic(self, *args, **kwargs):
        return None

    run_cell_magic = system = run_line_magic


class Judge:
    def __init__(self, socket_path: str, names: list[str], accept_timeout: float):
        self.names = names
        self.accept_timeout = accept_timeout
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(socket_path)
        os.chmod(socket_path, 0o666)  # the sandbox runs as another user
        self.listener.listen(8)
        self.conn: socket.socket | None = None
        self.gone: str | None = None
        self.timeout = 60.0  # seconds a call may take; set for each cell
        self.cells_run = 0
        self.namespace = {"__name__": "__main__", "get_ipython": _NoIPython}

    # -- one cell -------------------------------------------------------------
    def run(self, code: str, connect: bool, timeout: float) -> dict:
        out, err = io.StringIO(), io.StringIO()
        status, error = "ok", None
        # Each cell under its own name, its text in linecache: a helper that an
        # earlier cell defined then shows its own line when it raises, not the
        # line of the same number in the cell that called it.
        self.cells_run += 1
        filename = f"{CELL_FILE[:-1]} {self.cells_run}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        # A new codec for each cell: callbacks of earlier cells are revoked.
        self.codec = bridge.Codec(functools.partial(bridge.RemoteFunction, self.call,
                                                    whose="your"))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                self._connect(connect, timeout)
                try:
                    self._sync()
                except LearnerGone:
                    raise
                except Exception as exc:  # noqa: BLE001 (what the learner's kernel sent)
                    # Not the cell's failure: a set-up cell's would read as the
                    # assignment's (red-team pass 13).
                    raise LearnerGone(f"your notebook's kernel sent answers that "
                                      f"are not data ({type(exc).__name__}: {exc})"
                                      [:300]) from None
                exec(_compile(code, filename), self.namespace)  # noqa: S102
            except BaseException as exc:  # noqa: BLE001 (a test's failure is its output)
                status, error = "error", _error_output(exc, code, filename)
            finally:
                self._end()
        outputs = []
        for name, stream in (("stdout", out), ("stderr", err)):
            text = _utf8(stream.getvalue())  # what a learner's function printed too
            if len(text) > MAX_OUTPUT:
                text = text[:MAX_OUTPUT] + "\n[... output cut ...]\n"
            if text:
                outputs.append({"output_type": "stream", "name": name, "text": text})
        if error:
            outputs.append(error)
        return {"status": status, "outputs": outputs}

    def _connect(self, connect: bool, timeout: float) -> None:
        self.gone = None
        if not connect:
            self.gone = "your notebook's kernel is not running (it died earlier)"
            return
        self.listener.settimeout(min(self.accept_timeout, timeout))
        try:
            self.conn, _ = self.listener.accept()
        except OSError:
            self.gone = "your notebook's kernel did not answer the grader"
            return
        self.conn.settimeout(timeout)
        self.timeout = timeout

    def _sync(self) -> None:
        """Bring the learner's current answers into this namespace."""
        values = {} if self.conn is None else self._exchange(
            {"op": "names", "names": self.names}).get("values", {})
        if not isinstance(values, dict):
            raise bridge.BridgeError("names must come as a dict")
        for name in self.names:
            entry = values.get(name)
            if not isinstance(entry, dict):
                self.namespace.pop(name, None)
            elif "ok" in entry:
                self.namespace[name] = self.codec.decode(entry["ok"])
            else:
                self.namespace[name] = Opaque(name, str(entry.get("opaque"))[:300])

    def _end(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError, bridge.BridgeError):
                bridge.send(self.conn, {"op": "end"})
        self._drop(self.gone)

    # -- calls into the learner ----------------------------------------------
    def _exchange(self, message: dict) -> dict:
        if self.conn is None:
            raise LearnerGone(self.gone or "your notebook's kernel is not connected")
        try:
            bridge.send(self.conn, message)
            while True:
                answer = bridge.receive(self.conn)
                if answer["op"] != "callback":
                    return answer
                self._serve_callback(answer)
        except TimeoutError:  # a socket timeout: the learner's code is still busy
            self._drop("your notebook's kernel did not answer in time")
            raise CellTimeoutError(timeout_message(self.timeout)) from None
        except (OSError, bridge.BridgeError) as error:
            self._drop(f"the connection to your notebook's kernel broke ({error})")
            raise LearnerGone(self.gone) from None

    def _drop(self, why: str | None) -> None:
        self.gone = why
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def call(self, key: int, args, kwargs):
        self.codec.forget_unheld()  # the results of earlier calls the test let go
        answer = self._exchange(self.codec.call("call", key, args, kwargs))
        self.codec.apply_changes(answer.get("changes", {}))
        for stream in ("stdout", "stderr"):  # what the learner's function printed
            printed = answer.get(stream)
            if isinstance(printed, str) and printed:
                getattr(sys, stream).write(printed[-bridge.MAX_PRINTED:])
        if answer["op"] == "result":
            return self.codec.decode(answer.get("value"))
        if answer["op"] == "raise":
            error = bridge.rebuild_error(answer)
            error.learner_traceback = str(answer.get("traceback", ""))[-4000:]
            raise error
        raise bridge.BridgeError(f"unexpected answer {answer['op']!r}")

    def _serve_callback(self, message: dict) -> None:
        self.codec.apply_changes(message.get("changes", {}))
        try:
            func = self.codec.exported.get(int(message["id"]))
            if func is None:
                raise RuntimeError("this course function can no longer be called")
            args = self.codec.decode(message["args"])
            kwargs = self.codec.decode(message["kwargs"])
            reply = {"op": "result", "value": self.codec.encode(func(*args, **kwargs))}
        except Exception as error:  # noqa: BLE001 (handed back to the learner's code)
            # Its type and message only: the traceback quoted each test cell's line
            # it passed through, a hidden test's too (red-team pass 13).
            reply = {**bridge.describe_error(error), "traceback": ""}
        reply["changes"] = self.codec.changed_arrays()
        bridge.send(self.conn, reply)

    @contextlib.contextmanager
    def swap(self, function, replacements: dict):
        """rnnlib.grading.swapped_in, when the learner's function is over there."""
        if not isinstance(function, bridge.RemoteFunction):  # all the learner's here
            raise TypeError(f"swapped_in needs one of your functions, got {function!r}")
        before = set(self.codec.exported)
        names = self.codec.encode(dict(replacements))
        answer = self._exchange({"op": "swap", "id": function._key, "names": names})
        if answer["op"] != "ok":
            raise bridge.rebuild_error(answer)
        try:
            yield
        finally:
            for key in set(self.codec.exported) - before:
                del self.codec.exported[key]  # the swapped-in functions, revoked
            if self.conn is not None:
                with contextlib.suppress(LearnerGone):
                    self._exchange({"op": "unswap"})


def _compile(code: str, filename: str = CELL_FILE):
    try:
        return compile(code, filename, "exec")
    except SyntaxError:
        from IPython.core.inputtransformer2 import TransformerManager

        return compile(TransformerManager().transform_cell(code), filename, "exec")


def _error_output(error: BaseException, code: str, filename: str = CELL_FILE) -> dict:
    """An nbformat error output whose traceback quotes only test cells' lines:
    the running cell's with their numbers, an earlier cell's (a helper it
    defined) each on a line of its own after a note of where it is."""
    lines = code.splitlines()
    frames = []
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == filename and 0 < (frame.lineno or 0) <= len(lines):
            frames.append(f"---> {frame.lineno:>3} {lines[frame.lineno - 1]}")
        elif frame.filename.startswith(CELL_FILE[:-1]) and frame.line:
            # No number: the page numbers the running cell's lines only. The code
            # alone on its line lets the feedback spot a hidden test's.
            line = linecache.getline(frame.filename, frame.lineno).rstrip()
            frames.append(f"---> in a test cell above, {frame.name}():\n{line}")
    ename = _utf8(getattr(error, "remote_type", None) or type(error).__name__)[
        :MAX_ERROR]
    if isinstance(error, bridge.LearnerError) and ename in GRADERS_ERRORS:
        ename += " (raised by your code)"  # else reported as a timeout
    evalue = _utf8(error)
    if isinstance(error, bridge.LearnerError):
        evalue = evalue.split(": ", 1)[-1]
    evalue = evalue[:MAX_ERROR]  # a test's message may quote the learner's values
    tb = [*frames[-3:], f"{ename}: {evalue}"]
    learner_tb = getattr(error, "learner_traceback", "")
    if learner_tb:
        tb.append("In your code:\n" + _utf8(learner_tb).rstrip())
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": tb}


def _utf8(text) -> str:
    """Text that a notebook can hold: a learner's message may carry a lone
    surrogate ("\\ud800"), which no UTF-8 file can (nbgrader failed to write the
    graded notebook: red-team pass 7)."""
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--names", required=True, help="JSON list of answer names")
    parser.add_argument("--reply-fd", type=int, required=True)
    args = parser.parse_args()
    # Started in the worker's scratch folder, /proc/<pid>/cwd would name this
    # judge's socket, and its classmates', to anyone who learns a pid.
    os.chdir("/")
    exit_with_parent()
    reply = Connection(args.reply_fd, readable=False)
    judge = Judge(args.socket, json.loads(args.names), accept_timeout=20.0)

    import rnnlib.grading

    rnnlib.grading._remote_swap = judge.swap
    reply.send_bytes(json.dumps({"ready": True}).encode())
    for line in sys.stdin:  # the grader's own pipe: the learner cannot write here
        command = json.loads(line)
        result = judge.run(command["code"], command["connect"], command["timeout"])
        reply.send_bytes(json.dumps(result).encode())
    return 0


def serve(requests: socket.socket) -> None:
    """Fork a judge for each request on `requests` (its argv and log, with the
    two pipe ends it runs on) and answer with its pid and a pidfd; end when the
    worker closes its end (``coursetools.execute.JudgeServer``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker ends us, not Ctrl-C
    while True:
        with contextlib.suppress(ChildProcessError):  # the judges that have ended
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        message, ends, _, _ = socket.recv_fds(requests, 1 << 16, 2)
        if not message:
            return
        argv, log_path = json.loads(message)
        pid = os.fork()
        if pid == 0:
            requests.close()
            os._exit(_judge_main(argv, *ends, log_path))
        pidfd = os.pidfd_open(pid)  # before it can be reaped: the pid is its own
        socket.send_fds(requests, [str(pid).encode()], [pidfd])
        for fd in (*ends, pidfd):
            os.close(fd)


def _judge_main(argv, commands: int, replies: int, log_path: str) -> int:
    """A judge in a forked child: its own session, commands on stdin, its
    output to the log. Returns its exit code (the child ends with os._exit)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setsid()
    with open(log_path or os.devnull, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    os.dup2(commands, 0)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 (the process's stdin)
    os.environ["MPLBACKEND"] = "Agg"
    sys.argv = ["coursetools.judge", *argv, "--reply-fd", str(replies)]
    try:
        return main()
    except SystemExit as end:
        return end.code if isinstance(end.code, int) else 1
    except BaseException:  # noqa: BLE001 (to the log: a child must not unwind)
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush(), sys.stderr.flush()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:  # started afresh: JudgeServer's docstring
        for module in json.loads(sys.argv[4]):
            importlib.import_module(module)
        serve(socket.socket(fileno=int(sys.argv[2])))
    else:
        sys.exit(main())
