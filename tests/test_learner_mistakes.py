"""A learner's likely mistakes: each fails its own part's visible test, and only it.

EXERCISES.md section 3: every graded part has a visible test that fails for the
most likely mistakes with a message that names the mistake, and one mistake
costs one part. Each case below replaces one answer region of a source notebook
with a mistaken answer (a mistake a learner audit found slipping through, or
blamed on the wrong code), runs the notebook's cells in-process with the hidden
tests stripped, and checks that exactly the named test cell fails and that its
message names the mistake. A valid alternative answer must pass every cell.

In-process, not in a kernel: a notebook's cells run in a few seconds, so the
whole file stays well under a minute.
"""

from __future__ import annotations

import random
import re
import textwrap
import warnings

import nbtools
import pytest
from conftest import ASSIGNMENTS, ROOT

pytestmark = [
    pytest.mark.skipif(not ASSIGNMENTS, reason="no assignments in solutions/"),
    # Keras 3.15 on NumPy 2, in chapter 6's cells: the same 800 lines every run
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy "
                               "keyword:DeprecationWarning"),
]


def notebook(chapter: str) -> dict:
    (path,) = (ROOT / "solutions").glob(f"{chapter}_*/{chapter}.ipynb")
    return nbtools.load(path)


def visible_half(text: str) -> str:
    """A test cell as the learner sees it: the hidden region left out."""
    lines, hidden = [], False
    for line in text.splitlines():
        if line.strip() == nbtools.BEGIN_HIDDEN:
            hidden = True
        elif line.strip() == nbtools.END_HIDDEN:
            hidden = False
        elif not hidden:
            lines.append(line)
    return "\n".join(lines)


def answered(cell: dict, answers: tuple[str | None, ...]) -> str:
    """An answer cell with its k-th solution region replaced by answers[k]
    (None keeps the course's solution there)."""
    out, region = [], -1
    skipping = False
    for line in nbtools.source(cell).splitlines():
        stripped = line.strip()
        if stripped == nbtools.BEGIN_SOLUTION:
            region += 1
            code = answers[region] if region < len(answers) else None
            if code is not None:
                indent = line[: len(line) - len(line.lstrip())]
                body = textwrap.dedent(code).strip("\n").splitlines()
                out += [indent + ln if ln.strip() else "" for ln in body]
                skipping = True
        elif stripped == nbtools.END_SOLUTION:
            skipping = False
        elif not skipping:
            out.append(line)
    return "\n".join(out)


# Test cells whose outcome is kept between runs that executed the same text up to
# and including them. ch06's accuracy cell trains three GRUs for 600 steps (2 s
# visible, 5 s hidden), and the 82 cases that change only Part 6 ran it again
# each time on identical code and seeds. A kept cell is skipped, so it must leave
# nothing a later cell reads (test_kept_cells_leave_nothing_later_cells_read);
# the random generators it moves are set as it left them.
KEPT_CELLS = {("ch06", "test_training_reaches_98_percent")}
_kept: dict[tuple, tuple[str, tuple]] = {}


def _generators() -> tuple:
    import numpy as np
    import torch
    return torch.random.get_rng_state(), np.random.get_state(), random.getstate()


def _set_generators(states: tuple) -> None:
    import numpy as np
    import torch
    torch.random.set_rng_state(states[0])
    np.random.set_state(states[1])
    random.setstate(states[2])


def run_visible(chapter: str, answers: dict[str, str | tuple],
                hidden: bool = False, keep: bool = True) -> dict[str, str]:
    """Run a source notebook with some answers replaced; the first error of every
    test cell's visible half (the whole cell with hidden=True), by grade_id (''
    where it passes). keep=False runs every cell, KEPT_CELLS too."""
    namespace: dict = {"__name__": "__main__"}
    results = {}
    executed: list[str] = []
    for cell in notebook(chapter)["cells"]:
        if cell["cell_type"] != "code":
            continue
        meta = nbtools.nbgrader_meta(cell)
        grade_id = meta.get("grade_id", cell.get("id", "?"))
        if meta.get("grade"):
            text = nbtools.source(cell)
            text = text if hidden else visible_half(text)
        else:
            replacement = answers.get(grade_id, ())
            if isinstance(replacement, str):
                replacement = (replacement,)
            text = answered(cell, replacement)
        executed.append(text)
        key = (chapter, hidden, tuple(executed))
        if keep and (chapter, grade_id) in KEPT_CELLS and key in _kept:
            results[grade_id], states = _kept[key]
            _set_generators(states)
            continue
        try:
            # A wrong answer's overflow or 0/0 warns, as it would on the learner's
            # stderr (not penalised there); here it would only fill pytest's summary.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                exec(compile(text, f"<{chapter} {grade_id}>", "exec"), namespace)
        except Exception as error:  # what the learner would see under the cell
            if not meta.get("grade"):
                raise AssertionError(f"{grade_id} raised {error!r}") from None
            results[grade_id] = f"{type(error).__name__}: {error}"
        else:
            if meta.get("grade"):
                results[grade_id] = ""
        if (chapter, grade_id) in KEPT_CELLS:
            _kept[key] = results[grade_id], _generators()
    return results


# Each case: (chapter, answer grade_id, the answer's regions, {test grade_id: a
# phrase its message must hold}); every other test cell must pass. An empty dict
# is a valid alternative answer, which passes every test cell.
Case = tuple[str, str, "str | tuple", dict[str, str]]
MISTAKES: dict[str, Case] = {}


def mistake(name: str, chapter: str, answer_id: str, code, fails: dict[str, str]):
    MISTAKES[name] = (chapter, answer_id, code, fails)


# -- ch03 Part 1, grad_check ---------------------------------------------------------
def _ch03_grad_check(numeric_line: str) -> str:
    """The solution's grad_check with another numerical derivative."""
    return f"""
errors = {{}}
for name, value in params.items():
    numeric = np.zeros(value.shape)
    for ix in np.ndindex(value.shape):
        old = value[ix]
        value[ix] = old + h
        loss_plus = float(loss_fn(params))
        value[ix] = old - h
        loss_minus = float(loss_fn(params))
        value[ix] = old
        numeric[ix] = {numeric_line}
    errors[name] = rel_error(grads[name], numeric)
return errors
"""


GC = ("ch03", "ex_grad_check")
mistake("ch03 grad_check returns zeros", *GC, "return {name: 0.0 for name in params}", {
    "test_grad_check_correct_gradient": "not a fixed number",
    "test_grad_check_is_centred": "called loss_fn 0 times",
    "test_grad_check_finds_a_wrong_entry": "is wrong in its last entry",
    "test_grad_check_restores_params": "did not compute a numerical gradient",
})
# Never differentiates: zeroes the test's wrong gradient in place, so that a
# test computing its expected error after the call would expect 1.
mistake("ch03 grad_check zeroes grads in place", *GC, """
_first = globals().setdefault("_first_grads", {})
key = tuple((k, np.asarray(v).tobytes()) for k, v in sorted(params.items()))
first = _first.setdefault(key, {k: np.array(g, copy=True) for k, g in grads.items()})
errors = {}
for k, g in grads.items():
    if not np.array_equal(first[k], g):
        g[...] = 0.0
        errors[k] = 1.0
    else:
        errors[k] = 0.0
return errors
""", {
    "test_grad_check_correct_gradient": "not a fixed number",
    "test_grad_check_is_centred": "called loss_fn 0 times",
    "test_grad_check_finds_a_wrong_entry": "changed grads['W'] in place",
    "test_grad_check_restores_params": "did not compute a numerical gradient",
})
mistake("ch03 grad_check one-sided", *GC, _ch03_grad_check(
    "(loss_plus - float(loss_fn(params))) / h"), {
    "test_grad_check_correct_gradient": "expected below 1e-7",
    "test_grad_check_is_centred": "one-sided difference",
    "test_grad_check_finds_a_wrong_entry": "one-sided difference",
})
mistake("ch03 grad_check divides by h", *GC, _ch03_grad_check(
    "(loss_plus - loss_minus) / h"), {
    "test_grad_check_correct_gradient": "twice (or half)",
    "test_grad_check_is_centred": "Use the step h",
    "test_grad_check_finds_a_wrong_entry": "twice (or half)",
})
mistake("ch03 grad_check restores by subtracting", *GC, """
errors = {}
for name, value in params.items():
    numeric = np.zeros(value.shape)
    for ix in np.ndindex(value.shape):
        value[ix] += h
        loss_plus = loss_fn(params)
        value[ix] -= 2 * h
        loss_minus = loss_fn(params)
        value[ix] += h
        numeric[ix] = (loss_plus - loss_minus) / (2 * h)
    errors[name] = rel_error(grads[name], numeric)
return errors
""", {"test_grad_check_restores_params": "save old = params[name][ix]"})
mistake("ch03 grad_check mean relative error", *GC, """
errors = {}
for name, value in params.items():
    numeric = np.zeros(value.shape)
    for ix in np.ndindex(value.shape):
        old = value[ix]
        value[ix] = old + h; loss_plus = loss_fn(params)
        value[ix] = old - h; loss_minus = loss_fn(params)
        value[ix] = old
        numeric[ix] = (loss_plus - loss_minus) / (2 * h)
    g = np.asarray(grads[name])
    errors[name] = float(np.mean(np.abs(g - numeric)
                                 / np.maximum(1e-8, np.abs(g) + np.abs(numeric))))
return errors
""", {"test_grad_check_finds_a_wrong_entry": "not a mean"})
mistake("ch03 grad_check on copies of params (valid)", *GC, """
errors = {}
for name in params:
    numeric = np.empty(np.shape(params[name]))
    for i in range(numeric.size):
        shifted = []
        for sign in (+1, -1):
            trial = {k: np.array(v, copy=True) for k, v in params.items()}
            trial[name].flat[i] += sign * h
            shifted.append(loss_fn(trial))
        numeric.flat[i] = (shifted[0] - shifted[1]) / (2 * h)
    errors[name] = float(rel_error(grads[name], numeric))
return errors
""", {})



# -- ch03 Part 5, leaky_rnn_backward: each bug has its own test cell ----------------
def _ch03_leaky(line3: str, line4: str) -> str:
    """The given leaky_rnn_backward with lines [3] and [4] as written here."""
    return f"""
x, h0, h_seq, u_seq = cache["x"], cache["h0"], cache["h_seq"], cache["u_seq"]
p, alpha = cache["params"], cache["alpha"]
da = np.zeros_like(h_seq)
dh_prev = np.zeros_like(h0)
for t in reversed(range(h_seq.shape[1])):
    dh = dh_seq[:, t] + dh_prev
    du = alpha * dh
    {line3}
    {line4}
h_prev_seq = np.concatenate([h0[:, None], h_seq[:, :-1]], axis=1)
return {{"x": da @ p["W_ih"], "h0": dh_prev,
        "W_ih": np.einsum("nth,ntd->hd", da, x),
        "W_hh": np.einsum("nth,ntk->hk", da, h_prev_seq),
        "b_ih": da.sum(axis=(0, 1)), "b_hh": da.sum(axis=(0, 1))}}
"""


LEAKY = ("ch03", "ex_leaky_rnn_backward")
BUG3 = "da[:, t] = du * (1 - h_seq[:, t] ** 2)"
FIX3 = "da[:, t] = du * (1 - u_seq[:, t] ** 2)"
BUG4 = 'dh_prev = da[:, t] @ p["W_hh"]'
FIX4 = 'dh_prev = (1 - alpha) * dh + da[:, t] @ p["W_hh"]'
TANH_TEST, PATH_TEST = "test_leaky_through_tanh", "test_leaky_leak_path"
TANH_SAYS, PATH_SAYS = "which cached array holds tanh(a_t)", "more than one path"
# Fixing one bug earns that bug's cell; the other bug's cell names the other bug.
mistake("ch03 leaky fixes neither bug", *LEAKY, _ch03_leaky(BUG3, BUG4),
        {TANH_TEST: TANH_SAYS, PATH_TEST: PATH_SAYS})
mistake("ch03 leaky fixes only the tanh bug", *LEAKY, _ch03_leaky(FIX3, BUG4),
        {PATH_TEST: PATH_SAYS})
mistake("ch03 leaky fixes only the leak path", *LEAKY, _ch03_leaky(BUG3, FIX4),
        {TANH_TEST: TANH_SAYS})
mistake("ch03 leaky leaks dh_prev, not dh", *LEAKY, _ch03_leaky(
    FIX3, 'dh_prev = (1 - alpha) * dh_prev + da[:, t] @ p["W_hh"]'),
        {PATH_TEST: PATH_SAYS})
mistake("ch03 leaky takes tanh of h_t", *LEAKY, _ch03_leaky(
    "da[:, t] = du * (1 - np.tanh(h_seq[:, t]) ** 2)", FIX4), {TANH_TEST: TANH_SAYS})
mistake("ch03 leaky recomputes u_t from h_t (valid)", *LEAKY, _ch03_leaky(
    "u_t = (h_seq[:, t] - (1 - alpha) * (h_seq[:, t - 1] if t > 0 else h0)) / alpha; "
    "da[:, t] = du * (1 - u_t ** 2)", FIX4), {})

# -- ch01 Parts (c) and (e) -----------------------------------------------------------
mistake("ch01 encoder_decoder_forward multiplies by W_hy", "ch01",
        "ex_encoder_decoder_forward", """
N, H = x.shape[0], enc_params["W_hh"].shape[0]
h_enc, _ = rnnlib.rnn_forward(x, np.zeros((N, H)), enc_params)
context = h_enc[np.arange(N), np.asarray(lengths) - 1]
dec_in = np.concatenate([y_in, np.repeat(context[:, None], y_in.shape[1], 1)], 2)
h_dec, _ = rnnlib.rnn_forward(dec_in, context, dec_params)
return h_dec @ W_hy + b_y
""", dict.fromkeys(["test_encoder_decoder_shapes",
                    "test_encoder_decoder_own_last_step",
                    "test_encoder_decoder_values"],
                   "its transpose, W_hy.T, not W_hy itself"))
mistake("ch01 remember_first_params without a flag unit", "ch01",
        "ex_remember_first_params", """
H = V
return {"W_ih": 10.0 * np.eye(V), "W_hh": 30.0 * np.eye(V), "b_ih": np.zeros(H),
        "b_hh": np.zeros(H), "W_hy": np.eye(V), "b_y": np.zeros(V)}
""", {"test_remember_first_params_short": "Every symbol that occurs is stored",
      "test_remember_first_params_long": "sequences of length 300"})


# -- ch02 Parts 1 to 3 -------------------------------------------------------------
mistake("ch02 pack_params returns a list (valid)", "ch02", "ex_packed_step", (
    'return [np.hstack((params["W_ih"], params["W_hh"])), '
    'np.add(params["b_ih"], params["b_hh"])]',
    None,
), {})
mistake("ch02 rnn_sequence_packed writes into h0", "ch02", "ex_sequence_packed", """
N, T, _ = x.shape
out = np.zeros((N, T, h0.shape[1]))
h = h0
for t in (range(T - 1, -1, -1) if reverse else range(T)):
    h[:] = rnn_step_packed(x[:, t], h, W, b)
    out[:, t] = h
return out
""", {"test_sequence_forward": "changed h0 in place"})
mistake("ch02 birnn_padded zeroes the padding and steps through it", "ch02",
        "ex_birnn_padded", """
N, T, _ = x.shape
H = h0_fwd.shape[1]
valid = np.arange(T)[None, :] < np.asarray(lengths)[:, None]
xz = np.where(valid[..., None], x, 0.0)
h_seq = np.zeros((N, T, 2 * H))
h = h0_fwd
for t in range(T):
    h = rnn_step_packed(xz[:, t], h, *fwd)
    h_seq[:, t, :H] = np.where(valid[:, t, None], h, 0.0)
h = h0_bwd
for t in range(T - 1, -1, -1):
    h = rnn_step_packed(xz[:, t], h, *bwd)
    h_seq[:, t, H:] = np.where(valid[:, t, None], h, 0.0)
return h_seq
""", {"test_birnn_padded_backward": "not even zero padding"})


# -- ch04 Part 2, predicted_distance ---------------------------------------------------
mistake("ch04 predicted_distance with ceil", "ch04", "ex_vanishing_distance", ("""
rho = float(np.max(np.abs(np.linalg.eigvals(W_hh))))
if g_norm < threshold:
    return 0
if rho >= 1:
    return -1
return int(np.ceil(np.log(threshold / g_norm) / np.log(rho)))
""", None), {"test_predicted_distance": "equal is not below"})


# -- ch04 Part 1, gradient_norms: the tanh's factor after W_hh (learner review 3) --
mistake("ch04 gradient_norms applies 1 - h^2 after W_hh", "ch04", "ex_gradient_norms",
        """
norms = np.empty(h_seq.shape[0] + 1)
delta = np.asarray(g, dtype=float)
norms[0] = np.linalg.norm(delta)
for n, h_j in enumerate(h_seq[::-1], start=1):
    delta = (delta @ W_hh) * (1.0 - h_j * h_j)
    norms[n] = np.linalg.norm(delta)
return norms
""", {"test_gradient_norms_transpose": "after multiplying by W_hh",
     "test_gradient_norms_against_backprop": "only on one or two units"})


# -- ch04 Part 4, adaptive_clip: clip_grad_norm's epsilon (learner review 4) -------
mistake("ch04 adaptive_clip divides by |G_i| + 1e-6", "ch04", "ex_adaptive_clip", """
clipped = {}
for name, grad in grads.items():
    grad, weight = np.asarray(grad, float), np.asarray(params[name], float)
    axis = None if grad.ndim == 1 else 1
    w_norm = np.linalg.norm(weight, axis=axis, keepdims=True)
    g_norm = np.linalg.norm(grad, axis=axis, keepdims=True)
    limit = clipping * np.maximum(w_norm, eps)
    clipped[name] = grad * np.minimum(1.0, limit / (g_norm + 1e-6))
return clipped
""", {"test_adaptive_clip_by_hand": "did you add an epsilon to |G_i|",
     "test_adaptive_clip_properties": "plus an epsilon"})


mistake("ch04 truncated_grads reads h_seq[:, -1] at t = 0", "ch04",
        "ex_truncated_grads", """
x, h_seq, params = cache["x"], cache["h_seq"], cache["params"]
T = x.shape[1]
W_hh = params["W_hh"]
gr = {n: np.zeros_like(params[n]) for n in ("W_ih", "W_hh", "b_ih", "b_hh")}
delta = np.asarray(g, dtype=float)
for t in range(T - 1, max(T - k, 0) - 1, -1):
    da = delta * (1 - h_seq[:, t] ** 2)
    gr["W_ih"] += da.T @ x[:, t]
    gr["W_hh"] += da.T @ h_seq[:, t - 1]
    gr["b_ih"] += da.sum(0)
    gr["b_hh"] += da.sum(0)
    delta = da @ W_hh
return gr
""", {"test_truncated_full_bptt": "a negative index wraps round"})


# -- ch04 Part 5: a write into g or cache['h_seq'] (rev12 F2) -----------------------
# Each call leaves its own gradients right and spoils the next call's inputs. Before,
# the second call (k = 9) of test_truncated_full_bptt failed its value check first:
# "visit every step back to t = 1 ..." for the two writes below, "the accuracy of
# float32" for the x 1.0000001 one; the in-place message was never reached.
def _ch04_truncated(da_lines="da = delta * (1 - h_seq[:, t] ** 2)", after=""):
    """A per-step truncated_grads with another way to form da_t."""
    return f"""
x, h_seq, params = cache["x"], cache["h_seq"], cache["params"]
T = x.shape[1]
gr = {{n: np.zeros_like(params[n]) for n in ("W_ih", "W_hh", "b_ih", "b_hh")}}
delta = g
for t in range(T - 1, max(T - k, 0) - 1, -1):
    prev = h_seq[:, t - 1] if t > 0 else cache["h0"]
    gr["W_hh"] += (delta * (1 - h_seq[:, t] ** 2)).T @ prev
    {da_lines}
    gr["W_ih"] += da.T @ x[:, t]
    gr["b_ih"] += da.sum(0)
    gr["b_hh"] += da.sum(0)
    delta = da @ params["W_hh"]
{after}
return gr
"""


TRUNCATED_WRITES = {
    "ch04 truncated_grads writes da into the caller's g":
        _ch04_truncated("da = delta\n    da *= 1 - h_seq[:, t] ** 2"),
    "ch04 truncated_grads writes tanh' into cache['h_seq']":
        _ch04_truncated("h_seq[:, t] = 1 - h_seq[:, t] ** 2\n"
                        "    da = delta * h_seq[:, t]"),
    "ch04 truncated_grads scales cache['h_seq'] by 1.0000001":
        _ch04_truncated(after='cache["h_seq"] *= 1.0000001'),
}
for _name, _code in TRUNCATED_WRITES.items():
    mistake(_name, "ch04", "ex_truncated_grads", _code,
            {"test_truncated_full_bptt": "truncated_grads modified"})


# -- ch04 Part 5: the batch averaged (rev12 F8) --------------------------------------
# Every cell failed with its generic hint ("only the last step contributes ...");
# the ratio 1/N is now named. The mistake is the whole part's, so it costs all 3.
TRUNCATED_MEAN = """
x, h_seq, params = cache["x"], cache["h_seq"], cache["params"]
N, T = x.shape[:2]
gr = {n: np.zeros_like(params[n]) for n in ("W_ih", "W_hh", "b_ih", "b_hh")}
delta = np.asarray(g, dtype=float)
for t in range(T - 1, max(T - k, 0) - 1, -1):
    da = delta * (1 - h_seq[:, t] ** 2)
    prev = h_seq[:, t - 1] if t > 0 else cache["h0"]
    gr["W_ih"] += da.T @ x[:, t] / N
    gr["W_hh"] += da.T @ prev / N
    gr["b_ih"] += da.mean(0)
    gr["b_hh"] += da.mean(0)
    delta = da @ params["W_hh"]
return gr
"""
mistake("ch04 truncated_grads divides by N", "ch04", "ex_truncated_grads",
        TRUNCATED_MEAN, dict.fromkeys(
            ("test_truncated_one_step", "test_truncated_full_bptt",
             "test_truncated_window"), "the gradients sum over the batch"))


# -- ch05 Part 1: a blank answer fails every test cell on its own call ------------
mistake("ch05 lstm_step_jacobian left blank", "ch05", "ex_lstm_step_jacobian",
        "raise NotImplementedError()", dict.fromkeys(
            ["test_jacobian_cell_path", "test_jacobian_h_from_c",
             "test_jacobian_c_from_h", "test_jacobian_h_from_h"],
            "NotImplementedError"))


# -- ch06 Parts 1, 2 and 4 ------------------------------------------------------------
mistake("ch06 torch_lstm_to_keras in float32", "ch06", "ex_torch_lstm_to_keras", """
return [params["W_ih"].T.astype(np.float32), params["W_hh"].T.astype(np.float32),
        (params["b_ih"] + params["b_hh"]).astype(np.float32)]
""", {"test_lstm_to_keras_outputs_agree": "float32's rounding"})
mistake("ch06 packed_lstm in float32", "ch06", "ex_packed_lstm", """
T = x.shape[1]
model = nn.LSTM(x.shape[2], params["W_hh"].shape[1], batch_first=True)
params_to_torch(params, model)
packed = pack_padded_sequence(torch.as_tensor(x, dtype=torch.float32),
                              torch.as_tensor(lengths), batch_first=True,
                              enforce_sorted=False)
with torch.no_grad():
    out, (h, c) = model(packed)
h_seq, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
return (h_seq.numpy().astype(np.float64), h[0].numpy().astype(np.float64),
        c[0].numpy().astype(np.float64))
""", dict.fromkeys(["test_packed_lstm_final_states", "test_packed_lstm_outputs"],
                   "float32's rounding"))
mistake("ch06 left_padded_last_states flips time", "ch06",
        "ex_left_padded_last_states", """
model = nn.GRU(x.shape[2], params["W_hh"].shape[1], batch_first=True,
               dtype=torch.float64)
params_to_torch(params, model)
packed = pack_padded_sequence(torch.as_tensor(np.ascontiguousarray(x[:, ::-1])),
                              torch.as_tensor(np.asarray(lengths)), batch_first=True,
                              enforce_sorted=False)
with torch.no_grad():
    _, h = model(packed)
return h[0].numpy()
""", dict.fromkeys(["test_left_padded_last_states", "test_left_padded_edge_cases"],
                   "BACKWARDS"))
# Part 2: h_last read from the last column of the padded output, which is 0 after
# a short sequence's end (the learner audit's problem 6: the message was generic).
mistake("ch06 packed_lstm takes h_last from h_seq[:, -1]", "ch06", "ex_packed_lstm", """
T = x.shape[1]
model = nn.LSTM(x.shape[2], params["W_hh"].shape[1], batch_first=True,
                dtype=torch.float64)
params_to_torch(params, model)
packed = pack_padded_sequence(torch.as_tensor(x), torch.as_tensor(lengths),
                              batch_first=True, enforce_sorted=False)
with torch.no_grad():
    out, (h, c) = model(packed)
h_seq, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
return h_seq.numpy(), h_seq[:, -1].numpy(), c[0].numpy()
""", {"test_packed_lstm_final_states": "last column of the padded output h_seq"})
# Part 2: the batch sorted by length, and h_seq left in the sorted order (walkthrough
# walk06). The outputs cell said "take it from pad_packed_sequence ..., not from an
# LSTM run on the padded batch", which the learner had done: it blamed the padding,
# since the sorted rows' zeros sit where the batch's rows have real steps.
_CH06_SORTED_HEAD = """
T = x.shape[1]
model = nn.LSTM(x.shape[2], params["W_hh"].shape[1], batch_first=True,
                dtype=torch.float64)
params_to_torch(params, model)
"""
_CH06_SORTED_BY_HAND = _CH06_SORTED_HEAD + """
lengths_sorted, order = torch.sort(torch.as_tensor(lengths), descending=True)
packed = pack_padded_sequence(torch.as_tensor(x)[order], lengths_sorted,
                              batch_first=True)
with torch.no_grad():
    out, (h, c) = model(packed)
h_seq, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
return h_seq.numpy(), h[0].numpy(), c[0].numpy()
"""
# The final states put back with the inverse order, h_seq not: only h_seq's cell.
_CH06_SORTED_H_SEQ = _CH06_SORTED_HEAD + """
packed = pack_padded_sequence(torch.as_tensor(x), torch.as_tensor(lengths),
                              batch_first=True, enforce_sorted=False)
with torch.no_grad():
    out, (h, c) = model(packed)
h_seq, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
return h_seq[packed.sorted_indices].numpy(), h[0].numpy(), c[0].numpy()
"""
_CH06_P2 = ("ch06", "ex_packed_lstm")
mistake("ch06 packed_lstm sorts the batch and does not unsort it", *_CH06_P2,
        _CH06_SORTED_BY_HAND, {
            "test_packed_lstm_final_states": "sorted by decreasing length",
            "test_packed_lstm_outputs": "rows come back sorted by decreasing length"})
mistake("ch06 packed_lstm returns h_seq in the sorted order", *_CH06_P2,
        _CH06_SORTED_H_SEQ,
        {"test_packed_lstm_outputs": "rows come back sorted by decreasing length"})
# Part 4: a loop that runs nn.GRU on each sequence alone gives the same numbers as
# one packed call; the part says that it is accepted (problem 8), so it passes.
mistake("ch06 left_padded_last_states loops over the sequences (accepted)", "ch06",
        "ex_left_padded_last_states", """
model = nn.GRU(x.shape[2], params["W_hh"].shape[1], batch_first=True,
               dtype=torch.float64)
params_to_torch(params, model)
T = x.shape[1]
with torch.no_grad():
    return np.stack([model(torch.as_tensor(x[n : n + 1, T - L :]))[1][0, 0].numpy()
                     for n, L in enumerate(lengths)])
""", {})


# -- Cheats: answers that change the test's own arrays in place ---------------------
# The grader writes a learner's in-place changes to argument arrays back into the
# judge's arrays, so a test that derives its expected value or limit from its
# inputs after the call can be fooled (zero params and grads, return zeros). Each
# cheat must earn nothing: every test cell of its part fails, hidden half included,
# and the visible half's message names what the answer did.
CHEATS: dict[str, Case] = {}


def cheat(name: str, chapter: str, answer_id: str, code, fails: dict[str, str]):
    CHEATS[name] = (chapter, answer_id, code, fails)


