"""Check or rewrite the values stored in ch06 Part 6's visible test cases.

A visible test of Part 6 compares with values stored in its cell (`_stored = {...}`
before a call `check_...(..., ref=_stored)`), because the oracle that computes them
(rnnlib's GRU, each sequence read alone) lives in the cells' hidden regions, which
the learner never sees. This script recomputes every stored dict with that oracle:
it runs the solution notebook's imports, Part 6's answer cells and its test cells'
definitions (hidden regions included), then calls each visible check with
`ref=None`, recording what the oracle returns for that case.

Usage, from the repository root:

    python tools/ch06_visible_values.py           # report stored values that differ
    python tools/ch06_visible_values.py --write   # rewrite them from the oracle

After --write, regenerate the release (`python -m coursetools.generate ch06`).
tests/test_ch06_visible_values.py fails while a stored value disagrees.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "solutions" / "ch06_pytorch_keras" / "ch06.ipynb"
FIRST_CELL = "part6_test_helpers"  # Part 6's code starts here
COMMENT = "# computed by tools/ch06_visible_values.py, each sequence read alone"
# greedy_decode's cases compare ids exactly: the best and second-best scores of
# every step the oracle decodes must be at least this far apart, or float32
# rounding inside a correct answer could pick another id.
MIN_MARGIN = 0.05
MARGINS: list[float] = []  # filled by cases(): greedy_decode's, every case


def _source(cell: dict) -> str:
    text = cell["source"]
    return text if isinstance(text, str) else "".join(text)


def _meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _is_check(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name)
            and stmt.value.func.id.startswith("check_"))


def _stores(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id == "_stored")


def _with_ref_none(call: ast.Expr) -> ast.Module:
    """The visible check call with ref=None: the oracle computes its values."""
    call = ast.parse(ast.unparse(call)).body[0]
    for keyword in call.value.keywords:
        if keyword.arg == "ref":
            keyword.value = ast.Constant(None)
    return ast.fix_missing_locations(ast.Module(body=[call], type_ignores=[]))


def cases(nb: dict) -> list[dict]:
    """Every visible case of Part 6: its cell, where its `_stored` statement sits
    in the cell's source (first and last line, 1-based), the stored dict and the
    oracle's."""
    namespace: dict = {"__name__": "__main__"}
    found, in_part6 = [], False
    for cell in nb["cells"]:
        meta = _meta(cell)
        if cell["cell_type"] != "code":
            continue
        if meta.get("grade_id") == "imports":
            exec(compile(_source(cell), "<imports>", "exec"), namespace)
        in_part6 = in_part6 or meta.get("grade_id") == FIRST_CELL
        if not in_part6:
            continue
        text, grade_id = _source(cell), meta.get("grade_id")
        pending, visible = None, []
        for stmt in ast.parse(text).body:
            if _stores(stmt):
                module = ast.Module(body=[stmt], type_ignores=[])
                exec(compile(module, f"<{grade_id}>", "exec"), namespace)
                pending = (stmt.lineno, stmt.end_lineno, namespace["_stored"])
            elif _is_check(stmt):
                if any(k.arg == "ref" for k in stmt.value.keywords):
                    visible.append((pending, stmt))
                    pending = None
                elif stmt.value.func.id.startswith("check_greedy"):
                    # a hidden case computes its values when graded (nothing
                    # stored); it runs here for the margins its oracle records
                    module = ast.Module(body=[stmt], type_ignores=[])
                    exec(compile(module, f"<{grade_id}>", "exec"), namespace)
            else:
                module = ast.Module(body=[stmt], type_ignores=[])
                exec(compile(module, f"<{grade_id}>", "exec"), namespace)
        for (first, last, stored), call in visible:
            found.append({"cell": grade_id, "lines": (first, last), "stored": stored,
                          "oracle": _oracle_values(namespace, call, grade_id),
                          "call": ast.unparse(call)})
    MARGINS[:] = namespace.get("GREEDY_MARGINS", [])
    return found


