"""Private copies of public functions, for calls inside the library."""

import types


def twin(func):
    """A separate function object running func's original code.

    An exercise's hidden tests can disable a public function with
    ``rnnlib.grading.withheld``, which swaps that function object's
    ``__code__``. Library code that calls the twin keeps working, e.g. the
    LSTM still runs while a learner writes their own ``sigmoid``.
    """
    copy = types.FunctionType(func.__code__, func.__globals__, func.__name__,
                              func.__defaults__, func.__closure__)
    copy.__kwdefaults__ = func.__kwdefaults__
    copy.__doc__ = func.__doc__
    return copy