# ch04 Part 4: clip nothing, zero the caller's params and grads, return zeros
# (3 points before: test_adaptive_clip_properties and _units_independent).
cheat("ch04 adaptive_clip zeroes params and grads in place", "ch04", "ex_adaptive_clip",
      """
for name in grads:
    params[name][...] = 0
    grads[name][...] = 0
return {name: np.zeros(np.shape(g)) for name, g in grads.items()}
""", dict.fromkeys(["test_adaptive_clip_by_hand", "test_adaptive_clip_properties",
                    "test_adaptive_clip_units_independent"], "changed params"))
# ch04 Part 2: both functions return 0, which agree with each other
# (1 point before: test_prediction_matches_measurement).
cheat("ch04 predicted and measured distance both return 0", "ch04",
      "ex_vanishing_distance", ("return 0", "return 0"),
      {"test_predicted_distance": "expected 4", "test_measured_distance": "expected 4",
       "test_prediction_matches_measurement": "both are wrong"})

# ch01 Part (b): zero x in place and return zeros
# (1 point before: test_causal_windows_edge_cases compared with x after the call).
cheat("ch01 causal_windows zeroes x in place", "ch01", "ex_causal_windows", """
x[...] = 0
return np.zeros(x.shape[:2] + (k * x.shape[2],))
""", {"test_causal_windows_one_feature": "got [[0.0, 0.0], [0.0, 0.0]",
      "test_causal_windows_features_together": "got",
      "test_causal_windows_edge_cases": "changed x in place"})
# ch01 Part (c): zero both RNNs' weights in place, so that every decoder state is 0
# and the scores are b_y (1 point before: test_encoder_decoder_own_last_step, whose
# hidden half took its oracle after the call and did not compare the params dicts).
cheat("ch01 encoder_decoder_forward zeroes the RNN weights in place", "ch01",
      "ex_encoder_decoder_forward", """
for p in (enc_params, dec_params):
    for value in p.values():
        value[...] = 0
return np.zeros((x.shape[0], y_in.shape[1], len(b_y))) + b_y
""", {"test_encoder_decoder_own_last_step": "changed enc_params",
      "test_encoder_decoder_values": "did not change its scores"})
# ch06 Part 2: zero lengths in place (every step is padding) and return zeros
# (2 points before: test_packed_lstm_outputs took its padding mask after the call).
cheat("ch06 packed_lstm zeroes lengths in place", "ch06", "ex_packed_lstm", """
N, T, _ = x.shape
H = params["W_hh"].shape[1]
lengths[...] = 0
return np.zeros((N, T, H)), np.zeros((N, H)), np.zeros((N, H))
""", dict.fromkeys(["test_packed_lstm_final_states", "test_packed_lstm_outputs"],
                   "packed_lstm changed lengths in place"))
# ch06 Part 3: zero Keras's weights in place and return zeros of the right shapes
# (3 points before: test_bigru_names_and_shapes, a shapes-only test, and
# test_bigru_whole_model, which set the Keras model's weights after the call).
cheat("ch06 keras_bigru_to_torch zeroes weights in place", "ch06",
      "ex_keras_bigru_to_torch", """
state = {}
for layer in range(num_layers):
    for direction, suffix in enumerate(("", "_reverse")):
        first = 6 * layer + 3 * direction
        kernel, recurrent, bias = weights[first : first + 3]
        tag = f"l{layer}{suffix}"
        state[f"weight_ih_{tag}"] = np.zeros(kernel.T.shape)
        state[f"weight_hh_{tag}"] = np.zeros(recurrent.T.shape)
        state[f"bias_ih_{tag}"] = np.zeros(bias.shape[1])
        state[f"bias_hh_{tag}"] = np.zeros(bias.shape[1])
for w in weights:
    w[...] = 0
return state
""", {"test_bigru_names_and_shapes": "keras_bigru_to_torch changed weights",
      "test_bigru_first_layer_forward": "keras_bigru_to_torch changed weights",
      "test_bigru_whole_model": "keras_bigru_to_torch changed weights"})


# -- One mistake, hidden halves included -------------------------------------------
# The grader runs the hidden halves too. A mistake must cost the cells of its own
# part that check what it got wrong, and no cell that checks something else (a
# shapes cell, a "leaves the arguments alone" cell, a cell whose hidden half
# re-grades the values another cell grades), and a non-working answer (zeros, a
# constant) must earn nothing of its part.
WHOLE: dict[str, tuple[str, str, str | tuple, set[str]]] = {}


def costs(name: str, chapter: str, answer_id: str, code, cells: set[str]):
    """With the hidden halves run, exactly `cells` fail."""
    WHOLE[name] = (chapter, answer_id, code, set(cells))


# -- ch01 Part (a): one_hot_padded leaves its argument alone (F18) ------------------
# Writes 0 into the caller's ids at padding; the codes are right (0 points lost before).
OHP_WRITES_IDS = """
indices = np.asarray(indices)
is_pad = indices == pad_id
bad = ~is_pad & ((indices < 0) | (indices >= V))
if bad.any():
    raise ValueError(f"id {indices[bad][0]} is outside [0, {V}) and is not pad_id")
indices[is_pad] = 0
out = np.eye(V)[indices]
out[is_pad] = 0
return out.astype(dtype)
"""
mistake("ch01 one_hot_padded writes into the caller's ids", "ch01", "ex_one_hot_padded",
        OHP_WRITES_IDS, {"test_one_hot_padded_batch": "changed ids in place"})
costs("ch01 one_hot_padded writes into the caller's ids", "ch01", "ex_one_hot_padded",
      OHP_WRITES_IDS, {"test_one_hot_padded_batch"})

# -- ch01 Part (c): a value mistake costs only test_encoder_decoder_values (F4) -----
# (2/3 before: the hidden half of test_encoder_decoder_own_last_step compared values.)
ED = ("ch01", "ex_encoder_decoder_forward")
ED_HEAD = """
N, H = x.shape[0], enc_params["W_hh"].shape[0]
h_enc, _ = rnnlib.rnn_forward(x, np.zeros((N, H)), enc_params)
context = h_enc[np.arange(N), np.asarray(lengths) - 1]
dec_in = np.concatenate([y_in, np.repeat(context[:, None], y_in.shape[1], 1)], 2)
"""
costs("ch01 encoder_decoder_forward forgets b_y", *ED, ED_HEAD + """
h_dec, _ = rnnlib.rnn_forward(dec_in, context, dec_params)
return h_dec @ W_hy.T
""", {"test_encoder_decoder_values"})
costs("ch01 encoder_decoder_forward takes a softmax of the scores", *ED, ED_HEAD + """
h_dec, _ = rnnlib.rnn_forward(dec_in, context, dec_params)
return rnnlib.softmax(h_dec @ W_hy.T + b_y)
""", {"test_encoder_decoder_values"})
ED_ZERO_START = ED_HEAD + """
h_dec, _ = rnnlib.rnn_forward(dec_in, np.zeros((N, H)), dec_params)
return h_dec @ W_hy.T + b_y
"""
costs("ch01 encoder_decoder_forward starts the decoder from zeros", *ED, ED_ZERO_START,
      {"test_encoder_decoder_values"})
# (only "the scores differ" before: the context reaches the decoder through its inputs)
mistake("ch01 encoder_decoder_forward starts the decoder from zeros", *ED,
        ED_ZERO_START,
        {"test_encoder_decoder_values": "starts from the context as well"})

# -- ch01 Part (c): zeros or a constant earn nothing (F12, F4's hidden half) -------
# (1/3 earned before: test_encoder_decoder_shapes compared shapes only.)
ED_CELLS = {"test_encoder_decoder_shapes", "test_encoder_decoder_own_last_step",
            "test_encoder_decoder_values"}
ED_ZEROS = "return np.zeros((x.shape[0], y_in.shape[1], len(b_y)))"
ED_CONSTANT = "return np.zeros((x.shape[0], y_in.shape[1], len(b_y))) + b_y"
costs("ch01 encoder_decoder_forward returns zeros", *ED, ED_ZEROS, ED_CELLS)
costs("ch01 encoder_decoder_forward returns b_y at every step", *ED, ED_CONSTANT,
      ED_CELLS)
mistake("ch01 encoder_decoder_forward returns zeros", *ED, ED_ZEROS, {
    "test_encoder_decoder_shapes": "changing y_in did not change the scores",
    "test_encoder_decoder_values": "changing the source did not change its scores"})

# -- ch01 Part (d), influence_matrix: each mistake costs only the cells that check it --
# Part (d) was step_influence, whose loop the chapter prints; it is now the (T_out, T)
# matrix of a many-to-many model. Its eps was never used visibly: ignoring it earned
# full marks, and a fixed push divided by eps lost 2 hidden points (review problem 5).
IM = ("ch01", "ex_influence_matrix")
IM_BY_HAND = "test_influence_matrix_by_hand"
IM_MODELS = "test_influence_matrix_window_vs_rnn"


def _ch01_influence(push="x_nudged[:, t] += eps", divide="/ eps", head=""):
    return head + f"""
base = np.asarray(forward(x))
T_out = base.shape[1]
influence = np.zeros((T_out, x.shape[1]))
for t in range(x.shape[1]):
    x_nudged = x.copy()
    {push}
    change = np.abs(np.asarray(forward(x_nudged)) - base)
    influence[:, t] = np.moveaxis(change, 1, 0).reshape(T_out, -1).max(axis=1) {divide}
return influence
"""


ALL_ENTRIES = "largest |change| over ALL entries"
for _label, _code, _says in [
        ("forgets to divide by eps", _ch01_influence(divide=""),
         {IM_BY_HAND: "divide the change by eps", IM_MODELS: ALL_ENTRIES}),
        ("ignores the eps argument", _ch01_influence(head="eps = 1e-6"),
         {IM_BY_HAND: "does not change with eps"}),
        ("pushes by a fixed 1e-6, divides by eps",
         _ch01_influence(push="x_nudged[:, t] += 1e-6"),
         {IM_BY_HAND: "pushed by a fixed 1e-6"}),
        ("pushes sequence 0 only", _ch01_influence(push="x_nudged[0, t] += eps"),
         {IM_BY_HAND: "push step t of EVERY sequence", IM_MODELS: ALL_ENTRIES}),
        ("lets the pushes pile up", _ch01_influence(
            head="x_nudged = x.copy()").replace("    x_nudged = x.copy()\n", ""),
         {IM_BY_HAND: "the pushes pile up", IM_MODELS: "pushes of earlier steps"})]:
    mistake(f"ch01 influence_matrix {_label}", *IM, _code, _says)
    costs(f"ch01 influence_matrix {_label}", *IM, _code, set(_says))
# (review of the rewrite, findings 2 and 5) Axis mistakes gave raw NumPy errors, and
# max(axis=0) on (N, T_out) outputs passed the visible half of the by-hand cell and
# then lost its 2 hidden points (the hidden models are (N, T, 1)); a centred
# difference, a signed max and a mean got messages that did not name them.
IM_MAX_LINE = "np.moveaxis(change, 1, 0).reshape(T_out, -1).max(axis=1)"
IM_ABS_CHANGE = "np.abs(np.asarray(forward(x_nudged)) - base)"
IM_SIGNED_CHANGE = "np.asarray(forward(x_nudged)) - base"
IM_LEAVES = "test_influence_matrix_leaves_x_alone"
AXES = "every axis of the change except axis 1"
ABS_FIRST = "take the absolute value of every change first"
for _label, _edits, _says in [
        ("assumes outputs (N, T_out): max(axis=0)",
         [(IM_MAX_LINE, "change.max(axis=0)")], {IM_BY_HAND: AXES, IM_MODELS: AXES}),
        ("assumes outputs (N, T_out, H): max(axis=(0, 2))",
         [(IM_MAX_LINE, "change.max(axis=(0, 2))")],
         {IM_BY_HAND: AXES, IM_LEAVES: AXES}),
        ("takes T_out from x", [("T_out = base.shape[1]", "T_out = x.shape[1]")],
         dict.fromkeys([IM_BY_HAND, IM_MODELS], "forward(x).shape[1], not x.shape[1]")),
        ("takes no absolute value", [(IM_ABS_CHANGE, IM_SIGNED_CHANGE)],
         {IM_BY_HAND: ABS_FIRST, IM_MODELS: ALL_ENTRIES}),
        ("takes the absolute value after the max",
         [(IM_ABS_CHANGE, IM_SIGNED_CHANGE), (IM_MAX_LINE, f"np.abs({IM_MAX_LINE})")],
         {IM_BY_HAND: ABS_FIRST, IM_MODELS: ALL_ENTRIES}),
        ("averages over the sequences and outputs", [(".max(axis=1)", ".mean(axis=1)")],
         {IM_BY_HAND: "not an average", IM_MODELS: ALL_ENTRIES}),
        ("averages over the sequences only",
         [(IM_MAX_LINE, "change.reshape(len(x), T_out, -1).max(axis=2).mean(axis=0)")],
         {IM_BY_HAND: "the mean of the sequences' slopes", IM_MODELS: ALL_ENTRIES}),
        ("takes a centred difference",
         [(IM_ABS_CHANGE, "np.abs(np.asarray(forward(x_nudged)) - "
                          "np.asarray(forward(2 * x - x_nudged))) / 2")],
         {IM_BY_HAND: "two-sided"})]:
    _code = _ch01_influence()
    for _old, _new in _edits:
        assert _old in _code, _label
        _code = _code.replace(_old, _new)
    mistake(f"ch01 influence_matrix {_label}", *IM, _code, _says)
    costs(f"ch01 influence_matrix {_label}", *IM, _code, set(_says))
costs("ch01 influence_matrix as the course writes it", *IM, (), set())
costs("ch01 influence_matrix left blank", *IM, "raise NotImplementedError()",
      {IM_BY_HAND, IM_MODELS, "test_influence_matrix_leaves_x_alone"})


# -- ch01 Part (b): the text's own slice, x[:, t-k+1:t+1], is empty for t < k-1 ------
# (a raw "could not broadcast input array from shape (1,0)" in all three cells before.)
CW = ("ch01", "ex_causal_windows")
CW_CELLS = {"test_causal_windows_one_feature", "test_causal_windows_features_together",
            "test_causal_windows_edge_cases"}
CW_LITERAL_SLICE = """
N, T, D = x.shape
out = np.zeros((N, T, k * D))
for t in range(T):
    out[:, t] = x[:, t - k + 1 : t + 1].reshape(N, -1)
return out
"""
mistake("ch01 causal_windows slices x[:, t-k+1:t+1] for every t", *CW,
        CW_LITERAL_SLICE, dict.fromkeys(CW_CELLS, "came out with fewer than k steps"))
costs("ch01 causal_windows slices x[:, t-k+1:t+1] for every t", *CW,
      CW_LITERAL_SLICE, CW_CELLS)
# A start clipped at 0 without the zeros: windows of unequal lengths, which np.stack
# refuses ("all input arrays must have the same shape", a raw error before).
CW_CLIPPED_STACK = """
N = x.shape[0]
windows = [x[:, max(0, t - k + 1) : t + 1].reshape(N, -1) for t in range(x.shape[1])]
return np.stack(windows, axis=1)
"""
mistake("ch01 causal_windows stacks clipped windows of unequal lengths", *CW,
        CW_CLIPPED_STACK, dict.fromkeys(CW_CELLS, "cannot be stacked"))
costs("ch01 causal_windows stacks clipped windows of unequal lengths", *CW,
      CW_CLIPPED_STACK, CW_CELLS)


# -- ch01 Part (e): weights built for V = 4 only ---------------------------------------
# (every visible cell used V = 4: 5/5 visible, 0/5 at grading before.)
RF = ("ch01", "ex_remember_first_params")
RF_CELLS = {"test_remember_first_params_shapes", "test_remember_first_params_short",
            "test_remember_first_params_long"}
RF_FOR_V4 = """
H = 5
W_ih = np.zeros((H, V))
W_ih[:4] = 10.0 * np.eye(4, V)
W_ih[4] = 10.0
W_hh = np.zeros((H, H))
W_hh[:4, :4] = 30.0 * np.eye(4)
W_hh[:4, 4] = -20.0
W_hy = np.zeros((V, H))
W_hy[:, :4] = np.eye(V, 4)
return {"W_ih": W_ih, "W_hh": W_hh, "b_ih": np.zeros(H), "b_hh": np.zeros(H),
        "W_hy": W_hy, "b_y": np.zeros(V)}
"""
mistake("ch01 remember_first_params built for V = 4", *RF, RF_FOR_V4,
        dict.fromkeys(RF_CELLS, "the answer must work for any V >= 2"))
costs("ch01 remember_first_params built for V = 4", *RF, RF_FOR_V4, RF_CELLS)
costs("ch01 remember_first_params as the course writes it", *RF, (), set())


# -- ch01 Part (a): ids assumed 2-D ---------------------------------------------------
# (a raw "not enough values to unpack" before: the cell's 2-D hint came after the call.)
OHP_2D = """
indices = np.asarray(indices)
N, T = indices.shape
out = np.zeros((N, T, V))
for n in range(N):
    for t in range(T):
        k = indices[n, t]
        if k == pad_id:
            continue
        if not 0 <= k < V:
            raise ValueError(f"id {k} is outside [0, {V})")
        out[n, t, k] = 1
return out.astype(dtype)
"""
mistake("ch01 one_hot_padded assumes 2-D ids", "ch01", "ex_one_hot_padded", OHP_2D,
        {"test_one_hot_padded_shapes_pad_dtype": "assume the ids are 2-D"})
costs("ch01 one_hot_padded assumes 2-D ids", "ch01", "ex_one_hot_padded", OHP_2D,
      {"test_one_hot_padded_shapes_pad_dtype"})
# A one-hot read off rnnlib.softmax_cross_entropy's gradient is delegation: ch01
# withholds that function while grading (delegation.py's one_hot_from_a_loss form,
# graded in test_exercise_grading, scores it 0 on Part (a)).


# -- ch04 Part 5: reading h_seq[:, -1] at t = 0 costs only test_truncated_full_bptt
# (F11)
# (2/4 before: the hidden case (1, 1, 1, 1) of test_truncated_one_step put its only
# step at t = 0.)
costs("ch04 truncated_grads reads h_seq[:, -1] at t = 0", "ch04",
      "ex_truncated_grads",
      MISTAKES["ch04 truncated_grads reads h_seq[:, -1] at t = 0"][2],
      {"test_truncated_full_bptt"})


# rev12 F2: a write into g or the cache costs only the cell that names it.
for _name, _code in TRUNCATED_WRITES.items():
    costs(_name, "ch04", "ex_truncated_grads", _code, {"test_truncated_full_bptt"})
costs("ch04 truncated_grads divides by N", "ch04", "ex_truncated_grads",
      TRUNCATED_MEAN, {"test_truncated_one_step", "test_truncated_full_bptt",
                       "test_truncated_window"})


# -- ch03, hidden halves included (the learner audit's F3, F7, F9, F19, F21) -----
# Part 1, grad_check: nudging a whole row params[name][i] at once instead of one entry.
_CH03_ROW_LOOP = """
errors = {}
for name, value in params.items():
    numeric = np.zeros(value.shape)
    for i in range(value.shape[0]):
        old = value[i].copy()
        value[i] = old + h
        loss_plus = loss_fn(params)
        value[i] = old - h
        loss_minus = loss_fn(params)
        value[i] = old
        numeric[i] = (loss_plus - loss_minus) / (2 * h)
    errors[name] = rel_error(grads[name], numeric)
return errors
"""
# F19: the row loop was told "your numerical gradient is 0", "not a mean, not a norm".
mistake("ch03 grad_check nudges a whole row at once", *GC, _CH03_ROW_LOOP, {
    "test_grad_check_correct_gradient": "one ENTRY at a time",
    "test_grad_check_finds_a_wrong_entry": "one ENTRY at a time",
})
# F7: the row loop also failed is_centred and restores_params (IndexError on a 0-d
# array) in their hidden halves: 4 points instead of 2.
costs("ch03 grad_check nudges a whole row at once", *GC, _CH03_ROW_LOOP,
      {"test_grad_check_correct_gradient", "test_grad_check_finds_a_wrong_entry"})
# F7: a mean of the relative errors also failed is_centred's hidden half (a max over
# 4 entries): 2 points instead of 1.
costs("ch03 grad_check mean relative error", *GC,
      MISTAKES["ch03 grad_check mean relative error"][2],
      {"test_grad_check_finds_a_wrong_entry"})


# Part 2, sequence_mean_cross_entropy: a wrong weighting whose dz is the exact
# gradient of its own loss costs the two by-hand cells, not the gradient check (F3;
# its hidden half graded the loss against PyTorch again: 4 points instead of 3).
def _ch03_ce(weight: str) -> str:
    return f"""
N, T, V = z.shape
lengths = np.asarray(lengths)
real = np.arange(T) < lengths[:, None]
weight = {weight}
log_p = log_softmax(z)
picked = np.take_along_axis(log_p, y[..., None], axis=-1)[..., 0]
loss = -np.sum(picked * weight)
dz = (softmax(z) - one_hot(y, V)) * weight[..., None]
return float(loss), dz
"""


_CH03_CE_BY_HAND = {"test_sequence_ce_loss_by_hand",
                    "test_sequence_ce_gradient_by_hand"}
costs("ch03 sequence CE divides by T, dz its gradient", "ch03",
      "ex_sequence_mean_cross_entropy", _ch03_ce("real / (N * T)"), _CH03_CE_BY_HAND)
costs("ch03 sequence CE sums per sequence, dz its gradient", "ch03",
      "ex_sequence_mean_cross_entropy", _ch03_ce("real / N"), _CH03_CE_BY_HAND)
costs("ch03 sequence CE mean over all real steps, dz its gradient", "ch03",
      "ex_sequence_mean_cross_entropy", _ch03_ce("real / real.sum()"), _CH03_CE_BY_HAND)

# Part 3, last_state_backward: forgetting the classifier's gradients costs the
# autograd cell only; the padding cell reads grads["x"] (F9: 3 points instead of 2).
costs("ch03 last_state_backward forgets W_hy and b_y", "ch03", "ex_last_state_backward",
      """
out_grads = affine_backward(dz, cache["out"])
h_seq = cache["rnn"]["h_seq"]
dh_seq = np.zeros_like(h_seq)
dh_seq[np.arange(h_seq.shape[0]), cache["lengths"] - 1] = out_grads["h"]
return rnn_backward(dh_seq, cache["rnn"])
""", {"test_last_state_matches_autograd"})

# Part 5, leaky_rnn_backward: both bugs fixed, but a slip in the step from dh_t to
# da_t (line [2] or [3]) is the tanh cell's alone; the leak-path cell grades the path
# given the learner's own step (F21: 5 points instead of 2), and the tanh cell's
# message names alpha.
_CH03_ALPHA_DROPPED = _ch03_leaky(FIX3, FIX4).replace("du = alpha * dh", "du = dh")
_CH03_ALPHA_TWICE = _ch03_leaky("da[:, t] = alpha * du * (1 - u_seq[:, t] ** 2)", FIX4)
mistake("ch03 leaky drops alpha on line [2]", *LEAKY, _CH03_ALPHA_DROPPED,
        {TANH_TEST: "one factor alpha"})
mistake("ch03 leaky applies alpha twice", *LEAKY, _CH03_ALPHA_TWICE,
        {TANH_TEST: "one factor alpha"})
costs("ch03 leaky drops alpha on line [2]", *LEAKY, _CH03_ALPHA_DROPPED, {TANH_TEST})
costs("ch03 leaky applies alpha twice", *LEAKY, _CH03_ALPHA_TWICE, {TANH_TEST})
# -- ch03 guards: these passed before the fixes too; they check that the fixed cells
# still give nothing to a non-working answer and still fail for their own mistakes.
# (Uses _ch03_ce from ch03_cases.py: run after it, or concatenate.)
_CH03_CE_ALL = {"test_sequence_ce_loss_by_hand", "test_sequence_ce_gradient_by_hand",
                "test_sequence_ce_gradient_check"}
costs("ch03 sequence CE returns (0.0, zeros)", "ch03", "ex_sequence_mean_cross_entropy",
      "return 0.0, np.zeros_like(z)", _CH03_CE_ALL)
costs("ch03 sequence CE dz with the wrong sign", "ch03",
      "ex_sequence_mean_cross_entropy",
      _ch03_ce("real / (N * lengths[:, None])").replace(
          "(softmax(z) - one_hot(y, V))", "(one_hot(y, V) - softmax(z))"),
      {"test_sequence_ce_gradient_by_hand", "test_sequence_ce_gradient_check"})
costs("ch03 sequence CE dz not zeroed on padding", "ch03",
      "ex_sequence_mean_cross_entropy",
      _ch03_ce("real / (N * lengths[:, None])").replace(
          "* weight[..., None]", "/ (N * lengths[:, None, None])"),
      {"test_sequence_ce_gradient_by_hand", "test_sequence_ce_gradient_check"})
costs("ch03 grad_check returns zeros", *GC, "return {name: 0.0 for name in params}",
      {"test_grad_check_correct_gradient", "test_grad_check_is_centred",
       "test_grad_check_finds_a_wrong_entry", "test_grad_check_restores_params"})
costs("ch03 grad_check restores by subtracting", *GC,
      MISTAKES["ch03 grad_check restores by subtracting"][2],
      {"test_grad_check_restores_params"})
costs("ch03 last_state_backward zeros", "ch03", "ex_last_state_backward", """
grads = rnn_backward(np.zeros_like(cache["rnn"]["h_seq"]), cache["rnn"])
grads = {k: np.zeros_like(v) for k, v in grads.items()}
out = affine_backward(dz, cache["out"])
grads["W_hy"], grads["b_y"] = np.zeros_like(out["W"]), np.zeros_like(out["b"])
return grads
""", {"test_last_state_padding_gets_nothing", "test_last_state_matches_autograd"})
costs("ch03 leaky fixes only the tanh bug", *LEAKY, _ch03_leaky(FIX3, BUG4),
      {PATH_TEST})
costs("ch03 leaky fixes only the leak path", *LEAKY, _ch03_leaky(BUG3, FIX4),
      {TANH_TEST})
costs("ch03 leaky hands in the buggy function", *LEAKY,
      "return leaky_rnn_backward_buggy(dh_seq, cache)", {TANH_TEST, PATH_TEST})
costs("ch03 leaky zeros", *LEAKY, """
p = cache["params"]
return {"x": np.zeros_like(cache["x"]), "h0": np.zeros_like(cache["h0"]),
        **{k: np.zeros_like(p[k]) for k in ("W_ih", "W_hh", "b_ih", "b_hh")}}
""", {TANH_TEST, PATH_TEST})
# The leak alone, with nothing through the tanh: the path through W_hh is unchecked
# unless something gets to da_t, so this earns nothing.
costs("ch03 leaky leak only, nothing through the tanh", *LEAKY, _ch03_leaky(
    "da[:, t] = 0 * du", "dh_prev = (1 - alpha) * dh"), {TANH_TEST, PATH_TEST})
costs("ch03 leaky leaks only dh_seq[:, t]", *LEAKY, _ch03_leaky(
    FIX3, 'dh_prev = (1 - alpha) * dh_seq[:, t] + da[:, t] @ p["W_hh"]'), {PATH_TEST})
costs("ch03 leaky forgets da @ W_hh", *LEAKY, _ch03_leaky(
    FIX3, "dh_prev = (1 - alpha) * dh"), {PATH_TEST})


# -- ch02 (cases for the hidden-test audit, /tmp/audit_hidden/REPORT.md) -----------
# F2, ch02 Part 2: a mistake only in the forward branch costs test_sequence_forward
# only (4 points before: the hidden half of test_sequence_reverse compared the
# forward pass too).
costs("ch02 rnn_sequence_packed forward branch stores the state before each step",
      "ch02", "ex_sequence_packed", """
T = x.shape[1]
h = h0
if reverse:
    states = [None] * T
    for t in range(T - 1, -1, -1):
        h = rnn_step_packed(x[:, t], h, W, b)
        states[t] = h
else:
    states = []
    for t in range(T):
        states.append(h)
        h = rnn_step_packed(x[:, t], h, W, b)
return np.stack(states, axis=1)
""", {"test_sequence_forward"})
costs("ch02 rnn_sequence_packed forward branch ignores h0", "ch02",
      "ex_sequence_packed", """
T = x.shape[1]
states = [None] * T
if reverse:
    h = h0
    for t in range(T - 1, -1, -1):
        h = rnn_step_packed(x[:, t], h, W, b)
        states[t] = h
else:
    h = np.zeros_like(h0)
    for t in range(T):
        h = rnn_step_packed(x[:, t], h, W, b)
        states[t] = h
return np.stack(states, axis=1)
""", {"test_sequence_forward"})

