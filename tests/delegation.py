"""Submissions that hand a graded function's work to the course's reference.

EXERCISES.md section 2: a graded function that delegates to ``rnnlib`` in any
form earns nothing for its part. Every form below is built for every function
that an answer cell defines, in every exercise, so a new exercise is covered the
day it lands. Expected scores come from the source notebook's structure: the
test cells that follow an answer cell (up to the next one) are its part.
"""

from __future__ import annotations

import ast
import copy
import inspect
import json
import math

import nbformat
import nbtools
import rnnlib

GUARD_OFF = """\
import sys as _sys, contextlib as _contextlib
_sys.settrace(None)
_sys.setprofile(None)
import rnnlib.grading as _grading
_grading.withheld = lambda *a, **k: _contextlib.nullcontext()
_grading.swapped_in = lambda *a, **k: _contextlib.nullcontext()
"""


def reference_twins() -> dict[str, list[tuple[str, str]]]:
    """For each function name, the (module, attribute) places rnnlib defines it.

    A twin or private copy shares the public function's code object, or is
    the same name with a leading underscore.
    """
    import pkgutil
    from importlib import import_module

    places: dict[str, list[tuple[str, str]]] = {}
    modules = ["rnnlib"] + [
        f"rnnlib.{m.name}" for m in pkgutil.iter_modules(rnnlib.__path__)
    ]
    by_code: dict[object, str] = {}
    objects = []
    for module_name in modules:
        module = import_module(module_name)
        for attribute, value in vars(module).items():
            if inspect.isfunction(value) and value.__module__.startswith("rnnlib"):
                objects.append((module_name, attribute, value))
                by_code.setdefault(value.__code__, value.__name__)
    for module_name, attribute, value in objects:
        for name in {attribute.lstrip("_"), by_code[value.__code__].lstrip("_")}:
            entry = (module_name, attribute)
            if entry not in places.setdefault(name, []):
                places[name].append(entry)
    return places


def all_reference_callables() -> list[tuple[str, str]]:
    """Every function of rnnlib, public or private, as (module, attribute)."""
    return sorted({p for found in reference_twins().values() for p in found})


def withheld_references(solution: dict) -> list[tuple[str, str]]:
    """Every public function of a public rnnlib module, as (module, attribute),
    that the learner's copy of rnnlib stubs while this notebook is graded."""
    from importlib import import_module

    from coursetools import sandbox

    nb = nbformat.reads(json.dumps(solution), as_version=4)  # sources joined
    kept = sandbox.kept_names(sandbox.rnnlib_dir(), *sandbox.allowances({"nb": nb}))
    found = []
    for module, attribute in all_reference_callables():
        value = getattr(import_module(module), attribute)
        name = f"{module.partition('.')[2]}.{attribute}"
        if value.__module__ == module and "._" not in f".{name}" and name not in kept:
            found.append((module, attribute))  # where it is defined, public
    return found


def forwarding_call(func: ast.FunctionDef, target: str) -> str:
    """``target(a, b, *args, c=c, **kwargs)`` with func's own parameters."""
    a = func.args
    parts = [p.arg for p in a.posonlyargs + a.args]
    if a.vararg:
        parts.append(f"*{a.vararg.arg}")
    parts += [f"{p.arg}={p.arg}" for p in a.kwonlyargs]
    if a.kwarg:
        parts.append(f"**{a.kwarg.arg}")
    return f"{target}({', '.join(parts)})"


def delegating_source(func: ast.FunctionDef, body: str) -> str:
    header = f"def {func.name}({ast.unparse(func.args)}):\n"
    return header + "".join(f"    {line}\n" for line in body.splitlines())


