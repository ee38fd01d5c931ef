"""Fast checks of sealed grading's parts: the bridge's codec, the judge, the
learner's rnnlib copy. The whole pipeline is graded in test_sealed_grading.py."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import sys
import threading
from pathlib import Path

import nbformat
import numpy as np
import pytest
import rnnlib
from coursetools import bridge, judge, sandbox


def codec():
    return bridge.Codec(lambda key, name: ("remote", key, name))


@pytest.mark.parametrize(
    "value",
    [
        None, True, 0, -(10**40), 1.5, float("inf"), 2 - 3j, "π", b"\x00\xff",
        np.float32, np.dtype("<i4"), float, slice(1, None, -2), Ellipsis,
        np.int16(-3), np.float64(0.1), np.bool_(False),
        (1, [2.0, {"a": None, 3: "b"}], ()),
    ],
)
def test_plain_values_round_trip_exactly(value):
    back = codec().decode(codec().encode(value))
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12.0).reshape(3, 4),
        np.arange(12).reshape(3, 4).T,  # not C-contiguous
        np.array(7.25),  # 0-d
        np.zeros((0, 5), np.float32),
        np.array([1 + 2j, np.nan]),
        np.array([True, False]),
    ],
)
def test_arrays_round_trip_with_shape_and_dtype(array):
    back = codec().decode(codec().encode(array))
    assert back.shape == array.shape and back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize(
    "value",
    [np.array([object()], dtype=object), object(), {1.5: "float key"}, {(1,): 2}],
)
def test_what_is_not_plain_data_is_refused_by_name(value):
    with pytest.raises(bridge.NotPlainData):
        codec().encode(value)


@pytest.mark.parametrize(
    "data",
    [
        {"t": "nd", "id": 1, "dtype": "|O", "shape": [1], "b64": ""},
        {"t": "nd", "id": 1, "dtype": "<f8", "shape": [2], "b64": "AAAA"},
        {"t": "pickle", "v": "gASVAAAA"},
        {"t": "home", "id": 99},
        {"t": "int", "v": "9" * 6000},
        [1, 2],
    ],
)
def test_malformed_or_dangerous_data_raises_bridge_error(data):
    with pytest.raises(bridge.BridgeError):
        codec().decode(data)


def test_in_place_changes_travel_back():
    sender, receiver = codec(), codec()
    original = np.zeros(3)
    received = receiver.decode(sender.encode(original))
    received[1] = 5.0
    sender.apply_changes(receiver.changed_arrays())
    np.testing.assert_array_equal(original, [0, 5, 0])
    assert receiver.changed_arrays() == {}  # reported once


def test_an_array_is_watched_while_anything_else_holds_it():
    """Received arrays nobody keeps are forgotten; a kept one, or a view of it,
    still sends its changes back, however many calls later."""
    sender, receiver = codec(), codec()
    original = np.zeros(3)
    kept = receiver.decode(sender.encode(original))
    for _ in range(3):
        receiver.decode(sender.encode(np.ones(2)))  # let go at once
    assert receiver.changed_arrays() == {}
    assert len(receiver.received_arrays) == 1
    view = kept[1:]
    del kept
    view[0] = 7.0  # the view holds its base
    sender.apply_changes(receiver.changed_arrays())
    np.testing.assert_array_equal(original, [0, 7, 0])
    del view
    assert receiver.changed_arrays() == {} and receiver.received_arrays == {}


def test_a_change_made_just_before_letting_go_still_travels_back():
    sender, receiver = codec(), codec()
    original = np.zeros(2)
    received = receiver.decode(sender.encode(original))
    received[0] = 4.0
    del received
    sender.apply_changes(receiver.changed_arrays())
    np.testing.assert_array_equal(original, [4, 0])
    assert receiver.received_arrays == {}


def test_an_array_sent_back_is_forgotten_once_only_the_codec_holds_it():
    """A learner's function that returns its inputs (a cache) sends them back:
    the codec's record of what it sent does not keep them watched."""
    judge, learner = codec(), codec()
    received = learner.decode(judge.encode(np.zeros(2)))
    learner.encode((received, {"x": received}))
    assert learner.changed_arrays() == {} and len(learner.received_arrays) == 1
    del received
    assert learner.changed_arrays() == {} and learner.received_arrays == {}