# F6, ch02 Part 1: a value mistake of rnn_step_packed costs test_step_packed_fixed
# only (2 points before: the hidden half of test_step_packed_random, a shapes and
# "leaves its inputs alone" cell, compared values too).
costs("ch02 rnn_step_packed without tanh", "ch02", "ex_packed_step", (None, """
return np.concatenate([x_t, h_prev], axis=1) @ W.T + b
"""), {"test_step_packed_fixed"})
costs("ch02 rnn_step_packed with [h_prev, x_t]", "ch02", "ex_packed_step", (None, """
return np.tanh(np.concatenate([h_prev, x_t], axis=1) @ W.T + b)
"""), {"test_step_packed_fixed"})
costs("ch02 rnn_step_packed forgets b", "ch02", "ex_packed_step", (None, """
return np.tanh(np.concatenate([x_t, h_prev], axis=1) @ W.T)
"""), {"test_step_packed_fixed"})
costs("ch02 rnn_step_packed adds b outside the tanh", "ch02", "ex_packed_step",
      (None, """
return np.tanh(np.concatenate([x_t, h_prev], axis=1) @ W.T) + b
"""), {"test_step_packed_fixed"})

_JORDAN = """
p = p0
probs = []
for t in range(x.shape[1]):
    h = np.tanh(x[:, t] @ params["W_ih"].T + params["b_ih"]
                + p @ params["W_yh"].T + params["b_hh"])
    logits = h @ params["W_hy"].T + params["b_y"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    probs.append(p)
return np.stack(probs, axis=1)
"""


def _ch02_jordan(correct: str, mistaken: str) -> str:
    """The solution's jordan_forward with one piece of it replaced."""
    assert correct in _JORDAN
    return _JORDAN.replace(correct, mistaken)


# F6, ch02 Part 4: a value mistake of jordan_forward costs the value cells, not
# test_jordan_random (a shapes and "leaves its inputs alone" cell, whose hidden half
# compared values: 3 points before for the logits fed back, 4 for the softmax over
# the batch and for p0 ignored).
JORDAN = ("ch02", "ex_jordan")
JORDAN_VALUES = {"test_jordan_fixed_case", "test_jordan_large_logits"}
costs("ch02 jordan_forward feeds back the logits", *JORDAN,
      _ch02_jordan("    probs.append(p)\n", "    probs.append(p)\n    p = logits\n"),
      {"test_jordan_fixed_case"})
costs("ch02 jordan_forward softmax over the batch axis", *JORDAN,
      _ch02_jordan("logits.max(axis=1, keepdims=True))\n    p = e / e.sum(axis=1,",
                   "logits.max())\n    p = e / e.sum(axis=0,"), JORDAN_VALUES)
costs("ch02 jordan_forward ignores p0", *JORDAN,
      _ch02_jordan("p = p0\n", "p = np.zeros_like(p0)\n"), JORDAN_VALUES)
# A value mistake, graded by the value cell (test_jordan_random before).
costs("ch02 jordan_forward forgets b_hh", *JORDAN,
      _ch02_jordan(' + params["b_hh"])', ")"), {"test_jordan_fixed_case"})

# F15, ch02 Part 5: a rate that never reads W_hh earns nothing (1 point before:
# test_decay_pure_leak, whose W_hh is 0).
costs("ch02 leaky_decay_rate returns 1 - mean(alpha)", "ch02", "ex_decay_rate",
      "return float(1 - np.mean(alpha))",
      {"test_decay_no_leak", "test_decay_pure_leak", "test_decay_negative_eigenvalue",
       "test_decay_rotation", "test_decay_per_unit"})

# F20, ch02 Part 3: the forward half kept at padded positions (the state is right,
# only not zeroed); the torch cell named stepping before.
BI = """
N, T, _ = x.shape
H = h0_fwd.shape[1]
valid = np.arange(T)[None, :] < np.asarray(lengths)[:, None]
h_seq = np.zeros((N, T, 2 * H))
h = h0_fwd
for t in range(T):
    keep = valid[:, t, None]
    h = np.where(keep, rnn_step_packed(x[:, t], h, *fwd), h)
    h_seq[:, t, :H] = np.where(keep, h, 0.0)
h = h0_bwd
for t in range(T - 1, -1, -1):
    keep = valid[:, t, None]
    {bwd_update}
    {bwd_store}
return h_seq
"""
BI_STEP = "h = np.where(keep, rnn_step_packed(x[:, t], h, *bwd), h)"
BI_ZEROED = "np.where(keep, h, 0.0)"
mistake("ch02 birnn_padded forward half not zeroed at padding", "ch02",
        "ex_birnn_padded",
        BI.format(bwd_update=BI_STEP, bwd_store=f"h_seq[:, t, H:] = {BI_ZEROED}")
        .replace(f"h_seq[:, t, :H] = {BI_ZEROED}", "h_seq[:, t, :H] = h"),
        {"test_birnn_padded_zero_at_padding":
         "the forward half is not 0 at padded positions"})

mistake("ch02 birnn_padded backward half not zeroed at padding", "ch02",
        "ex_birnn_padded",
        BI.format(bwd_update=BI_STEP, bwd_store="h_seq[:, t, H:] = h"),
        {"test_birnn_padded_zero_at_padding":
         "the backward half is not 0 at padded positions"})

# F23, ch02 Part 5: 1 - alpha + alpha * rho(W_hh) gives 1.0 for the rotation; its
# message spoke of eigvalsh only.
mistake("ch02 leaky_decay_rate shifts the spectral radius", "ch02", "ex_decay_rate", """
H = W_hh.shape[0]
alpha = np.broadcast_to(np.asarray(alpha, dtype=float), (H,))
return float(np.max(1 - alpha + alpha * np.abs(np.linalg.eigvals(W_hh)).max()))
""", {"test_decay_negative_eigenvalue": "(1 - alpha) + alpha * rho(W_hh)",
      "test_decay_rotation": "1 - alpha + alpha * rho(W_hh) moves the spectral radius",
      "test_decay_per_unit": "max(1 - alpha + alpha * rho(W_hh))"})


# Guards for the ch02 fixes: these pass on the old notebook too; they must still
# pass after (zeros and constants earn nothing, reverse mistakes cost the reverse
# cell only, the other messages unchanged).
costs("ch02 guard the solution itself", "ch02", "ex_packed_step", (None, None), set())
costs("ch02 guard step zeros", "ch02", "ex_packed_step",
      (None, "return np.zeros_like(h_prev)"),
      {"test_step_packed_fixed", "test_step_packed_random"})
costs("ch02 guard step returns h_prev", "ch02", "ex_packed_step",
      (None, "return h_prev.copy()"),
      {"test_step_packed_fixed", "test_step_packed_random"})
costs("ch02 guard step constant", "ch02", "ex_packed_step",
      (None, "return np.full((x_t.shape[0], W.shape[0]), 0.5)"),
      {"test_step_packed_fixed", "test_step_packed_random"})
costs("ch02 guard step raises", "ch02", "ex_packed_step",
      (None, "raise NotImplementedError()"),
      {"test_step_packed_fixed", "test_step_packed_random"})
costs("ch02 guard pack W_hh first", "ch02", "ex_packed_step", ("""
W = np.concatenate([params["W_hh"], params["W_ih"]], axis=1)
return W, params["b_ih"] + params["b_hh"]
""", None), {"test_pack_params"})
costs("ch02 guard pack zeros", "ch02", "ex_packed_step", ("""
H, D = params["W_ih"].shape
return np.zeros((H, D + H)), np.zeros(H)
""", None), {"test_pack_params"})
costs("ch02 guard sequence reverse in reading order", "ch02", "ex_sequence_packed", """
T = x.shape[1]
order = range(T - 1, -1, -1) if reverse else range(T)
states, h = [], h0
for t in order:
    h = rnn_step_packed(x[:, t], h, W, b)
    states.append(h)
return np.stack(states, axis=1)
""", {"test_sequence_reverse"})
costs("ch02 guard sequence ignores reverse", "ch02", "ex_sequence_packed", """
states, h = [], h0
for t in range(x.shape[1]):
    h = rnn_step_packed(x[:, t], h, W, b)
    states.append(h)
return np.stack(states, axis=1)
""", {"test_sequence_reverse"})
costs("ch02 guard sequence reverse branch ignores h0", "ch02", "ex_sequence_packed", """
T = x.shape[1]
states = [None] * T
h = np.zeros_like(h0) if reverse else h0
for t in (range(T - 1, -1, -1) if reverse else range(T)):
    h = rnn_step_packed(x[:, t], h, W, b)
    states[t] = h
return np.stack(states, axis=1)
""", {"test_sequence_reverse"})
costs("ch02 guard sequence zeros", "ch02", "ex_sequence_packed",
      "return np.zeros((x.shape[0], x.shape[1], h0.shape[1]))",
      {"test_sequence_forward", "test_sequence_reverse"})
costs("ch02 guard sequence h0 repeated", "ch02", "ex_sequence_packed",
      "return np.repeat(h0[:, None], x.shape[1], axis=1)",
      {"test_sequence_forward", "test_sequence_reverse"})
costs("ch02 guard jordan no max shift", "ch02", "ex_jordan",
      _ch02_jordan("logits - logits.max(axis=1, keepdims=True)", "logits"),
      {"test_jordan_large_logits"})
J3 = {"test_jordan_fixed_case", "test_jordan_large_logits", "test_jordan_random"}
costs("ch02 guard jordan zeros", "ch02", "ex_jordan",
      "return np.zeros((x.shape[0], x.shape[1], p0.shape[1]))", J3)
costs("ch02 guard jordan uniform", "ch02", "ex_jordan",
      "return np.full((x.shape[0], x.shape[1], p0.shape[1]), 1.0 / p0.shape[1])", J3)
costs("ch02 guard jordan p0 repeated", "ch02", "ex_jordan",
      "return np.repeat(p0[:, None], x.shape[1], axis=1)", J3)
costs("ch02 guard jordan raises", "ch02", "ex_jordan", "raise NotImplementedError()",
      J3)
costs("ch02 guard jordan softmax of p0 only", "ch02", "ex_jordan", """
e = np.exp(p0 - p0.max(axis=1, keepdims=True))
p = e / e.sum(axis=1, keepdims=True)
return np.repeat(p[:, None], x.shape[1], axis=1)
""", J3)
DR = """
H = W_hh.shape[0]
alpha = np.broadcast_to(np.asarray(alpha, dtype=float), (H,))
M = {M}
return {ret}
"""
costs("ch02 guard decay eigvalsh", "ch02", "ex_decay_rate",
      DR.format(M="np.diag(1 - alpha) + alpha[:, None] * W_hh",
                ret="float(np.abs(np.linalg.eigvalsh(M)).max())"),
      {"test_decay_rotation", "test_decay_per_unit"})
mistake("ch02 guard decay eigvalsh message", "ch02", "ex_decay_rate",
        DR.format(M="np.diag(1 - alpha) + alpha[:, None] * W_hh",
                  ret="float(np.abs(np.linalg.eigvalsh(M)).max())"),
        {"test_decay_rotation": "eigvalsh",
         "test_decay_per_unit": "expected 0.728262910980607 (to 1e-9)"})
costs("ch02 guard decay mean alpha", "ch02", "ex_decay_rate",
      DR.format(M="(1 - alpha.mean()) * np.eye(H) + alpha.mean() * W_hh",
                ret="float(np.abs(np.linalg.eigvals(M)).max())"),
      {"test_decay_per_unit"})
costs("ch02 guard decay real part", "ch02", "ex_decay_rate",
      DR.format(M="np.diag(1 - alpha) + alpha[:, None] * W_hh",
                ret="float(np.linalg.eigvals(M).real.max())"),
      {"test_decay_rotation", "test_decay_per_unit"})
costs("ch02 guard decay alpha on the columns (valid)", "ch02", "ex_decay_rate",
      DR.format(M="np.diag(1 - alpha) + W_hh * alpha",
                ret="float(np.abs(np.linalg.eigvals(M)).max())"), set())
costs("ch02 guard decay returns 0", "ch02", "ex_decay_rate", "return 0.0",
      {"test_decay_no_leak", "test_decay_pure_leak", "test_decay_negative_eigenvalue",
       "test_decay_rotation", "test_decay_per_unit"})
BU = "h = np.where(keep, rnn_step_packed(x[:, t], h, *bwd), h)"
BS = "h_seq[:, t, H:] = np.where(keep, h, 0.0)"
mistake("ch02 guard birnn backward steps through padding", "ch02", "ex_birnn_padded",
        BI.format(bwd_update="h = rnn_step_packed(x[:, t], h, *bwd)", bwd_store=BS),
        {"test_birnn_padded_backward": "has read padding"})
mistake("ch02 guard birnn backward reset to 0", "ch02", "ex_birnn_padded",
        BI.format(bwd_update=(
            "h = np.where(keep, rnn_step_packed(x[:, t], h, *bwd), 0.0)"),
                  bwd_store=BS),
        {"test_birnn_padded_backward": "backward unit 0 at the valid steps is"})


# -- ch02 Part 3 graded on Part 3 alone, one idea a cell (/tmp/learner12, 1 and 8) -----
# A Part 3 that calls the learner's own rnn_sequence_packed for its forward half is
# right; the tests swap in a stand-in for it as for rnn_step_packed, so a Part 2 bug
# costs Part 2 only (it cost test_birnn_padded_forward and _torch too, and their
# messages blamed the padding).
BI_REUSES_PART2 = """
N, T, _ = x.shape
H = h0_fwd.shape[1]
valid = np.arange(T)[None, :] < np.asarray(lengths)[:, None]
h_seq = np.zeros((N, T, 2 * H))
h_seq[..., :H] = np.where(valid[..., None], rnn_sequence_packed(x, h0_fwd, *fwd), 0.0)
h = h0_bwd
for t in range(T - 1, -1, -1):
    keep = valid[:, t, None]
    h = np.where(keep, rnn_step_packed(x[:, t], h, *bwd), h)
    h_seq[:, t, H:] = np.where(keep, h, 0.0)
return h_seq
"""
PART2_BUGS = {
    "stores the state before each step": """
T = x.shape[1]
states, h = [None] * T, h0
for t in range(T - 1, -1, -1) if reverse else range(T):
    states[t] = h
    h = rnn_step_packed(x[:, t], h, W, b)
return np.stack(states, axis=1)
""",
    "reshapes a (T, N, H) stack": """
T = x.shape[1]
states, h = [None] * T, h0
for t in range(T - 1, -1, -1) if reverse else range(T):
    h = rnn_step_packed(x[:, t], h, W, b)
    states[t] = h
return np.array(states).reshape(x.shape[0], T, h0.shape[1])
""",
}
PART2_CELLS = {"test_sequence_forward", "test_sequence_reverse"}
mistake("ch02 birnn_padded calls rnn_sequence_packed (valid)", "ch02",
        "ex_birnn_padded", BI_REUSES_PART2, {})
costs("ch02 birnn_padded calls rnn_sequence_packed (valid)", "ch02",
      "ex_birnn_padded", BI_REUSES_PART2, set())


@pytest.mark.parametrize("bug", sorted(PART2_BUGS))
def test_ch02_a_part2_bug_costs_part2_only_when_part3_calls_part2(bug):
    answers = {"ex_sequence_packed": PART2_BUGS[bug],
               "ex_birnn_padded": BI_REUSES_PART2}
    for hidden in (False, True):
        results = run_visible("ch02", answers, hidden=hidden)
        failed = {k for k, v in results.items() if v}
        assert failed == PART2_CELLS, (bug, hidden, failed)


# One idea, one cell: off by one in the mask reads one padded step (the backward
# half) and keeps it (the zeros), but the forward half at valid steps is right.
BI_RIGHT = BI.format(bwd_update=BU, bwd_store=BS)
BI_LE = BI_RIGHT.replace("< np.asarray(lengths)", "<= np.asarray(lengths)")
mistake("ch02 birnn_padded valid = t <= lengths", "ch02", "ex_birnn_padded", BI_LE,
        dict.fromkeys(["test_birnn_padded_backward",
                       "test_birnn_padded_zero_at_padding"], "not t <= lengths[n]"))
costs("ch02 birnn_padded valid = t <= lengths", "ch02", "ex_birnn_padded", BI_LE,
      {"test_birnn_padded_backward", "test_birnn_padded_zero_at_padding"})
# The visible batch has N = 3, H = 2: a mask of shape (N,) is a named shape error
# (with N = H = 3 it broadcast over the units and was blamed on the padding). It
# breaks every row-by-row decision, so every cell of the part fails.
BI_FLAT_MASK = BI_RIGHT.replace("valid[:, t, None]", "valid[:, t]")
mistake("ch02 birnn_padded mask of shape (N,)", "ch02", "ex_birnn_padded",
        BI_FLAT_MASK, dict.fromkeys(["test_birnn_padded_forward",
                                     "test_birnn_padded_backward",
                                     "test_birnn_padded_zero_at_padding"],
                                    "a mask of shape (N,)"))
# Each mistake below costs its own idea's cell, hidden tests included.
costs("ch02 birnn_padded forward half not zeroed at padding", "ch02",
      "ex_birnn_padded", BI_RIGHT.replace(f"h_seq[:, t, :H] = {BI_ZEROED}",
                                          "h_seq[:, t, :H] = h"),
      {"test_birnn_padded_zero_at_padding"})
costs("ch02 birnn_padded zeroes the padding and steps through it", "ch02",
      "ex_birnn_padded", MISTAKES[
          "ch02 birnn_padded zeroes the padding and steps through it"][2],
      {"test_birnn_padded_backward"})
costs("ch02 birnn_padded backward with fwd", "ch02", "ex_birnn_padded",
      BI.format(bwd_update=BU.replace("*bwd", "*fwd"), bwd_store=BS),
      {"test_birnn_padded_backward"})
costs("ch02 birnn_padded returns zeros", "ch02", "ex_birnn_padded",
      "return np.zeros((x.shape[0], x.shape[1], 2 * h0_fwd.shape[1]))",
      {"test_birnn_padded_forward", "test_birnn_padded_backward",
       "test_birnn_padded_zero_at_padding"})


# -- ch05 (audit of the hidden halves, /tmp/audit_hidden/REPORT.md) ------------------
def _ch05_jacobian(blocks='np.split(cache["params"]["W_hh"], 4)',
                   gterm="\n            + (i * (1 - g * g))[:, None] * W_hg",
                   croute=" + h_from_c_new[:, None] * c_from_h",
                   ret="[[h_from_h, np.diag(h_from_c_new * f)],"
                       " [c_from_h, np.diag(f)]]"):
    """The solution's lstm_step_jacobian with one piece changed."""
    return f"""
i, f, g, o = np.split(cache["gates"][0], 4)
H = i.shape[0]
c_prev, tanh_c = cache["c_prev"][0], cache["tanh_c"][0]
W_hi, W_hf, W_hg, W_ho = {blocks}
c_from_h = ((c_prev * f * (1 - f))[:, None] * W_hf
            + (g * i * (1 - i))[:, None] * W_hi{gterm})
h_from_c_new = o * (1 - tanh_c * tanh_c)
h_from_h = (tanh_c * o * (1 - o))[:, None] * W_ho{croute}
return np.block({ret})
"""


def _ch05_count(b="2", recurrent="P", projection="P * H if proj_size else 0"):
    """The solution's count_params with another bias count, number of W_hh columns
    or size of W_proj."""
    return f"""
blocks = {{"rnn": 1, "gru": 3, "lstm": 4}}
P = proj_size or H
per_block = H * D + H * {recurrent} + {b} * H
return blocks[cell] * per_block + ({projection})
"""


# A learner's own copy of the LSTM step, run on the inputs in the cache: what
# finite differences and the complex step differentiate.
_CH05_OWN_STEP = """
x_t, h_prev, c_prev = cache["x_t"][0], cache["h_prev"][0], cache["c_prev"][0]
params = cache["params"]
H = h_prev.shape[0]


def sig(v):  # rnnlib.sigmoid takes |v|, which a complex step cannot pass through
    return 1 / (1 + np.exp(-v))


def step(state):
    h, c = state[:H], state[H:]
    a = params["W_ih"] @ x_t + params["b_ih"] + params["W_hh"] @ h + params["b_hh"]
    i, f = sig(a[:H]), sig(a[H : 2 * H])
    g, o = np.tanh(a[2 * H : 3 * H]), sig(a[3 * H :])
    c_new = f * c + i * g
    return np.concatenate([o * np.tanh(c_new), c_new])

state = np.concatenate([h_prev, c_prev])
"""


def _ch05_numerical_jacobian(eps):
    """A learner's lstm_step_jacobian by centred differences of their own step."""
    return _CH05_OWN_STEP + f"""
J = np.zeros((2 * H, 2 * H))
for b in range(2 * H):
    e = np.zeros(2 * H)
    e[b] = {eps}
    J[:, b] = (step(state + e) - step(state - e)) / (2 * {eps})
return J
"""


def _ch05_memory(share):
    return f"""
final = write_weights(i_seq, f_seq, i_seq.shape[0] - 1)
marked = np.asarray(marked)
share = {share}
return int(np.argmax(share))
"""


LJ5 = ("ch05", "ex_lstm_step_jacobian")
# F1: a mistake only in dc_t/dc_prev costs test_jacobian_cell_path (1 point), not
# 5/5: the hidden halves of the next three cells used helpers that the cell-path
# cell defined after its visible asserts (NameError: JACOBIAN_CASES).
costs("ch05 lstm_step_jacobian dc/dc_prev = identity (the carousel copies c)", *LJ5,
      _ch05_jacobian(ret="[[h_from_h, np.diag(h_from_c_new * f)],"
                         " [c_from_h, np.eye(H)]]"),
      {"test_jacobian_cell_path"})
costs("ch05 lstm_step_jacobian dc/dc_prev = diag(f * c_prev)", *LJ5,
      _ch05_jacobian(ret="[[h_from_h, np.diag(h_from_c_new * f)],"
                         " [c_from_h, np.diag(f * c_prev)]]"),
      {"test_jacobian_cell_path"})
# ... and a mistake in one other block costs only that block's cell (these three
# passed before too: they guard the move of the helpers).
costs("ch05 lstm_step_jacobian dh/dc_prev misses the factor f", *LJ5,
      _ch05_jacobian(ret="[[h_from_h, np.diag(h_from_c_new)],"
                         " [c_from_h, np.diag(f)]]"),
      {"test_jacobian_h_from_c"})
costs("ch05 lstm_step_jacobian returns dc/dh_prev transposed", *LJ5,
      _ch05_jacobian(ret="[[h_from_h, np.diag(h_from_c_new * f)],"
                         " [c_from_h.T, np.diag(f)]]"),
      {"test_jacobian_c_from_h"})
costs("ch05 lstm_step_jacobian dh/dh_prev only through o", *LJ5,
      _ch05_jacobian(croute=""), {"test_jacobian_h_from_h"})
# F22: the messages name transposed W_h* blocks, and h_from_h says "add both" only
# where a route is missing.
mistake("ch05 lstm_step_jacobian transposes every W_h* block", *LJ5,
        _ch05_jacobian(blocks='[w.T for w in np.split(cache["params"]["W_hh"], 4)]'),
        dict.fromkeys(["test_jacobian_c_from_h", "test_jacobian_h_from_h"],
                      "right only where every W_h* block is symmetric"))
mistake("ch05 lstm_step_jacobian dc/dh_prev misses the candidate's term", *LJ5,
        _ch05_jacobian(gterm=""),
        {"test_jacobian_c_from_h": "one term for each"})
# rev12 F1: a mistake in dc_t/dh_prev alone cost 3 of 5 points before, because
# test_jacobian_h_from_h (2 points) compared J[:H, :H] with autograd's whole block,
# whose route through c_t the learner builds from their own J[H:, :H]. That cell now
# also accepts autograd's route through o_t plus dh_t/dc_t times the learner's own
# J[H:, :H]: one mistake, one cell (1 point).
C_FROM_H_SLIPS = {
    "misses the candidate's term": _ch05_jacobian(gterm=""),
    "writes g' as g(1 - g)": _ch05_jacobian(
        gterm="\n            + (i * g * (1 - g))[:, None] * W_hg"),
    "misses the forget gate's term": _ch05_jacobian().replace(
        "((c_prev * f * (1 - f))[:, None] * W_hf\n            + ", "("),
}
for _slip, _code in C_FROM_H_SLIPS.items():
    costs(f"ch05 lstm_step_jacobian dc/dh_prev {_slip}", *LJ5, _code,
          {"test_jacobian_c_from_h"})
# ... which admits no route through o_t alone: with J[H:, :H] = 0 as well, both
# cells still fail.
_CH05_O_ROUTE_AND_ZERO = _ch05_jacobian(
    croute="", ret="[[h_from_h, np.diag(h_from_c_new * f)],"
                   " [np.zeros((H, H)), np.diag(f)]]")
costs("ch05 lstm_step_jacobian dh/dh_prev only through o, dc/dh_prev = 0", *LJ5,
      _CH05_O_ROUTE_AND_ZERO, {"test_jacobian_c_from_h", "test_jacobian_h_from_h"})
mistake("ch05 lstm_step_jacobian dh/dh_prev only through o, dc/dh_prev = 0", *LJ5,
        _CH05_O_ROUTE_AND_ZERO, {"test_jacobian_c_from_h": "it is diagonal",
                                 "test_jacobian_h_from_h": "add the route through c_t"})
# A wrong dc/dh_prev with a wrong route through o_t still fails dh/dh_prev.
costs("ch05 lstm_step_jacobian dc/dh_prev and the o route both miss a term", *LJ5,
      _ch05_jacobian(gterm="").replace("(tanh_c * o * (1 - o))", "(tanh_c * o)"),
      {"test_jacobian_c_from_h", "test_jacobian_h_from_h"})
mistake("ch05 lstm_step_jacobian dh/dh_prev only through o (message)", *LJ5,
        _ch05_jacobian(croute=""),
        {"test_jacobian_h_from_h": "add the route through c_t"})
# Learner review, problem 1: a Jacobian by centred differences passed every visible
# test (centred differences, 1e-6) and then lost all 5 points to the hidden ones
# (autograd, 1e-10), whose messages did not say why. The visible tests now use the
# hidden tests' oracle and tolerance (autograd, 1e-12), and name finite differences.
# For eps from 1e-8 to 1e-4 every block of the visible case is off by 1.1e-12 to
# 1.4e-6, and every block fails its hidden test as well.
JACOBIAN_CELLS = ["test_jacobian_cell_path", "test_jacobian_h_from_c",
                  "test_jacobian_c_from_h", "test_jacobian_h_from_h"]
for _eps in ("1e-4", "1e-5", "1e-6", "1e-7"):
    mistake(f"ch05 lstm_step_jacobian by centred differences, eps = {_eps}", *LJ5,
            _ch05_numerical_jacobian(_eps),
            dict.fromkeys(JACOBIAN_CELLS, "the accuracy of finite differences"))
    costs(f"ch05 lstm_step_jacobian by centred differences, eps = {_eps}", *LJ5,
          _ch05_numerical_jacobian(_eps), set(JACOBIAN_CELLS))
# With eps = 1e-3 the cell path, which is linear in c_prev, is exact to within
# 2.8e-13 in every case and passed, visible and hidden alike, while the other
# three blocks failed. lstm_step_jacobian now takes the step's cache, and every
# cell also hands it a cache whose gates did not come from its inputs: the exact
# cell path, read off a step of the learner's own, fails there.
mistake("ch05 lstm_step_jacobian by centred differences, eps = 1e-3", *LJ5,
        _ch05_numerical_jacobian("1e-3"),
        {"test_jacobian_cell_path": "must read the gates from the cache",
         **dict.fromkeys(JACOBIAN_CELLS[1:], "the accuracy of finite differences")})
costs("ch05 lstm_step_jacobian by centred differences, eps = 1e-3", *LJ5,
      _ch05_numerical_jacobian("1e-3"), set(JACOBIAN_CELLS))
