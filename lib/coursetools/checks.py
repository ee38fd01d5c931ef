"""Read a submission defensively, before nbgrader sees it, and record every repair.

Students hand in whatever their editor wrote. Here, in the grading parent:

- unreadable files (not UTF-8, invalid JSON, not a notebook) are reported, not graded;
- a renamed notebook is matched to the expected name when that is unambiguous;
- links and other files handed in are reported and never given to the notebook;
- nbgrader metadata that was stripped is put back where the match is unambiguous.

In the worker, nbgrader's own sanitize step does the rest, through the two
subclasses at the end of this module that record each repair as a finding:
duplicated cells (``DeduplicateIds``), changed cell types, settings, points and
edited read-only cells, deleted cells (``OverwriteCells``). The student's file is
never written: :func:`check_submission` returns new notebooks.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import difflib
import json
import os
import re
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell
from nbgrader.preprocessors import DeduplicateIds, OverwriteCells
from traitlets import Dict

from coursetools.execute import record
from coursetools.results import Finding

VALID_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # nbformat 4.5's cell id pattern
# What `nbgrader submit` writes beside the notebooks (release_feedback reads both).
NBGRADER_FILES = ("timestamp.txt", "submission_secret.txt")
# Far beyond any notebook a learner writes; reading and checking a larger one
# would hold up every other student's grading in the parent.
MAX_NOTEBOOK_MB, MAX_CELLS = 50, 5000
# A notebook's JSON nests about 8 deep (a widget's state in metadata a few more).
# Deeper text is refused before any recursive step reads it: json, deepcopy and
# nbformat each recurse, and how deep they may go depends on the caller's stack
# (metadata 490 deep read at the top of a script and failed in the grader).
MAX_DEPTH = 64
BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")
# Markdown and raw text: a cell, and a notebook (an exercise has 4 and 30 kB)
MAX_TEXT_KB, MAX_TEXT_TOTAL_KB = 100, 1000


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
def read_notebook(path: Path) -> tuple[nbformat.NotebookNode | None, Finding | None]:
    """A valid v4 notebook rebuilt from `path`, or None and the reason."""
    if (size := path.stat().st_size) > MAX_NOTEBOOK_MB * 2**20:
        return None, Finding("too_large", f"{path.name} is {size / 2**20:.0f} MB, more "
                             f"than the {MAX_NOTEBOOK_MB} MB a notebook may have; "
                             "not graded")
    raw = path.read_bytes()
    if not raw:  # an upload that failed, not a notebook gone wrong
        return None, Finding("invalid_json", f"{path.name} is an empty file (0 "
                             "bytes); not graded")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, Finding("not_utf8", f"{path.name} is not UTF-8 text "
                          f"(byte {error.start}: {error.reason}); not graded")
    if (depth := json_depth(text)) > MAX_DEPTH:
        return None, Finding("invalid_json", f"{path.name} nests its JSON {depth} "
                             f"deep, more than the {MAX_DEPTH} a notebook may; not "
                             "graded")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        return None, Finding("invalid_json", f"{path.name} is not valid JSON (line "
                          f"{error.lineno}, column {error.colno}: {error.msg}); "
                          "not graded")
    try:
        if isinstance(data, dict) and data.get("nbformat", 4) != 4:
            data = nbformat.convert(nbformat.from_dict(data), 4)  # v3: worksheets
        if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
            return None, Finding("not_a_notebook", f"{path.name} has no list of "
                                 "cells; not graded")
        if len(data["cells"]) > MAX_CELLS:
            return None, Finding("too_large", f"{path.name} has {len(data['cells'])} "
                                 f"cells, more than the {MAX_CELLS} a notebook may "
                                 "have; not graded")
        return rebuild(data), None
    except Exception as error:  # noqa: BLE001 (any malformed structure)
        return None, Finding("not_a_notebook", f"{path.name} is not a readable "
                          f"notebook ({type(error).__name__}: {error}); not graded")


_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')  # strings skipped


def json_depth(text: str) -> int:
    """How deep the arrays and objects of JSON `text` nest, read without recursion."""
    depth = deepest = 0
    for token in _TOKENS.findall(text):
        if token in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def rebuild(data: dict) -> nbformat.NotebookNode:
    """A fresh, schema-valid notebook with the cells' types, sources and metadata.

    Outputs are dropped (grading clears them anyway). A cell keeps its id when
    it is valid and unique; otherwise it gets one from its position, so that a
    duplicated or malformed id cannot make nbformat reject the notebook and the
    same file always grades to the same notebook.
    """
    makers = {"code": new_code_cell, "markdown": new_markdown_cell, "raw": new_raw_cell}
    nb = new_notebook()
    metadata = data.get("metadata")
    if isinstance(metadata, dict):
        nb.metadata.update(copy.deepcopy(metadata))
    # The grader keeps its findings there: a student's own would be taken for them.
    nb.metadata.pop("coursetools", None)
    cells = [c for c in data["cells"] if isinstance(c, dict)]
    given = [c.get("id") if isinstance(c.get("id"), str)
             and VALID_ID.fullmatch(c["id"]) else None for c in cells]
    # A valid id stays with the first cell that has it (reversed: the first wins).
    first = {cell_id: index for index, cell_id in reversed(list(enumerate(given)))
             if cell_id is not None}
    used = set(first)
    for index, (cell, cell_id) in enumerate(zip(cells, given, strict=True)):
        maker = makers.get(cell.get("cell_type"), new_raw_cell)
        cell_meta = cell.get("metadata")
        cell_meta = copy.deepcopy(cell_meta) if isinstance(cell_meta, dict) else {}
        made = maker(source=text_of(cell))  # validated here: metadata after
        made.metadata = nbformat.from_dict(cell_meta)
        attachments = cell.get("attachments")  # an image pasted into Markdown
        if made.cell_type != "code" and isinstance(attachments, dict):
            # base64 only, as the page reads it (bleach is quadratic in "&")
            made.attachments = nbformat.from_dict({
                name: bundle for name, bundle in attachments.items()
                if isinstance(bundle, dict) and bundle
                and all(isinstance(data, str) and BASE64.fullmatch(data)
                        for data in bundle.values())})
        if first.get(cell_id) != index:
            suffix = 0
            while (cell_id := f"cell-{index}-{suffix}" if suffix else f"cell-{index}"
                   ) in used:
                suffix += 1
            used.add(cell_id)
        made.id = cell_id
        nb.cells.append(made)
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError:
        # Metadata Jupyter tolerates (a kernelspec without a name, tags as a
        # string): keep only what grading reads, then nothing.
        nb.metadata = nbformat.NotebookNode()
        for made in nb.cells:
            made.metadata = {k: v for k, v in made.metadata.items() if k == "nbgrader"}
            made.pop("attachments", None)
        if not nbformat.validator.isvalid(nb):
            for made in nb.cells:
                made.metadata = nbformat.NotebookNode()
        nbformat.validate(nb)
    return nb


# -- matching file names ------------------------------------------------------
def gids_of(path: Path) -> set[str]:
    try:
        if path.stat().st_size > MAX_NOTEBOOK_MB * 2**20:
            return set()
        data = json.loads(path.read_text(encoding="utf-8"))
        return {g for g in (grade_id(c) for c in data.get("cells", [])) if g}
    except Exception:  # noqa: BLE001
        return set()


def walk(folder: Path) -> dict[str, list[Path]]:
    """Everything under `folder` but its folders, by kind: "file" (regular),
    "link" (never followed) and "other" (a pipe, socket or device). A folder
    that cannot be listed (its path too long for the system) is left out."""
    kinds: dict[str, list[Path]] = {"file": [], "link": [], "other": []}
    todo = [folder]
    while todo:
        with contextlib.suppress(OSError), os.scandir(todo.pop()) as listing:
            for entry in listing:
                if entry.is_symlink():
                    kinds["link"].append(Path(entry.path))
                elif entry.is_dir(follow_symlinks=False):
                    todo.append(Path(entry.path))
                else:
                    kind = "file" if entry.is_file(follow_symlinks=False) else "other"
                    kinds[kind].append(Path(entry.path))
    return {kind: sorted(paths) for kind, paths in kinds.items()}


def shown(path: Path, folder: Path | None = None) -> str:
    """A handed-in file's name as text, whatever bytes it is made of."""
    name = path.relative_to(folder) if folder else Path(path.name)
    return os.fsencode(name).decode("utf-8", "replace")