def test_a_value_nested_too_deeply_is_refused():
    """40 nested lists are past MAX_DEPTH (32): refused before crossing."""
    value = []
    for _ in range(40):
        value = [value]
    with pytest.raises(bridge.NotPlainData, match="nested more than 32 levels"):
        codec().encode(value)


def test_a_frame_announcing_more_than_max_frame_is_refused():
    """The size in the header is checked before any of the body is read."""
    ours, theirs = socket.socketpair()
    theirs.sendall(struct.pack("!I", bridge.MAX_FRAME + 1))
    theirs.close()  # no body follows: reading one would end in "closed"
    with ours, pytest.raises(bridge.BridgeError, match="over the limit"):
        bridge.receive(ours)


@pytest.mark.parametrize("kind", ["dtype", "scalar_type"])
@pytest.mark.parametrize("dtype", ["|O", "<M8[s]", "<U3"])
def test_only_numeric_dtypes_decode(kind, dtype):
    """Object, datetime and string dtypes are not among the forms that cross."""
    with pytest.raises(bridge.BridgeError, match="cannot cross"):
        codec().decode({"t": kind, "v": dtype})


def test_changes_to_a_read_only_array_are_not_written():
    """The sender's read-only array stays as it was; nothing is raised."""
    sender, receiver = codec(), codec()
    original = np.zeros(3)
    original.flags.writeable = False
    received = receiver.decode(sender.encode(original))
    received[1] = 5.0
    sender.apply_changes(receiver.changed_arrays())
    np.testing.assert_array_equal(original, [0, 0, 0])


def test_an_untouched_array_holding_nan_is_not_changed():
    """NaN != NaN, but an array with a NaN that nobody touched has not changed."""
    sender, receiver = codec(), codec()
    receiver.decode(sender.encode(np.array([np.nan, 1.0])))
    receiver.decode(sender.encode(np.array([1 + 1j, complex(np.nan, 0)])))
    assert receiver.changed_arrays() == {}


def test_an_array_with_the_wrong_number_of_bytes_is_named():
    """3 bytes cannot make two float64 (16 bytes): the message says so."""
    data = {"t": "nd", "id": 1, "dtype": "<f8", "shape": [2], "b64": "AAAA"}
    with pytest.raises(bridge.BridgeError, match=r"3 bytes do not make an array "
                                                 r"\(2,\) float64"):
        codec().decode(data)
    data = {"t": "nd", "id": 1, "dtype": "<f8", "shape": [3], "b64": "A" * 24}
    with pytest.raises(bridge.BridgeError, match=r"18 bytes do not make an array "
                                                 r"\(3,\) float64"):
        codec().decode(data)


def test_builtin_errors_keep_their_type_others_become_learner_errors():
    assert type(bridge.rebuild_error({"type": "ValueError", "message": "m"})) is (
        ValueError
    )
    error = bridge.rebuild_error({"type": "SystemExit", "message": "x"})
    assert isinstance(error, bridge.LearnerError)  # not an Exception subclass
    error = bridge.rebuild_error({"type": "ReferenceWithheldError", "message": "no"})
    assert error.remote_type == "ReferenceWithheldError"


# -- the judge and a learner, over a real socket ---------------------------------
@pytest.fixture
def pair(tmp_path):
    """A judge and a learner namespace served by a thread, as in grading."""
    path = str(tmp_path / "judge.sock")
    the_judge = judge.Judge(path, ["double", "scale_in_place", "apply", "answer"], 5)
    learner = {}
    serve = bridge.install(learner, path)

    def run(code, learner_code=""):
        exec(learner_code, learner)  # the learner's own cell
        thread = threading.Thread(target=serve)
        thread.start()
        result = the_judge.run(code, connect=True, timeout=10)
        thread.join(10)
        return result

    return the_judge, learner, run


def test_judge_calls_learner_functions_and_sees_their_values(pair):
    the_judge, _, run = pair
    learner_code = (
        "import numpy as np\n"
        "answer = 42\n"
        "def double(x):\n    return 2 * x\n"
        "def scale_in_place(a):\n    a *= 3\n"
        "def apply(f, x):\n    return f(x) + 1\n"
    )
    test = (
        "import numpy as np\n"
        "assert answer == 42\n"
        "assert np.array_equal(double(np.arange(3)), [0, 2, 4])\n"
        "a = np.ones(2)\n"
        "scale_in_place(a)\n"
        "assert np.array_equal(a, [3, 3]), a\n"
        "assert apply(lambda v: v * 10, 4) == 41\n"
    )
    result = run(test, learner_code)
    assert result["status"] == "ok", result