# (cstep) The complex step of a step copied into the answer cell is exact to
# rounding (1e-16), and so is a 7-point stencil in long double with a step of
# 1e-3: with lstm_step_jacobian(x_t, h_prev, c_prev, params) both earned 5/5 under
# sealed grading (21/21 in all), and the float64 stencil 2/5. Each cell's cache
# whose gates did not come from x_t and h_prev (a term added to every
# pre-activation) now fails all three, and a derivation that recomputes the gates
# from the inputs, against the part's stated requirement, costs the part too.
_CH05_COMPLEX_JACOBIAN = _CH05_OWN_STEP + """
J = np.zeros((2 * H, 2 * H))
for b in range(2 * H):
    e = np.zeros(2 * H, dtype=complex)
    e[b] = 1e-20j
    J[:, b] = step(state + e).imag / 1e-20
return J
"""
_CH05_LONG_DOUBLE_JACOBIAN = _CH05_OWN_STEP.replace(
    'params = cache["params"]',
    'params = {k: v.astype(np.longdouble) for k, v in cache["params"].items()}'
    "\nx_t = x_t.astype(np.longdouble)") + """
state = state.astype(np.longdouble)
J = np.zeros((2 * H, 2 * H))
for b in range(2 * H):
    e = np.zeros(2 * H, dtype=np.longdouble)
    e[b] = np.longdouble("1e-3")
    J[:, b] = (45 * (step(state + e) - step(state - e))
               - 9 * (step(state + 2 * e) - step(state - 2 * e))
               + (step(state + 3 * e) - step(state - 3 * e))) / (60 * e[b])
return J
"""
for _label, _code in (("by the complex step of its own step", _CH05_COMPLEX_JACOBIAN),
                      ("by a long-double 7-point stencil of its own step",
                       _CH05_LONG_DOUBLE_JACOBIAN)):
    cheat(f"ch05 lstm_step_jacobian {_label}", *LJ5, _code,
          dict.fromkeys(JACOBIAN_CELLS, "must read the gates from the cache"))
    costs(f"ch05 lstm_step_jacobian {_label}", *LJ5, _code, set(JACOBIAN_CELLS))
# rev12 F3: J with a leading batch axis, (1, 2H, 2H). Before, test_jacobian_h_from_c
# and _h_from_h stopped on NumPy's "operands could not be broadcast together", and
# test_jacobian_c_from_h blamed the cache ("must read the gates from the cache"):
# its [H:, :H] of a 3-D array was empty. Every cell now names the shape first.
_CH05_JACOBIAN_BATCHED = _ch05_jacobian().rstrip() + "[None]\n"
mistake("ch05 lstm_step_jacobian returns J of shape (1, 2H, 2H)", *LJ5,
        _CH05_JACOBIAN_BATCHED,
        dict.fromkeys(JACOBIAN_CELLS, "J has shape (1, 8, 8); expected (2H, 2H)"))
costs("ch05 lstm_step_jacobian returns J of shape (1, 2H, 2H)", *LJ5,
      _CH05_JACOBIAN_BATCHED, set(JACOBIAN_CELLS))
# rev12 F6: the cached gates taken for pre-activations; F7: a J laid out (c, h).
# Each still fails every cell (every block is wrong), but every cell now names the
# mistake; before, three of the four gave a generic hint for their own block.
_CH05_LAYOUT_SLIPS = {
    "activates the cached gates again": (_ch05_jacobian().replace(
        'i, f, g, o = np.split(cache["gates"][0], 4)',
        'i, f, g, o = np.split(cache["gates"][0], 4)\n'
        "i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)"),
        "holds the activated gates"),
    "orders the rows c_t then h_t": (_ch05_jacobian(
        ret="[[c_from_h, np.diag(f)], [h_from_h, np.diag(h_from_c_new * f)]]"),
        "your J has its rows c_t then h_t"),
    "orders the columns c_prev then h_prev": (_ch05_jacobian(
        ret="[[np.diag(h_from_c_new * f), h_from_h], [np.diag(f), c_from_h]]"),
        "your J has its columns c_prev then h_prev"),
}
for _slip, (_code, _phrase) in _CH05_LAYOUT_SLIPS.items():
    mistake(f"ch05 lstm_step_jacobian {_slip}", *LJ5, _code,
            dict.fromkeys(JACOBIAN_CELLS, _phrase))
    costs(f"ch05 lstm_step_jacobian {_slip}", *LJ5, _code, set(JACOBIAN_CELLS))
# Both orders (c, h): test_jacobian_cell_path sees diag(f_t) in J[:H, :H] first.
_CH05_BOTH_SWAPPED = _ch05_jacobian(
    ret="[[np.diag(f), c_from_h], [np.diag(h_from_c_new * f), h_from_h]]")
mistake("ch05 lstm_step_jacobian orders rows and columns (c, h)", *LJ5,
        _CH05_BOTH_SWAPPED,
        {"test_jacobian_cell_path": "the rows for h_t come first",
         **dict.fromkeys(JACOBIAN_CELLS[1:], "rows and columns c first, then h")})
_CH05_JACOBIAN_RECOMPUTES = """
x_t, h_prev, c_prev = cache["x_t"][0], cache["h_prev"][0], cache["c_prev"][0]
params = cache["params"]
H = h_prev.shape[0]
a = params["W_ih"] @ x_t + params["b_ih"] + params["W_hh"] @ h_prev + params["b_hh"]
i, f = sigmoid(a[:H]), sigmoid(a[H : 2 * H])
g, o = np.tanh(a[2 * H : 3 * H]), sigmoid(a[3 * H :])
tanh_c = np.tanh(f * c_prev + i * g)
W_hi, W_hf, W_hg, W_ho""" + _ch05_jacobian().split("W_hi, W_hf, W_hg, W_ho", 1)[1]
mistake("ch05 lstm_step_jacobian recomputes the gates from x_t and h_prev", *LJ5,
        _CH05_JACOBIAN_RECOMPUTES,
        dict.fromkeys(JACOBIAN_CELLS, "must read the gates from the cache"))
costs("ch05 lstm_step_jacobian recomputes the gates from x_t and h_prev", *LJ5,
      _CH05_JACOBIAN_RECOMPUTES, set(JACOBIAN_CELLS))
# Valid: tanh(c_t) rebuilt from the cached gates and c_prev, not read from the cache.
costs("ch05 lstm_step_jacobian rebuilds tanh(c_t) from the cached gates (valid)",
      *LJ5, _ch05_jacobian().replace(
          'tanh_c = cache["c_prev"][0], cache["tanh_c"][0]',
          'tanh_c = cache["c_prev"][0], np.tanh(f * cache["c_prev"][0] + i * g)'),
      set())

CP5 = ("ch05", "ex_count_params")
# Learner review, problem 5: the counts of the chapter's cells and variants, printed
# in the chapter, earned 3 of Part 3's 4 points. count_params now earns its 2 points
# on an LSTM with a projection, which the chapter does not count; the chapter's
# cells are checked first, in the same cell, with the messages they had.
costs("ch05 count_params always one bias", *CP5, (_ch05_count(b="1"), None),
      {"test_count_params_projection"})
mistake("ch05 count_params always one bias (message)", *CP5, (_ch05_count(b="1"), None),
        {"test_count_params_projection": "one bias vector per block"})
mistake("ch05 count_params ignores proj_size", *CP5,
        (_ch05_count(recurrent="H", projection="0"), None),
        {"test_count_params_projection": "proj_size changes the count"})
mistake("ch05 count_params keeps W_hh at (4H, H)", *CP5,
        (_ch05_count(recurrent="H"), None),
        {"test_count_params_projection": "so W_hh has P columns"})
mistake("ch05 count_params leaves W_proj out", *CP5,
        (_ch05_count(projection="0"), None),
        {"test_count_params_projection": "is a parameter too"})
mistake("ch05 count_params left blank", *CP5, ("raise NotImplementedError()", None),
        {"test_count_params_projection": "NotImplementedError"})
costs("ch05 count_params leaves W_proj out", *CP5,
      (_ch05_count(projection="0"), None), {"test_count_params_projection"})
costs("ch05 count_params projects to (H, P)", *CP5,
      (_ch05_count(projection="P * P if proj_size else 0"), None),
      {"test_count_params_projection"})
# F16: a tie fits the budget; `<` passed every test before.
_ch05_matched_lt = """
budget = count_params("lstm", D, H_lstm)
H = 0
while count_params("gru", D, H + 1) < budget:
    H += 1
return H
"""
costs("ch05 matched_gru_size with < instead of <=", *CP5, (None, _ch05_matched_lt),
      {"test_matched_gru_size"})
mistake("ch05 matched_gru_size with < instead of <= (message)", *CP5,
        (None, _ch05_matched_lt), {"test_matched_gru_size": "a tie fits"})

WW5 = ("ch05", "ex_write_weights")
# F17: ranking by the input gates alone (the forget gates ignored) passed every test.
_ch05_input_share = _ch05_memory("i_seq[marked == 1].sum(axis=0) / i_seq.sum(axis=0)")
costs("ch05 memory_unit ranks by the input gates alone", *WW5,
      (None, _ch05_input_share), {"test_memory_unit"})
mistake("ch05 memory_unit ranks by the input gates alone (message)", *WW5,
        (None, _ch05_input_share), {"test_memory_unit": "forget gate"})


# Guards for ch05 (pass before and after the fixes): non-working answers still earn
# nothing of their part once the variants cell compares CIFG with the learner's own
# LSTM count and the memory cell has a second made-up pair.
costs("ch05 count_params returns 0", "ch05", "ex_count_params",
      ("return 0", None), {"test_count_params_projection"})
costs("ch05 count_params counts blocks only", "ch05", "ex_count_params",
      ('return {"rnn": 1, "gru": 3, "lstm": 4}[cell]', None),
      {"test_count_params_projection"})
costs("ch05 count_params and matched_gru_size left blank", "ch05", "ex_count_params",
      ("raise NotImplementedError()", "raise NotImplementedError()"),
      {"test_count_params_projection", "test_matched_gru_size"})
costs("ch05 matched_gru_size returns H_lstm", "ch05", "ex_count_params",
      (None, "return H_lstm"), {"test_matched_gru_size"})
costs("ch05 lstm_step_jacobian zeros", "ch05", "ex_lstm_step_jacobian",
      "return np.zeros((2 * cache['c_prev'].shape[1],) * 2)",
      {"test_jacobian_cell_path", "test_jacobian_h_from_c", "test_jacobian_c_from_h",
       "test_jacobian_h_from_h"})
costs("ch05 lstm_step_jacobian identity", "ch05", "ex_lstm_step_jacobian",
      "return np.eye(2 * cache['c_prev'].shape[1])",
      {"test_jacobian_cell_path", "test_jacobian_h_from_c", "test_jacobian_c_from_h",
       "test_jacobian_h_from_h"})
costs("ch05 memory_unit returns 0", "ch05", "ex_write_weights", (None, "return 0"),
      {"test_memory_unit"})
costs("ch05 memory_unit returns 1", "ch05", "ex_write_weights", (None, "return 1"),
      {"test_memory_unit"})
costs("ch05 write_weights and memory_unit left blank", "ch05", "ex_write_weights",
      ("raise NotImplementedError()", "raise NotImplementedError()"),
      {"test_write_weights_by_hand", "test_write_weights_rebuild_cell",
       "test_memory_unit"})


# -- ch06 Part 2, packed_lstm: rows left in the sorted order (hidden halves run) -----
costs("ch06 packed_lstm sorts the batch and does not unsort it", *_CH06_P2,
      _CH06_SORTED_BY_HAND,
      {"test_packed_lstm_final_states", "test_packed_lstm_outputs"})
costs("ch06 packed_lstm returns h_seq in the sorted order", *_CH06_P2,
      _CH06_SORTED_H_SEQ, {"test_packed_lstm_outputs"})


# -- ch06 Part 3, keras_bigru_to_torch: a mistake in the layers above the first ----
def _ch06_bigru_to_torch(first="6 * layer + 3 * direction", bias_ih="bias[0]"):
    """The solution's keras_bigru_to_torch with another array offset or bias_ih."""
    return f"""
state = {{}}
for layer in range(num_layers):
    for direction, suffix in enumerate(("", "_reverse")):
        first = {first}
        kernel, recurrent, bias = (np.asarray(a) for a in weights[first : first + 3])
        H = recurrent.shape[0]
        blocks = np.concatenate([np.arange(H, 2 * H), np.arange(H),
                                 np.arange(2 * H, 3 * H)])
        tag = f"l{{layer}}{{suffix}}"
        state[f"weight_ih_{{tag}}"] = kernel.T[blocks]
        state[f"weight_hh_{{tag}}"] = recurrent.T[blocks]
        state[f"bias_ih_{{tag}}"] = {bias_ih}[blocks]
        state[f"bias_hh_{{tag}}"] = bias[1][blocks]
return state
"""


# F8: every *_l0 array is right; before, test_bigru_first_layer_forward checked the
# shapes of every layer and failed too (5/5; then 3/5, and 4/5 since the whole-model
# test carries 3 of Part 3's 5 points and the first layer 1).
costs("ch06 keras_bigru_to_torch reads 3 * layer (layers above the first wrong)",
      "ch06", "ex_keras_bigru_to_torch",
      _ch06_bigru_to_torch(first="3 * layer + 3 * direction"),
      {"test_bigru_names_and_shapes", "test_bigru_whole_model"})
mistake("ch06 keras_bigru_to_torch reads 3 * layer, visible", "ch06",
        "ex_keras_bigru_to_torch",
        _ch06_bigru_to_torch(first="3 * layer + 3 * direction"),
        {"test_bigru_names_and_shapes": "weight_ih_l1 has shape",
         "test_bigru_whole_model": "weight_ih_l1 has shape"})

# F13: zeros (or fresh random numbers) of the right shapes, Keras's weights left
# alone, earned test_bigru_names_and_shapes (1/5); now nothing.
_CH06_BIGRU_FILLED = """
state = {{}}
for layer in range(num_layers):
    for direction, suffix in enumerate(("", "_reverse")):
        kernel, recurrent, bias = weights[6 * layer + 3 * direction :][:3]
        tag = f"l{{layer}}{{suffix}}"
        state[f"weight_ih_{{tag}}"] = {fill}(np.shape(kernel)[::-1])
        state[f"weight_hh_{{tag}}"] = {fill}(np.shape(recurrent)[::-1])
        state[f"bias_ih_{{tag}}"] = {fill}(np.shape(bias)[1])
        state[f"bias_hh_{{tag}}"] = {fill}(np.shape(bias)[1])
return state
"""
costs("ch06 keras_bigru_to_torch returns zeros of the right shapes", "ch06",
      "ex_keras_bigru_to_torch", _CH06_BIGRU_FILLED.format(fill="np.zeros"),
      {"test_bigru_names_and_shapes", "test_bigru_first_layer_forward",
       "test_bigru_whole_model"})
costs("ch06 keras_bigru_to_torch returns random arrays of the right shapes", "ch06",
      "ex_keras_bigru_to_torch",
      _CH06_BIGRU_FILLED.format(fill="np.random.default_rng().standard_normal"),
      {"test_bigru_names_and_shapes", "test_bigru_first_layer_forward",
       "test_bigru_whole_model"})
mistake("ch06 keras_bigru_to_torch returns zeros of the right shapes, visible", "ch06",
        "ex_keras_bigru_to_torch", _CH06_BIGRU_FILLED.format(fill="np.zeros"),
        {"test_bigru_names_and_shapes": "does not follow Keras's weights",
         "test_bigru_first_layer_forward": "differs from the forward GRU",
         "test_bigru_whole_model": "differ from the Keras model's"})

# -- ch06 Part 5, train_above_first (build: the chapter prints the loop and the loss) --
# Review of Part 5 (F2): its training is the chapter's printed code, so it is build
# and small (2 points); real_step_weights, which named the answer, is gone, and with
# it the wrong-weights case that cost the accuracy cell too (F5) and the visible
# weights test that printed the answer (F8).
_CH06_P5 = ("ch06", "ex_train_above_first")
_CH06_SEEDED = "test_training_is_seeded"
_CH06_ACCURACY = "test_training_reaches_98_percent"
_CH06_MASKED = ("(nn.functional.cross_entropy(head(outputs).transpose(1, 2), "
                "targets[rows], reduction='none')[torch.arange(ids.shape[1])[None, :] "
                "< seq_lengths[rows][:, None]]).mean()")


def _ch06_train(loss=_CH06_MASKED, outputs="gru(embed(ids[rows]))[0]", lr="1e-2"):
    """A train_above_first whose GRU outputs are `outputs` and whose loss is `loss`.

    It uses the scaffold's given tensors ids, seq_lengths and targets, so it runs
    only while the given lengths tensor keeps a name that num_steps (a count of
    optimiser steps) cannot be mistaken for; it was `steps` (walkthrough walk06)."""
    return f"""
torch.manual_seed(seed)
sampler = torch.Generator().manual_seed(seed)
embed, gru = nn.Embedding(10, 8), nn.GRU(8, 32, batch_first=True)
head = nn.Linear(32, 2)
weights = [*embed.parameters(), *gru.parameters(), *head.parameters()]
optimizer = torch.optim.Adam(weights, lr={lr})
for _ in range(num_steps):
    rows = torch.randint(0, len(seq_lengths), (64,), generator=sampler)
    outputs = {outputs}
    loss = {loss}
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(weights, 1.0)
    optimizer.step()
return {{"embedding": embed.weight.detach().numpy().copy(), **params_from_torch(gru),
        "W_out": head.weight.detach().numpy().copy(),
        "b_out": head.bias.detach().numpy().copy()}}
"""


# Valid alternatives: a packed GRU (with or without a mask: pad_packed_sequence's
# zeros leave only the head's bias to the positions after each sequence), the loss
# with ignore_index, a weighted sum, Adam's default learning rate (review F1: 600
# steps are enough at lr 1e-3).
_CH06_PACKED = ("pad_packed_sequence(gru(pack_padded_sequence(embed(ids[rows]), "
                "seq_lengths[rows], batch_first=True, enforce_sorted=False))[0], "
                "batch_first=True, total_length=ids.shape[1])[0]")
_CH06_UNMASKED = ("nn.functional.cross_entropy(head(outputs).reshape(-1, 2), "
                  "targets[rows].reshape(-1))")
mistake("ch06 train_above_first packs the batch (valid)", *_CH06_P5,
        _ch06_train(outputs=_CH06_PACKED), {})
mistake("ch06 train_above_first packs the batch, unmasked loss (valid)", *_CH06_P5,
        _ch06_train(outputs=_CH06_PACKED, loss=_CH06_UNMASKED), {})
mistake("ch06 train_above_first with ignore_index (valid)", *_CH06_P5,
        _ch06_train(
            loss="nn.functional.cross_entropy(head(outputs).reshape(-1, 2), "
                 "targets[rows].masked_fill(torch.arange(ids.shape[1])[None, :] "
                 ">= seq_lengths[rows][:, None], -100).reshape(-1))"), {})
mistake("ch06 train_above_first at Adam's default lr 1e-3 (valid)", *_CH06_P5,
        _ch06_train(lr="1e-3"), {})
mistake("ch06 Part 5 left blank", *_CH06_P5, "raise NotImplementedError()",
        dict.fromkeys([_CH06_SEEDED, _CH06_ACCURACY], "NotImplementedError"))
# The likeliest mistake: plain cross_entropy over every position, the labels after
# each sequence included (measured over 60 seeds: 82 to 94 % of the real steps, the
# solution 99.9 to 100 %).
_CH06_LOOP_UNMASKED = _ch06_train(loss=_CH06_UNMASKED)
mistake("ch06 train_above_first trains on an unmasked loss", *_CH06_P5,
        _CH06_LOOP_UNMASKED, {_CH06_ACCURACY: "in the second half"})
costs("ch06 train_above_first trains on an unmasked loss", *_CH06_P5,
      _CH06_LOOP_UNMASKED, {_CH06_ACCURACY})

# F14 of an earlier review: the seeded initial weights, or seeded random arrays,
# earned test_training_is_seeded (1 point); they earn nothing.
costs("ch06 train_above_first returns the seeded initial weights", *_CH06_P5, """
torch.manual_seed(seed)
embed = nn.Embedding(10, 8)
gru = nn.GRU(8, 32, batch_first=True)
head = nn.Linear(32, 2)
return {"embedding": embed.weight.detach().numpy().copy(), **params_from_torch(gru),
        "W_out": head.weight.detach().numpy().copy(),
        "b_out": head.bias.detach().numpy().copy()}
""", {_CH06_SEEDED, _CH06_ACCURACY})
_CH06_RANDOM = """
rng = np.random.default_rng(seed)
shapes = {"embedding": (10, 8), "W_ih": (96, 8), "W_hh": (96, 32), "b_ih": (96,),
          "b_hh": (96,), "W_out": (2, 32), "b_out": (2,)}
return {k: rng.standard_normal(s) for k, s in shapes.items()}
"""
costs("ch06 train_above_first returns seeded random arrays", *_CH06_P5,
      _CH06_RANDOM, {_CH06_SEEDED, _CH06_ACCURACY})
mistake("ch06 train_above_first returns seeded random arrays, visible", *_CH06_P5,
        _CH06_RANDOM, {_CH06_SEEDED: "2 and 3 steps",
                       _CH06_ACCURACY: "at least 98 % is needed"})

# -- ch06 Part 6, decoder_start (PyTorch's packing) and greedy_decode ---------------
# decoder_start's scaffold packs the sources and runs the encoder (Part 2 grades
# packing), so the mistakes of writing the packing are gone with it. The checks
# of the states' ends and order run first in test_start_layers: undoing the
# sort a second time is still open to the learner and costs that cell.
# Each likely mistake about what a stacked bidirectional nn.GRU and the packing
# functions return fails one cell, by name: each cell's weights and rows make what
# the other cells check irrelevant (memoryless directions, sequences of one step,
# states compared with any layer's, the last row only; see seq2seq_weights in the
# notebook). Both networks have two layers; decoder_start returns h_0 (2, N, 2H).
_CH06_START = ("ch06", "ex_decoder_start")
_CH06_END = "test_start_layers"  # the given packing's checks
_CH06_LAYERS = "test_start_layers"
_CH06_HALVES = "test_start_halves"
_CH06_START_CELLS = {_CH06_END, _CH06_LAYERS, _CH06_HALVES}
_CH06_ENCODE = '''
w = {k: torch.from_numpy(np.array(v, dtype=np.float64)) for k, v in weights.items()}
D, H = w["encoder.weight_ih_l0"].shape[1], w["encoder.weight_hh_l0"].shape[1]
encoder = nn.GRU(D, H, num_layers=2, batch_first=True, bidirectional=True,
                 dtype=torch.float64)
encoder.load_state_dict({k[len("encoder."):]: v for k, v in w.items()
                         if k.startswith("encoder.")})
x = w["embedding.weight"][torch.from_numpy(np.array(src_ids, dtype=np.int64))]
lengths = torch.as_tensor(np.array(src_lengths, dtype=np.int64))
N = len(lengths)
packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)


def pair(h):
    return torch.cat([h[0::2], h[1::2]], 2).numpy()


with torch.no_grad():
'''
def _ch06_p6(prefix, body):
    return prefix + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


_CH06_START_MISTAKES = {
    # name: (body, the cell it costs, a phrase of that cell's message)
    "undoes PyTorch's sorting a second time": ("""
        _, h_n = encoder(packed)
        return pair(h_n[:, packed.unsorted_indices])""",
        _CH06_END, "the rows come back in another order"),
    "views h_n as (2, N, 2H)": ("""
        _, h_n = encoder(packed)
        return h_n.view(2, N, 2 * H).numpy()""",
        _CH06_LAYERS, "viewing or reshaping it"),
    "reshapes h_n to (2, N, -1)": ("""
        _, h_n = encoder(packed)
        return h_n.reshape(2, N, -1).numpy()""",
        _CH06_LAYERS, "viewing or reshaping it"),
    "reads h_n.view(2, 2, N, H) as (direction, layer)": ("""
        _, h_n = encoder(packed)
        return torch.cat(list(h_n.view(2, 2, N, H)), 2).numpy()""",
        _CH06_LAYERS, "h_n.view(2, 2, N, H) is (layer, direction, N, H)"),
    "gives both layers the top layer's states": ("""
        _, h_n = encoder(packed)
        return np.stack(2 * [torch.cat([h_n[-2], h_n[-1]], 1).numpy()])""",
        _CH06_LAYERS, "both layers' rows hold the top layer's states"),
    "swaps the layers": ("""
        _, h_n = encoder(packed)
        return pair(h_n)[::-1].copy()""",
        _CH06_LAYERS, "the layers are swapped"),
    "puts each layer's backward half first": ("""
        _, h_n = encoder(packed)
        return torch.cat([h_n[1::2], h_n[0::2]], 2).numpy()""",
        _CH06_HALVES, "the halves are in the wrong order"),
    "takes the top layer's backward state at the sequence's last step": ("""
        out, h_n = encoder(packed)
        out = pad_packed_sequence(out, batch_first=True)[0]
        top = torch.cat([h_n[2], out[torch.arange(N), lengths - 1, H:]], 1)
        return np.stack([pair(h_n)[0], top.numpy()])""",
        _CH06_HALVES, "after reading only src_ids[n, L - 1]"),
}
for _label, (_body, _cell, _says) in _CH06_START_MISTAKES.items():
    _code = _ch06_p6(_CH06_ENCODE, _body)
    mistake(f"ch06 decoder_start {_label}", *_CH06_START, _code, {_cell: _says})
    costs(f"ch06 decoder_start {_label}", *_CH06_START, _code, {_cell})
# Review rev06d W8: each layer's forward state twice has no backward half, and
# the halves cell said the halves were in the wrong order. Which states make a
# row is also the layers cell's subject: two cells.
for _label, _rows in (("forward", "h_n[0::2], h_n[0::2]"),
                      ("backward", "h_n[1::2], h_n[1::2]")):
    _code = _ch06_p6(_CH06_ENCODE, f"""
        _, h_n = encoder(packed)
        return torch.cat([{_rows}], 2).numpy()""")
    mistake(f"ch06 decoder_start puts each layer's {_label} state in both halves",
            *_CH06_START, _code,
            {_CH06_LAYERS: "see where h_n keeps each layer's two directions",
             _CH06_HALVES: "a row holds two states of one direction"})
    costs(f"ch06 decoder_start puts each layer's {_label} state in both halves",
          *_CH06_START, _code, {_CH06_LAYERS, _CH06_HALVES})
_CH06_START_VALID = {
    "views h_n by layer and direction, then permutes": """
        _, h_n = encoder(packed)
        return h_n.view(2, 2, N, H).permute(0, 2, 1, 3).reshape(2, N, 2 * H).numpy()""",
    "sorts the batch itself and puts it back": """
        order = torch.argsort(lengths, descending=True)
        _, h_n = encoder(pack_padded_sequence(x[order], lengths[order],
                                              batch_first=True))
        return pair(h_n[:, torch.argsort(order)])""",
    "reads one sequence at a time": """
        return np.stack([pair(encoder(x[n : n + 1, : lengths[n]])[1])[:, 0]
                         for n in range(N)], 1)""",
}
for _label, _body in _CH06_START_VALID.items():
    mistake(f"ch06 decoder_start {_label} (valid)", *_CH06_START,
            _ch06_p6(_CH06_ENCODE, _body), {})
# float32 inside: every cell of decoder_start gives Part 1's float32 hint.
mistake("ch06 decoder_start computes in float32", *_CH06_START,
        _ch06_p6(_CH06_ENCODE, """
        _, h_n = encoder.float()(pack_padded_sequence(x.float(), lengths,
                                                      batch_first=True,
                                                      enforce_sorted=False))
        return pair(h_n.double())"""),
        dict.fromkeys(_CH06_START_CELLS, "float32's rounding"))
# A 1-layer answer, (N, 2H): every cell of decoder_start says the shape.
mistake("ch06 decoder_start returns the top layer only, (N, 2H)", *_CH06_START,
        _ch06_p6(_CH06_ENCODE, """
        _, h_n = encoder(packed)
        return torch.cat([h_n[-2], h_n[-1]], 1).numpy()"""),
        dict.fromkeys(_CH06_START_CELLS, "expected (2, N, 2H)"))

