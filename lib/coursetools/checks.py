"""Check a submission before grading and build the normalised copy that is graded.

Students hand in whatever their editor wrote. This module reads each notebook
defensively and repairs what can be repaired without guessing, against the source
notebook (``solutions/``) and its release (what the student was given):

- unreadable files (not UTF-8, invalid JSON, not a notebook) are reported, not graded;
- a renamed notebook is matched to the expected name when that is unambiguous;
- duplicated graded cells keep one copy (the last, as nbgrader does);
- nbgrader metadata that was stripped is put back by ``grade_id``-free matching:
  first by identical content, then by position between cells that still match;
- cell types, locked cells, test cells and points are restored from the release;
- deleted read-only cells (instructions, imports, tests) are put back in place.

Every repair is a :class:`Flag`, shown to the instructor in the report. The
student's file is never written: :func:`check_submission` returns new notebooks.
"""

from __future__ import annotations

import copy
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell


@dataclass
class Flag:
    code: str  # short machine-readable kind, e.g. "renamed"
    message: str  # one line for a human

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass
class CheckedNotebook:
    name: str  # expected notebook name, without .ipynb
    submitted_as: str | None  # file name found in the submission, if any
    notebook: nbformat.NotebookNode | None  # normalised notebook, None = not gradable
    flags: list[Flag] = field(default_factory=list)


def text_of(cell) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def normalised_text(cell) -> str:
    return "\n".join(line.rstrip() for line in text_of(cell).strip().splitlines())


def meta(cell) -> dict:
    value = cell.get("metadata", {}).get("nbgrader")
    return value if isinstance(value, dict) else {}


def grade_id(cell) -> str | None:
    gid = meta(cell).get("grade_id")
    return gid if isinstance(gid, str) and gid else None


def is_locked_cell(m: dict) -> bool:
    return bool(m.get("locked") or m.get("grade")) and not m.get("solution")