def test_the_judge_keeps_no_result_that_the_test_let_go(pair):
    """Red-team pass 6: a learner's function returned a 48 MB array 72 times to a
    test that used none of them, and the judge kept each, with a copy, until the
    cell ended (3.4 GB). A kept result still sends its changes back."""
    the_judge, learner, run = pair
    learner_code = ("import numpy as np\nbig = np.zeros(1000)\n"
                    "def double(x):\n    return big\n"
                    "def apply(f, x):\n    return f(x)\n")
    test = ("kept = double(0)\n"
            "for _ in range(50):\n    double(0)\n"
            "records = watched()\n"
            "kept[0] = 5.0\n"
            "double(0)\n"
            "apply(lambda v: None, 1)\n")  # a callback's reply carries the change
    the_judge.namespace["watched"] = lambda: len(the_judge.codec.received_arrays)
    result = run(test, learner_code)
    assert result["status"] == "ok", result
    assert the_judge.namespace["records"] <= 2  # kept and the last result
    assert learner["big"][0] == 5.0


def test_a_learner_error_arrives_with_its_type_and_traceback(pair):
    _, _, run = pair
    learner_code = "def double(x):\n    raise NotImplementedError('todo')\n"
    result = run("double(1)", learner_code)
    error = result["outputs"][-1]
    assert (error["ename"], error["evalue"]) == ("NotImplementedError", "todo")
    assert "In your code" in error["traceback"][-1]
    # a lone surrogate, which no UTF-8 notebook holds (red-team pass 7)
    result = run("double(1)", "def double(x):\n    raise ValueError('bad \\ud800')\n")
    error = result["outputs"][-1]
    assert error["evalue"] == "bad \\ud800"
    json.dumps(error, ensure_ascii=False).encode("utf-8")  # no UnicodeEncodeError


def test_what_a_test_prints_of_the_learners_text_makes_a_notebook(pair):
    """Red-team pass 13: a lone surrogate printed by the learner's function while
    a test ran (or by the test, quoting a learner's string) reached the graded
    notebook, which nbgrader could not write: a grading error, 0 points."""
    _, _, run = pair
    learner_code = ("answer = 'their \\ud800'\n"
                    "def double(x):\n    print('printed \\ud800')\n    return 2 * x\n")
    result = run("assert double(1) == 2\nprint(answer)\n", learner_code)
    assert result["status"] == "ok", result
    printed = "".join(o["text"] for o in result["outputs"])
    assert printed == "printed \\ud800\ntheir \\ud800\n"
    json.dumps(result, ensure_ascii=False).encode("utf-8")  # no UnicodeEncodeError


def test_a_learners_error_is_not_shown_under_a_name_of_the_graders(pair):
    """Red-team pass 13: a learner's function that raised its own class
    CellTimeoutError made the test's error read as the judge's timeout: the
    report said "cell timeout" and the student was graded twice."""
    _, _, run = pair
    learner_code = ("class CellTimeoutError(Exception):\n    pass\n"
                    "def double(x):\n    raise CellTimeoutError('ran longer')\n")
    error = run("double(1)", learner_code)["outputs"][-1]
    assert error["ename"] == "CellTimeoutError (raised by your code)"
    assert error["evalue"] == "ran longer"


def test_answers_that_are_not_data_are_the_learners_failure(pair, monkeypatch):
    """Red-team pass 13: a kernel that answered the judge's request for its names
    with what is not data made a set-up cell fail in the judge as BridgeError,
    which the report read as the assignment's fault ("fix the assignment") and
    as a time code (graded twice)."""
    _, _, run = pair
    monkeypatch.setattr(bridge.LearnerServer, "_values", lambda self, names: "no")
    result = run("x = 1\n", "answer = 1\n")
    error = result["outputs"][-1]
    assert (result["status"], error["ename"]) == ("error", "LearnerGone")
    assert "not data (BridgeError: names must come as a dict)" in error["evalue"]