class Exercise:
    """One source notebook and its release, with each answer's part."""

    def __init__(self, name: str, solution: dict, release: dict):
        self.name, self.solution, self.release = name, solution, release
        self.parts: list[tuple[str, list[dict]]] = []  # answer grade_id, its tests
        for cell in solution["cells"]:
            meta = nbtools.nbgrader_meta(cell)
            if meta.get("solution"):
                self.parts.append((meta["grade_id"], []))
            elif meta.get("grade") and self.parts:
                self.parts[-1][1].append(cell)
        self.total = sum(
            float(nbtools.nbgrader_meta(c)["points"])
            for c in nbtools.test_cells(solution)
        )
        self.full = nbtools.fill_answers(
            release, solution, {gid for gid, _ in self.parts}
        )
        self.visible_helpers = [
            node.name
            for cell in release["cells"]
            if cell["cell_type"] == "code"
            and not nbtools.nbgrader_meta(cell).get("solution")
            and not nbtools.nbgrader_meta(cell).get("grade")
            for node in _top_level(nbtools.source(cell))
            if isinstance(node, ast.FunctionDef)
        ]

    def points(self, grade_id: str) -> float:
        tests = dict(self.parts)[grade_id]
        return sum(float(nbtools.nbgrader_meta(c)["points"]) for c in tests)

    def functions(self, grade_id: str) -> list[ast.FunctionDef]:
        cell = next(
            c for c in self.solution["cells"]
            if nbtools.nbgrader_meta(c).get("grade_id") == grade_id
        )
        return [
            n for n in _top_level(nbtools.solution_body(cell))
            if isinstance(n, ast.FunctionDef)
        ]

    def half(self) -> tuple[dict, float]:
        """The first half of the answers solved; the points of their parts."""
        ids = [gid for gid, _ in self.parts]
        answered = set(ids[: math.ceil(len(ids) / 2)])
        nb = nbtools.fill_answers(self.release, self.solution, answered)
        return nb, sum(self.points(gid) for gid in answered)

    def all_but(self, grade_id: str) -> tuple[dict, float]:
        """Every answer solved but one, left as released: one mistake, which must
        cost that part's points and no other part's."""
        answered = {gid for gid, _ in self.parts} - {grade_id}
        nb = nbtools.fill_answers(self.release, self.solution, answered)
        return nb, self.total - self.points(grade_id)

    def delegating(self, make_body) -> tuple[dict, float]:
        """A full submission whose functions delegate as make_body says.

        make_body(func) returns the new body, or None where the form does not
        apply (that function keeps the solution). Returns the notebook and its
        expected score: the points of every part that kept its solution.
        """
        nb = copy.deepcopy(self.full)
        lost = 0.0
        for grade_id, _ in self.parts:
            replaced = []
            for func in self.functions(grade_id):
                body = make_body(func)
                if body is not None:
                    replaced.append(delegating_source(func, body))
            if not replaced:
                continue
            cell = next(
                c for c in nb["cells"]
                if nbtools.nbgrader_meta(c).get("grade_id") == grade_id
            )
            cell["source"] = nbtools.source(cell) + "\n\n" + "\n".join(replaced)
            lost += self.points(grade_id)
        return nb, self.total - lost


def _top_level(code: str) -> list[ast.stmt]:
    try:
        return ast.parse(code).body
    except SyntaxError:
        return []