# greedy_decode: the decoder reads its own predictions, one step at a time. Each
# likely mistake fails one cell, by name: each cell's cases accept the answers
# whose one mistake another cell names (see judge in the notebook).
_CH06_GREEDY_HEAD = '''
start = np.asarray(decoder_start(weights, src_ids, src_lengths), dtype=np.float64)
w = {k: torch.from_numpy(np.array(v, dtype=np.float64)) for k, v in weights.items()}
D, H2 = w["decoder.weight_ih_l0"].shape[1], w["decoder.weight_hh_l0"].shape[1]
decoder = nn.GRU(D, H2, num_layers=2, batch_first=True, dtype=torch.float64)
decoder.load_state_dict({k[len("decoder."):]: v for k, v in w.items()
                         if k.startswith("decoder.")})
E, W, b = w["embedding.weight"], w["head.weight"], w["head.bias"]
N = start.shape[1]
h0 = torch.from_numpy(start)
'''


def _ch06_greedy(h0="h0", carry="h = h_next", feed="token = pred",
                 write="out[:, u] = np.where(ended, 0, pred.numpy())",
                 end="ended |= out[:, u] == eos_id",
                 argmax="(y[:, 0] @ W.T + b).argmax(dim=1)", dtype="np.int64",
                 finish="return out", loop="range(max_steps)"):
    """greedy_decode as the course writes it, one line swapped for a mistake."""
    return _CH06_GREEDY_HEAD + f"""
h = {h0}
token = torch.full((N,), int(bos_id), dtype=torch.int64)
previous = token
out = np.zeros((N, max_steps), dtype={dtype})
ended = np.zeros(N, dtype=bool)
with torch.no_grad():
    for u in {loop}:
        y, h_next = decoder(E[token][:, None], h)
        {carry}
        pred = {argmax}
        {feed}
        {write}
        {end}
{finish}
"""


_CH06_GREEDY = ("ch06", "ex_greedy_decode")
_CH06_G_START = "test_greedy_starts_from_encoder"
# Review rev13 F7: the layers cell (1 point) is now part of the first one (1 point
# for both): passing decoder_start's result as h_0 is one piece of plumbing.
_CH06_G_LAYERS = _CH06_G_START
_CH06_G_FEEDS = "test_greedy_feeds_its_predictions"
_CH06_G_STOPS = "test_greedy_stops_at_eos"
_CH06_GREEDY_CELLS = {_CH06_G_START, _CH06_G_LAYERS, _CH06_G_FEEDS, _CH06_G_STOPS}
_CH06_GREEDY_MISTAKES = {
    # name: (the line swapped, the cell it costs, a phrase of that cell's message)
    "starts the decoder from a zero state": (
        {"h0": "torch.zeros_like(h0)"}, _CH06_G_START, "starts from a zero state"),
    "returns bos_id at position 0 (one step shifted)": (
        {"finish": "return np.concatenate([np.full((N, 1), bos_id), out[:, :-1]], 1)"},
        _CH06_G_START, "not bos_id itself"),
    "returns the ids as float32": (
        {"dtype": "np.float32"}, _CH06_G_START, "ids in float32 are not ids"),
    "returns the ids time first": (
        {"finish": "return out.T.copy()"}, _CH06_G_START, "time first"),
    "swaps h_0's layers": (
        {"h0": "h0.flip(0)"}, _CH06_G_LAYERS, "start from the wrong layers' states"),
    "starts both decoder layers from the encoder's top layer": (
        {"h0": "h0[[1, 1]]"}, _CH06_G_LAYERS,
        "both decoder layers start from the encoder's top layer"),
    "starts the decoder's layer 0 from zeros": (
        {"h0": "h0 * torch.tensor([0.0, 1.0], dtype=torch.float64)[:, None, None]"},
        _CH06_G_LAYERS, "its layer 0 from zeros"),
    "restarts the state at every step": (
        {"carry": "h = h0"}, _CH06_G_FEEDS, "goes back to decoder_start's"),
    "reads bos_id at every step": (
        {"feed": "pass"}, _CH06_G_FEEDS, "reads bos_id at every step"),
    "reads the prediction of two steps before (its previous input)": (
        {"feed": "token, previous = previous, pred"}, _CH06_G_FEEDS,
        "one step late"),
    "does not stop after eos_id": (
        {"end": "pass"}, _CH06_G_STOPS, "goes on after its eos_id"),
    "drops eos_id itself": (
        {"write": "out[:, u] = np.where(ended | (pred.numpy() == eos_id), 0, "
                  "pred.numpy())",
         "end": "ended |= pred.numpy() == eos_id"},
        _CH06_G_STOPS, "eos_id itself is missing"),
    "pads with eos_id after it": (
        {"write": "out[:, u] = np.where(ended, eos_id, pred.numpy())"},
        _CH06_G_STOPS, "hold eos_id: they hold 0"),
}
for _label, (_swap, _cell, _says) in _CH06_GREEDY_MISTAKES.items():
    _code = _ch06_greedy(**_swap)
    mistake(f"ch06 greedy_decode {_label}", *_CH06_GREEDY, _code, {_cell: _says})
    costs(f"ch06 greedy_decode {_label}", *_CH06_GREEDY, _code, {_cell})
# The argmax over the batch gives V ids for N rows, and h_0 given batch first is
# (N, 2, 2H): the next step cannot run, so every cell raises, saying which axis.
mistake("ch06 greedy_decode takes the argmax over the batch", *_CH06_GREEDY,
        _ch06_greedy(argmax="(y[:, 0] @ W.T + b).argmax(dim=0)"),
        dict.fromkeys(_CH06_GREEDY_CELLS, "argmax over the vocabulary, the last axis"))
mistake("ch06 greedy_decode passes h_0 batch first, (N, 2, 2H)", *_CH06_GREEDY,
        _ch06_greedy(h0="h0.transpose(0, 1).contiguous()"),
        dict.fromkeys(_CH06_GREEDY_CELLS, "decoder_start's result as it is"))
_CH06_GREEDY_VALID = {
    "decodes each row alone and breaks at eos_id": _CH06_GREEDY_HEAD + """
out = np.zeros((N, max_steps), dtype=np.int64)
with torch.no_grad():
    for n in range(N):
        h, token = h0[:, n : n + 1].contiguous(), torch.tensor([int(bos_id)])
        for u in range(max_steps):
            y, h = decoder(E[token][None], h)
            token = (y[0] @ W.T + b).argmax(dim=-1)
            out[n, u] = int(token)
            if out[n, u] == eos_id:
                break
return out
""",
    # Review rev13: three more forms, each graded with the hidden halves too.
    "runs the decoder in float32, time first": _CH06_GREEDY_HEAD + """
dec = nn.GRU(D, H2, num_layers=2)
dec.load_state_dict({k: v.float() for k, v in decoder.state_dict().items()})
out, token = np.zeros((N, max_steps), dtype=np.int64), torch.full((N,), bos_id)
h, alive = h0.float(), np.ones(N, dtype=bool)
with torch.no_grad():
    for u in range(max_steps):
        y, h = dec(E.float()[token][None], h)  # (1, N, 2H)
        token = (y[0] @ W.float().T + b.float()).argmax(dim=1)
        out[alive, u] = token.numpy()[alive]
        alive &= token.numpy() != eos_id
        if not alive.any():
            break
return out
""",
    "steps two nn.GRUCells and stops the rows afterwards": _CH06_GREEDY_HEAD + """
cells = []
for layer in range(2):
    cell = nn.GRUCell(decoder.input_size if layer == 0 else H2, H2,
                      dtype=torch.float64)
    cell.load_state_dict({k[: -len("_l0")]: v for k, v in decoder.state_dict().items()
                          if k.endswith(f"_l{layer}")})
    cells.append(cell)
h, token, steps = list(h0), torch.full((N,), bos_id), []
with torch.no_grad():
    for u in range(max_steps):
        h[0] = cells[0](E[token], h[0])
        h[1] = cells[1](h[0], h[1])
        token = (h[1] @ W.T + b).argmax(dim=-1)
        steps.append(token)
ids = torch.stack(steps, 1).numpy()
is_eos = ids == eos_id
ids[np.cumsum(is_eos, axis=1) - is_eos > 0] = 0
return ids
""",
    "re-reads its whole output from decoder_start's state at every step": (
        _CH06_GREEDY_HEAD + """
seq = torch.full((N, 1), bos_id)
with torch.no_grad():
    for u in range(max_steps):
        y, _ = decoder(E[seq], h0)
        seq = torch.cat([seq, (y[:, -1] @ W.T + b).argmax(-1)[:, None]], 1)
ids = seq[:, 1:].numpy().copy()
for n in range(N):
    ends = np.flatnonzero(ids[n] == eos_id)
    if len(ends):
        ids[n, ends[0] + 1:] = 0
return ids
"""),
}
for _label, _code in _CH06_GREEDY_VALID.items():
    mistake(f"ch06 greedy_decode {_label} (valid)", *_CH06_GREEDY, _code, {})
    costs(f"ch06 greedy_decode {_label} (valid)", *_CH06_GREEDY, _code, set())
# Review rev13 F1: the head on the bottom layer's state (h_n[0], the one-layer
# idiom) failed all four cells, and the layers cell blamed h_0's layers.
_CH06_BOTTOM_HEAD = _ch06_greedy(argmax="(h_next[0] @ W.T + b).argmax(dim=1)")
mistake("ch06 greedy_decode reads the head from the bottom layer, h_n[0]",
        *_CH06_GREEDY, _CH06_BOTTOM_HEAD,
        {_CH06_G_START: "the head reads the decoder's bottom layer"})
costs("ch06 greedy_decode reads the head from the bottom layer, h_n[0]",
      *_CH06_GREEDY, _CH06_BOTTOM_HEAD, {_CH06_G_START})
# Review rev13 F6: the head without head.bias failed all four cells with their
# generic hints; the first cell names it, and the others accept it. Every case makes
# that mistake predict some id other than 0, so all zeros is never accepted.
_CH06_NO_HEAD_BIAS = _ch06_greedy(argmax="(y[:, 0] @ W.T).argmax(dim=1)")
mistake("ch06 greedy_decode leaves out head.bias", *_CH06_GREEDY, _CH06_NO_HEAD_BIAS,
        {_CH06_G_START: "the head's scores miss head.bias"})
costs("ch06 greedy_decode leaves out head.bias", *_CH06_GREEDY, _CH06_NO_HEAD_BIAS,
      {_CH06_G_START})
costs("ch06 greedy_decode returns zeros", *_CH06_GREEDY,
      "return np.zeros((len(src_lengths), max_steps), dtype=np.int64)",
      _CH06_GREEDY_CELLS)
# Review rev13 F3: every stop case ended its rows at their first step or never,
# so an answer that ends only the rows whose first id is eos_id earned all 6
# points; the cases now end rows at steps 0 and 3 (visible) and 2 (hidden). A row
# that resumes after its eos_id (ended = instead of |=) is still told visibly.
for _label, _end in (("ends only the rows whose first prediction is eos_id",
                      "ended |= out[:, 0] == eos_id"),
                     ("lets a row go on after its eos_id (ended =, not |=)",
                      "ended = pred.numpy() == eos_id")):
    _code = _ch06_greedy(end=_end)
    mistake(f"ch06 greedy_decode {_label}", *_CH06_GREEDY, _code,
            {_CH06_G_STOPS: "up to and including its first eos_id, then 0"})
    costs(f"ch06 greedy_decode {_label}", *_CH06_GREEDY, _code, {_CH06_G_STOPS})
# Review rev13 F4: an argmax without dim flattens the (N, V) scores: ids up to
# N * V, then an IndexError, said without a hint.
mistake("ch06 greedy_decode takes the argmax without dim", *_CH06_GREEDY,
        _ch06_greedy(argmax="(y[:, 0] @ W.T + b).argmax()"),
        {_CH06_G_START: "an argmax without dim",
         _CH06_G_FEEDS: "argmax over the vocabulary",
         _CH06_G_STOPS: "an argmax without dim flattens them"})
# Review rev13 F5: int32 ids cost the first cell (int64 is the spec), and its
# message spoke of float32.
_CH06_INT32 = _ch06_greedy(dtype="np.int32")
mistake("ch06 greedy_decode returns the ids as int32", *_CH06_GREEDY, _CH06_INT32,
        {_CH06_G_START: "cast with .astype(np.int64)"})
costs("ch06 greedy_decode returns the ids as int32", *_CH06_GREEDY, _CH06_INT32,
      {_CH06_G_START})
# Review rev13, left over: rarer slips that cost all of greedy_decode's cells with
# generic hints. Each is named in the first cell now, and the later cells accept
# it (their oracles run it too). A softmax over the batch mixes the rows' scores,
# twice: dim=0 written, and F.softmax without dim on (N, 1, V) scores, which picks
# dim 0 for 3-d input. A loop over range(1, max_steps) leaves position 0 at 0; a
# one-layer decoder runs layer 0's weights from decoder_start's [1].
_CH06_RARE = {
    "normalises the scores over the batch (softmax dim=0)": (
        _ch06_greedy(argmax="torch.softmax(y[:, 0] @ W.T + b, dim=0).argmax(dim=1)"),
        "normalised over the batch"),
    "normalises the scores with F.softmax without dim, on (N, 1, V)": (
        _ch06_greedy(argmax="nn.functional.softmax(y @ W.T + b).argmax(dim=-1)[:, 0]"),
        "normalised over the batch"),
    "loops over range(1, max_steps)": (
        _ch06_greedy(loop="range(1, max_steps)"), "range(1, max_steps) never runs"),
    "builds a one-layer decoder from decoder_start's [1]": (
        _ch06_greedy(h0="h0[1:]").replace("num_layers=2", "num_layers=1").replace(
            'if k.startswith("decoder.")})',
            'if k.startswith("decoder.") and k.endswith("_l0")})'),
        "a decoder built with one layer"),
}
for _label, (_code, _says) in _CH06_RARE.items():
    assert _code != _ch06_greedy(), _label
    mistake(f"ch06 greedy_decode {_label}", *_CH06_GREEDY, _code,
            {_CH06_G_START: _says})
    costs(f"ch06 greedy_decode {_label}", *_CH06_GREEDY, _code, {_CH06_G_START})


# What answers the part without PyTorch is withheld (rnnlib's GRU) or absent (the
# tests' oracle) when graded; in the learner's kernel the visible tests say so.
mistake("ch06 decoder_start calls the tests' start_alone", *_CH06_START,
        "return start_alone(weights, src_ids, src_lengths)",
        dict.fromkeys(_CH06_START_CELLS, "used a helper of the tests"))
mistake("ch06 greedy_decode calls the tests' greedy_alone", *_CH06_GREEDY,
        "return greedy_alone(weights, decoder_start(weights, src_ids, src_lengths), "
        "eos_id, max_steps, bos_id=bos_id)",
        dict.fromkeys(_CH06_GREEDY_CELLS, "used a helper of the tests"))
mistake("ch06 decoder_start builds on rnnlib.gru_forward", *_CH06_START, """
E = np.asarray(weights["embedding.weight"])
H = np.shape(weights["encoder.weight_hh_l0"])[1]
rows = []
for ids, L in zip(np.asarray(src_ids), np.asarray(src_lengths)):
    halves = []
    for s, x in (("", E[ids[:L]]), ("_reverse", E[ids[:L]][::-1])):
        p = dict(zip(PARAM_NAMES, (np.asarray(weights[f"encoder.{k}_l0{s}"])
                                   for k in ("weight_ih", "weight_hh", "bias_ih",
                                             "bias_hh"))))
        halves.append(rnnlib.gru_forward(x[None], np.zeros((1, H)), p)[0][0, -1])
    rows.append(np.concatenate(halves))
return np.array(rows)
""", dict.fromkeys(_CH06_START_CELLS, "they are withheld when the notebook is graded"))
# F3: rnnlib's GRU imported inside the function is withheld in the kernel too
# (its module's attributes are swapped during the call, not only the notebook's
# names), as it is when graded.
for _how, _form in (("from rnnlib.gru", "from rnnlib.gru import gru_forward as _gru"),
                    ("as a module", "import rnnlib.gru as _m\n_gru = _m.gru_forward"),
                    ("from rnnlib", "from rnnlib import gru_forward as _gru")):
    mistake(f"ch06 decoder_start runs rnnlib's GRU imported inside, {_how}",
            *_CH06_START, f"""
{_form}
E = np.asarray(weights["embedding.weight"])
H = np.shape(weights["encoder.weight_hh_l0"])[1]
p = dict(zip(PARAM_NAMES, (np.asarray(weights[f"encoder.{{k}}_l0"]) for k in
                           ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))))
return np.array([np.concatenate(2 * [_gru(E[ids[:L]][None], np.zeros((1, H)),
                                          p)[0][0, -1]])
                 for ids, L in zip(np.asarray(src_ids), np.asarray(src_lengths))])
""", dict.fromkeys(_CH06_START_CELLS, "withheld when the notebook is graded"))
for _answer, _cells in ((_CH06_START, _CH06_START_CELLS),
                        (_CH06_GREEDY, _CH06_GREEDY_CELLS)):
    mistake(f"ch06 {_answer[1]} left blank", *_answer, "raise NotImplementedError()",
            dict.fromkeys(_cells, "NotImplementedError"))
    costs(f"ch06 {_answer[1]} left blank", *_answer, "raise NotImplementedError()",
          _cells)

# Part 4's two likely misconceptions now cost Part 4 alone (the review's F2: they
# cost Part 5's accuracy too when Part 5 also read rows padded at the front).
_CH06_P4 = ("ch06", "ex_left_padded_last_states")
_CH06_P4_TESTS = {"test_left_padded_last_states", "test_left_padded_edge_cases"}


def _ch06_left_padded(rows):
    """A left_padded_last_states that packs `rows` with the lengths."""
    return f"""
model = nn.GRU(x.shape[2], params["W_hh"].shape[1], batch_first=True,
               dtype=torch.float64)
params_to_torch(params, model)
packed = pack_padded_sequence(torch.as_tensor(np.ascontiguousarray({rows})),
                              torch.as_tensor(np.asarray(lengths)), batch_first=True,
                              enforce_sorted=False)
with torch.no_grad():
    _, h = model(packed)
return h[0].numpy()
"""


costs("ch06 left_padded_last_states flips time", *_CH06_P4,
      _ch06_left_padded("x[:, ::-1]"), _CH06_P4_TESTS)
mistake("ch06 left_padded_last_states packs the rows as given", *_CH06_P4,
        _ch06_left_padded("x"), dict.fromkeys(sorted(_CH06_P4_TESTS), "FIRST lengths"))
costs("ch06 left_padded_last_states packs the rows as given", *_CH06_P4,
      _ch06_left_padded("x"), _CH06_P4_TESTS)
# Each row rolled toward its end, x[n, (t - (T - L)) % T], instead of its start
# (walkthrough walk06): the main cell gave only an error size, the edge cases told
# the learner to move each sequence to the start of its row, which they had tried.
_CH06_WRONG_WAY = _ch06_left_padded(
    "np.take_along_axis(x, ((np.arange(x.shape[1])[None, :] - (x.shape[1] "
    "- np.asarray(lengths))[:, None]) % x.shape[1])[:, :, None], axis=1)")
mistake("ch06 left_padded_last_states shifts each row the wrong way", *_CH06_P4,
        _CH06_WRONG_WAY, dict.fromkeys(sorted(_CH06_P4_TESTS), "toward the START"))
costs("ch06 left_padded_last_states shifts each row the wrong way", *_CH06_P4,
      _CH06_WRONG_WAY, _CH06_P4_TESTS)


# Plausible value mistakes that must keep test_bigru_names_and_shapes (F13's new
# check) and the seeding point (F14's new check). These pass on the old notebook
# too: they guard the fixes, they do not prove them.
def _ch06_guard_bigru(first="6 * layer + 3 * direction",
                      blocks="np.concatenate([np.arange(H, 2 * H), np.arange(H), "
                             "np.arange(2 * H, 3 * H)])",
                      w_ih="kernel.T[blocks]", w_hh="recurrent.T[blocks]",
                      b_ih="bias[0][blocks]", b_hh="bias[1][blocks]"):
    return f"""
state = {{}}
for layer in range(num_layers):
    for direction, suffix in enumerate(("", "_reverse")):
        first = {first}
        kernel, recurrent, bias = (np.asarray(a) for a in weights[first : first + 3])
        H = recurrent.shape[0]
        blocks = {blocks}
        tag = f"l{{layer}}{{suffix}}"
        state[f"weight_ih_{{tag}}"] = {w_ih}
        state[f"weight_hh_{{tag}}"] = {w_hh}
        state[f"bias_ih_{{tag}}"] = {b_ih}
        state[f"bias_hh_{{tag}}"] = {b_hh}
return state
"""


_CH06_P3 = "ex_keras_bigru_to_torch"
_CH06_VALUES = {"test_bigru_first_layer_forward", "test_bigru_whole_model"}
costs("ch06 guard: gate blocks in Keras's order z, r, h", "ch06", _CH06_P3,
      _ch06_guard_bigru(blocks="np.arange(3 * H)"), _CH06_VALUES)
costs("ch06 guard: bias rows swapped", "ch06", _CH06_P3,
      _ch06_guard_bigru(b_ih="bias[1][blocks]", b_hh="bias[0][blocks]"), _CH06_VALUES)
costs("ch06 guard: bias rows summed into bias_ih, bias_hh = 0", "ch06", _CH06_P3,
      _ch06_guard_bigru(b_ih="bias.sum(axis=0)[blocks]", b_hh="np.zeros(3 * H)"),
      _CH06_VALUES)
costs("ch06 guard: reshape instead of transpose", "ch06", _CH06_P3,
      _ch06_guard_bigru(w_ih="kernel.reshape(3 * H, -1)[blocks]",
                        w_hh="recurrent.reshape(3 * H, H)[blocks]"), _CH06_VALUES)
costs("ch06 guard: a layer's two directions swapped", "ch06", _CH06_P3,
      _ch06_guard_bigru(first="6 * layer + 3 * (1 - direction)"), _CH06_VALUES)
costs("ch06 guard: the reverse direction takes the forward GRU's arrays", "ch06",
      _CH06_P3, _ch06_guard_bigru(first="6 * layer"), {"test_bigru_whole_model"})
# Part 3's first-layer messages name the symptom and where to look (the two
# libraries' equations), not the edit: a learner who follows them still compares
# the equations, which is the transfer this part grades (walk06).
_CH06_WHOLE = "differ from the Keras model's"
mistake("ch06 keras_bigru_to_torch keeps Keras's gate order", "ch06", _CH06_P3,
        _ch06_guard_bigru(blocks="np.arange(3 * H)"),
        {"test_bigru_first_layer_forward": "still in Keras's gate order z, r, h "
         "(update, reset, candidate); PyTorch's gate order differs: compare the "
         "two libraries' equations", "test_bigru_whole_model": _CH06_WHOLE})
mistake("ch06 keras_bigru_to_torch reorders the weights, not the biases", "ch06",
        _CH06_P3, _ch06_guard_bigru(b_ih="bias[0]", b_hh="bias[1]"),
        {"test_bigru_first_layer_forward": "blocks still in Keras's order z, r, h: "
         "a bias's blocks belong to the same gates",
         "test_bigru_whole_model": _CH06_WHOLE})
mistake("ch06 keras_bigru_to_torch swaps the bias rows", "ch06", _CH06_P3,
        _ch06_guard_bigru(b_ih="bias[1][blocks]", b_hh="bias[0][blocks]"),
        {"test_bigru_first_layer_forward": "the other way round: compare the two "
         "libraries' equations", "test_bigru_whole_model": _CH06_WHOLE})
mistake("ch06 keras_bigru_to_torch merges the biases as for an LSTM", "ch06",
        _CH06_P3, _ch06_guard_bigru(b_ih="bias.sum(axis=0)[blocks]",
                                    b_hh="np.zeros(3 * H)"),
        {"test_bigru_first_layer_forward": "Compare where each of Keras's two bias "
         "rows enters", "test_bigru_whole_model": _CH06_WHOLE})
costs("ch06 guard: float32 arrays", "ch06", _CH06_P3,
      _ch06_guard_bigru(w_ih="kernel.T[blocks].astype(np.float32)",
                        w_hh="recurrent.T[blocks].astype(np.float32)",
                        b_ih="bias[0][blocks].astype(np.float32)",
                        b_hh="bias[1][blocks].astype(np.float32)"), _CH06_VALUES)


# -- ch02 Part 4: forgetting b_hh is caught by a visible check (every visible case
# had b_hh = 0, so only the hidden half saw it)
mistake("ch02 jordan_forward forgets b_hh", "ch02", "ex_jordan",
        WHOLE["ch02 jordan_forward forgets b_hh"][2],
        {"test_jordan_fixed_case": "moved from b_ih into b_hh"})


# -- ch03 Part 1, grad_check: no path around the work (red team finding 5) ----------
# A grad_check that never calls loss_fn: 0.0 for every key, 1.0 when the given
# gradient is all 0, and 2e-5 / (2 + 2e-5) on its second call (the visible test's
# own comment). It earned test_grad_check_correct_gradient and
# test_grad_check_restores_params: 2 of 4 points.
def _ch03_fake_grad_check(second: bool, calls_loss: bool) -> str:
    """The red team's fake; `second` also hard-codes the value that the hidden
    half of test_grad_check_is_centred printed to more digits than its
    tolerance (1.030928e-02 in the red team's run, 2.665956e-04 after dafd966);
    `calls_loss` nudges every entry by +h and -h and calls loss_fn (2 per entry)
    and puts it back, but never uses the losses."""
    loop = """
for name, value in params.items():
    for ix in np.ndindex(value.shape):
        old = value[ix]
        value[ix] = old + h
        loss_fn(params)
        value[ix] = old - h
        loss_fn(params)
        value[ix] = old
""" if calls_loss else ""
    return loop + f"""
calls = globals().setdefault("_fake_calls", [0])
calls[0] += 1
errors = {{}}
for name in params:
    if not np.any(grads[name]):
        errors[name] = 1.0
    elif h == 0.1 and {second}:
        errors[name] = 2.665956e-04
    elif calls[0] == 2:
        errors[name] = 2e-5 / (2 + 2e-5)
    else:
        errors[name] = 0.0
return errors
"""


_CH03_GC_ALL = {"test_grad_check_correct_gradient", "test_grad_check_is_centred",
                "test_grad_check_finds_a_wrong_entry",
                "test_grad_check_restores_params"}
costs("ch03 grad_check never calls loss_fn", *GC,
      _ch03_fake_grad_check(second=False, calls_loss=False), _CH03_GC_ALL)
costs("ch03 grad_check hard-codes the value a hidden test printed", *GC,
      _ch03_fake_grad_check(second=True, calls_loss=False), _CH03_GC_ALL)
costs("ch03 grad_check calls loss_fn, ignores the losses, hard-codes", *GC,
      _ch03_fake_grad_check(second=True, calls_loss=True), _CH03_GC_ALL)
mistake("ch03 grad_check never calls loss_fn", *GC,
        _ch03_fake_grad_check(second=False, calls_loss=False), {
            "test_grad_check_correct_gradient": "not a fixed number",
            "test_grad_check_is_centred": "called loss_fn 0 times",
            "test_grad_check_finds_a_wrong_entry": "is wrong in its last entry",
            "test_grad_check_restores_params": "loss_fn was called 0 times",
        })
mistake("ch03 grad_check calls loss_fn, ignores the losses, hard-codes", *GC,
        _ch03_fake_grad_check(second=True, calls_loss=True), {
            "test_grad_check_correct_gradient": "not a fixed number",
            "test_grad_check_is_centred": "about 1.7e-7, not less",
            "test_grad_check_finds_a_wrong_entry": "is wrong in its last entry",
            "test_grad_check_restores_params": "loss_fn does not read",
        })


# -- ch03 Part 1 guards (pass before and after the fix of red team finding 5) --------
# A one-sided difference that evaluates the loss once per entry plus once at the
# start (n + 1 calls) costs the value cells, not the restoring one.
costs("ch03 grad_check one-sided, n + 1 calls", *GC, """
errors = {}
base = float(loss_fn(params))
for name, value in params.items():
    numeric = np.zeros(value.shape)
    for ix in np.ndindex(value.shape):
        old = value[ix]
        value[ix] = old + h
        numeric[ix] = (float(loss_fn(params)) - base) / h
        value[ix] = old
    errors[name] = rel_error(grads[name], numeric)
return errors
""", {"test_grad_check_correct_gradient", "test_grad_check_is_centred",
      "test_grad_check_finds_a_wrong_entry"})