def test_swapped_in_reaches_the_learners_globals_and_is_revoked(pair):
    the_judge, learner, run = pair
    rnnlib.grading._remote_swap = the_judge.swap
    try:
        learner_code = (
            "def answer_helper(x):\n    return -1\n"
            "def double(x):\n    return answer_helper(x) * 2\n"
            "def apply(f, x):\n    return f(x)\n"
        )
        test = (
            "from rnnlib.grading import swapped_in\n"
            "with swapped_in(double, answer_helper=lambda x: x):\n"
            "    assert double(5) == 10\n"
            "assert double(5) == -2\n"
        )
        assert run(test, learner_code)["status"] == "ok"
        assert learner["answer_helper"](5) == -1  # the learner's own, put back
    finally:
        rnnlib.grading._remote_swap = None


def test_a_learner_that_never_serves_fails_the_test_without_hanging(tmp_path):
    the_judge = judge.Judge(str(tmp_path / "judge.sock"), ["double"], 0.5)
    result = the_judge.run("double(1)", connect=True, timeout=5)
    assert result["status"] == "error"
    assert result["outputs"][-1]["ename"] == "NameError"


def test_a_learner_sending_garbage_fails_only_its_test(tmp_path):
    path = str(tmp_path / "judge.sock")
    the_judge = judge.Judge(path, ["double"], 5)

    def garbage():
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(path)
        client.recv(1 << 16)
        client.sendall(b"\x00\x00\x00\x05nope!")
        client.close()

    thread = threading.Thread(target=garbage)
    thread.start()
    result = the_judge.run("x = 1", connect=True, timeout=5)
    thread.join(5)
    assert result["status"] == "error"
    assert "BridgeError" in result["outputs"][-1]["ename"] or "Learner" in (
        result["outputs"][-1]["ename"]
    )


# -- the learner's rnnlib ---------------------------------------------------------
def source_nb(answer: str, metadata: dict | None = None):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(answer)
    cell.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "ex"}
    nb.cells = [cell, nbformat.v4.new_code_cell("def not_an_answer(): pass")]
    nb.metadata["course"] = metadata or {}
    return nb


def test_answer_names_are_the_answer_cells_top_level_bindings():
    nb = source_nb(
        "import math\ndef f(x):\n    y = 1\n    return y\na, (b, c) = 1, (2, 3)\n"
        "for i in range(2):\n    pass\nclass K:\n    z = 0\n"
    )
    assert sandbox.answer_names(nb) == ["f", "a", "b", "c", "i", "K"]


RNNLIB = Path(rnnlib.__file__).parent
SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"


