"""Plain data between the judge and a learner's sandboxed kernel, and back.

Sealed grading runs a notebook's tests in a clean judge process
(:mod:`coursetools.judge`) while the learner's code runs in its own kernel. The
two talk over one Unix socket with length-prefixed JSON frames. A value crosses
as one of a few tagged forms: ``None``, bool, int, float, complex, str, bytes,
numpy arrays and scalars of a numeric or bool dtype, numeric dtypes and scalar
types (``np.float32``), the builtin number and string types, slices, tuples,
lists, dicts with str or int keys, and functions, which cross as handles that
call back into the side that owns them. Nothing is unpickled and no code is
sent as data, so a learner can hand the judge wrong answers but never an object
that runs.

This file is also the learner-side server: the grader copies it into the
sandbox, where the kernel imports it as ``course_bridge`` and the judge makes it
:func:`serve` while a test cell runs. It needs only numpy and the standard
library, because there it sees nothing else of the course.
"""

from __future__ import annotations

import base64
import builtins
import collections
import contextlib
import functools
import gc
import io
import itertools
import json
import socket
import struct
import sys
import traceback

import numpy as np

MAX_FRAME = 64 * 2**20  # one message; a bigger one is a protocol error
MAX_DEPTH = 32
MAX_PRINTED = 100_000  # characters of a call's own output shown with the test
ARRAY_KINDS = set("biufc")  # bool, signed, unsigned, float, complex
_MISSING = object()
# Types that cross by name (as in `dtype=float`); numpy's cross as dtypes.
PLAIN_TYPES = {t.__name__: t for t in (bool, int, float, complex, str, bytes)}


class BridgeError(RuntimeError):
    """The other side broke the protocol, went away, or sent what is not data."""


class NotPlainData(TypeError):
    """A value that cannot cross: not one of the forms listed above."""


# -- frames -------------------------------------------------------------------
def send(sock: socket.socket, message: dict) -> None:
    sock.sendall(_frame(message))


def _frame(message: dict) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return struct.pack("!I", len(body)) + body