def match_files(folder: Path, expected: dict[str, set[str]]) -> tuple[dict, list]:
    """Map each expected notebook name to a submitted file (or None).

    `expected` maps names to the release's grade ids, used to tell renamed
    notebooks apart when several are missing.
    """
    kinds = walk(folder)
    # Regular files only: a symbolic link could point at any file the grader may
    # read (solutions/), and reading a named pipe would wait for ever.
    found = [p for p in kinds["file"] if p.parent == folder and p.suffix == ".ipynb"
             and not p.name.startswith(".")]
    matched = {name: folder / f"{name}.ipynb" for name in expected
               if (folder / f"{name}.ipynb") in found}
    spare = [p for p in found if p not in matched.values()]
    missing = [name for name in expected if name not in matched]
    findings = []
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
    others = [shown(p, folder) for p in kinds["file"]
              if p not in matched.values() and p.name not in NBGRADER_FILES
              and p.parent.name != ".ipynb_checkpoints"]
    # Say what is there instead: a zip, a notebook in a subfolder, a PDF.
    seen = " (no other file was handed in)"
    if others:
        seen = f" (found instead: {', '.join(others[:5])}"
        seen += ", ...)" if len(others) > 5 else ")"
    for name in expected:
        path = matched.get(name)
        if path is None:
            findings.append(Finding("missing_notebook", f"{name}.ipynb was not "
                                    f"handed in{seen}", name))
            matched[name] = None
        elif path.name != f"{name}.ipynb":
            findings.append(Finding("renamed", f"{shown(path)} graded as "
                                    f"{name}.ipynb", name))
    findings += [Finding("extra_notebook", f"{shown(path)} is not part of the "
                         "assignment; ignored") for path in spare]
    findings += [Finding("symlink", f"{shown(link, folder)} is a symbolic link; "
                         "links are never followed") for link in kinds["link"]]
    findings += [Finding("extra_file", f"{shown(odd, folder)} is not a regular "
                         "file (a pipe, socket or device); never read")
                 for odd in kinds["other"]]
    findings += [Finding("extra_file", f"{other} was handed in beside the notebook; "
                         "grading never gives it to the notebook")
                 for other in others if not other.endswith(".ipynb")]
    return {n: matched[n] for n in expected}, findings