def functions(path: Path) -> dict:
    import ast

    tree = ast.parse(path.read_text())
    return {n.name: ast.unparse(n) for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_an_allowed_function_keeps_its_body_and_its_callees_bodies(tmp_path):
    replaced = sandbox.build_learner_lib(RNNLIB, tmp_path / "rnnlib",
                                         {"nb": ["rnn_forward"]}, set())
    rnn = functions(tmp_path / "rnnlib" / "rnn.py")
    real = functions(RNNLIB / "rnn.py")
    for name in ("rnn_forward", "_activate", "_check_nonlinearity"):
        assert rnn[name] == real[name]
    checks = functions(tmp_path / "rnnlib" / "_checks.py")
    assert checks["check_cell_args"] == functions(RNNLIB / "_checks.py")[
        "check_cell_args"]
    assert "NONLINEARITIES = ('tanh', 'relu')" in (
        tmp_path / "rnnlib" / "rnn.py").read_text()  # a constant it reads
    # Not allowed and not needed: stubs, the rest of the RNN included.
    assert {"rnn.rnn_backward", "rnn.rnn_step_forward", "rnn._activation_grad",
            "_checks.check_upstream", "gru.gru_forward", "lstm._gates",
            "data.CharVocab", "activations.softmax"} <= set(replaced)
    stub = functions(tmp_path / "rnnlib" / "gru.py")["gru_forward"]
    assert "ReferenceWithheldError" in stub and "_cell_forward" not in stub
    # The infrastructure stays whole: the stubs raise its error.
    assert not [r for r in replaced if r.startswith("grading.")]


def test_a_function_added_to_the_library_later_is_withheld(tmp_path):
    import shutil

    package = tmp_path / "rnnlib"
    shutil.copytree(RNNLIB, package, ignore=shutil.ignore_patterns("__pycache__"))
    with open(package / "rnn.py", "a") as module:
        module.write("\n\ndef leaky_rnn_backward_twin(dh_seq, cache):\n"
                     "    return rnn_backward(dh_seq, cache)\n")
    (package / "new_cells.py").write_text("def minimal_rnn(x):\n    return x\n")
    nb = nbformat.read(SOLUTIONS / "ch03_bptt" / "ch03.ipynb", as_version=4)
    replaced = sandbox.build_learner_lib(package, tmp_path / "out",
                                         *sandbox.allowances({"ch03": nb}))
    assert {"rnn.leaky_rnn_backward_twin", "new_cells.minimal_rnn"} <= set(replaced)
    assert "rnn.rnn_backward" not in replaced  # ch03 allows it


# What each notebook's deny list withheld before the allow-list replaced them,
# the similar-cell delegations among them (delegation.py's gru_as_leaky_rnn,
# gru_cell_as_rnn, lstm_jacobian_from_cell_backward, lstm_as_tanh_step): no
# allow-list may give any of them back.
DENIED_BEFORE = {
    "ch01_feedforward_vs_recurrent/ch01": [
        "data.one_hot", "data.sliding_windows", "losses.softmax_cross_entropy",
    ],
    "ch02_rnn_cell_numpy/ch02": [
        "rnn.rnn_step_forward", "rnn.rnn_forward", "gru.gru_step_forward",
        "gru.gru_forward", "gru._cell_forward", "lstm.lstm_step_forward",
        "lstm.lstm_forward", "lstm.lstm_step_backward", "lstm.lstm_backward",
        "affine.affine_forward",
    ],
    "ch03_bptt/ch03": [
        "gradcheck.numerical_gradient", "gradcheck.grad_check_all",
        "losses.softmax_cross_entropy", "gru.gru_step_forward",
        "gru.gru_step_backward", "gru.gru_forward", "gru.gru_backward",
        "gru._cell_forward", "gru._cell_backward", "lstm.lstm_step_forward",
        "lstm.lstm_step_backward", "lstm.lstm_forward", "lstm.lstm_backward",
        "lstm._cell_backward", "lstm._gates",
    ],
    "ch04_vanishing_exploding/ch04": [
        "rnn.rnn_backward", "rnn.rnn_step_backward", "clip.clip_grad_norm",
        "clip.clip_grad_value", "_projections.projection_grads",
        "gru.gru_step_backward", "gru.gru_backward", "gru._cell_backward",
        "lstm.lstm_step_backward", "lstm.lstm_backward", "lstm._cell_backward",
        "affine.affine_backward", "gradcheck.numerical_gradient",
        "gradcheck.grad_check_all",
    ],
    "ch05_lstm_gru/ch05": [
        "lstm.lstm_step_forward", "lstm.lstm_step_backward", "lstm.lstm_forward",
        "lstm.lstm_backward", "gru.gru_step_forward", "gru.gru_step_backward",
        "gru.gru_forward", "gru.gru_backward", "lstm._gates", "lstm._cell_backward",
        "gru._cell_forward", "gru._cell_backward", "_projections.projection_grads",
    ],
    "ch06_pytorch_keras/ch06": [
        "lstm.lstm_forward", "lstm.lstm_step_forward", "gru.gru_forward",
        "gru.gru_step_forward", "gru._cell_forward", "lstm._gates",
    ],
}


@pytest.mark.parametrize("notebook", sorted(DENIED_BEFORE))
def test_each_notebook_withholds_what_its_deny_list_did(notebook, tmp_path):
    nb = nbformat.read(SOLUTIONS / f"{notebook}.ipynb", as_version=4)
    assert "withhold" not in nb.metadata["course"]
    replaced = sandbox.build_learner_lib(RNNLIB, tmp_path / "rnnlib",
                                         *sandbox.allowances({"nb": nb}))
    assert set(DENIED_BEFORE[notebook]) <= set(replaced)


def test_the_names_the_notebooks_own_kernel_code_uses_are_allowed():
    cells = [
        ("import rnnlib\nfrom rnnlib import rel_error, sigmoid as s\n"
         "from rnnlib.data import one_hot\nx = rnnlib.data.copy_task(1, 2, 3, 4, 5)\n"
         "y = rnnlib.softmax(x).sum()\n%time z = 1\n", {"locked": True}),
        ("import rnnlib\nprint(rnnlib.gru_forward)\n", None),  # outside nbgrader
        ("v = rnnlib.lstm_forward(1)\n", {"grade": True, "points": 1}),  # judge
        ("w = rnnlib.lstm_backward(1)\n", {"solution": True}),  # the learner's
    ]
    nb = nbformat.v4.new_notebook()
    for source, meta in cells:
        nb.cells.append(nbformat.v4.new_code_cell(source))
        if meta:
            nb.cells[-1].metadata["nbgrader"] = {"grade_id": "c", **meta}
    nb.metadata["course"] = {"allow": ["log_softmax"]}
    allowed, _ = sandbox.allowances({"nb": nb})
    assert set(allowed["nb"]) == {"log_softmax", "rel_error", "sigmoid",
                                  "data.one_hot", "data", "data.copy_task", "softmax",
                                  "gru_forward"}


def test_an_allowed_name_that_reaches_an_answer_stops_the_grading(tmp_path):
    from coursetools.course import CourseError

    package = tmp_path / "lib"
    package.mkdir()
    (package / "cells.py").write_text(
        "from .helpers import prepare\n"
        "def forward(x):\n    return prepare(x)\n")
    (package / "helpers.py").write_text(
        "def prepare(x):\n    return _leaky_step(x)\n"
        "def _leaky_step(x):\n    return x\n")
    with pytest.raises(CourseError) as error:
        sandbox.kept_names(package, {"ch09": ["cells.forward"]}, {"leaky_step"})
    assert str(error.value).startswith("ch09: ")
    assert "cells.forward -> helpers.prepare -> helpers._leaky_step" in str(error.value)
    with pytest.raises(CourseError, match="'cells.backward'"):  # a typo is loud too
        sandbox.kept_names(package, {"ch09": ["cells.backward"]}, set())


def test_grading_stops_before_any_job_when_an_allow_list_reaches_an_answer(
        tmp_path):
    import shutil

    from coursetools.course import CourseError
    from coursetools.grade import Settings, grade

    course = tmp_path / "course"
    nb = source_nb("def check_cell_args(*args):\n    return args\n",
                   {"allow": ["rnn_forward"]})
    for folder in ("solutions/a1", "submitted/ann/a1"):
        (course / folder).mkdir(parents=True)
        nbformat.write(nb, course / folder / "a1.ipynb")
    shutil.copy(SOLUTIONS.parent / "nbgrader_config.py", course)
    with pytest.raises(CourseError, match="a1: the allowed rnnlib name rnn.rnn_forward "
                       "needs _checks.check_cell_args, which an answer defines"):
        grade(course, "a1", Settings(quiet=True, unsafe=True))
    assert not (course / "grading" / "a1" / "state").exists()  # no job started


def test_private_copies_and_aliases_of_an_answer_are_stubbed_too(tmp_path):
    package = tmp_path / "lib"
    package.mkdir()
    (package / "mod.py").write_text(
        "LIMIT = 3\n"
        "def f(x):\n    return x + 1\n"
        "def _f(x):\n    return x + 1\n"
        "g = f\n"
        "_h = copy_of(f)\n"
        "def unrelated(x):\n    return x * LIMIT\n"
    )
    replaced = sandbox.build_learner_lib(package, tmp_path / "out",
                                         {"nb": ["mod.unrelated"]}, {"f"})
    assert sorted(replaced) == ["mod._f", "mod._h", "mod.f", "mod.g"]
    text = (tmp_path / "out" / "mod.py").read_text()
    assert "x + 1" not in text and "return x * LIMIT" in text


def test_no_mount_hides_a_bind_below_it(tmp_path, monkeypatch):
    """A tmpfs mounted after a bind under it hides the bind: /tmp goes first.

    (A clone under /tmp, as CI makes, has its venv and rnnlib there.)
    """
    import json

    monkeypatch.setattr(sys, "prefix", str(tmp_path / "clone" / ".venv"))
    nb = source_nb("def f(x):\n    return x\n", {"hide_packages": ["torch"]})
    settings = {"memory_mb": 2048, "notebook_timeout": 60}
    box = sandbox.Sandbox(tmp_path / "work", {"nb": nb}, settings)
    argv = box.kernel_argv()
    mounts = []  # (position, kind, destination)
    for i, arg in enumerate(argv[: argv.index("--")]):
        if arg in ("--tmpfs", "--dir"):
            mounts.append((i, arg, argv[i + 1]))
        elif arg in ("--bind", "--ro-bind", "--symlink"):
            mounts.append((i, arg, argv[i + 2]))
    for i, kind, dest in mounts:
        if kind != "--tmpfs":
            continue
        hidden = [d for j, k, d in mounts if j < i and d.startswith(dest + "/")]
        assert not hidden, f"the tmpfs on {dest} hides {hidden}"
    box.kernelspec(tmp_path / "jupyter")
    spec = json.loads((tmp_path / "jupyter/kernels/python3/kernel.json").read_text())
    assert spec["interrupt_mode"] == "message" and spec["argv"] == argv


def test_the_sandboxs_python_files_come_compiled(tmp_path):
    """The kernel may not write bytecode where its bridge and its rnnlib live
    (read-only to it), so the worker compiles them once: else every kernel
    compiled them again, about 8 ms of CPU a notebook."""
    import importlib.util

    nb = source_nb("def f(x):\n    return x\n", {"hide_packages": ["torch"]})
    box = sandbox.Sandbox(tmp_path / "work", {"nb": nb},
                          {"memory_mb": 2048, "notebook_timeout": 60})
    sources = list((tmp_path / "work" / "sandbox").rglob("*.py"))
    assert box.opt / "course_bridge.py" in sources
    assert box.lib / "rnnlib" / "__init__.py" in sources
    for source in sources:
        compiled = Path(importlib.util.cache_from_source(str(source)))
        assert compiled.is_file(), f"{source} has no bytecode"
        # What the import system checks before it uses the file: the source's
        # modification time and size, in its header.
        header = compiled.read_bytes()[8:16]
        stat = source.stat()
        assert header == struct.pack("<II", int(stat.st_mtime) & 0xFFFFFFFF,
                                     stat.st_size & 0xFFFFFFFF)


CONNECTION_PROBE = """
import os, socket, sys
comm, sockets = sys.argv[1:]
try:
    open(os.path.join(comm, "filler"), "wb").close()
    print("wrote in the connection folder")
except OSError as error:
    print("connection folder:", error.strerror)
listener = socket.socket(socket.AF_UNIX)
listener.bind(os.path.join(sockets, "k-1"))
listener.listen()
st = os.statvfs(sockets)
print("sockets folder:", st.f_blocks * st.f_frsize, os.listdir(sockets))
sys.stdout.flush()
listener.accept()[0].sendall(b"hello from the sandbox")
"""


def test_the_kernel_binds_its_sockets_in_its_own_tmpfs_reached_through_proc(tmp_path):
    """Nothing the kernel makes is written on the machine's disk: its connection
    folder is read-only to it, as root or in a user namespace alike, and its
    sockets live in a 1 MB tmpfs of its own, which the grader reaches through
    /proc/<pid>/root."""
    import subprocess

    import psutil

    assert sandbox.problem() is None
    nb = source_nb("def f(x):\n    return x\n")
    box = sandbox.Sandbox(tmp_path / "work", {"nb": nb},
                          {"memory_mb": 2048, "notebook_timeout": 60})
    argv = box.kernel_argv()
    argv = [*argv[: argv.index("--") + 1], sys.executable, "-I", "-c",
            CONNECTION_PROBE, str(box.comm), sandbox.KERNEL_SOCKETS]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as bwrap:
        lines = [bwrap.stdout.readline(), bwrap.stdout.readline()]
        assert lines[0] == "connection folder: Read-only file system\n", lines
        assert lines[1] == f"sockets folder: {2**20} ['k-1']\n", lines
        assert not list(box.comm.iterdir())
        child = psutil.Process(bwrap.pid).children()[0].pid
        path = f"/proc/{child}/root{sandbox.KERNEL_SOCKETS}/k-1"
        assert not Path(sandbox.KERNEL_SOCKETS).exists()  # not on this machine
        client = socket.socket(socket.AF_UNIX)
        client.connect(path)
        assert client.recv(100) == b"hello from the sandbox"
        assert bwrap.wait(timeout=30) == 0


THREADS_PROBE = """
import os, sys, time
import numpy as np
import torch

def helper_seconds():
    ticks = 0
    for task in os.listdir("/proc/self/task"):
        if int(task) != os.getpid():
            with open(f"/proc/self/task/{task}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")

a, t = np.ones((512, 512)), torch.ones(200_000)
for _ in range(10):  # a parallel call, then a pause as between a notebook's cells
    a @ a, t.add_(1)
    time.sleep(0.1)
print(torch.get_num_threads(), round(helper_seconds(), 2))
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_the_kernels_threads_follow_kernel_threads_and_sleep_when_idle(
        tmp_path, threads):
    """kernel_threads threads for NumPy's OpenBLAS and torch; between calls their
    helpers sleep rather than spin on the other core (each spun about 0.1 s
    after every parallel call: about 1 s here; the real work is a few ms)."""
    import subprocess

    assert sandbox.problem() is None
    box = sandbox.Sandbox(tmp_path / "work", {"nb": source_nb("x = 1\n")},
                          {"memory_mb": 2048, "notebook_timeout": 60,
                           "kernel_threads": threads})
    argv = box.kernel_argv()
    argv = [*argv[: argv.index("--") + 1], sys.executable, "-I", "-c", THREADS_PROBE]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    torch_threads, helper_seconds = done.stdout.split()
    assert int(torch_threads) == threads
    assert float(helper_seconds) < 0.25, helper_seconds


def test_without_root_a_sandbox_runs_as_the_graders_user_and_claims_none(
        tmp_path, monkeypatch):
    """Only root drops the kernel to a sandbox user: without root, the
    machine-wide lock folder (perhaps made by root, and closed to others) is not
    touched, so another user's grading run cannot stop this one."""
    monkeypatch.setattr(sandbox, "UID_LOCKS", tmp_path / "uid-locks")
    monkeypatch.setattr(sandbox.os, "getuid", lambda: 1000)
    nb = source_nb("def f(x):\n    return x\n")
    box = sandbox.Sandbox(tmp_path / "work", {"nb": nb},
                          {"memory_mb": 2048, "notebook_timeout": 60})
    assert box.environment()["COURSE_UID"] == "0"
    assert not sandbox.UID_LOCKS.exists()


def test_the_judge_runs_only_the_assignments_own_cells():
    nb = source_nb("def f(x):\n    return x\n")
    setup = nbformat.v4.new_code_cell("import numpy as np")
    setup.metadata["nbgrader"] = {"grade_id": "imports", "locked": True,
                                  "solution": False, "grade": False}
    test = nbformat.v4.new_code_cell("assert f(1) == 1")
    test.metadata["nbgrader"] = {"grade_id": "test_f", "locked": True, "points": 1,
                                 "solution": False, "grade": True}
    nb.cells += [setup, test]
    cells = sandbox.judge_cells(nb)
    assert cells == {"imports": {"kind": "setup", "source": "import numpy as np"},
                     "test_f": {"kind": "test", "source": "assert f(1) == 1"}}


def test_a_learner_function_that_never_returns_is_a_timeout(pair):
    import time

    the_judge, learner, _ = pair
    released = threading.Event()
    learner["double"] = lambda x: released.wait(30)
    serve = bridge.install(learner, the_judge.listener.getsockname())

    def serve_until_dropped():
        # The judge has given up on the call: its late answer meets a closed
        # socket, which must not surface in whichever test runs 30 s later.
        with contextlib.suppress(OSError, bridge.BridgeError):
            serve()

    thread = threading.Thread(target=serve_until_dropped, daemon=True)
    thread.start()
    started = time.monotonic()
    result = the_judge.run("double(1)", connect=True, timeout=1)
    assert time.monotonic() - started < 10
    error = result["outputs"][-1]
    assert error["ename"] == "CellTimeoutError", error
    assert "longer than 1 s" in error["evalue"]
    released.set()
    thread.join(10)
    assert not thread.is_alive(), "the learner's side still waits for the judge"