def receive(sock: socket.socket) -> dict:
    (size,) = struct.unpack("!I", _read_exactly(sock, 4))
    if size > MAX_FRAME:
        raise BridgeError(f"a message of {size:,} bytes is over the limit")
    try:
        message = json.loads(_read_exactly(sock, size))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BridgeError(f"a message is not JSON: {error}") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise BridgeError("a message without an 'op'")
    return message


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise BridgeError("the other side closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# -- values -------------------------------------------------------------------
class Codec:
    """Encodes and decodes values; functions become handles in ``exported``.

    ``wrap_remote(handle, name)`` builds the local stand-in for a function that
    lives on the other side, usually a :class:`RemoteFunction`; a stand-in sent
    back crosses as its handle, so a function that goes back home arrives as
    itself. Arrays that came in are remembered with their handle so that
    in-place changes can be sent back (:meth:`changed_arrays`).
    """

    def __init__(self, wrap_remote):
        self.wrap_remote = wrap_remote
        self.exported: dict[int, object] = {}
        self.sent_arrays: dict[int, np.ndarray] = {}
        self.received_arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.unsent_changes: dict[str, dict] = {}  # found by forget_unheld
        self.times_sent: collections.Counter[int] = collections.Counter()  # by id
        self._ids = itertools.count(2)

    def encode(self, value, depth: int = 0):
        if depth > MAX_DEPTH:
            raise NotPlainData("a value nested more than 32 levels deep")
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, np.generic):  # before float: np.float64 is one
            if value.dtype.kind not in ARRAY_KINDS:
                raise NotPlainData(f"a numpy scalar of dtype {value.dtype}")
            return {"t": "np", **_array_fields(np.asarray(value))}
        if isinstance(value, int):
            return {"t": "int", "v": str(value)}
        if isinstance(value, float):
            return {"t": "float", "v": repr(value)}
        if isinstance(value, complex):
            return {"t": "complex", "v": [repr(value.real), repr(value.imag)]}
        if isinstance(value, bytes):
            return {"t": "bytes", "v": base64.b64encode(value).decode()}
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in ARRAY_KINDS:
                raise NotPlainData(f"an array of dtype {value.dtype}")
            key = next(self._ids)
            self.sent_arrays[key] = value
            self.times_sent[id(value)] += 1
            return {"t": "nd", "id": key, **_array_fields(value)}
        if isinstance(value, np.dtype):
            return {"t": "dtype", "v": value.str}
        if isinstance(value, type) and issubclass(value, np.generic):
            return {"t": "scalar_type", "v": np.dtype(value).str}
        if value in PLAIN_TYPES.values() and isinstance(value, type):
            return {"t": "type", "v": value.__name__}
        if isinstance(value, slice):
            ends = (value.start, value.stop, value.step)
            return {"t": "slice", "v": [self.encode(end) for end in ends]}
        if value is Ellipsis:
            return {"t": "ellipsis"}
        if isinstance(value, (list, tuple)):
            items = [self.encode(v, depth + 1) for v in value]
            return {"t": "list" if isinstance(value, list) else "tuple", "v": items}
        if isinstance(value, dict):
            pairs = []
            for key, item in value.items():
                if not isinstance(key, (str, int)) or isinstance(key, bool):
                    raise NotPlainData(f"a dict key {key!r} (only str and int cross)")
                pairs.append([self.encode(key), self.encode(item, depth + 1)])
            return {"t": "dict", "v": pairs}
        if isinstance(value, RemoteFunction):
            return {"t": "home", "id": value._key}
        if callable(value):
            key = next(self._ids)
            self.exported[key] = value
            return {"t": "fn", "id": key, "name": getattr(value, "__name__", "?")}
        raise NotPlainData(
            f"a {type(value).__name__}: only numbers, strings, bytes, arrays, "
            "lists, tuples, dicts and functions can be passed"
        )

    def decode(self, data, depth: int = 0):
        if depth > MAX_DEPTH:
            raise BridgeError("a value nested too deeply")
        if data is None or isinstance(data, (bool, str)):
            return data
        if not isinstance(data, dict):
            raise BridgeError(f"not an encoded value: {type(data).__name__}")
        kind, raw = data.get("t"), data.get("v")
        try:
            if kind == "int":
                if len(raw) > 5000:
                    raise BridgeError("an integer with too many digits")
                return int(raw)
            if kind == "float":
                return float(raw)
            if kind == "complex":
                return complex(float(raw[0]), float(raw[1]))
            if kind == "bytes":
                return base64.b64decode(raw)
            if kind in ("nd", "np"):
                array = _array_from(data)
                if kind == "np":
                    return array[()]
                self.received_arrays[int(data["id"])] = (array, array.copy())
                return array
            if kind in ("list", "tuple"):
                items = [self.decode(v, depth + 1) for v in raw]
                return items if kind == "list" else tuple(items)
            if kind == "dict":
                out = {}
                for key, item in raw:
                    key = self.decode(key)
                    if not isinstance(key, (str, int)):
                        raise BridgeError("a dict key that is not str or int")
                    out[key] = self.decode(item, depth + 1)
                return out
            if kind in ("dtype", "scalar_type"):
                dtype = np.dtype(str(raw))
                if dtype.kind not in ARRAY_KINDS or dtype.fields:
                    raise BridgeError(f"the dtype {dtype} cannot cross")
                return dtype if kind == "dtype" else dtype.type
            if kind == "type":
                return PLAIN_TYPES[str(raw)]
            if kind == "slice":
                return slice(*(self.decode(v, depth + 1) for v in raw[:3]))
            if kind == "ellipsis":
                return Ellipsis
            if kind == "fn":
                return self.wrap_remote(int(data["id"]), str(data.get("name", "?")))
            if kind == "home":
                key = int(data["id"])
                if key not in self.exported:
                    raise BridgeError(f"no function with handle {key}")
                return self.exported[key]
        except (TypeError, ValueError, KeyError, IndexError) as error:
            raise BridgeError(f"a malformed {kind!r} value: {error}") from None
        raise BridgeError(f"an unknown kind of value {kind!r}")

    def call(self, op: str, key: int, args, kwargs) -> dict:
        """The message that calls the other side's function `key`."""
        return {"op": op, "id": key, "args": self.encode(args),
                "kwargs": self.encode(kwargs)}

    def changed_arrays(self) -> dict:
        """Arrays received from the other side whose contents changed here.

        An array that nothing but this codec holds any more cannot change again:
        after this last look it is forgotten, so that a call does not compare
        every array the notebook has received before.
        """
        changed, self.unsent_changes = self.unsent_changes, {}
        for key in list(self.received_arrays):
            array, seen = self.received_arrays[key]
            if array.shape != seen.shape or not np.array_equal(
                array, seen, equal_nan=array.dtype.kind in "fc"
            ):
                changed[str(key)] = _array_fields(array)
                array, seen = self.received_arrays[key] = (array, array.copy())
            # `seen` is held only here, as `array` is when nothing else holds it
            # (the same tuple, a local name, the call's argument), but for the
            # codec's own record of the arrays it has sent.
            held = sys.getrefcount(array) - self.times_sent[id(array)]
            if held <= sys.getrefcount(seen):
                del self.received_arrays[key]
        return changed

    def forget_unheld(self) -> None:
        """Forget the received arrays that nothing else holds now, keeping their
        changes for the next :meth:`changed_arrays`: a value the other side
        returns is otherwise kept, with a copy, until the codec goes."""
        self.unsent_changes = self.changed_arrays()

    def apply_changes(self, changes) -> None:
        """Write the other side's in-place changes into the arrays we sent."""
        if not isinstance(changes, dict):
            raise BridgeError("array changes must be a dict")
        for key, fields in changes.items():
            target = self.sent_arrays.get(int(key))
            if target is None:
                raise BridgeError(f"a change to an unknown array {key}")
            new = _array_from(fields)
            if new.shape == target.shape and target.flags.writeable:
                np.copyto(target, new, casting="unsafe")