def _oracle_values(namespace: dict, call: ast.Expr, grade_id: str) -> dict:
    oracle = namespace["ORACLE"]
    saved, recorded = dict(oracle), {}
    for name, function in saved.items():
        oracle[name] = (lambda f: lambda *a: recorded.setdefault("values", f(*a)))(
            function)
    try:
        exec(compile(_with_ref_none(call), f"<{grade_id}>", "exec"), namespace)
    finally:
        oracle.clear()
        oracle.update(saved)
    return {k: np.asarray(v, dtype=np.float64) for k, v in recorded["values"].items()}


def differences(found: list[dict], rtol: float = 1e-12,
                atol: float = 1e-13) -> list[str]:
    """What differs between the stored values and the oracle's, one line each."""
    out = []
    for case in found:
        stored, oracle = case["stored"], case["oracle"]
        check = case["call"].split("(")[0]
        where = f"{case['cell']}, {check} at line {case['lines'][0]}"
        if list(stored) != list(oracle):
            out.append(f"{where}: keys {list(stored)}, the oracle gives {list(oracle)}")
            continue
        for key, value in oracle.items():
            mine = np.asarray(stored[key], dtype=np.float64)
            if mine.shape != value.shape:
                out.append(f"{where}: {key} has shape {mine.shape}, the oracle's "
                           f"{value.shape}")
            elif not np.allclose(mine, value, rtol=rtol, atol=atol):
                out.append(f"{where}: {key} differs from the oracle's by "
                           f"{np.abs(mine - value).max():.1e}")
    return out


def literal(prefix: str, value) -> str:
    """`prefix` + np.reshape([...], shape) on one line, each value to 15
    significant digits (float64 keeps 15 to 17: comparisons at 1e-10 see no
    difference). One line a value keeps the cells short to scroll past."""
    a = np.asarray(value, dtype=np.float64)
    numbers = ", ".join(repr(float(f"{v:.15g}")) for v in a.ravel())
    return f"{prefix}np.reshape([{numbers}], {tuple(a.shape)})"


def stored_text(values: dict) -> list[str]:
    lines = [f"_stored = {{  {COMMENT}"]
    lines += [literal(f'    "{key}": ', value) + "," for key, value in values.items()]
    return lines + ["}"]


def rewrite(nb: dict, found: list[dict]) -> int:
    """Write the oracle's values over the stored ones; the number of cases changed."""
    by_cell: dict[str, list[dict]] = {}
    for case in found:
        by_cell.setdefault(case["cell"], []).append(case)
    changed = 0
    for cell in nb["cells"]:
        mine = by_cell.get(_meta(cell).get("grade_id"), [])
        lines = _source(cell).split("\n")
        for case in sorted(mine, key=lambda c: -c["lines"][0]):  # bottom up
            first, last = case["lines"]
            new = "\n".join(stored_text(case["oracle"])).split("\n")
            if lines[first - 1:last] != new:
                lines[first - 1:last] = new
                changed += 1
        if mine:
            cell["source"] = "\n".join(lines).splitlines(keepends=True)
    return changed


def main(argv: list[str]) -> int:
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    found = cases(nb)
    if "--write" in argv:
        changed = rewrite(nb, found)
        NOTEBOOK.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n",
                            encoding="utf-8")
        print(f"{len(found)} visible cases, {changed} rewritten in {NOTEBOOK}")
        return 0
    problems = differences(found)
    for line in problems:
        print(line)
    print(f"{len(found)} visible cases, {len(problems)} stored values differ")
    if MARGINS:
        print(f"greedy_decode: smallest gap between a step's best and second-best "
              f"score, over {len(MARGINS)} steps of every case: {min(MARGINS):.3f} "
              f"(at least {MIN_MARGIN} needed)")
    return 1 if problems or (MARGINS and min(MARGINS) < MIN_MARGIN) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