costs("ch03 grad_check one-sided", *GC, MISTAKES["ch03 grad_check one-sided"][2],
      {"test_grad_check_correct_gradient", "test_grad_check_is_centred",
       "test_grad_check_finds_a_wrong_entry"})
costs("ch03 grad_check divides by h", *GC, MISTAKES["ch03 grad_check divides by h"][2],
      {"test_grad_check_correct_gradient", "test_grad_check_is_centred",
       "test_grad_check_finds_a_wrong_entry"})
# Ignoring the h it is given (always 1e-5) costs the hidden half of is_centred only.
costs("ch03 grad_check ignores h", *GC, _ch03_grad_check(
    "(loss_plus - loss_minus) / (2 * h)").replace("errors = {}",
                                                  "errors = {}\nh = 1e-5"),
    {"test_grad_check_is_centred"})
costs("ch03 grad_check on copies of params (valid)", *GC,
      MISTAKES["ch03 grad_check on copies of params (valid)"][2], set())
costs("ch03 grad_check zeroes grads in place", *GC,
      MISTAKES["ch03 grad_check zeroes grads in place"][2],
      {"test_grad_check_correct_gradient", "test_grad_check_is_centred",
       "test_grad_check_finds_a_wrong_entry", "test_grad_check_restores_params"})


# Mistakes that only a hidden half caught, or nothing did (the hidden-test audit's
# "visible-only holes", sixth session): each now fails a visible check of its own part.

# -- ch01 Part (c): zeroing x's padding in place fails the visible no-mutation check --
# (the visible padding was already 0, so only the hidden half saw it; the hidden half
# already cost test_encoder_decoder_own_last_step only, 1 point, before and after).
ED_ZEROES_X_PADDING = """
x[np.arange(x.shape[1]) >= np.asarray(lengths)[:, None]] = 0.0  # "clean" the padding
""" + ED_HEAD + """
h_dec, _ = rnnlib.rnn_forward(dec_in, context, dec_params)
return h_dec @ W_hy.T + b_y
"""
mistake("ch01 encoder_decoder_forward zeroes x's padding in place", *ED,
        ED_ZEROES_X_PADDING,
        {"test_encoder_decoder_own_last_step":
         "at the padding after the end of source 1"})
costs("ch01 encoder_decoder_forward zeroes x's padding in place", *ED,
      ED_ZEROES_X_PADDING, {"test_encoder_decoder_own_last_step"})
# The decoder reads the context at every step (Cho et al.): forgetting it, or putting
# it before y_in, each costs the cells that check it, with a message that names it.
ED_NO_CONTEXT_IN = ED_HEAD + """
h_dec, _ = rnnlib.rnn_forward(y_in, context, dec_params)
return h_dec @ W_hy.T + b_y
"""
mistake("ch01 encoder_decoder_forward does not feed the context at every step", *ED,
        ED_NO_CONTEXT_IN, dict.fromkeys(ED_CELLS, "W_ih is (H, E + H)"))
costs("ch01 encoder_decoder_forward does not feed the context at every step", *ED,
      ED_NO_CONTEXT_IN, ED_CELLS)
ED_CONTEXT_FIRST = ED_HEAD + """
dec_in = np.concatenate([np.repeat(context[:, None], y_in.shape[1], 1), y_in], 2)
h_dec, _ = rnnlib.rnn_forward(dec_in, context, dec_params)
return h_dec @ W_hy.T + b_y
"""
mistake("ch01 encoder_decoder_forward puts the context before y_in", *ED,
        ED_CONTEXT_FIRST, {"test_encoder_decoder_values": "put y_in[:, s] first"})
costs("ch01 encoder_decoder_forward puts the context before y_in", *ED,
      ED_CONTEXT_FIRST, {"test_encoder_decoder_values"})
# (review of the rewrite, findings 1, 4 and 7) A context (N, N, H), a context
# repeated T_in times and a decoder run with enc_params gave raw NumPy errors or a
# message about concatenating (which the learner had done) in all three cells; a
# squeezed context broke at N = 1 only, which every visible case missed (3/3 visible,
# 0/3 at grading). Each now gets its named message and costs exactly Part (c).
ED_TAIL = """
h_dec, _ = rnnlib.rnn_forward(dec_in, context, dec_params)
return h_dec @ W_hy.T + b_y
"""
ED_EVERY_LENGTH = ED_HEAD.replace("h_enc[np.arange(N), np.asarray(lengths) - 1]",
                                  "h_enc[:, np.asarray(lengths) - 1]") + ED_TAIL
ED_REPEAT_T_IN = ED_HEAD.replace("y_in.shape[1], 1)", "x.shape[1], 1)") + ED_TAIL
ED_DECODER_ENC = ED_HEAD + ED_TAIL.replace("dec_params)", "enc_params)")
ED_SQUEEZED = ED_HEAD.replace("context = h_enc", "context = np.squeeze(h_enc").replace(
    "lengths) - 1]", "lengths) - 1])") + ED_TAIL
for _label, _code, _says in [
        ("takes h_enc[:, lengths - 1], (N, N, H)", ED_EVERY_LENGTH, "(N, N, H)"),
        ("repeats the context T_in times", ED_REPEAT_T_IN, "not T_in"),
        ("runs the decoder with enc_params", ED_DECODER_ENC,
         "did the decoder run with enc_params")]:
    assert _code != ED_HEAD + ED_TAIL, _label  # the replace above took
    mistake(f"ch01 encoder_decoder_forward {_label}", *ED, _code,
            dict.fromkeys(ED_CELLS, _says))
    costs(f"ch01 encoder_decoder_forward {_label}", *ED, _code, ED_CELLS)
mistake("ch01 encoder_decoder_forward squeezes the context (breaks at N = 1)", *ED,
        ED_SQUEEZED, {"test_encoder_decoder_own_last_step":
                      "keep the batch axis when N = 1"})
costs("ch01 encoder_decoder_forward squeezes the context (breaks at N = 1)", *ED,
      ED_SQUEEZED, ED_CELLS)
# guards: the solution keeps every cell, a blank answer earns nothing of Part (c)
costs("ch01 encoder_decoder_forward as the course writes it", *ED, (), set())
costs("ch01 encoder_decoder_forward left blank", *ED, "raise NotImplementedError()",
      ED_CELLS)

# -- ch04 Part 2: |g| == threshold is not below (a visible case at the exact tie) ------
PD_LE = """
rho = float(np.max(np.abs(np.linalg.eigvals(W_hh))))
if g_norm <= threshold:
    return 0
if rho >= 1.0:
    return -1
n = max(int(np.floor(np.log(threshold / g_norm) / np.log(rho))) + 1, 1)
while n > 1 and g_norm * rho ** (n - 1) < threshold:
    n -= 1
while not g_norm * rho**n < threshold:
    n += 1
return n
"""
PD4 = ("ch04", "ex_vanishing_distance")
mistake("ch04 predicted_distance counts |g| == threshold as below", *PD4,
        (PD_LE, None), {"test_predicted_distance": "at n = 0 the norm |g| EQUALS"})
costs("ch04 predicted_distance counts |g| == threshold as below", *PD4,
      (PD_LE, None), {"test_predicted_distance"})
costs("ch04 predicted_distance as the course writes it", *PD4, (), set())
costs("ch04 predicted_distance left blank", *PD4,
      ("raise NotImplementedError()", None),
      {"test_predicted_distance", "test_prediction_matches_measurement"})

# -- ch05 Part 4: memory_unit at the wrong step, or with the marks as row indices -----
# The visible stand-in for write_weights ignored t; only the hidden half failed.
_CH05_AT_T = _ch05_memory("final[marked == 1].sum(axis=0) / final.sum(axis=0)").replace(
    "i_seq.shape[0] - 1", "i_seq.shape[0]")
_CH05_AT_0 = _ch05_memory("final[marked == 1].sum(axis=0) / final.sum(axis=0)").replace(
    "i_seq.shape[0] - 1", "0")
_CH05_AT_T_MINUS_2 = _ch05_memory(
    "final[marked == 1].sum(axis=0) / final.sum(axis=0)").replace(
    "i_seq.shape[0] - 1", "i_seq.shape[0] - 2")
_CH05_ROW_INDICES = _ch05_memory("final[marked].sum(axis=0) / final.sum(axis=0)")
for _label, _code, _says in [
        ("reads the weights at t = T", _CH05_AT_T, "t = 6"),
        ("reads the weights at t = 0", _CH05_AT_0, "at step t = 0"),
        ("reads the weights at t = T - 2", _CH05_AT_T_MINUS_2, "at step t = 4"),
        ("uses the 0/1 marks as row indices", _CH05_ROW_INDICES, "final[marked]")]:
    mistake(f"ch05 memory_unit {_label}", *WW5, (None, _code),
            {"test_memory_unit": _says})
    costs(f"ch05 memory_unit {_label}", *WW5, (None, _code), {"test_memory_unit"})
# A valid memory_unit that also reads other steps (and uses the last) keeps its points.
costs("ch05 memory_unit reads every step, uses the last (valid)", *WW5, (None, """
every = [write_weights(i_seq, f_seq, t) for t in range(i_seq.shape[0])]
final = every[-1]
share = final[np.asarray(marked) == 1].sum(axis=0) / final.sum(axis=0)
return int(np.argmax(share))
"""), set())
costs("ch05 memory_unit with a boolean mask (valid)", *WW5, (None, """
final = write_weights(i_seq, f_seq, len(marked) - 1)
mask = np.asarray(marked).astype(bool)
return int(np.argmax(final[mask].sum(axis=0) / final.sum(axis=0)))
"""), set())
costs("ch05 write_weights and memory_unit as the course writes them", *WW5, (), set())
costs("ch05 memory_unit left blank", *WW5, (None, "raise NotImplementedError()"),
      {"test_memory_unit"})
costs("ch05 memory_unit returns 2", *WW5, (None, "return 2"), {"test_memory_unit"})
# write_weights off by one step: both of its visible cells already failed for these
# (guards, they pass before and after).
_CH05_WW_OFF = {
    "stops a step early": """
T, H = i_seq.shape
weights = np.zeros((T, H))
kept = np.ones(H)
for s in range(t - 1, -1, -1):
    weights[s] = i_seq[s] * kept
    kept = kept * f_seq[s]
return weights
""",
    "multiplies the forget gates up to f_(t+1)": """
T, H = i_seq.shape
weights = np.zeros((T, H))
for s in range(t + 1):
    weights[s] = i_seq[s] * np.prod(f_seq[s + 1 : t + 2], axis=0)
return weights
""",
    "multiplies the forget gates up to f_(t-1)": """
T, H = i_seq.shape
weights = np.zeros((T, H))
for s in range(t + 1):
    weights[s] = i_seq[s] * np.prod(f_seq[s + 1 : t], axis=0)
return weights
""",
}
for _label, _code in _CH05_WW_OFF.items():
    mistake(f"ch05 write_weights {_label}", *WW5, (_code, None),
            {"test_write_weights_by_hand": "write_weights(..., t=",
             "test_write_weights_rebuild_cell": "differs from the cell state"})

# -- ch03 Part 5: line [4] sends dLoss/du_t, not dLoss/da_t, through W_hh --------------
# At rest (the leak-path cell) tanh' = 1, so du_t = da_t; with T = 1 (the tanh cell)
# line [4] reaches only dh0, which that cell leaves out: this passed every cell.
_CH03_DU_THROUGH_W = _ch03_leaky(FIX3, 'dh_prev = (1 - alpha) * dh + du @ p["W_hh"]')
mistake("ch03 leaky line [4] sends du_t through W_hh", *LEAKY, _CH03_DU_THROUGH_W,
        {PATH_TEST: "line [4]"})
costs("ch03 leaky line [4] sends du_t through W_hh", *LEAKY, _CH03_DU_THROUGH_W,
      {PATH_TEST})
costs("ch03 leaky line [4] sends du_t through W_hh, line [3] reads h_t", *LEAKY,
      _ch03_leaky(BUG3, 'dh_prev = (1 - alpha) * dh + du @ p["W_hh"]'),
      {TANH_TEST, PATH_TEST})
# guards: the new check takes the learner's own lines [2] and [3] as written
costs("ch03 leaky as the course writes it", *LEAKY, (), set())
costs("ch03 leaky takes tanh of h_t, line [4] right", *LEAKY, _ch03_leaky(
    "da[:, t] = du * (1 - np.tanh(h_seq[:, t]) ** 2)", FIX4), {TANH_TEST})
costs("ch03 leaky drops alpha on line [2], line [4] right", *LEAKY,
      _ch03_leaky(FIX3, FIX4).replace("du = alpha * dh", "du = dh"), {TANH_TEST})
costs("ch03 leaky left blank", *LEAKY, "raise NotImplementedError()",
      {TANH_TEST, PATH_TEST})


# -- ch02 Part 5 (/tmp/learner12, problems 2 and 7) -----------------------------------
# np.diag of a float alpha raised a bare "Input must be 1- or 2-d" in every cell. It
# costs the four cells that pass a float, all visibly, and not the per-unit cell, whose
# hidden half passes (H,) arrays only (it had passed visibly and lost its hidden half).
DR_FLOAT_DIAG = DR.format(M="np.diag(1 - alpha) + np.diag(alpha) @ W_hh",
                          ret="float(np.abs(np.linalg.eigvals(M)).max())").replace(
    "alpha = np.broadcast_to(np.asarray(alpha, dtype=float), (H,))\n", "")
mistake("ch02 leaky_decay_rate np.diag of a float alpha", "ch02", "ex_decay_rate",
        DR_FLOAT_DIAG, {"test_decay_no_leak": "alpha may be a float",
                        "test_decay_pure_leak": "Input must be 1- or 2-d",
                        "test_decay_negative_eigenvalue": "Input must be 1- or 2-d",
                        "test_decay_rotation": "Input must be 1- or 2-d"})
costs("ch02 leaky_decay_rate np.diag of a float alpha", "ch02", "ex_decay_rate",
      DR_FLOAT_DIAG, {"test_decay_no_leak", "test_decay_pure_leak",
                      "test_decay_negative_eigenvalue", "test_decay_rotation"})
# A rate measured by running the cell was told "expected 0.7283 (to 4 digits)",
# which it was; the test needs 1e-9.
mistake("ch02 leaky_decay_rate measured, not predicted", "ch02", "ex_decay_rate", """
H = W_hh.shape[0]
alpha = np.broadcast_to(np.asarray(alpha, dtype=float), (H,))
h = 1e-6 * np.ones(H)
norms = []
for t in range(400):
    h = (1 - alpha) * h + alpha * np.tanh(W_hh @ h)
    norms.append(np.linalg.norm(h))
return float((norms[-1] / norms[199]) ** (1 / 200))
""", {"test_decay_per_unit": "(to 1e-9): compute it from the eigenvalues of M",
      # (passed before: see learner review 12b below)
      "test_decay_no_leak": "not by running the cell"})


# -- ch02 Parts 2 and 4 (/tmp/learner12, problems 7 and 10) -------------------------
# np.array(states) is (T, N, H); its reshape to (N, T, H) was blamed on the loop.
mistake("ch02 rnn_sequence_packed reshapes a (T, N, H) stack", "ch02",
        "ex_sequence_packed", PART2_BUGS["reshapes a (T, N, H) stack"],
        dict.fromkeys(["test_sequence_forward", "test_sequence_reverse"],
                      "reshape(N, T, H) does not move axes"))
# The visible batch's two rows were identical, so a flip along the batch axis
# looked like no flip.
SEQ_FLIP_BATCH = """
T = x.shape[1]
states, h = [], h0
for t in range(T - 1, -1, -1) if reverse else range(T):
    h = rnn_step_packed(x[:, t], h, W, b)
    states.append(h)
h_seq = np.stack(states, axis=1)
return h_seq[::-1] if reverse else h_seq
"""
mistake("ch02 rnn_sequence_packed flips along the batch axis", "ch02",
        "ex_sequence_packed", SEQ_FLIP_BATCH,
        {"test_sequence_reverse": "flipped along axis 0, the batch"})
costs("ch02 rnn_sequence_packed flips along the batch axis", "ch02",
      "ex_sequence_packed", SEQ_FLIP_BATCH, {"test_sequence_reverse"})
# p @ W_yh without the transpose raised a bare matmul error in every cell.
JORDAN_NO_T = _ch02_jordan('p @ params["W_yh"].T', 'p @ params["W_yh"]')
mistake("ch02 jordan_forward p @ W_yh without .T", *JORDAN, JORDAN_NO_T,
        {"test_jordan_fixed_case": "in all three products",
         "test_jordan_large_logits": "matmul",
         "test_jordan_random": "matmul"})
# A softmax shifted by the largest logit of the whole batch earned every point.
JORDAN_GLOBAL_MAX = _ch02_jordan("logits.max(axis=1, keepdims=True)", "logits.max()")
mistake("ch02 jordan_forward shifts by the batch's largest logit", *JORDAN,
        JORDAN_GLOBAL_MAX, {"test_jordan_large_logits": "OWN largest logit"})
costs("ch02 jordan_forward shifts by the batch's largest logit", *JORDAN,
      JORDAN_GLOBAL_MAX, {"test_jordan_large_logits"})


# -- ch02 Part 3 (/tmp/rev02, findings 1 and 5) -------------------------------------
# h_seq built with T = lengths.max() passed every visible case (each had a sequence
# of length T) and lost 6/6 hidden points; a batch padded to T = 5 now names it.
BI_T_FROM_LENGTHS = BI_RIGHT.replace("N, T, _ = x.shape",
                                     "N = x.shape[0]\nT = int(np.max(lengths))")
mistake("ch02 birnn_padded T = lengths.max()", "ch02", "ex_birnn_padded",
        BI_T_FROM_LENGTHS, dict.fromkeys([
            "test_birnn_padded_forward", "test_birnn_padded_backward",
            "test_birnn_padded_zero_at_padding"], "not from lengths.max()"))
costs("ch02 birnn_padded T = lengths.max()", "ch02", "ex_birnn_padded",
      BI_T_FROM_LENGTHS, {"test_birnn_padded_forward", "test_birnn_padded_backward",
                          "test_birnn_padded_zero_at_padding"})
# The halves in the wrong order, and the two initial states swapped, had generic
# messages; each is named in both value cells and costs those two.
BI_HALVES_SWAPPED = (BI_RIGHT.replace("h_seq[:, t, :H] =", "h_seq[:, t, FWD] =")
                     .replace("h_seq[:, t, H:] =", "h_seq[:, t, :H] =")
                     .replace("h_seq[:, t, FWD] =", "h_seq[:, t, H:] ="))
BI_H0_SWAPPED = (BI_RIGHT.replace("h = h0_fwd", "h = H0_BWD")
                 .replace("h = h0_bwd", "h = h0_fwd").replace("H0_BWD", "h0_bwd"))
BI_VALUE_CELLS = {"test_birnn_padded_forward", "test_birnn_padded_backward"}
mistake("ch02 birnn_padded backward half first", "ch02", "ex_birnn_padded",
        BI_HALVES_SWAPPED, {
            "test_birnn_padded_forward": "h_seq[..., :H] holds the backward states",
            "test_birnn_padded_backward": "h_seq[..., H:] holds the forward states"})
costs("ch02 birnn_padded backward half first", "ch02", "ex_birnn_padded",
      BI_HALVES_SWAPPED, BI_VALUE_CELLS)
mistake("ch02 birnn_padded h0_fwd and h0_bwd swapped", "ch02", "ex_birnn_padded",
        BI_H0_SWAPPED, {
            "test_birnn_padded_forward": "the forward half started from h0_bwd",
            "test_birnn_padded_backward": "the backward half started from h0_fwd"})
costs("ch02 birnn_padded h0_fwd and h0_bwd swapped", "ch02", "ex_birnn_padded",
      BI_H0_SWAPPED, BI_VALUE_CELLS)


# ch02 Part 1: rnnlib.lstm_step_forward with its gates pinned by biases of +-1000
# gives the packed tanh step exactly (/tmp/rev02, finding 2). That is delegation:
# ch02 withholds the lstm_* functions while grading, as it does the GRU, and
# delegation.py's lstm_as_tanh_step form, graded in test_exercise_grading, scores it
# 0 on Part 1.


# -- ch02 Parts 4 and 5 (/tmp/rev02, findings 3, 4 and 6) ---------------------------
# A softmax without keepdims=True raised a bare broadcast ValueError in all three
# cells; each now names it (and the mistake still costs the whole part).
JORDAN_NO_KEEPDIMS = _ch02_jordan("logits.max(axis=1, keepdims=True)",
                                  "logits.max(axis=1)")
JORDAN_CELLS = {"test_jordan_fixed_case", "test_jordan_large_logits",
                "test_jordan_random"}
mistake("ch02 jordan_forward softmax without keepdims", *JORDAN, JORDAN_NO_KEEPDIMS,
        dict.fromkeys(JORDAN_CELLS, "keepdims=True"))
costs("ch02 jordan_forward softmax without keepdims", *JORDAN, JORDAN_NO_KEEPDIMS,
      JORDAN_CELLS)
# The matmul hint began with W_yh whatever product had lost its .T; it now names
# all three products, also in the other two cells.
JORDAN_W_IH_NO_T = _ch02_jordan('x[:, t] @ params["W_ih"].T',
                                'x[:, t] @ params["W_ih"]')
mistake("ch02 jordan_forward x_t @ W_ih without .T", *JORDAN, JORDAN_W_IH_NO_T,
        dict.fromkeys(JORDAN_CELLS, "x_t @ W_ih.T and p_{t-1} @ W_yh.T"))
JORDAN_W_HY_NO_T = _ch02_jordan('h @ params["W_hy"].T', 'h @ params["W_hy"]')
mistake("ch02 jordan_forward h @ W_hy without .T", *JORDAN, JORDAN_W_HY_NO_T,
        dict.fromkeys(JORDAN_CELLS, "h @ W_hy.T, (N, V)"))
# Part 5: the float-alpha hint caught every ValueError, TypeError and IndexError
# (LinAlgError is a ValueError). An eigvals of a 1-D array fails for an (H,) alpha
# too: its own error is shown, not the float hint.
DR_EIGVALS_1D = DR.format(M="(1 - alpha) + alpha * np.diag(W_hh)",
                          ret="float(np.abs(np.linalg.eigvals(M)).max())")
mistake("ch02 leaky_decay_rate eigvals of a 1-D array", "ch02", "ex_decay_rate",
        DR_EIGVALS_1D, dict.fromkeys(
            ["test_decay_no_leak", "test_decay_pure_leak",
             "test_decay_negative_eigenvalue", "test_decay_rotation",
             "test_decay_per_unit"], "LinAlgError: 1-dimensional array given"))
# A rate off by 1e-11 (a finite-difference Jacobian) passes every cell: one
# tolerance, 1e-9, in every cell, and every message says so.
DR_OFF_BY_1E11 = DR.format(M="np.diag(1 - alpha) + alpha[:, None] * W_hh",
                           ret="float(np.abs(np.linalg.eigvals(M)).max()) - 1e-11")
mistake("ch02 leaky_decay_rate within 1e-9 (valid)", "ch02", "ex_decay_rate",
        DR_OFF_BY_1E11, {})
DR_OFF_BY_1E6 = DR_OFF_BY_1E11.replace("1e-11", "1e-6")
mistake("ch02 leaky_decay_rate off by 1e-6", "ch02", "ex_decay_rate", DR_OFF_BY_1E6,
        dict.fromkeys(["test_decay_no_leak", "test_decay_pure_leak",
                       "test_decay_negative_eigenvalue", "test_decay_rotation",
                       "test_decay_per_unit"], "(to 1e-9)"))


# -- ch04 (/tmp/learner35, findings 1, 3 and 6) ---------------------------------------
# Part 5: finite differences of rnn_forward on the window, run from the carried state
# (20/21 before, sealed). Every cell counted truncated_grads' calls of rnn_forward;
# since truncated_grads takes rnn_forward's cache, every cell runs it with
# rnn_forward replaced by a stub that raises.
TG4 = ("ch04", "ex_truncated_grads")
TG4_CELLS = ["test_truncated_one_step", "test_truncated_full_bptt",
             "test_truncated_window"]
# A 5-point stencil over every entry of every array (ch03 and ch04 cheats use it).
FD5 = """
def _fd(loss, arrays, h=1e-3):
    out = {}
    for name, a in arrays.items():
        grad = np.zeros(a.shape)
        for ix in np.ndindex(a.shape):
            def at(d):
                b = {key: v.copy() for key, v in arrays.items()}
                b[name][ix] += d
                return loss(b)
            grad[ix] = (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h)
        out[name] = grad
    return out
"""
TG4_FD = FD5 + """x, params = cache["x"], cache["params"]
N, T, D = x.shape
H = params["W_hh"].shape[0]
k = min(k, T)
FORWARD
def loss(b):
    return float(np.sum(g * run(x[:, T - k:], h_carried, b)))
return _fd(loss, dict(params), 1e-3)
"""
cheat("ch04 truncated_grads by finite differences of rnn_forward", *TG4,
      TG4_FD.replace("FORWARD", """
def run(xs, h, p):
    return rnn_forward(xs, h, p)[0][:, -1]
h_all, _ = rnn_forward(x, np.zeros((N, H)), params)
h_carried = h_all[:, T - k - 1] if T - k - 1 >= 0 else np.zeros((N, H))
"""), dict.fromkeys(TG4_CELLS, "does not re-run the forward pass"))
# The same with a forward loop of its own (no rnn_forward call to stub): a case with
# weights twice as large puts the 5-point differences 2e-8 off, and 1e-11 is
# the tolerance (the course's answer agrees to 3e-14 or better on every case).
cheat("ch04 truncated_grads by finite differences of its own forward loop", *TG4,
      TG4_FD.replace("FORWARD", """
def run(xs, h, p):
    for t in range(xs.shape[1]):
        h = np.tanh(xs[:, t] @ p["W_ih"].T + p["b_ih"] + h @ p["W_hh"].T + p["b_hh"])
    return h
h_carried = run(x[:, :T - k], np.zeros((N, H)), params)
"""), dict.fromkeys(TG4_CELLS, "(or of finite differences)"))

# Part 1: `delta = g; delta *= ...` writes into the caller's g. It cost the 2-point
# values cell; it now costs the 1-point hand case, which names the alias.
GN4 = ("ch04", "ex_gradient_norms")
GN4_ALIAS = """
T = h_seq.shape[0]
norms = np.empty(T + 1)
delta = g
norms[0] = np.linalg.norm(delta)
for n, h_j in enumerate(h_seq[::-1], start=1):
    delta *= 1.0 - h_j * h_j
    delta = delta @ W_hh
    norms[n] = np.linalg.norm(delta)
return norms
"""
mistake("ch04 gradient_norms writes into g", *GN4, GN4_ALIAS,
        {"test_gradient_norms_by_hand": "`delta = g` does not copy g"})
costs("ch04 gradient_norms writes into g", *GN4, GN4_ALIAS,
      {"test_gradient_norms_by_hand"})
# Part 1 in float32: the message printed equal-looking numbers; it now says float32.
GN4_F32 = """
T = h_seq.shape[0]
norms = np.empty(T + 1, dtype=np.float32)
delta = np.asarray(g, dtype=float)
norms[0] = np.linalg.norm(delta)
for n, h_j in enumerate(h_seq[::-1], start=1):
    delta = (delta * (1.0 - h_j * h_j)) @ W_hh
    norms[n] = np.linalg.norm(delta)
return norms
"""
mistake("ch04 gradient_norms in float32", *GN4, GN4_F32, dict.fromkeys(
    ["test_gradient_norms_by_hand", "test_gradient_norms_against_backprop"],
    "it is the accuracy of float32"))


# Part 3: radii were always passed sorted, so not sorting them scored 21/21
# (finding 4); each curve's last two values gave rho to 1e-10, and rounding the rate
# to 0.01 matched the radii without using them (finding 11). The radii now come
# in any order, off the 0.01 grid, and every value has 2 % noise.
MR4 = ("ch04", "ex_match_radii")
MR4_CELLS = ["test_match_radii_four_curves", "test_match_radii_any_number"]