def _array_fields(array: np.ndarray) -> dict:
    return {
        "dtype": array.dtype.str,
        "shape": list(array.shape),  # tobytes() is C-ordered, also for 0-d arrays
        "b64": base64.b64encode(array.tobytes(order="C")).decode(),
    }


def _array_from(data: dict) -> np.ndarray:
    dtype = np.dtype(str(data["dtype"]))
    if dtype.kind not in ARRAY_KINDS or dtype.hasobject or dtype.fields:
        raise BridgeError(f"an array of dtype {dtype} cannot cross")
    shape = tuple(int(n) for n in data["shape"])
    if any(n < 0 for n in shape) or len(shape) > 32:
        raise BridgeError(f"an array of shape {shape}")
    raw = base64.b64decode(data["b64"])
    if len(raw) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise BridgeError(f"{len(raw)} bytes do not make an array {shape} {dtype}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


# -- raising across ------------------------------------------------------------
def describe_error(error: BaseException) -> dict:
    """An exception as data; the traceback starts in the code that was called."""
    frames = [
        f for f in traceback.extract_tb(error.__traceback__)
        if not f.filename.endswith(("course_bridge.py", "bridge.py"))
    ]
    lines = traceback.format_list(frames[-10:])
    lines += traceback.format_exception_only(type(error), error)
    return {
        "op": "raise",
        "type": type(error).__name__,
        "message": str(error)[:4000],
        "traceback": "".join(lines)[-8000:],
    }


def _short_error(error: BaseException) -> dict:
    """An exception as data without its traceback, for when memory is short."""
    traceback.clear_frames(error.__traceback__)
    error.__traceback__ = None
    gc.collect()
    return {"op": "raise", "type": type(error).__name__,
            "message": "(the details did not fit in the memory left)",
            "traceback": ""}


def rebuild_error(message: dict) -> BaseException:
    """An exception of the same builtin type when there is one, else LearnerError."""
    name, text = str(message.get("type", "Error")), str(message.get("message", ""))
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(text)
        except Exception:  # noqa: BLE001 (an exception type with odd arguments)
            pass
    error = LearnerError(f"{name}: {text}")
    error.remote_type = name
    return error


class LearnerError(RuntimeError):
    """An exception of a type that is not a builtin, raised by learner code."""


class RemoteFunction:
    """Stands for a function on the other side: calling it calls it there."""

    def __init__(self, call, key: int, name: str, whose: str):
        self._call, self._key, self.__name__ = call, key, name
        self.__qualname__, self.whose = name, whose  # whose: for its repr

    def __call__(self, *args, **kwargs):
        return self._call(self._key, args, kwargs)

    def __repr__(self) -> str:
        return f"<{self.whose} function {self.__name__}>"


# -- the learner's side ----------------------------------------------------------
class LearnerServer:
    """Answers the judge's requests in the learner's kernel until told to stop."""

    def __init__(self, namespace: dict):
        self.namespace = namespace
        self.codec = Codec(functools.partial(RemoteFunction, self.call_judge,
                                             whose="course"))
        self.swaps: list[tuple[dict, dict]] = []
        self.sock = None

    def serve(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(path)
            while True:
                message = receive(self.sock)
                if message["op"] == "end":
                    break
                try:
                    frame = _frame(self._answer(message))
                except BaseException as error:  # noqa: BLE001
                    # Building the reply failed (memory still short, an interrupt):
                    # a short reply keeps the judge connected, where a closed
                    # socket would cost every later test of the notebook.
                    frame = _frame(_short_error(error))
                    del error
                self.sock.sendall(frame)
        finally:
            self._unswap_all()
            self.sock.close()
            self.sock = None

    def _answer(self, message: dict) -> dict:
        """The reply to one request, with what the learner's code printed while
        answering it, so that the judge can show that under the test."""
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                answer = self._handle(message)
        except BaseException as error:  # noqa: BLE001 (KeyboardInterrupt on a timeout too)
            if isinstance(error, MemoryError):
                # The traceback holds the learner's frames, and with them what
                # filled the memory: describing the error needs memory, so they
                # go first.
                traceback.clear_frames(error.__traceback__)
                gc.collect()
            try:
                answer = describe_error(error)
            except MemoryError:
                answer = _short_error(error)
            with contextlib.suppress(Exception):
                answer["changes"] = self.codec.changed_arrays()
            del error
        answer["stdout"] = out.getvalue()[-MAX_PRINTED:]
        answer["stderr"] = err.getvalue()[-MAX_PRINTED:]
        return answer

    def _handle(self, message: dict) -> dict:
        op = message["op"]
        if op == "names":
            return {"op": "names", "values": self._values(message["names"])}
        if op == "call":
            func = self.codec.exported[int(message["id"])]
            args = self.codec.decode(message["args"])
            result = func(*args, **self.codec.decode(message["kwargs"]))
            return {"op": "result", "value": self.codec.encode(result),
                    "changes": self.codec.changed_arrays()}
        if op == "swap":
            self._swap(int(message["id"]), self.codec.decode(message["names"]))
        elif op == "unswap":
            self._unswap_all()
        else:
            return {"op": "raise", "type": "BridgeError", "message": f"unknown {op}"}
        return {"op": "ok"}

    def _values(self, names) -> dict:
        values = {}
        for name in names:
            if name not in self.namespace:
                continue
            try:
                values[name] = {"ok": self.codec.encode(self.namespace[name])}
            except NotPlainData as error:
                values[name] = {"opaque": str(error)[:300]}
        return values

    def _swap(self, key: int, names: dict) -> None:
        func = self.codec.exported[key]
        namespace = getattr(func, "__globals__", None)
        if namespace is None:
            raise TypeError(f"{func!r} is not a Python function: cannot swap its names")
        saved = {name: namespace.get(name, _MISSING) for name in names}
        namespace.update(names)
        self.swaps.append((namespace, saved))

    def _unswap_all(self) -> None:
        while self.swaps:
            namespace, saved = self.swaps.pop()
            for name, value in saved.items():
                if value is _MISSING:
                    namespace.pop(name, None)
                else:
                    namespace[name] = value

    def call_judge(self, key: int, args, kwargs):
        if self.sock is None:
            raise RuntimeError("a course function can only be called during its test")
        call = self.codec.call("callback", key, args, kwargs)
        send(self.sock, {**call, "changes": self.codec.changed_arrays()})
        answer = receive(self.sock)
        self.codec.apply_changes(answer.get("changes", {}))
        if answer["op"] == "result":
            return self.codec.decode(answer["value"])
        raise rebuild_error(answer)


def install(namespace: dict, path: str):
    """Called once in the learner's kernel; returns the ``serve()`` to call."""
    return functools.partial(LearnerServer(namespace).serve, path)