# -- reading ------------------------------------------------------------------
def read_notebook(path: Path) -> tuple[nbformat.NotebookNode | None, Flag | None]:
    """A valid v4 notebook rebuilt from `path`, or None and the reason."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, Flag("not_utf8", f"{path.name} is not UTF-8 text "
                          f"(byte {error.start}: {error.reason}); not graded")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        return None, Flag("invalid_json", f"{path.name} is not valid JSON (line "
                          f"{error.lineno}, column {error.colno}: {error.msg}); "
                          "not graded")
    except RecursionError:
        return None, Flag("invalid_json", f"{path.name} nests its JSON too deeply "
                          "to be a notebook; not graded")
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        return None, Flag("not_a_notebook", f"{path.name} has no list of cells; "
                          "not graded")
    try:
        if data.get("nbformat", 4) != 4:
            data = nbformat.convert(nbformat.from_dict(data), 4)
        return rebuild(data), None
    except Exception as error:  # noqa: BLE001 (any malformed structure)
        return None, Flag("not_a_notebook", f"{path.name} is not a readable "
                          f"notebook ({type(error).__name__}: {error}); not graded")


def rebuild(data: dict) -> nbformat.NotebookNode:
    """A fresh, schema-valid notebook with the cells' types, sources and metadata.

    Outputs are dropped (grading clears them anyway) and cell ids are new, so
    duplicated or malformed ids cannot make nbformat reject the notebook.
    """
    makers = {"code": new_code_cell, "markdown": new_markdown_cell, "raw": new_raw_cell}
    nb = new_notebook()
    metadata = data.get("metadata")
    if isinstance(metadata, dict):
        nb.metadata.update(copy.deepcopy(metadata))
    for cell in data["cells"]:
        if not isinstance(cell, dict):
            continue
        maker = makers.get(cell.get("cell_type"), new_raw_cell)
        cell_meta = cell.get("metadata")
        cell_meta = copy.deepcopy(cell_meta) if isinstance(cell_meta, dict) else {}
        nb.cells.append(maker(source=text_of(cell), metadata=cell_meta))
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError:
        nb.metadata = nbformat.NotebookNode()  # e.g. a kernelspec without a name
        nbformat.validate(nb)
    return nb


# -- matching file names ------------------------------------------------------
def gids_of(path: Path) -> set[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {g for g in (grade_id(c) for c in data.get("cells", [])) if g}
    except Exception:  # noqa: BLE001
        return set()


def match_files(folder: Path, expected: dict[str, set[str]]) -> tuple[dict, list[Flag]]:
    """Map each expected notebook name to a submitted file (or None).

    `expected` maps names to the release's grade ids, used to tell renamed
    notebooks apart when several are missing.
    """
    # A symbolic link could point at any file the grader may read (solutions/).
    links = sorted(p for p in folder.rglob("*") if p.is_symlink())
    found = sorted(p for p in folder.glob("*.ipynb")
                   if not p.name.startswith(".") and not p.is_symlink())
    matched = {name: folder / f"{name}.ipynb" for name in expected
               if (folder / f"{name}.ipynb") in found}
    spare = [p for p in found if p not in matched.values()]
    missing = [name for name in expected if name not in matched]
    flags: dict[str | None, list[Flag]] = {None: []}
    if len(missing) == 1 and len(spare) == 1:
        matched[missing[0]] = spare.pop()
    elif missing and spare:
        for path in list(spare):
            overlap = {n: len(gids_of(path) & expected[n]) for n in missing}
            best = max(overlap.values(), default=0)
            winners = [n for n, v in overlap.items() if v == best]
            if best > 0 and len(winners) == 1:
                matched[winners[0]] = path
                missing.remove(winners[0])
                spare.remove(path)
    others = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                    if p.is_file() and not p.is_symlink()
                    and p not in matched.values()
                    and p.name != "timestamp.txt"
                    and p.parent.name != ".ipynb_checkpoints")
    # Say what is there instead: a zip, a notebook in a subfolder, a PDF.
    seen = " (no other file was handed in)"
    if others:
        seen = f" (found instead: {', '.join(others[:5])}"
        seen += ", ...)" if len(others) > 5 else ")"
    for name in expected:
        flags[name] = []
        path = matched.get(name)
        if path is None:
            flags[name].append(Flag("missing_notebook", f"{name}.ipynb was not "
                                    f"handed in{seen}"))
            matched[name] = None
        elif path.name != f"{name}.ipynb":
            flags[name].append(Flag("renamed", f"{path.name} graded as {name}.ipynb"))
    for path in spare:
        flags[None].append(Flag("extra_notebook", f"{path.name} is not part of the "
                                "assignment; ignored"))
    for link in links:
        flags[None].append(Flag("symlink", f"{link.relative_to(folder)} is a "
                                "symbolic link; links are never followed"))
    for other in others:
        if not other.endswith(".ipynb"):
            flags[None].append(Flag("extra_file", f"{other} was handed in beside the "
                                    "notebook; grading never gives it to the notebook"))
    return {n: matched[n] for n in expected}, flags


# -- repairing cells ----------------------------------------------------------
def check_notebook(nb, release, flags: list[Flag]):
    """Repair `nb` (a rebuilt copy) against `release`; append flags; return it."""
    ref = {grade_id(c): c for c in release.cells if grade_id(c)}
    order = [grade_id(c) for c in release.cells if grade_id(c)]
    cells = _drop_unknown_and_duplicates(nb.cells, ref, flags)
    _restore_stripped(cells, release, ref, flags)
    cells = [_restore_cell(c, ref[grade_id(c)], flags) if grade_id(c) else c
             for c in cells]
    nb.cells = _put_back_missing(cells, ref, order, flags)
    return nb


def _drop_unknown_and_duplicates(cells, ref, flags):
    seen, kept = set(), []
    for cell in reversed(cells):  # nbgrader keeps the last copy too
        gid = grade_id(cell)
        if gid is None:
            if meta(cell):
                cell.metadata.pop("nbgrader")
        elif gid not in ref:
            flags.append(Flag("unknown_cell", f"cell {gid!r} is not in the assignment;"
                              " graded as an ordinary cell"))
            cell.metadata.pop("nbgrader")
        elif gid in seen:
            if is_locked_cell(meta(ref[gid])):
                flags.append(Flag("duplicated_cell", f"read-only cell {gid!r} appears "
                                  "more than once; the extra copy was removed"))
                continue
            flags.append(Flag("duplicated_cell", f"answer cell {gid!r} appears more "
                              "than once; the last copy is the answer, the others "
                              "run as ordinary cells before it"))
            cell.metadata.pop("nbgrader")
        seen.add(gid)
        kept.append(cell)
    return kept[::-1]


def _restore_stripped(cells, release, ref, flags) -> None:
    """Give cells without nbgrader metadata their grade id where unambiguous."""
    present = {grade_id(c) for c in cells if grade_id(c)}
    missing = [g for g in ref if g not in present]
    if not missing:
        return
    plain = [c for c in cells if not grade_id(c)]
    restored = []
    # 1. identical content, unique on both sides
    by_text = {}
    for gid in missing:
        by_text.setdefault(normalised_text(ref[gid]), []).append(gid)
    for cell in plain:
        gids = by_text.get(normalised_text(cell), [])
        twins = [c for c in plain if normalised_text(c) == normalised_text(cell)]
        if len(gids) == 1 and len(twins) == 1 and normalised_text(cell):
            _set_meta(cell, ref[gids[0]])
            restored.append(gids[0])
    # 2. by position between cells that match, same number and types in the gap
    def key(cell):
        gid = grade_id(cell)
        return f"id:{gid}" if gid else f"text:{normalised_text(cell)}"

    rel_keys = [key(c) for c in release.cells]
    sub_keys = [key(c) for c in cells]
    matcher = difflib.SequenceMatcher(None, rel_keys, sub_keys, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag not in ("replace", "insert", "delete"):
            continue
        want = [c for c in release.cells[i1:i2] if grade_id(c) and
                grade_id(c) not in {grade_id(x) for x in cells}]
        have = [c for c in cells[j1:j2] if not grade_id(c)]
        if want and len(want) == len(have) and all(
            w.cell_type == h.cell_type or not is_locked_cell(meta(w))
            for w, h in zip(want, have, strict=True)
        ):
            for w, h in zip(want, have, strict=True):
                _set_meta(h, w)
                restored.append(grade_id(w))
    if restored:
        flags.append(Flag("metadata_restored", f"nbgrader metadata was missing from "
                          f"{len(restored)} cell(s); restored from the release"))


def _set_meta(cell, ref_cell) -> None:
    cell.metadata["nbgrader"] = copy.deepcopy(meta(ref_cell))


def _restore_cell(cell, ref_cell, flags):
    gid, want = grade_id(cell), meta(ref_cell)
    if cell.cell_type != ref_cell.cell_type:
        flags.append(Flag("cell_type_changed", f"cell {gid!r} was changed from "
                          f"{ref_cell.cell_type} to {cell.cell_type}; changed back"))
        maker = new_code_cell if ref_cell.cell_type == "code" else new_markdown_cell
        cell = maker(source=text_of(cell), metadata=copy.deepcopy(cell.metadata))
    got = meta(cell)
    if want.get("grade") and got.get("points") != want.get("points"):
        flags.append(Flag("points_changed", f"points of {gid!r} changed from "
                          f"{want.get('points')} to {got.get('points')}; restored"))
    elif any(bool(got.get(k)) != bool(want.get(k)) for k in ("grade", "solution",
                                                             "locked")):
        flags.append(Flag("metadata_changed", f"nbgrader settings of {gid!r} were "
                          "changed; restored"))
    cell.metadata["nbgrader"] = copy.deepcopy(want)
    if is_locked_cell(want) and normalised_text(cell) != normalised_text(ref_cell):
        kind = "test cell" if want.get("grade") else "read-only cell"
        flags.append(Flag("tampered", f"{kind} {gid!r} was edited; the original is "
                          "graded"))
        cell.source = text_of(ref_cell)
    return cell


def _put_back_missing(cells, ref, order, flags):
    present = {grade_id(c) for c in cells if grade_id(c)}
    for pos, gid in enumerate(order):
        if gid in present:
            continue
        want = meta(ref[gid])
        if not is_locked_cell(want):
            flags.append(Flag("answer_missing", f"answer cell {gid!r} is missing; "
                              "nothing was put in its place"))
            continue
        before = [g for g in order[:pos] if g in present]
        at = 0
        if before:
            at = 1 + max(i for i, c in enumerate(cells) if grade_id(c) == before[-1])
        cell = copy.deepcopy(ref[gid])
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cells.insert(at, cell)
        present.add(gid)
        kind = "test cell" if want.get("grade") else "read-only cell"
        flags.append(Flag("cell_deleted", f"{kind} {gid!r} was deleted; put back"))
    return cells


# -- a whole submission -------------------------------------------------------
def check_submission(folder: Path, releases: dict[str, nbformat.NotebookNode]):
    """Check every expected notebook of one student's submission folder."""
    expected = {n: {grade_id(c) for c in nb.cells if grade_id(c)}
                for n, nb in releases.items()}
    matched, file_flags = match_files(folder, expected)
    results = []
    for name, path in matched.items():
        flags = list(file_flags[name])
        if path is None:
            results.append(CheckedNotebook(name, None, None, flags))
            continue
        nb, problem = read_notebook(path)
        if problem:
            results.append(CheckedNotebook(name, path.name, None, flags + [problem]))
            continue
        nb = check_notebook(nb, releases[name], flags)
        results.append(CheckedNotebook(name, path.name, nb, flags))
    if results:
        results[0].flags.extend(file_flags[None])
    return results