def _ch04_match(rate: str, ascending: str = "sorted(float(r) for r in radii)",
                ret: str = "matched") -> str:
    return f"""
rates = []
for curve in curves:
    c = np.asarray(curve, dtype=float)
    rates.append({rate})
ascending = {ascending}
matched = [0.0] * len(curves)
for rank, i in enumerate(np.argsort(rates)):
    matched[i] = ascending[rank]
return {ret}
"""


MR4_FIT = "np.polyfit(np.arange(len(c))[len(c) // 2:], np.log(c[len(c) // 2:]), 1)[0]"
mistake("ch04 match_radii does not sort radii", *MR4,
        _ch04_match(MR4_FIT, ascending="list(radii)"),
        dict.fromkeys(MR4_CELLS, "match the sorted rates to sorted(radii)"))
mistake("ch04 match_radii from the last two values", *MR4,
        _ch04_match("np.log(c[-1] / c[-2])"),
        {"test_match_radii_any_number": "fitted over many steps"})
costs("ch04 match_radii from the last two values", *MR4,
      _ch04_match("np.log(c[-1] / c[-2])"), {"test_match_radii_any_number"})
mistake("ch04 match_radii rounds the fitted rho, ignoring radii", *MR4,
        _ch04_match(MR4_FIT, ret="[round(float(np.exp(r)), 2) for r in rates]"),
        dict.fromkeys(MR4_CELLS, "exactly once"))
mistake("ch04 match_radii from a 10-step ratio at the end (valid)", *MR4,
        _ch04_match("np.log(c[-1] / c[-11]) / 10"), {})


# Part 4 in float32: the hand case now names the dtype (it said "must stay exactly as
# it was", finding 6's table).
AC4_F32 = """
clipped = {}
for name, grad in grads.items():
    grad = np.asarray(grad, dtype=np.float32)
    weight = np.asarray(params[name], dtype=np.float32)
    if grad.ndim == 1:
        w_norm, g_norm = np.linalg.norm(weight), np.linalg.norm(grad)
    else:
        w_norm = np.linalg.norm(weight, axis=1, keepdims=True)
        g_norm = np.linalg.norm(grad, axis=1, keepdims=True)
    limit = clipping * np.maximum(w_norm, eps)
    over = g_norm > limit
    clipped[name] = grad * np.where(over, limit / np.where(over, g_norm, 1.0), 1.0)
return clipped
"""
mistake("ch04 adaptive_clip in float32", "ch04", "ex_adaptive_clip", AC4_F32,
        {"test_adaptive_clip_by_hand": "keep the gradients in float64",
         "test_adaptive_clip_properties": "must stay exactly as it was"})
costs("ch04 adaptive_clip in float32", "ch04", "ex_adaptive_clip", AC4_F32,
      {"test_adaptive_clip_by_hand", "test_adaptive_clip_properties"})

# Part 4, torch-style: scale the rows of grads[name] in place and return grads. Its
# values are right; it cost by_hand and properties (4 of 5 points), each for the
# same write (/tmp/inplace's measurement 3). The rule is graded in by_hand only;
# the other cells hand the clip fresh copies.
AC4_IN_PLACE = """
for name, grad in grads.items():
    weight = params[name]
    if grad.ndim == 1:
        limit = clipping * max(np.linalg.norm(weight), eps)
        if np.linalg.norm(grad) > limit:
            grad *= limit / np.linalg.norm(grad)
    else:
        for i in range(grad.shape[0]):
            limit = clipping * max(np.linalg.norm(weight[i]), eps)
            if np.linalg.norm(grad[i]) > limit:
                grad[i] *= limit / np.linalg.norm(grad[i])
return grads
"""
mistake("ch04 adaptive_clip scales grads in place", "ch04", "ex_adaptive_clip",
        AC4_IN_PLACE, {"test_adaptive_clip_by_hand": "writes into the caller's"})
costs("ch04 adaptive_clip scales grads in place", "ch04", "ex_adaptive_clip",
      AC4_IN_PLACE, {"test_adaptive_clip_by_hand"})
mistake("ch04 adaptive_clip scales a copy of grads in place (valid)", "ch04",
        "ex_adaptive_clip", AC4_IN_PLACE.replace("for name, grad in grads.items():",
                                                 "grads = {k: np.array(v, dtype=float)"
                                                 " for k, v in grads.items()}\n"
                                                 "for name, grad in grads.items():"),
        {})

# -- ch05 Part 2 (fix05; /tmp/learner35/REPORT.md findings 1 and 3) ------------------
# A 7-point stencil over the set-up's cho_gru_forward passed every visible test and
# lost 5 hidden points; the tests now run cho_gru_backward with cho_gru_forward (and
# numerical_gradient) replaced by stubs that raise, visible and hidden alike.
# Writing into cache['r'] passed every visible test and cost the 3-point sequence
# cell; writing into dh_seq was never seen. Both now fail the visible half of the
# 1-point cell test_cho_gru_leaves_inputs, and only it.
CG5 = ("ch05", "ex_cho_gru_backward")
CHO_CELLS = {"test_cho_gru_one_step_parameters", "test_cho_gru_one_step_inputs",
             "test_cho_gru_sequence", "test_cho_gru_leaves_inputs"}


def _ch05_cho(solution_edit=None):
    """The body of the course's cho_gru_backward, with one (old, new) replacement."""
    cell = next(c for c in notebook("ch05")["cells"]
                if nbtools.nbgrader_meta(c).get("grade_id") == CG5[1])
    lines = nbtools.source(cell).splitlines()
    begin = next(k for k, line in enumerate(lines)
                 if line.strip() == nbtools.BEGIN_SOLUTION)
    end = next(k for k, line in enumerate(lines)
               if line.strip() == nbtools.END_SOLUTION)
    body = textwrap.dedent("\n".join(lines[begin + 1 : end]))
    if solution_edit:
        old, new = solution_edit
        assert body.count(old) == 1, old
        body = body.replace(old, new)
    return body


_CH05_FD7 = """
arrays = {"x": cache["x"], "h0": cache["h0"], **cache["params"]}


def loss(b):
    hs, _ = cho_gru_forward(b["x"], b["h0"], {k: b[k] for k in PARAM_NAMES})
    return float(np.sum(dh_seq * hs))


out = {}
for name, a in arrays.items():
    g = np.zeros(a.shape)
    for ix in np.ndindex(a.shape):
        def at(d):
            b = {k: v.copy() for k, v in arrays.items()}
            b[name][ix] += d
            return loss(b)
        g[ix] = (45 * (at(5e-3) - at(-5e-3)) - 9 * (at(1e-2) - at(-1e-2))
                 + (at(1.5e-2) - at(-1.5e-2))) / (60 * 5e-3)
    out[name] = g
return out
"""
mistake("ch05 cho_gru_backward by a 7-point stencil over cho_gru_forward", *CG5,
        _CH05_FD7, dict.fromkeys(CHO_CELLS, "does not re-run the forward pass"))
costs("ch05 cho_gru_backward by a 7-point stencil over cho_gru_forward", *CG5,
      _CH05_FD7, CHO_CELLS)
# The same stencil over the learner's own copy of the forward pass, which no stub
# can replace: the tolerance (1e-11; the course's answer reaches 1.7e-13) and the
# saturated case (weights x3) make every gradient cell fail visibly, with the
# finite-difference hint.
# Cho's GRU forward pass, written out in the answer cell by a learner who copies it.
_CH05_OWN_FORWARD = """
def _fwd(x, h0, params):
    W_ir, W_iz, W_in = np.split(params["W_ih"], 3)
    W_hr, W_hz, W_hn = np.split(params["W_hh"], 3)
    b_ir, b_iz, b_in = np.split(params["b_ih"], 3)
    b_hr, b_hz, b_hn = np.split(params["b_hh"], 3)
    h, out = h0, []
    for t in range(x.shape[1]):
        x_t = x[:, t]
        r = 1 / (1 + np.exp(-(x_t @ W_ir.T + b_ir + h @ W_hr.T + b_hr)))
        z = 1 / (1 + np.exp(-(x_t @ W_iz.T + b_iz + h @ W_hz.T + b_hz)))
        n = np.tanh(x_t @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)
        h = (1 - z) * n + z * h
        out.append(h)
    return np.stack(out, axis=1)
"""
_CH05_FD7_OWN = _CH05_OWN_FORWARD + "\n" + (
    _CH05_FD7.replace("hs, _ = cho_gru_forward(", "hs = _fwd(")
    .replace("1.5e-2", "3e-2").replace("1e-2", "2e-2")
    .replace("5e-3", "1e-2"))  # a step of 1e-2
mistake("ch05 cho_gru_backward by a 7-point stencil over its own forward", *CG5,
        _CH05_FD7_OWN, {
            "test_cho_gru_one_step_parameters": "the accuracy of finite differences",
            # its inputs' gradients are within 1e-11: the not-from-x cache tells
            "test_cho_gru_one_step_inputs": "it does not recompute them from x",
            "test_cho_gru_sequence": "the accuracy of finite differences",
            "test_cho_gru_leaves_inputs": "your gradients are not yet right"})
costs("ch05 cho_gru_backward by a 7-point stencil over its own forward", *CG5,
      _CH05_FD7_OWN, CHO_CELLS)
_CH05_R_IN_PLACE = _ch05_cho(("reset_h = r_all * h_before",
                              "reset_h = r_all\nreset_h *= h_before"))
mistake("ch05 cho_gru_backward writes r * h into cache['r']", *CG5, _CH05_R_IN_PLACE,
        {"test_cho_gru_leaves_inputs": "writes into cache['r']"})
costs("ch05 cho_gru_backward writes r * h into cache['r']", *CG5, _CH05_R_IN_PLACE,
      {"test_cho_gru_leaves_inputs"})
_CH05_DH_IN_PLACE = _ch05_cho(("dh_t = dh_seq[:, t] + d_back",
                               "dh_t = dh_seq[:, t]\n    dh_t += d_back"))
mistake("ch05 cho_gru_backward adds into dh_seq", *CG5, _CH05_DH_IN_PLACE,
        {"test_cho_gru_leaves_inputs": "writes into dh_seq"})
costs("ch05 cho_gru_backward adds into dh_seq", *CG5, _CH05_DH_IN_PLACE,
      {"test_cho_gru_leaves_inputs"})
costs("ch05 cho_gru_backward as the course writes it", *CG5, (), set())
# (fix05b; /tmp/rev03/REPORT.md finding 1, carried over to ch05) The complex step
# over a copy of the forward pass, f(x + 1e-20j).imag / 1e-20, is exact to rounding
# and calls nothing the stubs replace: it earned 7/7. test_cho_gru_leaves_inputs
# now also hands the backward a cache whose gates and states did not come from its
# x (autograd's run with a constant added to every pre-activation); anything that
# recomputes them from x fails there (rel. error 1.0; the course's answer 1e-14),
# and so do the three gradient cells, each with one such cache: the complex step
# earns none of Part 2's 7 points (it had kept 6 while only that cell checked).
_CH05_COMPLEX_STEP = _CH05_OWN_FORWARD + """

arrays = {"x": cache["x"], "h0": cache["h0"], **cache["params"]}
out = {}
for name, a in arrays.items():
    g = np.zeros(a.shape)
    for ix in np.ndindex(a.shape):
        b = {k: v.astype(complex) for k, v in arrays.items()}
        b[name][ix] += 1e-20j
        hs = _fwd(b["x"], b["h0"], {k: b[k] for k in PARAM_NAMES})
        g[ix] = np.sum(dh_seq * hs).imag / 1e-20
    out[name] = g
return out
"""
cheat("ch05 cho_gru_backward by the complex step over its own forward", *CG5,
      _CH05_COMPLEX_STEP, dict.fromkeys(CHO_CELLS, "it does not recompute them from x"))
costs("ch05 cho_gru_backward by the complex step over its own forward", *CG5,
      _CH05_COMPLEX_STEP, CHO_CELLS)
# A backward pass that recomputes r, z, n from x and the cached states: right on a
# cache from cho_gru_forward, against the stated requirement; it costs Part 2.
_CH05_RECOMPUTES = """
x, h0, h_seq, p = cache["x"], cache["h0"], cache["h_seq"], cache["params"]
N, T, H = h_seq.shape
W_ir, W_iz, W_in = np.split(p["W_ih"], 3)
W_hr, W_hz, W_hn = np.split(p["W_hh"], 3)
b_ir, b_iz, b_in = np.split(p["b_ih"], 3)
b_hr, b_hz, b_hn = np.split(p["b_hh"], 3)
grads = {k: np.zeros_like(v) for k, v in p.items()}
dx = np.zeros_like(x)
carry = np.zeros((N, H))
for t in range(T - 1, -1, -1):
    h_old = h0 if t == 0 else h_seq[:, t - 1]
    x_t = x[:, t]
    r = sigmoid(x_t @ W_ir.T + b_ir + h_old @ W_hr.T + b_hr)
    z = sigmoid(x_t @ W_iz.T + b_iz + h_old @ W_hz.T + b_hz)
    n = np.tanh(x_t @ W_in.T + b_in + (r * h_old) @ W_hn.T + b_hn)
    dh = dh_seq[:, t] + carry
    da_n = dh * (1 - z) * (1 - n**2)
    da_z = dh * (h_old - n) * z * (1 - z)
    drh = da_n @ W_hn
    da_r = drh * h_old * r * (1 - r)
    da = np.hstack([da_r, da_z, da_n])
    dx[:, t] = da @ p["W_ih"]
    grads["W_ih"] += da.T @ x_t
    grads["W_hh"][: 2 * H] += np.hstack([da_r, da_z]).T @ h_old
    grads["W_hh"][2 * H :] += da_n.T @ (r * h_old)
    grads["b_ih"] += da.sum(axis=0)
    grads["b_hh"] += da.sum(axis=0)
    carry = dh * z + drh * r + da_r @ W_hr + da_z @ W_hz
grads["x"], grads["h0"] = dx, carry
return grads
"""
mistake("ch05 cho_gru_backward recomputes the gates from x", *CG5, _CH05_RECOMPUTES,
        dict.fromkeys(CHO_CELLS, "reads the gates and states in the cache"))
costs("ch05 cho_gru_backward recomputes the gates from x", *CG5, _CH05_RECOMPUTES,
      CHO_CELLS)
# Valid: a loop over steps that accumulates each gradient, with the derivatives in
# another algebraic form of the cached gates (r - r * r, (1 - n) * (1 + n)); it
# agrees on the not-from-x caches to 4e-14.
costs("ch05 cho_gru_backward as a loop with other derivative forms (valid)", *CG5,
      """
x, h0, h_seq, p = cache["x"], cache["h0"], cache["h_seq"], cache["params"]
N, T, H = h_seq.shape
W_hr, W_hz, W_hn = np.split(p["W_hh"], 3)
grads = {k: np.zeros_like(v) for k, v in p.items()}
dx = np.zeros_like(x)
carry = np.zeros((N, H))
for t in range(T - 1, -1, -1):
    h_old = h0 if t == 0 else h_seq[:, t - 1]
    r, z, n = cache["r"][:, t], cache["z"][:, t], cache["n"][:, t]
    dh = dh_seq[:, t] + carry
    da_n = dh * (1 - z) * ((1 - n) * (1 + n))
    da_z = (dh * h_old - dh * n) * (z - z * z)
    drh = da_n @ W_hn
    da_r = drh * h_old * (r - r * r)
    da = np.hstack([da_r, da_z, da_n])
    dx[:, t] = da @ p["W_ih"]
    grads["W_ih"] += da.T @ x[:, t]
    grads["W_hh"][: 2 * H] += np.hstack([da_r, da_z]).T @ h_old
    grads["W_hh"][2 * H :] += da_n.T @ (r * h_old)
    grads["b_ih"] += da.sum(axis=0)
    grads["b_hh"] += da.sum(axis=0)
    carry = dh * z + drh * r + da_r @ W_hr + da_z @ W_hz
grads["x"], grads["h0"] = dx, carry
return grads
""", set())

# -- ch03 Parts 3 to 5: finite differences of the set-up's forward passes (learner
# review 35, finding 1). A 5-point stencil reached 1e-11 and earned 20/20; the
# backward passes now run with every forward pass swapped for a failing stub.
_CH03_FD = FD5
_CH03_FD_LAST = _CH03_FD + """
rc = cache["rnn"]
arrays = {"x": rc["x"], "h0": rc["h0"], **rc["params"], "W_hy": cache["out"]["W"],
          "b_y": np.zeros(cache["out"]["W"].shape[0])}
def loss(b):
    z, _ = last_state_forward(b["x"], cache["lengths"], b["h0"],
                              {k: b[k] for k in arrays if k not in ("x", "h0")})
    return float(np.sum(dz * z))
return _fd(loss, arrays)
"""
_CH03_FD_BIRNN = _CH03_FD + """
cf, cr = cache["forward"], cache["reverse"]
arrays = {"x": cf["x"], "h0": cf["h0"], "h0_reverse": cr["h0"], **cf["params"],
          **{k + "_reverse": v for k, v in cr["params"].items()}}
def loss(b):
    out, _ = birnn_forward(b["x"], b["h0"], b["h0_reverse"],
                           {k: v for k, v in b.items() if k.startswith(("W_", "b_"))})
    return float(np.sum(dout * out))
return _fd(loss, arrays)
"""
_CH03_FD_LEAKY = _CH03_FD + """
x, h0, p, alpha = cache["x"], cache["h0"], cache["params"], cache["alpha"]
def loss(b):
    hs, _ = leaky_rnn_forward(b["x"], b["h0"], {k: b[k] for k in p}, alpha)
    return float(np.sum(dh_seq * hs))
return _fd(loss, {"x": x, "h0": h0, **p})
"""
_CH03_RERUN = "does not re-run the forward pass"
_CH03_FD_CASES = {
    "last_state": ("ex_last_state_backward", _CH03_FD_LAST,
                   ["test_last_state_padding_gets_nothing",
                    "test_last_state_matches_autograd"]),
    "birnn": ("ex_birnn_backward", _CH03_FD_BIRNN,
              ["test_birnn_forward_cell", "test_birnn_reverse_cell",
               "test_birnn_input_gradient"]),
    "leaky": ("ex_leaky_rnn_backward", _CH03_FD_LEAKY,
              ["test_leaky_through_tanh", "test_leaky_leak_path"]),
}
for _part, (_answer, _code, _cells) in _CH03_FD_CASES.items():
    mistake(f"ch03 {_part} backward by finite differences of the forward", "ch03",
            _answer, _code, dict.fromkeys(_cells, _CH03_RERUN))
    costs(f"ch03 {_part} backward by finite differences of the forward", "ch03",
          _answer, _code, set(_cells))
# The same stencil on a copy of the forward pass that the stubs cannot reach
# (rnnlib.rnn_forward, called through the module): the saturated case (weights
# times 3) and the tolerance of 1e-11 fail it, with the precision message.
_CH03_FD_LAST_COPY = _CH03_FD + """
rc = cache["rnn"]
arrays = {"x": rc["x"], "h0": rc["h0"], **rc["params"], "W_hy": cache["out"]["W"],
          "b_y": np.zeros(cache["out"]["W"].shape[0])}
def loss(b):
    hs, _ = rnnlib.rnn_forward(b["x"], b["h0"], {k: b[k] for k in rc["params"]})
    z = hs[np.arange(hs.shape[0]), cache["lengths"] - 1] @ b["W_hy"].T + b["b_y"]
    return float(np.sum(dz * z))
return _fd(loss, arrays)
"""
# (rev03 finding 1: it also fails the padding cell, which now checks that the
# backward reads the cached states, reads_cached_states.)
mistake("ch03 last_state backward by finite differences of a copied forward", "ch03",
        "ex_last_state_backward", _CH03_FD_LAST_COPY,
        {"test_last_state_matches_autograd": "accuracy of finite differences",
         "test_last_state_padding_gets_nothing": "it does not recompute them from x"})


# -- ch03: precision, not formula (learner review 35, finding 6). numeric in float32
# passed every visible cell and lost a hidden point whose message showed two equal
# numbers; a float32 loss or dz was blamed on the formula.
_CH03_GC_F32 = _ch03_grad_check("(loss_plus - loss_minus) / (2 * h)").replace(
    "numeric = np.zeros(value.shape)", "numeric = np.zeros(value.shape, np.float32)")
mistake("ch03 grad_check numeric in float32", *GC, _CH03_GC_F32,
        {"test_grad_check_is_centred": "float32's precision"})
costs("ch03 grad_check numeric in float32", *GC, _CH03_GC_F32,
      {"test_grad_check_is_centred"})
_CH03_CE_F32 = _ch03_ce("real / (N * lengths[:, None])").replace(
    "N, T, V = z.shape", "N, T, V = z.shape\nz = z.astype(np.float32)").replace(
    "return float(loss), dz", "return float(loss), dz.astype(np.float32)")
mistake("ch03 sequence CE in float32", "ch03", "ex_sequence_mean_cross_entropy",
        _CH03_CE_F32, {"test_sequence_ce_loss_by_hand": "float32's precision",
                       "test_sequence_ce_gradient_by_hand": "float32's precision",
                       "test_sequence_ce_gradient_check": "dz is float32"})
_CH03_CE_LOSS_F32 = _ch03_ce("real / (N * lengths[:, None])").replace(
    "log_p = log_softmax(z)", "log_p = log_softmax(z.astype(np.float32))")
mistake("ch03 sequence CE loss in float32, dz in float64", "ch03",
        "ex_sequence_mean_cross_entropy", _CH03_CE_LOSS_F32,
        {"test_sequence_ce_loss_by_hand": "float32's precision",
         "test_sequence_ce_gradient_check": "the rounding of float32"})
_CH03_LEAKY_F32 = _ch03_leaky(FIX3, FIX4).replace(
    "da = np.zeros_like(h_seq)", "da = np.zeros_like(h_seq, dtype=np.float32)")
mistake("ch03 leaky fixed, da in float32", *LEAKY, _CH03_LEAKY_F32,
        {TANH_TEST: "accuracy of finite differences or of float32",
         PATH_TEST: "accuracy of finite differences or of float32"})


# -- ch03 Part 1: a relative error by hand, divided by max(|a|, |b|) (learner review
# 35, finding 7): every cell said "not a fixed number" or showed nan.
_CH03_GC_BY_MAX = _ch03_grad_check("(loss_plus - loss_minus) / (2 * h)").replace(
    "errors[name] = rel_error(grads[name], numeric)",
    "g = np.asarray(grads[name], float)\n"
    "    errors[name] = float(np.max(np.abs(g - numeric)\n"
    "                                / np.maximum(np.abs(g), np.abs(numeric))))")
_CH03_BY_MAX_SAYS = "divided by |a|, by |b| or by the larger of the two"
mistake("ch03 grad_check relative error over max(|a|, |b|)", *GC, _CH03_GC_BY_MAX, {
    "test_grad_check_correct_gradient": _CH03_BY_MAX_SAYS,
    "test_grad_check_is_centred": _CH03_BY_MAX_SAYS,
    "test_grad_check_finds_a_wrong_entry": _CH03_BY_MAX_SAYS,
    "test_grad_check_restores_params": "0/0 where both gradients are 0",
})


# -- ch03 Part 1: the same over |grads| or over |numeric| (review rev03, finding 6):
# the cells said "divided by the larger", "not a fixed number" or, over |grads| with
# a floor of 1e-8, "your check did not compute a numerical gradient" (2.5e8).
def _ch03_gc_over(scale: str) -> str:
    return _ch03_grad_check("(loss_plus - loss_minus) / (2 * h)").replace(
        "errors[name] = rel_error(grads[name], numeric)",
        "g = np.asarray(grads[name], float)\n"
        f"    errors[name] = float(np.max(np.abs(g - numeric) / {scale}))")


mistake("ch03 grad_check relative error over max(1e-8, |grads|)", *GC,
        _ch03_gc_over("np.maximum(1e-8, np.abs(g))"), {
            "test_grad_check_correct_gradient": _CH03_BY_MAX_SAYS,
            "test_grad_check_is_centred": _CH03_BY_MAX_SAYS,
            "test_grad_check_finds_a_wrong_entry": _CH03_BY_MAX_SAYS,
            "test_grad_check_restores_params": _CH03_BY_MAX_SAYS,
        })
mistake("ch03 grad_check relative error over |numeric|", *GC,
        _ch03_gc_over("np.abs(numeric)"), {
            "test_grad_check_correct_gradient": _CH03_BY_MAX_SAYS,
            "test_grad_check_is_centred": _CH03_BY_MAX_SAYS,
            "test_grad_check_finds_a_wrong_entry": _CH03_BY_MAX_SAYS,
            "test_grad_check_restores_params": "0/0 where both gradients are 0",
        })


# -- ch03 Part 2: padding with logits of +-1000, and z cleaned in place (learner
# review 35, findings 8 and 10): both scored 20/20.
_CH03_CE_OK = _ch03_ce("real / (N * lengths[:, None])")
_CH03_CE_NAIVE = _CH03_CE_OK.replace(
    "log_p = log_softmax(z)",
    "p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)\nlog_p = np.log(p)").replace(
    "dz = (softmax(z) - one_hot(y, V))", "dz = (p - one_hot(y, V))")
_CH03_CE_PRODUCT = _CH03_CE_OK.replace("log_p = log_softmax(z)",
                                       "log_p = np.log(softmax(z))")
_CH03_CE_IN_PLACE = _CH03_CE_OK.replace(
    "weight = ", "z[~real] = 0.0\nweight = ")
_CH03_ANY_LOGITS = "padding may hold any logits"
mistake("ch03 sequence CE naive softmax", "ch03", "ex_sequence_mean_cross_entropy",
        _CH03_CE_NAIVE, {"test_sequence_ce_loss_by_hand": _CH03_ANY_LOGITS,
                         "test_sequence_ce_gradient_by_hand": _CH03_ANY_LOGITS})
costs("ch03 sequence CE naive softmax", "ch03", "ex_sequence_mean_cross_entropy",
      _CH03_CE_NAIVE, _CH03_CE_BY_HAND)
mistake("ch03 sequence CE log of softmax masked by a product", "ch03",
        "ex_sequence_mean_cross_entropy", _CH03_CE_PRODUCT,
        {"test_sequence_ce_loss_by_hand": "0 * inf is nan"})
costs("ch03 sequence CE log of softmax masked by a product", "ch03",
      "ex_sequence_mean_cross_entropy", _CH03_CE_PRODUCT,
      {"test_sequence_ce_loss_by_hand"})
mistake("ch03 sequence CE zeroes the padded logits of z in place", "ch03",
        "ex_sequence_mean_cross_entropy", _CH03_CE_IN_PLACE,
        {"test_sequence_ce_loss_by_hand": "changed its argument z in place"})
costs("ch03 sequence CE zeroes the padded logits of z in place", "ch03",
      "ex_sequence_mean_cross_entropy", _CH03_CE_IN_PLACE,
      {"test_sequence_ce_loss_by_hand"})


# -- ch03 Part 3: the two likeliest slips raised raw NumPy errors (learner review 35,
# finding 9); the cells' hints now reach them.
_CH03_LS = """
out_grads = affine_backward(dz, cache["out"])
h_seq = cache["rnn"]["h_seq"]
dh_seq = np.zeros_like(h_seq)
dh_seq[np.arange(h_seq.shape[0]), cache["lengths"] - 1] = out_grads["h"]
grads = rnn_backward(dh_seq, cache["rnn"])
grads["W_hy"], grads["b_y"] = out_grads["W"], out_grads["b"]
return grads
"""
_CH03_LS_NO_MINUS_ONE = _CH03_LS.replace('cache["lengths"] - 1]', 'cache["lengths"]]')
_CH03_LS_W_HY_T = _CH03_LS.replace(
    '= out_grads["h"]', '= dz @ cache["out"]["W"].T')
_CH03_LS_CELLS = ["test_last_state_padding_gets_nothing",
                  "test_last_state_matches_autograd"]
mistake("ch03 last_state lengths without - 1", "ch03", "ex_last_state_backward",
        _CH03_LS_NO_MINUS_ONE, dict.fromkeys(_CH03_LS_CELLS, "not step lengths[n]"))
mistake("ch03 last_state dz @ W_hy.T", "ch03", "ex_last_state_backward",
        _CH03_LS_W_HY_T, dict.fromkeys(_CH03_LS_CELLS, "dLoss/dh_last = dz @ W_hy"))