# -- the forms ------------------------------------------------------------------
def forms(exercise: Exercise) -> dict[str, object]:
    """Form name -> make_body(func) for Exercise.delegating."""
    twins = reference_twins()
    sweep = all_reference_callables()

    def public(func):
        if not hasattr(rnnlib, func.name):
            return None
        return f"import rnnlib\nreturn {forwarding_call(func, 'rnnlib.' + func.name)}"

    def private(func):
        found = [(m, a) for m, a in twins.get(func.name.lstrip("_"), [])
                 if a.startswith("_")]
        if not found:
            return None
        module, attribute = found[0]
        return (
            f"import {module}\n"
            f"return {forwarding_call(func, f'{module}.{attribute}')}"
        )

    def rebuilt(func):
        found = twins.get(func.name.lstrip("_"))
        if not found:
            return None
        module, attribute = found[0]
        # Built when the answer cell runs, before any test.
        return (
            "import types\n"
            f"import {module} as _m\n"
            f"_f = _m.{attribute}\n"
            "_copy = types.FunctionType(_f.__code__, _f.__globals__, 'copy',\n"
            "                           _f.__defaults__, _f.__closure__)\n"
            f"return {forwarding_call(func, '_copy')}"
        )

    def source_text(func):
        found = twins.get(func.name.lstrip("_"))
        if not found:
            return None
        module, attribute = found[0]
        return (
            "import importlib, inspect\n"
            f"_m = importlib.import_module({module!r})\n"
            "_ns = dict(vars(_m))\n"
            f"exec(inspect.getsource(_m), _ns)\n"
            f"return {forwarding_call(func, f'_ns[{attribute!r}]')}"
        )

    def guard_off(func):
        if not hasattr(rnnlib, func.name):
            return None
        return GUARD_OFF + public(func)

    def visible_helper(func):
        if not exercise.visible_helpers:
            return None
        lines = ["for _helper in (" + ", ".join(exercise.visible_helpers) + ",):"]
        lines += ["    try:", f"        return {forwarding_call(func, '_helper')}",
                  "    except Exception:", "        pass",
                  "raise RuntimeError('no helper did it')"]
        return "\n".join(lines)

    def any_reference(func):
        # Every function of rnnlib, public or private, tried in turn: the first
        # that does not raise answers. Catches copies nobody listed.
        names = ", ".join(f"({m!r}, {a!r})" for m, a in sweep)
        return (
            "import importlib\n"
            f"for _module, _attribute in [{names}]:\n"
            "    try:\n"
            "        _f = getattr(importlib.import_module(_module), _attribute)\n"
            f"        return {forwarding_call(func, '_f')}\n"
            "    except Exception:\n"
            "        pass\n"
            "raise RuntimeError('no reference did it')"
        )

    def one_hot_from_a_loss(func):
        # ch01 (a): the gradient of a cross-entropy at zero logits is
        # (1/V - one_hot) / count, so rounding it back gives the one-hot codes.
        if func.name != "one_hot_padded":
            return None
        return (
            "import numpy as np\n"
            "import rnnlib\n"
            "ids = np.asarray(indices)\n"
            "is_pad = ids == pad_id\n"
            "if (~is_pad & ((ids < 0) | (ids >= V))).any():\n"
            "    raise ValueError(f'id {ids[~is_pad & ((ids < 0) | (ids >= V))][0]}')\n"
            "flat = np.where(is_pad, 0, ids).reshape(-1)\n"
            "_, d = rnnlib.softmax_cross_entropy(np.zeros((flat.size, V)), flat)\n"
            "hot = np.rint(1 / V - d * flat.size).reshape(ids.shape + (V,))\n"
            "return (hot * ~is_pad[..., None]).astype(dtype)"
        )

    def lstm_as_tanh_step(func):
        # ch02 Part 1: an LSTM whose gates are pinned by biases of +-1000 (i = o = 1
        # and f = 0 exactly) and whose g rows hold [W_ih, W_hh] and b has
        # c_next = tanh(W [x_t; h_prev] + b), the packed step. The part's other
        # function, pack_params, is left unanswered: the part earns 0 only if the
        # LSTM is withheld (its two step cells would score 2 otherwise).
        if func.name == "pack_params":
            return "raise NotImplementedError()"
        if func.name != "rnn_step_packed":
            return None
        return (
            "import numpy as np\n"
            "import rnnlib\n"
            "D, H = x_t.shape[1], h_prev.shape[1]\n"
            "pin = np.full(H, 1000.0)\n"
            "p = {'W_ih': np.zeros((4 * H, D)), 'W_hh': np.zeros((4 * H, H)),\n"
            "     'b_ih': np.concatenate([pin, -pin, b, pin]),\n"
            "     'b_hh': np.zeros(4 * H)}\n"
            "p['W_ih'][2 * H : 3 * H] = W[:, :D]\n"
            "p['W_hh'][2 * H : 3 * H] = W[:, D:]\n"
            "_, c_next, _ = rnnlib.lstm_step_forward(x_t, h_prev, 0 * h_prev, p)\n"
            "return c_next"
        )

    # ch06 Part 6 asks for PyTorch; what would answer it without is the course's
    # own GRU, each sequence run alone, or the tests' oracle that does the same.
    ch06_direction = (
        "import numpy as np\n"
        "import rnnlib\n"
        "def _direction(prefix, suffix='', layer=0):\n"
        "    keys = ('weight_ih', 'weight_hh', 'bias_ih', 'bias_hh')\n"
        "    return {n: np.asarray(weights[f'{prefix}.{k}_l{layer}{suffix}'],\n"
        "                          dtype=float)\n"
        "            for k, n in zip(keys, ('W_ih', 'W_hh', 'b_ih', 'b_hh'))}\n"
        "def _read(p, x, h0):\n"
        "    return rnnlib.gru_forward(x[None], np.reshape(h0, (1, -1)), p)[0][0]\n"
        "E = np.asarray(weights['embedding.weight'], dtype=float)\n"
    )

    def rnnlib_gru_alone(func):
        # decoder_start and greedy_decode from rnnlib's GRU, each sequence read
        # alone, layer after layer, one step at a time for the decoder: no
        # packing, the right numbers (withheld when graded).
        if func.name == "decoder_start":
            return ch06_direction + (
                "H = np.shape(weights['encoder.weight_hh_l0'])[1]\n"
                "rows = []\n"
                "for ids, L in zip(np.asarray(src_ids), np.asarray(src_lengths)):\n"
                "    x, finals = E[ids[:L]], []\n"
                "    for layer in range(2):\n"
                "        f = _read(_direction('encoder', '', layer), x, np.zeros(H))\n"
                "        b = _read(_direction('encoder', '_reverse', layer), x[::-1],\n"
                "                  np.zeros(H))[::-1]\n"
                "        finals.append(np.concatenate([f[-1], b[0]]))\n"
                "        x = np.concatenate([f, b], axis=1)\n"
                "    rows.append(finals)\n"
                "return np.array(rows).transpose(1, 0, 2)"
            )
        if func.name == "greedy_decode":
            return ch06_direction + (
                "start = np.asarray(decoder_start(weights, src_ids, src_lengths))\n"
                "W = np.asarray(weights['head.weight'], dtype=float)\n"
                "b = np.asarray(weights['head.bias'], dtype=float)\n"
                "layers = [_direction('decoder', '', layer) for layer in range(2)]\n"
                "out = np.zeros((start.shape[1], max_steps), dtype=np.int64)\n"
                "for n in range(start.shape[1]):\n"
                "    h, token, ended = [start[0, n], start[1, n]], bos_id, False\n"
                "    for u in range(max_steps):\n"
                "        x = E[token][None]\n"
                "        for layer in range(2):\n"
                "            x = _read(layers[layer], x, h[layer])\n"
                "            h[layer] = x[0]\n"
                "        token = int(np.argmax(x[0] @ W.T + b))\n"
                "        out[n, u] = 0 if ended else token\n"
                "        ended = ended or token == eos_id\n"
                "return out"
            )
        return None

    def rnnlib_gru_module_import(func):
        # rnnlib_gru_alone with the GRU imported from its module inside the
        # function: the kernel's visible tests withhold rnnlib.gru's attributes
        # too, so this is told at once there (review rev06c F3) and scores 0 graded.
        code = rnnlib_gru_alone(func)
        if code is None:
            return None
        return code.replace(
            "import rnnlib\n",
            "import rnnlib\nfrom rnnlib.gru import gru_forward as _gru\n", 1).replace(
            "rnnlib.gru_forward(", "_gru(")

    def ch06_test_oracle(func):
        # The oracle of ch06 Part 6's visible tests, called by name: it lives in
        # the judge when graded, not in the student's kernel.
        if func.name == "decoder_start":
            return "return start_alone(weights, src_ids, src_lengths)"
        if func.name == "greedy_decode":
            return ("return greedy_alone(weights, start_alone(weights, src_ids, "
                    "src_lengths), eos_id, max_steps, bos_id=bos_id)")
        return None

    def gru_cell_as_rnn(func):
        # ch04 Parts 1 and 5: the GRU's one-step backward with its gates pinned
        # (r = 1 and z = 0 passed as arrays, so r(1 - r) = z(1 - z) = 0 exactly) and
        # W_hh stacked under two zero blocks is the tanh RNN's step: da_x[:, 2H:] is
        # dL/da_t and dh_prev is da_t @ W_hh (learner35, finding 1's audit).
        start = (
            "import numpy as np\n"
            "from rnnlib import gru as _gru\n"
        )
        if func.name == "gradient_norms":
            return start + (
                "T, H = h_seq.shape\n"
                "W3 = np.concatenate([np.zeros((2 * H, H)), W_hh])\n"
                "one, zero = np.ones((1, H)), np.zeros((1, H))\n"
                "dh = np.array(g, dtype=float)[None]\n"
                "norms = [np.linalg.norm(dh)]\n"
                "for t in range(T - 1, -1, -1):\n"
                "    _, _, dh = _gru._cell_backward(dh, zero, one, zero,\n"
                "                                   h_seq[t][None], zero, W3)\n"
                "    norms.append(np.linalg.norm(dh))\n"
                "return np.array(norms)"
            )
        if func.name == "truncated_grads":
            return start + (
                "x, h_seq, params = cache['x'], cache['h_seq'], cache['params']\n"
                "N, T, _ = x.shape\n"
                "H = params['W_hh'].shape[0]\n"
                "W3 = np.concatenate([np.zeros((2 * H, H)), params['W_hh']])\n"
                "one, zero = np.ones((N, H)), np.zeros((N, H))\n"
                "out = {n: np.zeros_like(v) for n, v in params.items()}\n"
                "dh = np.array(g, dtype=float)\n"
                "for t in range(T - 1, max(T - k, 0) - 1, -1):\n"
                "    prev = h_seq[:, t - 1] if t > 0 else zero\n"
                "    da_x, _, dh = _gru._cell_backward(dh, prev, one, zero,\n"
                "                                      h_seq[:, t], zero, W3)\n"
                "    da = da_x[:, 2 * H:]\n"
                "    out['W_ih'] += da.T @ x[:, t]\n"
                "    out['W_hh'] += da.T @ prev\n"
                "    out['b_ih'] += da.sum(0)\n"
                "    out['b_hh'] += da.sum(0)\n"
                "return out"
            )
        return None

    def lstm_jacobian_from_cell_backward(func):
        # ch05 Part 1: the library's private _cell_backward, the vector-Jacobian
        # product of one LSTM step, run once per row of J (a unit upstream
        # gradient on each of h_t and c_t) on the cached gates gives the whole
        # Jacobian: row a is [da @ W_hh, dc_prev].
        if func.name != "lstm_step_jacobian":
            return None
        return (
            "import numpy as np\n"
            "from rnnlib import lstm as _lstm\n"
            "H = cache['c_prev'].shape[1]\n"
            "eye, rows = np.eye(2 * H), 2 * H\n"
            "da, dc_prev = _lstm._cell_backward(\n"
            "    eye[:, :H], eye[:, H:], np.repeat(cache['c_prev'], rows, 0),\n"
            "    np.repeat(cache['gates'], rows, 0),\n"
            "    np.repeat(cache['tanh_c'], rows, 0))\n"
            "return np.concatenate([da @ cache['params']['W_hh'], dc_prev], axis=1)"
        )

    def gru_as_leaky_rnn(func):
        # ch03 Part 5: a GRU whose reset gate is pinned to 1 (b_ir = +1000, so
        # r = 1.0 exactly and r (1 - r) = 0) and whose update gate is the constant
        # 1 - alpha (W_hz = 0, b_iz = logit(1 - alpha)) is the leaky RNN:
        # h_t = alpha n_t + (1 - alpha) h_{t-1}. gru_backward then computes the
        # whole backward pass (learner review 35, finding 2: it scored 5/5).
        if func.name != "leaky_rnn_backward":
            return None
        return (
            "import numpy as np\n"
            "import rnnlib\n"
            "x, h0, p = cache['x'], cache['h0'], cache['params']\n"
            "alpha = cache['alpha']\n"
            "H, D = p['W_ih'].shape\n"
            "bz = np.full(H, np.log((1 - alpha) / alpha) if alpha < 1 else -1e3)\n"
            "gp = {'W_ih': np.concatenate([np.zeros((2 * H, D)), p['W_ih']]),\n"
            "      'W_hh': np.concatenate([np.zeros((2 * H, H)), p['W_hh']]),\n"
            "      'b_ih': np.concatenate([np.full(H, 1e3), bz, p['b_ih']]),\n"
            "      'b_hh': np.concatenate([np.zeros(2 * H), p['b_hh']])}\n"
            "_, gc = rnnlib.gru_forward(x, h0, gp)\n"
            "gg = rnnlib.gru_backward(dh_seq, gc)\n"
            "return {'x': gg['x'], 'h0': gg['h0'],\n"
            "        **{k: gg[k][2 * H:] for k in ('W_ih', 'W_hh', 'b_ih', 'b_hh')}}"
        )

    def gru_backward_on_leaky_cache(func):
        # ch03 Part 5 again, with no forward pass run, so the tests' second x
        # (the same cached states, another x) cannot catch it: the leaky cache
        # read as a GRU's (r = 1, z = 1 - alpha, n = u_t, hn = W_hh h_{t-1} +
        # b_hh) and handed to gru_backward, which then does the whole backward
        # pass from the cache (exact to 1e-15; only the allow-list stops it).
        if func.name != "leaky_rnn_backward":
            return None
        return (
            "import numpy as np\n"
            "import rnnlib\n"
            "x, h0, h_seq = cache['x'], cache['h0'], cache['h_seq']\n"
            "p, alpha = cache['params'], cache['alpha']\n"
            "H, D = p['W_ih'].shape\n"
            "h_prev = np.concatenate([h0[:, None], h_seq[:, :-1]], axis=1)\n"
            "gp = {'W_ih': np.concatenate([np.zeros((2 * H, D)), p['W_ih']]),\n"
            "      'W_hh': np.concatenate([np.zeros((2 * H, H)), p['W_hh']]),\n"
            "      'b_ih': np.concatenate([np.zeros(2 * H), p['b_ih']]),\n"
            "      'b_hh': np.concatenate([np.zeros(2 * H), p['b_hh']])}\n"
            "gc = {'x': x, 'h0': h0, 'h_seq': h_seq, 'params': gp,\n"
            "      'r': np.ones_like(h_seq), 'z': np.full_like(h_seq, 1 - alpha),\n"
            "      'n': cache['u_seq'], 'hn': h_prev @ p['W_hh'].T + p['b_hh']}\n"
            "gg = rnnlib.gru_backward(dh_seq, gc)\n"
            "return {'x': gg['x'], 'h0': gg['h0'],\n"
            "        **{k: gg[k][2 * H:] for k in ('W_ih', 'W_hh', 'b_ih', 'b_hh')}}"
        )

    return {
        "rnnlib_gru_alone": rnnlib_gru_alone,
        "rnnlib_gru_module_import": rnnlib_gru_module_import,
        "ch06_test_oracle": ch06_test_oracle,
        "lstm_jacobian_from_cell_backward": lstm_jacobian_from_cell_backward,
        "one_hot_from_a_loss": one_hot_from_a_loss,
        "gru_cell_as_rnn": gru_cell_as_rnn,
        "lstm_as_tanh_step": lstm_as_tanh_step,
        "gru_as_leaky_rnn": gru_as_leaky_rnn,
        "gru_backward_on_leaky_cache": gru_backward_on_leaky_cache,
        "public": public,
        "private": private,
        "rebuilt": rebuilt,
        "source": source_text,
        "guard_off": guard_off,
        "visible_helper": visible_helper,
        "any_reference": any_reference,
    }
