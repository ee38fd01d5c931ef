"""Hide reference functions while an exercise's hidden tests run.

A learner who writes ``def rnn_step_forward(...): return rnnlib.rnn_step_forward(...)``
should earn nothing. Inside ``with withheld(rnnlib.rnn_step_forward):`` that
call raises :class:`ReferenceWithheldError`.

We swap the function's ``__code__`` rather than the module attribute, so every
alias is caught too (``from rnnlib import rnn_step_forward as f``). Compute any
expected values from the reference BEFORE entering the block. The library's
sequence functions never call the public step functions, so withholding a step
function leaves the others working.
"""

import contextlib

__all__ = ["ReferenceWithheldError", "swapped_in", "withheld"]


class ReferenceWithheldError(RuntimeError):
    """Raised by a reference function called while it is withheld."""


@contextlib.contextmanager
def withheld(*functions):
    """Make each given function raise ReferenceWithheldError inside the block.

    The original code is restored on exit, also when the block raises.
    """
    originals = {}
    try:
        for func in functions:
            if not hasattr(func, "__code__"):
                raise TypeError(f"withheld needs plain Python functions, got {func!r}")
            if func in originals:
                continue
            originals[func] = func.__code__
            func.__code__ = _raising_code(func)
        yield
    finally:
        for func, code in originals.items():
            func.__code__ = code


def _raising_code(func):
    """Code that raises, with the same free variables as func's code.

    Python only accepts a new ``__code__`` whose number of free variables
    matches the function's closure, so we compile a stand-in that mentions
    the same free variables (after the raise, so their cells are never read).
    The stand-in runs with func's globals, hence it imports the error class.
    """
    # Name it as learners import it: rnnlib re-exports every public function.
    package = func.__module__.split(".")[0]
    name = f"{package}.{func.__name__}"
    message = (
        f"{name} is not available during this test: "
        "implement it yourself instead of calling the reference"
    )
    freevars = func.__code__.co_freevars
    lines = ["def factory():"]
    lines += [f"    {var} = None" for var in freevars]
    lines += [
        "    def stand_in(*args, **kwargs):",
        "        from rnnlib.grading import ReferenceWithheldError",
        f"        raise ReferenceWithheldError({message!r})",
    ]
    lines += [f"        {var}" for var in freevars]
    lines += ["    return stand_in"]
    namespace = {}
    exec("\n".join(lines), namespace)
    stand_in = namespace["factory"]()
    if stand_in.__code__.co_freevars != freevars:  # e.g. a name clash
        raise TypeError(f"cannot withhold {name}: unusual free variables {freevars}")
    return stand_in.__code__


# -- one mistake costs one part ------------------------------------------------
# Set by the grader's judge process (coursetools.sealed): there the learner's
# functions live in another process, and a swap has to be made over there.
_remote_swap = None


@contextlib.contextmanager
def swapped_in(function, **replacements):
    """Inside the block, ``function`` sees the given globals instead of its own.

    An exercise's later part calls the learner's earlier parts; its tests swap
    the course's versions in, so that a bug in part 2 costs part 2 only::

        with swapped_in(rnn_forward, rnn_step_forward=rnnlib.rnn_step_forward):
            h_seq, _ = rnn_forward(x, h0, params)

    ``function`` is the learner's function (its module globals are changed,
    which in a notebook are the notebook's names). The originals are put back
    on exit, also when the block raises.
    """
    if _remote_swap is not None:
        with _remote_swap(function, replacements):
            yield
        return
    namespace = getattr(function, "__globals__", None)
    if namespace is None:
        raise TypeError(f"swapped_in needs a Python function, got {function!r}")
    missing = object()
    saved = {name: namespace.get(name, missing) for name in replacements}
    try:
        namespace.update(replacements)
        yield
    finally:
        for name, value in saved.items():
            if value is missing:
                namespace.pop(name, None)
            else:
                namespace[name] = value