# -- ch03 Parts 3 to 5: an exact numerical derivative of a copied forward (rev03
# finding 1). The complex step (or a long-double 7-point stencil) of a forward typed
# into the answer cell reached 1e-14 and earned 20/20 sealed with no backward pass.
# Every test cell of these parts now hands the backward the same cached states with
# another x (reads_cached_states): only dW_ih may change.
_CH03_CS = """
def _cs(loss, arrays, h=1e-30):
    out = {}
    for name, a in arrays.items():
        g = np.zeros(a.shape)
        for ix in np.ndindex(a.shape):
            b = {k: v.astype(complex) for k, v in arrays.items()}
            b[name][ix] += 1j * h
            g[ix] = loss(b).imag / h
        out[name] = g
    return out
def _rnn(x, h0, p):
    h, hs = h0, []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ p["W_ih"].T + p["b_ih"] + h @ p["W_hh"].T + p["b_hh"])
        hs.append(h)
    return np.stack(hs, axis=1)
"""
_CH03_CS_CASES = {
    "last_state": ("ex_last_state_backward", _CH03_CS + """
rc, W_hy = cache["rnn"], cache["out"]["W"]
def loss(b):
    hs = _rnn(b["x"], b["h0"], b)
    z = hs[np.arange(hs.shape[0]), cache["lengths"] - 1] @ b["W_hy"].T + b["b_y"]
    return np.sum(dz * z)
return _cs(loss, {"x": rc["x"], "h0": rc["h0"], **rc["params"], "W_hy": W_hy,
                  "b_y": np.zeros(W_hy.shape[0])})
""", _CH03_LS_CELLS),
    "birnn": ("ex_birnn_backward", _CH03_CS + """
cf, cr = cache["forward"], cache["reverse"]
H = dout.shape[-1] // 2
def loss(b):
    hf = _rnn(b["x"], b["h0"], {k: b[k] for k in PARAM_NAMES})
    hr = _rnn(b["x"][:, ::-1], b["h0_reverse"],
              {k: b[k + "_reverse"] for k in PARAM_NAMES})[:, ::-1]
    return np.sum(dout[..., :H] * hf) + np.sum(dout[..., H:] * hr)
return _cs(loss, {"x": cf["x"], "h0": cf["h0"], "h0_reverse": cr["h0"], **cf["params"],
                  **{k + "_reverse": v for k, v in cr["params"].items()}})
""", ["test_birnn_forward_cell", "test_birnn_reverse_cell",
      "test_birnn_input_gradient"]),
    "leaky": ("ex_leaky_rnn_backward", _CH03_CS + """
alpha = cache["alpha"]
def loss(b):
    h, total = b["h0"], 0
    for t in range(b["x"].shape[1]):
        u = np.tanh(b["x"][:, t] @ b["W_ih"].T + b["b_ih"] + h @ b["W_hh"].T
                    + b["b_hh"])
        h = (1 - alpha) * h + alpha * u
        total = total + np.sum(dh_seq[:, t] * h)
    return total
return _cs(loss, {"x": cache["x"], "h0": cache["h0"], **cache["params"]})
""", [TANH_TEST, PATH_TEST]),
}
_CH03_READS_CACHE = ("reads the states in the cache (tanh' as 1 - h**2 from the "
                     "cached h)")
for _part, (_answer, _code, _cells) in _CH03_CS_CASES.items():
    cheat(f"ch03 {_part} backward by the complex step of a copied forward", "ch03",
          _answer, _code, dict.fromkeys(_cells, _CH03_READS_CACHE))
# tanh' as sech^2 of a pre-activation rebuilt from x, h_{t-1} and the params: right
# on an honest cache, but it recomputes from x what the cache holds. The rules now
# say so; it costs its own part, every cell of it, with the same message.
_CH03_LS_SECH = """
out_grads = affine_backward(dz, cache["out"])
rc, L = cache["rnn"], cache["lengths"]
x, h0, h_seq, p = rc["x"], rc["h0"], rc["h_seq"], rc["params"]
N, T, _ = x.shape
dh_seq = np.zeros_like(h_seq)
dh_seq[np.arange(N), L - 1] = out_grads["h"]
h_prev = np.concatenate([h0[:, None], h_seq[:, :-1]], axis=1)
a = x @ p["W_ih"].T + p["b_ih"] + h_prev @ p["W_hh"].T + p["b_hh"]
da, dnext = np.zeros_like(h_seq), np.zeros_like(h0)
for t in reversed(range(T)):
    da[:, t] = (dh_seq[:, t] + dnext) / np.cosh(a[:, t]) ** 2
    dnext = da[:, t] @ p["W_hh"]
return {"x": da @ p["W_ih"], "h0": dnext,
        "W_ih": np.einsum("nth,ntd->hd", da, x),
        "W_hh": np.einsum("nth,ntk->hk", da, h_prev),
        "b_ih": da.sum(axis=(0, 1)), "b_hh": da.sum(axis=(0, 1)),
        "W_hy": out_grads["W"], "b_y": out_grads["b"]}
"""
_CH03_LEAKY_SECH = _ch03_leaky(
    "a = x[:, t] @ p['W_ih'].T + p['b_ih'] + (h_seq[:, t - 1] if t else h0) "
    "@ p['W_hh'].T + p['b_hh']; da[:, t] = du / np.cosh(a) ** 2", FIX4)
for _label, (_answer, _code, _cells) in {
        "last_state": ("ex_last_state_backward", _CH03_LS_SECH, _CH03_LS_CELLS),
        "leaky": ("ex_leaky_rnn_backward", _CH03_LEAKY_SECH, [TANH_TEST, PATH_TEST]),
}.items():
    mistake(f"ch03 {_label} tanh' as sech^2 of a pre-activation rebuilt from x",
            "ch03", _answer, _code, dict.fromkeys(_cells, _CH03_READS_CACHE))
    costs(f"ch03 {_label} tanh' as sech^2 of a pre-activation rebuilt from x",
          "ch03", _answer, _code, set(_cells))
# The solution's gradients do not move at all when only x changes (0, not 1e-16).
costs("ch03 last_state as the course writes it", "ch03", "ex_last_state_backward",
      (), set())



# -- ch03 Part 1: a step scaled by |old| (rev03 finding 2). h * max(1, |old|) passed
# every visible cell (the cube's error at w = 1 is h**2 / (6 + h**2) for either step
# at any w) and lost the hidden half of test_grad_check_is_centred; a visible case at
# w = 2 now names it.
_CH03_GC_RELATIVE_STEP = _ch03_grad_check("(loss_plus - loss_minus) / (2 * h)").replace(
    "    old = value[ix]\n",
    "    old = value[ix]\n        h = h0 * max(1.0, abs(float(old)))\n").replace(
    "errors = {}\n", "errors, h0 = {}, h\n")
mistake("ch03 grad_check step scaled by |old|", *GC, _CH03_GC_RELATIVE_STEP,
        {"test_grad_check_is_centred": "your step was scaled by |old|"})
costs("ch03 grad_check step scaled by |old|", *GC, _CH03_GC_RELATIVE_STEP,
      {"test_grad_check_is_centred"})



# -- ch03 Part 2: the stable shift in place, z -= z.max(...) (rev03 finding 4). It
# cost the loss cell (named) and the gradient-check cell, whose message blamed the
# derivation (numerical_gradient's nudges were shifted away). That cell now hands
# the answer a copy of z at every call, so the in-place write costs only the cell
# that names it.
_CH03_CE_SHIFT_IN_PLACE = _CH03_CE_OK.replace(
    "log_p = log_softmax(z)",
    "z -= z.max(axis=-1, keepdims=True)\nlog_p = log_softmax(z)")
mistake("ch03 sequence CE shifts z in place", "ch03", "ex_sequence_mean_cross_entropy",
        _CH03_CE_SHIFT_IN_PLACE,
        {"test_sequence_ce_loss_by_hand": "changed its argument z in place"})
costs("ch03 sequence CE shifts z in place", "ch03", "ex_sequence_mean_cross_entropy",
      _CH03_CE_SHIFT_IN_PLACE, {"test_sequence_ce_loss_by_hand"})



# -- ch03 Part 3: the wrappers' hints only where they fit (rev03 finding 5). A
# float32 dh_seq and an (N, H) array handed to rnn_backward were told the dz @ W_hy
# hint; an own loop running to t = T the lengths - 1 one. Now a ValueError gets the
# W_hy hint only for a matmul or broadcast error, an IndexError the step hint only
# at index T, worded as a condition.
_CH03_LS_F32 = _CH03_LS.replace("dh_seq = np.zeros_like(h_seq)",
                                "dh_seq = np.zeros_like(h_seq, dtype=np.float32)")
_CH03_LS_2D = _CH03_LS.replace('rnn_backward(dh_seq, cache["rnn"])',
                               'rnn_backward(out_grads["h"], cache["rnn"])')
for _label, _code in {"dh_seq in float32": _CH03_LS_F32,
                      "hands rnn_backward an (N, H) array": _CH03_LS_2D}.items():
    mistake(f"ch03 last_state {_label}", "ch03", "ex_last_state_backward", _code,
            dict.fromkeys(_CH03_LS_CELLS, "raised ValueError"))
    costs(f"ch03 last_state {_label}", "ch03", "ex_last_state_backward", _code,
          set(_CH03_LS_CELLS))


# -- ch04 Part 5 (rev45 finding 1) ---------------------------------------------------
# tanh' from the pre-activation, 1 / cosh(a)**2, was as right as 1 - h**2: with the
# saturated case at three times the weights, the two differed by 4e-11 and this one
# failed the 1e-11 tolerance (and was told float32); at twice, by 2e-13. With the
# cache (below) a pre-activation rebuilt from x is no longer right.
TG4_COSH = """
x, h_seq, params = cache["x"], cache["h_seq"], cache["params"]
T = x.shape[1]
W_hh = params["W_hh"]
gr = {n: np.zeros_like(params[n]) for n in ("W_ih", "W_hh", "b_ih", "b_hh")}
delta = np.asarray(g, dtype=float)
for t in range(T - 1, max(T - k, 0) - 1, -1):
    before = h_seq[:, t - 1] if t > 0 else np.zeros_like(delta)
    a = x[:, t] @ params["W_ih"].T + params["b_ih"] + before @ W_hh.T + params["b_hh"]
    da = delta / np.cosh(a) ** 2
    gr["W_ih"] += da.T @ x[:, t]
    gr["W_hh"] += da.T @ before
    gr["b_ih"] += da.sum(0)
    gr["b_hh"] += da.sum(0)
    delta = da @ W_hh
return gr
"""
# (cstep) truncated_grads now takes rnn_forward's cache, and every cell also hands it
# a cache whose states did not come from its x: a pre-activation rebuilt from x then
# gives another tanh', so this answer, valid before, costs the part, against the
# part's stated requirement (tanh' as 1 - h_t**2 from the cached states), as in
# ch03 (502e44f).
mistake("ch04 truncated_grads with tanh' from the pre-activation rebuilt from x",
        *TG4, TG4_COSH, dict.fromkeys(TG4_CELLS, "it does not recompute them from x"))
costs("ch04 truncated_grads with tanh' from the pre-activation rebuilt from x", *TG4,
      TG4_COSH, set(TG4_CELLS))
# (cstep) With truncated_grads(x, params, g, k), the complex step of a forward loop
# copied into the answer cell, run for real up to h_{T-k} and differentiated over
# the last k steps only, earned 4/4 under sealed grading (21/21 in all), and a
# long-double 7-point stencil with a step of 1e-3 3/4: no backward pass, and the
# window re-run once per parameter entry, which the part forbids. Each cell's cache
# whose states did not come from its x now fails both, also when the window starts
# from the state the cache holds.
TG4_WINDOW = """
x, h_seq, params = cache["x"], cache["h_seq"], cache["params"]
N, T, _ = x.shape
start = max(T - k, 0)
h_in = h_seq[:, start - 1] if start > 0 else cache["h0"]


def window(p, dtype):
    h = h_in.astype(dtype)
    for t in range(start, T):
        h = np.tanh(x[:, t] @ p["W_ih"].T + p["b_ih"] + h @ p["W_hh"].T + p["b_hh"])
    return np.sum(g * h)


out = {}
for name, a in params.items():
    out[name] = np.zeros(a.shape)
    for ix in np.ndindex(a.shape):
DERIVATIVE
return out
"""
TG4_COMPLEX = TG4_WINDOW.replace("DERIVATIVE", """\
        p = {n: v.astype(complex) for n, v in params.items()}
        p[name][ix] += 1e-20j
        out[name][ix] = window(p, complex).imag / 1e-20""")
TG4_LONG_DOUBLE = TG4_WINDOW.replace("DERIVATIVE", """\
        def at(m):
            p = {n: v.astype(np.longdouble) for n, v in params.items()}
            p[name][ix] += m * np.longdouble("1e-3")
            return window(p, np.longdouble)
        out[name][ix] = (45 * (at(1) - at(-1)) - 9 * (at(2) - at(-2))
                         + (at(3) - at(-3))) / (60 * np.longdouble("1e-3"))""")
for _label, _code in (("by the complex step within the window", TG4_COMPLEX),
                      ("by a long-double 7-point stencil within the window",
                       TG4_LONG_DOUBLE)):
    cheat(f"ch04 truncated_grads {_label}", *TG4, _code,
          dict.fromkeys(TG4_CELLS, "it does not recompute them from x"))
    costs(f"ch04 truncated_grads {_label}", *TG4, _code, set(TG4_CELLS))


# -- ch02, learner review 12b: a change in place costs the one cell that names it ---
# Every call gets fresh copies of its arguments; the part's last cell compares them.
# Problem 1: p = p0, then p[:] = ... (3 points before: the 2-point cell blamed the
# biases, since its second call started from the first call's last p).
JORDAN_WRITES_P0 = """
p = p0
out = []
for t in range(x.shape[1]):
    h = np.tanh(x[:, t] @ params["W_ih"].T + params["b_ih"]
                + p @ params["W_yh"].T + params["b_hh"])
    z = h @ params["W_hy"].T + params["b_y"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p[:] = e / e.sum(axis=1, keepdims=True)
    out.append(p.copy())
return np.stack(out, axis=1)
"""
mistake("ch02 jordan_forward writes into p0", *JORDAN, JORDAN_WRITES_P0,
        {"test_jordan_random": "p = p0 makes p a second name"})
costs("ch02 jordan_forward writes into p0", *JORDAN, JORDAN_WRITES_P0,
      {"test_jordan_random"})
# Problem 2: masked assignment into h = h0_fwd (4 points before: the backward cell
# read the h0_b the forward cell's calls had overwritten, and blamed the algorithm).
BI_MASKED = """
N, T, _ = x.shape
H = h0_fwd.shape[1]
valid = np.arange(T)[None, :] < np.asarray(lengths)[:, None]
h_seq = np.zeros((N, T, 2 * H))
h = h0_fwd{copy}
for t in range(T):
    m = valid[:, t]
    h[m] = rnn_step_packed(x[:, t], h, *fwd)[m]
    h_seq[m, t, :H] = h[m]
h = h0_bwd{copy}
for t in range(T - 1, -1, -1):
    m = valid[:, t]
    h[m] = rnn_step_packed(x[:, t], h, *bwd)[m]
    h_seq[m, t, H:] = h[m]
return h_seq
"""
mistake("ch02 birnn_padded masked assignment into h0", "ch02", "ex_birnn_padded",
        BI_MASKED.format(copy=""),
        {"test_birnn_padded_zero_at_padding": "h = h0_fwd makes h a second name"})
costs("ch02 birnn_padded masked assignment into h0", "ch02", "ex_birnn_padded",
      BI_MASKED.format(copy=""), {"test_birnn_padded_zero_at_padding"})
mistake("ch02 birnn_padded masked assignment on a copy (valid)", "ch02",
        "ex_birnn_padded", BI_MASKED.format(copy=".copy()"), {})
# Problem 3: zeroing the caller's padding passed every visible cell and lost a hidden
# point (the visible check took its copies after earlier cells had zeroed x_pad).
BI_ZEROES_X = BI_RIGHT.replace("h_seq = np.zeros", "x[~valid] = 0.0\nh_seq = np.zeros",
                               1)
mistake("ch02 birnn_padded zeroes the caller's padding", "ch02", "ex_birnn_padded",
        BI_ZEROES_X, {"test_birnn_padded_zero_at_padding": "changed x in place"})
costs("ch02 birnn_padded zeroes the caller's padding", "ch02", "ex_birnn_padded",
      BI_ZEROES_X, {"test_birnn_padded_zero_at_padding"})
# Problem 3: M = W_hh, then M *= alpha passed every visible cell and lost a hidden
# point.
for _name, _code in {
    "float alpha": """
M = W_hh
M *= alpha
M += (1 - alpha) * np.eye(W_hh.shape[0])
return float(np.abs(np.linalg.eigvals(M)).max())
""",
    "alpha per row": """
a = np.broadcast_to(np.asarray(alpha, dtype=float), (W_hh.shape[0],))
M = W_hh
M *= a[:, None]
M += np.diag(1 - a)
return float(np.abs(np.linalg.eigvals(M)).max())
"""}.items():
    mistake(f"ch02 leaky_decay_rate scales W_hh in place, {_name}", "ch02",
            "ex_decay_rate", _code,
            {"test_decay_per_unit": "M = W_hh makes M a second name"})
    costs(f"ch02 leaky_decay_rate scales W_hh in place, {_name}", "ch02",
          "ex_decay_rate", _code, {"test_decay_per_unit"})
# Problem 6: running the cell, which the text forbids, kept 4 of 5 points: every M
# had one dominant eigenvalue or an equal-modulus pair, which a run of 400 steps
# matches to 1e-9. Eigenvalues of close modulus (0.9 and 0.89) leave it 2.5e-5 off;
# test_decay_no_leak names it visibly ("ch02 leaky_decay_rate measured, not
# predicted" above), and only the pure leak (W_hh = 0, exact in any run) is kept.
DECAY_SIMULATED = """
a = np.ones(W_hh.shape[0]) * alpha
h = 1e-6 * np.ones(W_hh.shape[0])
norms = []
for t in range(400):
    h = (1 - a) * h + a * np.tanh(W_hh @ h)
    norms.append(np.linalg.norm(h))
return float((norms[-1] / norms[199]) ** (2 / 400))
"""
costs("ch02 leaky_decay_rate runs the cell", "ch02", "ex_decay_rate", DECAY_SIMULATED,
      {"test_decay_no_leak", "test_decay_negative_eigenvalue", "test_decay_rotation",
       "test_decay_per_unit"})


# -- ch02, learner review 12b problem 5: raw NumPy errors get a hint ----------------
# h_seq allocated with x's shape: a bare "could not broadcast (2,5) into (2,3)" before.
SEQ_ZEROS_LIKE_X = """
h_seq = np.zeros_like(x)
h = h0
for t in range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1]):
    h = rnn_step_packed(x[:, t], h, W, b)
    h_seq[:, t] = h
return h_seq
"""
mistake("ch02 rnn_sequence_packed allocates h_seq like x", "ch02", "ex_sequence_packed",
        SEQ_ZEROS_LIKE_X, dict.fromkeys(["test_sequence_forward",
                                         "test_sequence_reverse"],
                                        "not x's (N, T, D)"))
costs("ch02 rnn_sequence_packed allocates h_seq like x", "ch02", "ex_sequence_packed",
      SEQ_ZEROS_LIKE_X, {"test_sequence_forward", "test_sequence_reverse"})
# TensorFlow's (D + H, H) kernel: the random cell gave a bare matmul error.
PACK_TF_KERNEL = ("""
W = np.vstack([params["W_ih"].T, params["W_hh"].T])
return W, params["b_ih"] + params["b_hh"]
""", """
return np.tanh(np.concatenate([x_t, h_prev], axis=1) @ W + b)
""")
mistake("ch02 pack_params builds TensorFlow's kernel", "ch02", "ex_packed_step",
        PACK_TF_KERNEL, {"test_pack_params": "along axis 1",
                         "test_step_packed_fixed": "multiply by W.T",
                         "test_step_packed_random": "TensorFlow's transposed"})
# float32: "h_next is [[0.7615942 0.4621172]], expected [[0.76159416 0.46211716]]"
# named neither the dtype nor the precision.
STEP_FLOAT32 = (None, """
xh = np.concatenate([x_t, h_prev], axis=1).astype(np.float32)
return np.tanh(xh @ W.T.astype(np.float32) + b.astype(np.float32))
""")
mistake("ch02 rnn_step_packed in float32", "ch02", "ex_packed_step", STEP_FLOAT32,
        {"test_step_packed_fixed": "h_next is float32"})
costs("ch02 rnn_step_packed in float32", "ch02", "ex_packed_step", STEP_FLOAT32,
      {"test_step_packed_fixed"})


# -- ch01, learner review 12b problems 4 and 5: messages that blamed the wrong thing --
# (c) Zero the padding, then take the last column: "np.squeeze drops it" was the hint,
# though the shape was right. Zero inputs still move a tanh RNN.
ED_ZEROED_LAST = """
N, H = x.shape[0], enc_params["W_hh"].shape[0]
real = np.arange(x.shape[1])[None, :] < np.asarray(lengths)[:, None]  # (N, T_in)
h_enc, _ = rnnlib.rnn_forward(x * real[..., None], np.zeros((N, H)), enc_params)
context = h_enc[:, -1]
dec_in = np.concatenate([y_in, np.repeat(context[:, None], y_in.shape[1], 1)], 2)
h_dec, _ = rnnlib.rnn_forward(dec_in, context, dec_params)
return h_dec @ W_hy.T + b_y
"""
mistake("ch01 encoder_decoder_forward zeroes the padding, reads h_enc[:, -1]", *ED,
        ED_ZEROED_LAST, {
            "test_encoder_decoder_own_last_step": "zeroing x after a source's end",
            "test_encoder_decoder_values": "the scores differ"})
costs("ch01 encoder_decoder_forward zeroes the padding, reads h_enc[:, -1]", *ED,
      ED_ZEROED_LAST, {"test_encoder_decoder_own_last_step",
                       "test_encoder_decoder_values"})
# (d) A (T, T_out) result: the window cell said the pushes of earlier steps were
# still there (T_out = T there, so only the band shows the transposition).
IM_TRANSPOSED = _ch01_influence().replace("return influence", "return influence.T")
mistake("ch01 influence_matrix returns (T, T_out)", *IM, IM_TRANSPOSED,
        {IM_BY_HAND: "= (T, T_out)", IM_MODELS: "your matrix is transposed"})
costs("ch01 influence_matrix returns (T, T_out)", *IM, IM_TRANSPOSED,
      {IM_BY_HAND, IM_MODELS})
# (d) Nudging a float32 copy: noise of 1e-2 off the band was blamed on pushes that
# pile up. test_influence_matrix_leaves_x_alone grades no values and still passes.
IM_FLOAT32 = _ch01_influence().replace("x_nudged = x.copy()",
                                       "x_nudged = x.astype(np.float32)")
mistake("ch01 influence_matrix nudges a float32 copy", *IM, IM_FLOAT32,
        dict.fromkeys([IM_BY_HAND, IM_MODELS], "called forward on a float32 array"))
costs("ch01 influence_matrix nudges a float32 copy", *IM, IM_FLOAT32,
      {IM_BY_HAND, IM_MODELS})


# -- more cases above this line --


@pytest.mark.parametrize("chapter", ["ch01", "ch02", "ch03", "ch04", "ch05", "ch06"])
def test_the_solution_passes_every_visible_test(chapter):
    failed = {k: v for k, v in run_visible(chapter, {}).items() if v}
    assert not failed, failed


@pytest.mark.parametrize("hidden", [False, True], ids=["visible", "hidden"])
@pytest.mark.parametrize("kept", sorted(KEPT_CELLS), ids=" ".join)
def test_kept_cells_leave_nothing_later_cells_read(kept, hidden):
    """Skipping a kept cell changes nothing after it, on the solution: no later
    cell names a global the kept cell binds, and no array or tensor bound before
    it changes; a run that keeps it fails the same cells as one that does not."""
    import numpy as np
    import torch
    chapter, kept_id = kept
    cells = [c for c in notebook(chapter)["cells"] if c["cell_type"] == "code"]
    ids = [nbtools.nbgrader_meta(c).get("grade_id") for c in cells]
    at = ids.index(kept_id)
    namespace: dict = {"__name__": "__main__"}
    for cell in cells[:at]:
        text = nbtools.source(cell)
        if nbtools.nbgrader_meta(cell).get("grade"):
            text = text if hidden else visible_half(text)
        else:
            text = answered(cell, ())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(text, "<before>", "exec"), namespace)
    before = dict(namespace)
    arrays = {name: np.array(value, copy=True) for name, value in before.items()
              if isinstance(value, (np.ndarray, torch.Tensor))}
    kept_text = nbtools.source(cells[at])
    exec(compile(kept_text if hidden else visible_half(kept_text), "<kept>", "exec"),
         namespace)
    bound = {name for name in namespace
             if name not in before or namespace[name] is not before[name]}
    assert bound, f"{kept_id} binds no global: did the notebook change?"
    later = "\n".join(nbtools.source(c) for c in cells[at + 1:])
    read_later = sorted(n for n in bound if re.search(rf"\b{re.escape(n)}\b", later))
    assert not read_later, f"cells after {kept_id} read {read_later}: it cannot be kept"
    changed = sorted(name for name, value in arrays.items()
                     if not np.array_equal(np.asarray(namespace[name]), value))
    assert not changed, f"{kept_id} changes {changed} in place: it cannot be kept"
    every_cell = run_visible(chapter, {}, hidden, keep=False)
    run_visible(chapter, {}, hidden)  # keeps the cell's outcome if none is kept yet
    assert run_visible(chapter, {}, hidden) == every_cell


def test_ch01_messages_do_not_print_an_answer_line():
    """No visible test cell of ch01 holds a line of a solution region, comment cut
    off, as text: its messages once printed Part (d)'s `x_nudged[:, t] += eps`,
    which test_exercises misses because it compares whole lines (review finding 9).
    Lines under 20 characters (`return influence`) are too generic to count."""
    nb = notebook("ch01")
    answer_lines = set()
    for cell in nb["cells"]:
        inside = False
        for line in nbtools.source(cell).splitlines():
            stripped = line.strip()
            if stripped in (nbtools.BEGIN_SOLUTION, nbtools.END_SOLUTION):
                inside = stripped == nbtools.BEGIN_SOLUTION
            elif inside and len(code := stripped.split("  #")[0].strip()) >= 20:
                answer_lines.add(code)
    visible = "\n".join(visible_half(nbtools.source(cell)) for cell in nb["cells"]
                        if nbtools.nbgrader_meta(cell).get("grade"))
    printed = sorted(line for line in answer_lines if line in visible)
    assert not printed, f"ch01's visible tests print answer lines: {printed}"


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_a_mistake_fails_its_own_visible_test_only(case):
    chapter, answer_id, code, fails = MISTAKES[case]
    results = run_visible(chapter, {answer_id: code})
    failed = {k: v for k, v in results.items() if v}
    assert set(failed) == set(fails), (
        f"{case} should fail {sorted(fails) or 'no test'}; failed {failed}"
    )
    for grade_id, phrase in fails.items():
        assert phrase in failed[grade_id], (
            f"{case}: the message of {grade_id} should say {phrase!r}; "
            f"it is {failed[grade_id]!r}"
        )


@pytest.mark.parametrize("case", sorted(CHEATS))
def test_a_cheat_earns_nothing(case):
    chapter, answer_id, code, fails = CHEATS[case]
    visible = run_visible(chapter, {answer_id: code})
    for grade_id, phrase in fails.items():
        assert phrase in visible[grade_id], (
            f"{case}: the message of {grade_id} should say {phrase!r}; "
            f"it is {visible[grade_id]!r}"
        )
    whole = run_visible(chapter, {answer_id: code}, hidden=True)
    earned = sorted(grade_id for grade_id in fails if not whole[grade_id])
    assert not earned, f"{case} passes {earned} with the hidden tests"


@pytest.mark.parametrize("case", sorted(WHOLE))
def test_a_mistake_costs_its_own_cells_hidden_included(case):
    chapter, answer_id, code, cells = WHOLE[case]
    whole = run_visible(chapter, {answer_id: code}, hidden=True)
    failed = {k: v for k, v in whole.items() if v}
    assert set(failed) == cells, (
        f"{case} should cost {sorted(cells)}; with the hidden halves it fails "
        f"{ {k: v[:200] for k, v in failed.items()} }"
    )