# -- restoring stripped metadata (nbgrader has no such repair) ----------------
def restore_stripped(nb, release, findings: list[Finding], name: str) -> None:
    """Give cells without nbgrader metadata their grade id where unambiguous.

    An editor or a careless copy can drop the metadata; nbgrader would then grade
    the cell as missing. Matched first by identical content, then by position
    between cells that still match, with the same number and types in the gap.
    """
    ref = {grade_id(c): c for c in release.cells if grade_id(c)}
    present = {grade_id(c) for c in nb.cells if grade_id(c)}
    missing = [g for g in ref if g not in present]
    if not missing:
        return
    cells = nb.cells
    plain = [c for c in cells if not grade_id(c)]
    restored = []
    by_text = {}
    for gid in missing:
        by_text.setdefault(normalised_text(ref[gid]), []).append(gid)
    texts = collections.Counter(normalised_text(c) for c in plain)
    for cell in plain:
        text = normalised_text(cell)
        gids = by_text.get(text, [])
        if len(gids) == 1 and texts[text] == 1 and text:
            cell.metadata["nbgrader"] = copy.deepcopy(meta(ref[gids[0]]))
            restored.append(gids[0])

    def key(cell):
        gid = grade_id(cell)
        return f"id:{gid}" if gid else f"text:{normalised_text(cell)}"

    matcher = difflib.SequenceMatcher(None, [key(c) for c in release.cells],
                                      [key(c) for c in cells], autojunk=False)
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
                h.metadata["nbgrader"] = copy.deepcopy(meta(w))
                restored.append(grade_id(w))
    if restored:
        findings.append(Finding("metadata_restored", "nbgrader metadata was missing "
                                f"from {len(restored)} cell(s); restored from the "
                                "release", name))


