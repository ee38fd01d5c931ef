"""Reading nbgrader notebooks in tests: regions, cells, and made-up submissions."""

from __future__ import annotations

import copy
import json
from pathlib import Path

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save(nb: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")


def source(cell: dict) -> str:
    text = cell["source"]
    return text if isinstance(text, str) else "".join(text)


def nbgrader_meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def answer_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if nbgrader_meta(c).get("solution")]


def test_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if nbgrader_meta(c).get("grade")]


def regions(text: str, begin: str, end: str) -> list[list[str]]:
    """The lines strictly between each begin/end marker pair."""
    found, current = [], None
    for line in text.splitlines():
        if line.strip() == begin:
            current = []
        elif line.strip() == end and current is not None:
            found.append(current)
            current = None
        elif current is not None:
            current.append(line)
    return found


def secret_lines(nb: dict, min_length: int = 12) -> set[str]:
    """Stripped lines of solution and hidden-test regions that a student must not see.

    Lines that also occur outside those regions (a signature, a shared assert) are
    not secret, nor are short lines such as `return h`.
    """
    markers = {BEGIN_SOLUTION: END_SOLUTION, BEGIN_HIDDEN: END_HIDDEN}
    secret, visible = set(), set()
    for cell in nb["cells"]:
        closing = None
        for line in source(cell).splitlines():
            stripped = line.strip()
            if closing is None and stripped in markers:
                closing = markers[stripped]
            elif stripped == closing:
                closing = None
            else:
                (visible if closing is None else secret).add(stripped)
    return {
        s for s in secret - visible if len(s) >= min_length and not s.startswith("#")
    }


def solution_body(cell: dict) -> str:
    """An answer cell's source as a student who solved it would hand it in."""
    markers = {BEGIN_SOLUTION, END_SOLUTION}
    return "\n".join(
        ln for ln in source(cell).splitlines() if ln.strip() not in markers
    )


def fill_answers(release: dict, solution: dict, grade_ids: set[str]) -> dict:
    """A copy of the released notebook with the named answer cells solved."""
    answers = {nbgrader_meta(c)["grade_id"]: c for c in answer_cells(solution)}
    submission = copy.deepcopy(release)
    for cell in answer_cells(submission):
        grade_id = nbgrader_meta(cell)["grade_id"]
        if grade_id in grade_ids:
            cell["source"] = solution_body(answers[grade_id])
    return submission


def dask_worker_settings() -> dict:
    """dask-worker.yaml as ``dask.config.set`` takes it (dotted keys): the settings
    the instructor guide starts grading workers with, for a LocalCluster."""
    import yaml

    def dotted(tree: dict, prefix: str) -> dict:
        flat = {}
        for key, value in tree.items():
            if isinstance(value, dict):
                flat.update(dotted(value, f"{prefix}{key}."))
            else:
                flat[prefix + key] = value
        return flat

    path = Path(__file__).resolve().parents[1] / "dask-worker.yaml"
    return dotted(yaml.safe_load(path.read_text()), "")
