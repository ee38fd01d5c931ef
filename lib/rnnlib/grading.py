"""Course infrastructure for exercise tests: withheld references, swapped parts.

While a notebook is graded, its code runs in a sandbox whose copy of rnnlib
keeps only the functions the exercise allows (and what they call); every other
one is a stub that raises :class:`ReferenceWithheldError` (see
``coursetools.sandbox``): a learner who writes
``def rnn_step_forward(...): return rnnlib.rnn_step_forward(...)`` earns
nothing, whatever alias, copy or private twin they call.

:func:`swapped_in` lets a test of a later part use the course's version of an
earlier part, so that one mistake costs one part.
"""

import contextlib

__all__ = ["ReferenceWithheldError", "swapped_in"]


class ReferenceWithheldError(RuntimeError):
    """Raised by a reference function that is withheld while a notebook is graded."""


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