# -- nbgrader's own repairs, recorded -----------------------------------------
def reference_cells(release) -> dict[str, dict]:
    """grade id -> the released cell's type, source and nbgrader metadata."""
    return {grade_id(c): {"cell_type": c.cell_type, "source": text_of(c),
                          "nbgrader": dict(meta(c))}
            for c in release.cells if grade_id(c)}


class RecordedDeduplicateIds(DeduplicateIds):
    """nbgrader's DeduplicateIds (the last copy counts), each repair a finding."""

    def preprocess_cell(self, cell, resources, index):
        gid = grade_id(cell)
        if gid is None:  # nbgrader's own would fail on a graded cell without an id
            cell.metadata.pop("nbgrader", None)
            return cell, resources
        # nbgrader's passes over a copy whose only key is the grade id, which
        # OverwriteCells then made a second graded cell (red-team pass 14).
        if gid in self.grade_ids:
            record(resources, "duplicated_cell", f"cell {gid!r} appears more than "
                   "once; the last copy is graded, the others run as ordinary cells")
            cell.metadata.pop("nbgrader")
        self.grade_ids.add(gid)
        return cell, resources


class RecordedOverwriteCells(OverwriteCells):
    """nbgrader's OverwriteCells against the release, each repair a finding.

    On top of nbgrader's checks (cell type, locked, points, checksum) it drops
    grade ids the assignment does not have (nbgrader leaves a graded cell
    without an id, which later steps cannot score), puts the release's nbgrader
    settings back, and puts back every deleted read-only cell in place:
    nbgrader's ``add_missing_grade_cells`` restores test cells only and fails
    when the cell before a deleted one is not an answer or a test.
    """

    release_cells = Dict(help="notebook -> grade id -> reference_cells() entry").tag(
        config=True)

    def preprocess(self, nb, resources):
        self._resources = resources
        self._ref = self.release_cells.get(resources["nbgrader"]["notebook"], {})
        return super().preprocess(nb, resources)

    def report_change(self, name, attr, old, new):
        if attr == "cell_type":
            record(self._resources, "cell_type_changed", f"cell {name!r} was changed "
                   f"from {old} to {new}; changed back")
        elif attr == "points":
            record(self._resources, "points_changed", f"points of {name!r} changed "
                   f"from {old:g} to {new:g}; restored")

    def preprocess_cell(self, cell, resources, index):
        gid = grade_id(cell)
        if gid is None:
            cell.metadata.pop("nbgrader", None)
            return cell, resources
        want = self._ref.get(gid)
        if want is None:
            record(resources, "unknown_cell", f"cell {gid!r} is not in the "
                   "assignment; graded as an ordinary cell")
            cell.metadata.pop("nbgrader")
            return cell, resources
        got, wanted = meta(cell), want["nbgrader"]
        locked = is_locked_cell(wanted)
        if locked and normalised_text(cell) != normalised_text(want):
            kind = "test cell" if wanted.get("grade") else "read-only cell"
            record(resources, "tampered", f"{kind} {gid!r} was edited; the "
                   "original is graded", cell)
        if any(bool(got.get(k)) != bool(wanted.get(k))
               for k in ("grade", "solution", "locked")):
            record(resources, "metadata_changed", f"nbgrader settings of {gid!r} "
                   "were changed; restored", cell)
        points = got.get("points")
        if wanted.get("grade") and (isinstance(points, bool) or
                                    not isinstance(points, int | float)):
            record(resources, "points_changed", f"points of {gid!r} changed from "
                   f"{wanted.get('points')} to {points!r}; restored")
            points = wanted.get("points")
        cell.metadata["nbgrader"] = {**copy.deepcopy(wanted), "points": points}
        cell, resources = super().preprocess_cell(cell, resources, index)
        cell.metadata["nbgrader"] = {**copy.deepcopy(wanted),
                                     "checksum": meta(cell).get("checksum")}
        return cell, resources

    def add_missing_grade_cells(self, nb, resources):
        order = list(self._ref)
        present = {grade_id(c) for c in nb.cells if grade_id(c)}
        for position, gid in enumerate(order):
            if gid in present:
                continue
            want = self._ref[gid]
            if not is_locked_cell(want["nbgrader"]):
                record(resources, "answer_missing", f"answer cell {gid!r} is "
                       "missing; nothing was put in its place")
                continue
            before = [g for g in order[:position] if g in present]
            at = 0
            if before:
                at = 1 + max(i for i, c in enumerate(nb.cells)
                             if grade_id(c) == before[-1])
            source = self.gradebook.find_source_cell(gid, self.notebook_id,
                                                     self.assignment_id)
            maker = new_code_cell if want["cell_type"] == "code" else new_markdown_cell
            cell = maker(source=source.source,
                         metadata={"nbgrader": {**copy.deepcopy(want["nbgrader"]),
                                                "checksum": source.checksum}})
            nb.cells.insert(at, cell)
            present.add(gid)
            kind = "test cell" if want["nbgrader"].get("grade") else "read-only cell"
            record(resources, "cell_deleted", f"{kind} {gid!r} was deleted; put back")
        return nb, resources


# -- a whole submission -------------------------------------------------------
def _cut_long_text(nb, findings: list[Finding], name: str) -> None:
    """Nothing runs a Markdown or raw cell, but the feedback page renders it, and
    its size is bounded only by the notebook's: each is cut to MAX_TEXT_KB, and
    all of them together to MAX_TEXT_TOTAL_KB."""
    left, cut = MAX_TEXT_TOTAL_KB * 1024, []
    for number, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code":
            keep, size = min(MAX_TEXT_KB * 1024, left), len(cell.source)
            if size > keep:
                cut.append(f"{number} ({size / 1024:,.0f} kB)")
                cell.source = cell.source[:keep] + "\n\n(cut here by the grader)"
            left -= min(size, keep)
    if cut:
        findings.append(Finding("long_text", f"text cut to {MAX_TEXT_KB} kB a cell "
                                f"and {MAX_TEXT_TOTAL_KB} kB in all: cell "
                                + ", ".join(cut[:5]) + (" ..." if cut[5:] else ""),
                                name))


def linked(folder: Path) -> bool:
    """Whether submitted/<student>/<assignment> or its student folder is a
    symbolic link (an unpacked archive can hold one, to solutions/ or to a
    classmate's folder)."""
    return os.path.realpath(folder) != os.path.join(
        os.path.realpath(folder.parent.parent), folder.parent.name, folder.name)


def check_submission(folder: Path, releases: dict[str, nbformat.NotebookNode]):
    """Check every expected notebook of one student's submission folder.

    Returns the checked notebooks (None where nothing can be graded) and the
    findings, each naming its notebook ("" for the submission as a whole).
    """
    expected = {n: {grade_id(c) for c in nb.cells if grade_id(c)}
                for n, nb in releases.items()}
    if linked(folder):  # nothing behind the link is read
        return dict.fromkeys(releases), dict.fromkeys(releases), [Finding(
            "symlink", f"{shown(folder.parent)}/{shown(folder)} is or is under a "
            "symbolic link; links are never followed")]
    matched, findings = match_files(folder, expected)
    notebooks = dict.fromkeys(matched)  # None: nothing to grade
    for name, path in ((n, p) for n, p in matched.items() if p is not None):
        nb, problem = read_notebook(path)
        if problem:
            findings.append(Finding(problem.code, problem.message, name))
        else:
            restore_stripped(nb, releases[name], findings, name)
            _cut_long_text(nb, findings, name)
            notebooks[name] = nb
    return notebooks, {n: (p.name if p else None) for n, p in matched.items()}, findings
