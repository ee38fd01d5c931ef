"""coursetools.checks: reading, matching and repairing submissions, in seconds.

The repairs (RecordedDeduplicateIds, RecordedOverwriteCells) run as nbgrader runs
them in its sanitize step, against a tiny assignment registered in a temporary
gradebook by nbgrader's own generate_assignment preprocessors (LockCells,
ClearSolutions, ComputeChecksums, SaveCells, ClearHiddenTests), without spawning
``nbgrader``. Expected values come from that source notebook, from nbformat's
schema and from what nbgrader documents, never from a run of the code under test.
"""

from __future__ import annotations

import copy
import json
import os
import signal
from contextlib import contextmanager
from pathlib import Path

import nbformat
import nbgrader.api
import nbgrader.utils
import pytest
from conftest import ROOT, nested_past_path_max
from coursetools import checks
from coursetools.checks import (
    MAX_TEXT_KB,
    MAX_TEXT_TOTAL_KB,
    RecordedDeduplicateIds,
    RecordedOverwriteCells,
    check_submission,
    grade_id,
    match_files,
    read_notebook,
    rebuild,
    reference_cells,
    restore_stripped,
)
from coursetools.course import (
    AUTOGRADED_DIR,
    FEEDBACK_DIR,
    SOURCE_DIR,
    SUBMITTED_DIR,
    CourseError,
)
from coursetools.execute import KeepFindings, SealedExecute, autograde_config
from coursetools.results import Finding
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.api import Gradebook
from nbgrader.converters import Autograde
from nbgrader.preprocessors import (
    CheckCellMetadata,
    ClearHiddenTests,
    ClearSolutions,
    ComputeChecksums,
    LockCells,
    OverwriteCells,
    SaveCells,
)

HIDDEN = "assert f(2) == 4"
TEST_F = f"assert f(1) == 2\n### BEGIN HIDDEN TESTS\n{HIDDEN}\n### END HIDDEN TESTS"


def nbg(gid: str, **flags) -> dict:
    meta = {"grade": False, "solution": False, "locked": False, "grade_id": gid,
            "schema_version": 3}
    return {"nbgrader": {**meta, **flags}}


def source_notebook():
    """intro (md), setup, answer, test_f (2 points, hidden part), note (md), test_g."""
    return new_notebook(cells=[
        new_markdown_cell("# Doubling", metadata=nbg("intro", locked=True)),
        new_code_cell("import math", metadata=nbg("setup", locked=True)),
        new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n"
                      "    ### END SOLUTION", metadata=nbg("answer", solution=True)),
        new_code_cell(TEST_F, metadata=nbg("test_f", grade=True, points=2)),
        new_markdown_cell("Now a second check.", metadata=nbg("note", locked=True)),
        new_code_cell("assert f(3) == 6", metadata=nbg("test_g", grade=True,
                                                       points=1)),
    ])


@pytest.fixture(scope="module")
def assignment(tmp_path_factory):
    """(release, db_url): assignment "hw", notebook "nb", in a fresh gradebook."""
    db_url = f"sqlite:///{tmp_path_factory.mktemp('gradebook') / 'gradebook.db'}"
    # A new gradebook asks the alembic command line for its schema version, a
    # subprocess that costs seconds; the version is only stored, never used here.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nbgrader.api, "get_alembic_version", lambda: "test")
        with Gradebook(db_url) as gb:
            gb.add_assignment("hw")
    resources = {"nbgrader": {"notebook": "nb", "assignment": "hw",
                              "db_url": db_url}}
    nb = source_notebook()
    for step in (LockCells(), ClearSolutions(), ComputeChecksums(), SaveCells(),
                 ClearHiddenTests(), ComputeChecksums()):
        nb, resources = step.preprocess(nb, resources)
    assert HIDDEN not in nb.cells[3].source  # the release: hidden tests gone
    return nb, db_url


def cell_of(nb, gid: str):
    return next(c for c in nb.cells if grade_id(c) == gid)


def sanitize(nb, assignment, release_cells=None):
    """nbgrader's DeduplicateIds then OverwriteCells, recorded: (nb, findings)."""
    release, db_url = assignment
    resources = {"nbgrader": {"notebook": "nb", "assignment": "hw",
                              "db_url": db_url, "student": "ada"}}
    nb = copy.deepcopy(nb)
    nb, resources = RecordedDeduplicateIds().preprocess(nb, resources)
    if release_cells is None:
        release_cells = {"nb": reference_cells(release)}
    overwrite = RecordedOverwriteCells(add_missing_cells=True,
                                       release_cells=release_cells)
    nb, resources = overwrite.preprocess(nb, resources)
    return nb, resources.get("coursetools", {}).get("findings", [])


def codes(findings) -> list[str]:
    return [f["code"] if isinstance(f, dict) else f.code for f in findings]


def write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@contextmanager
def time_limit(seconds: float):
    """Fail instead of hanging (pure-Python loops see SIGALRM)."""
    def stop(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- read_notebook --------------------------------------------------------------
def v4(cells, **metadata) -> dict:
    return {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


def raw_cell(source, cell_type="code", **extra) -> dict:
    cell = {"cell_type": cell_type, "metadata": {}, "source": source, **extra}
    if cell_type == "code":
        cell.update(outputs=[], execution_count=None)
    return cell


def test_a_file_that_is_not_utf8_is_refused_naming_the_byte(tmp_path):
    data = b'{"cells": [], "note": "caf\xe9"}'  # Latin-1, as an old editor saves
    nb, finding = read_notebook(write(tmp_path / "hw.ipynb", data))
    assert nb is None
    assert finding.code == "not_utf8"
    assert "byte 26" in finding.message  # counted from 0
    assert "hw.ipynb" in finding.message


def test_invalid_json_is_refused_with_line_and_column(tmp_path):
    text = '{\n "cells": [,]\n}'  # the comma is line 2, column 12
    nb, finding = read_notebook(write(tmp_path / "hw.ipynb", text))
    assert nb is None
    assert finding.code == "invalid_json"
    assert "line 2, column 12" in finding.message


def test_an_empty_file_is_called_empty_not_invalid_json_at_line_1(tmp_path):
    nb, finding = read_notebook(write(tmp_path / "hw.ipynb", ""))
    assert nb is None
    assert finding.code == "invalid_json"
    assert finding.message == "hw.ipynb is an empty file (0 bytes); not graded"


def test_json_nested_too_deeply_is_refused_not_crashing(tmp_path):
    nb, finding = read_notebook(write(tmp_path / "hw.ipynb", "[" * 200_000))
    assert nb is None
    assert finding.code == "invalid_json"
    assert "nests its JSON 200000 deep, more than the 64" in finding.message


@pytest.mark.parametrize(("depth", "refused"), [(490, True), (55, False)])
def test_deep_metadata_is_refused_whatever_the_stack(tmp_path, depth, refused):
    # Red-team pass 9: a list 490 deep in a cell's metadata read at the top of a
    # script, and raised RecursionError deeper in the grader ("report a bug").
    # Strings are not nesting: brackets in a cell's source do not count.
    cell = nbformat.v4.new_code_cell("x = [[[[[[[[1]]]]]]]]")
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.cells[0].metadata["deep"] = "here"
    text = nbformat.writes(nb).replace('"here"', "[" * depth + "0" + "]" * depth)
    found, finding = read_notebook(write(tmp_path / "hw.ipynb", text))
    if refused:
        assert found is None and f"{depth + 4} deep" in finding.message
    else:
        assert finding is None and found.cells[0].source.startswith("x = [[[[")


@pytest.mark.parametrize("data", [[], {"metadata": {}}, {"cells": {"a": 1}}, 3])
def test_json_without_a_list_of_cells_is_not_a_notebook(tmp_path, data):
    nb, finding = read_notebook(write(tmp_path / "hw.ipynb", data))
    assert nb is None
    assert finding.code == "not_a_notebook"


def test_an_nbformat_3_notebook_is_converted(tmp_path):
    v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {"name": ""},
          "worksheets": [{"metadata": {}, "cells": [
              {"cell_type": "code", "input": "x = 1", "language": "python",
               "metadata": {}, "outputs": [], "collapsed": False},
              {"cell_type": "markdown", "source": "# Title", "metadata": {}}]}]}
    nb, finding = read_notebook(write(tmp_path / "hw.ipynb", v3))
    assert finding is None
    assert nb.nbformat == 4
    assert [(c.cell_type, c.source) for c in nb.cells] == [
        ("code", "x = 1"), ("markdown", "# Title")]


def test_an_nbformat_3_notebook_that_also_has_cells_is_converted(tmp_path):
    """The conversion itself, reached when the file also has a 'cells' list."""
    v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "cells": [],
          "worksheets": [{"metadata": {}, "cells": [
              {"cell_type": "code", "input": "x = 1", "language": "python",
               "metadata": {}, "outputs": [], "collapsed": False}]}]}
    nb, finding = read_notebook(write(tmp_path / "hw.ipynb", v3))
    assert finding is None
    assert [(c.cell_type, c.source) for c in nb.cells] == [("code", "x = 1")]
    nbformat.validate(nb)


def test_cells_that_are_not_objects_are_skipped(tmp_path):
    data = v4([1, "text", None, raw_cell("x = 1"), ["a"]])
    nb, finding = read_notebook(write(tmp_path / "hw.ipynb", data))
    assert finding is None
    assert [c.source for c in nb.cells] == ["x = 1"]


def test_a_kernelspec_without_a_name_is_dropped(tmp_path):
    """nbformat's schema requires kernelspec.name; the notebook is still graded."""
    data = v4([{**raw_cell("x = 1"), "id": "one"}],
              kernelspec={"display_name": "Python 3"})
    with pytest.raises(nbformat.ValidationError):  # for the name, not the cell id
        nbformat.validate(nbformat.from_dict(data))
    nb, finding = read_notebook(write(tmp_path / "hw.ipynb", data))
    assert finding is None
    assert "kernelspec" not in nb.metadata
    nbformat.validate(nb)


def test_cell_metadata_that_breaks_the_schema_does_not_stop_grading(tmp_path):
    """nbformat.read only warns here, and Jupyter opens the file."""
    cell = raw_cell("x = 1")
    cell["metadata"] = {"tags": "solution", **nbg("answer", solution=True)}
    nb, finding = read_notebook(write(tmp_path / "hw.ipynb", v4([cell])))
    assert finding is None
    assert [c.source for c in nb.cells] == ["x = 1"]
    assert grade_id(nb.cells[0]) == "answer"
    nbformat.validate(nb)


def test_rebuild_keeps_sources_types_and_metadata_and_drops_outputs():
    output = {"output_type": "stream", "name": "stdout", "text": "hi\n"}
    data = v4([raw_cell(["x = 1\n", "y = 2"], outputs=[output], execution_count=3,
                        id="first"),
               raw_cell("# T", "markdown", id="second"),
               raw_cell("raw", "raw", id="third"),
               raw_cell("odd", "heading", id="fourth")])
    data["cells"][0]["metadata"] = nbg("answer", solution=True)
    nb = rebuild(data)
    assert [(c.cell_type, c.source) for c in nb.cells] == [
        ("code", "x = 1\ny = 2"), ("markdown", "# T"), ("raw", "raw"),
        ("raw", "odd")]  # an unknown type is kept as raw text
    assert nb.cells[0].outputs == [] and nb.cells[0].execution_count is None
    assert grade_id(nb.cells[0]) == "answer"
    assert [c.id for c in nb.cells] == ["first", "second", "third", "fourth"]
    nbformat.validate(nb)



def test_rebuild_keeps_a_markdown_cells_pasted_images_and_nothing_else():
    """An image pasted into a Markdown cell lives in its attachments; without
    them the feedback page could not be made (red-team pass 5)."""
    image = {"image/png": "iVBORw0KGgo="}
    data = v4([raw_cell("![a](attachment:a.png)", "markdown"),
               raw_cell("x = 1"), raw_cell("raw", "raw")])
    for cell in data["cells"]:
        cell["attachments"] = {"a.png": image, "empty.png": {},
                               "list.png": {"image/png": ["iVBOR", "w0KGgo="]},
                               "odd.png": "not a bundle",
                               "amp.png": {"image/png": "&" * 1000}}  # pass 7
    nb = rebuild(data)
    assert nb.cells[0].attachments == {"a.png": image}
    assert "attachments" not in nb.cells[1]  # a code cell has none in nbformat 4
    assert nb.cells[2].attachments == {"a.png": image}
    nbformat.validate(nb)


def test_a_submissions_own_coursetools_metadata_is_dropped(tmp_path):
    """The grader's findings and test times travel in that key: forged ones would
    be read as the grader's (and broke the report for every later run)."""
    forged = {"findings": [{"code": ["x"], "message": 1, "cell": None}],
              "seconds": {"test_f": "fast"}}
    path = write(tmp_path / "nb.ipynb", v4([raw_cell("x = 1")], coursetools=forged,
                                           language_info={"name": "python"}))
    nb, problem = read_notebook(path)
    assert problem is None and "coursetools" not in nb.metadata
    assert nb.metadata.language_info.name == "python"  # the rest is kept


def test_a_notebook_too_large_to_check_is_refused_unread(tmp_path, monkeypatch):
    huge = tmp_path / "big.ipynb"
    with huge.open("wb") as handle:  # sparse: no disk used
        handle.truncate(checks.MAX_NOTEBOOK_MB * 2**20 + 1)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read"))
    nb, problem = read_notebook(huge)
    assert nb is None and problem.code == "too_large"
    assert f"more than the {checks.MAX_NOTEBOOK_MB} MB" in problem.message


def test_a_notebook_with_too_many_cells_is_refused(tmp_path):
    cells = [raw_cell("", "raw")] * (checks.MAX_CELLS + 1)
    nb, problem = read_notebook(write(tmp_path / "nb.ipynb", v4(cells)))
    assert nb is None and problem.code == "too_large"
    assert f"{checks.MAX_CELLS + 1} cells" in problem.message
    assert read_notebook(write(tmp_path / "ok.ipynb", v4(cells[1:])))[1] is None

def test_rebuild_replaces_duplicated_and_invalid_ids_deterministically():
    ids = ["ok", "ok", "has space", "x" * 65, 7, None, "fine-id_2"]
    data = v4([raw_cell(f"c{i}", id=cell_id) for i, cell_id in enumerate(ids)])
    first, second = rebuild(copy.deepcopy(data)), rebuild(copy.deepcopy(data))
    got = [c.id for c in first.cells]
    assert got == [c.id for c in second.cells]  # the same file, the same ids
    assert len(set(got)) == len(got)
    assert all(checks.VALID_ID.fullmatch(i) for i in got)
    assert got[0] == "ok" and got[-1] == "fine-id_2"
    assert "ok" not in got[1:]
    nbformat.validate(first)


def test_rebuild_ends_when_a_generated_id_is_already_taken():
    data = v4([raw_cell("a", id="cell-1-1"), raw_cell("b", id="cell-1-1")])
    with time_limit(0.5):
        nb = rebuild(data)
    assert nb.cells[0].id == "cell-1-1"
    assert nb.cells[1].id != "cell-1-1"


def test_rebuild_keeps_a_valid_unique_id_that_a_generated_one_would_take():
    data = v4([raw_cell("a", id="not valid"), raw_cell("b", id="cell-0")])
    nb = rebuild(data)
    assert nb.cells[1].id == "cell-0"
    assert nb.cells[0].id != "cell-0"


# -- match_files ----------------------------------------------------------------
EXPECTED = {"nb": {"answer", "test_f"}, "other": {"part_b", "test_b"}}


def notebook_with(*gids) -> dict:
    return v4([raw_cell(f"# {g}", metadata=nbg(g)) for g in gids])


def test_notebooks_with_their_expected_names_are_matched(tmp_path):
    write(tmp_path / "nb.ipynb", notebook_with("answer"))
    write(tmp_path / "other.ipynb", notebook_with("part_b"))
    write(tmp_path / "timestamp.txt", "2024-01-01 10:00:00")
    matched, findings = match_files(tmp_path, EXPECTED)
    assert matched == {"nb": tmp_path / "nb.ipynb",
                       "other": tmp_path / "other.ipynb"}
    assert findings == []  # timestamp.txt is nbgrader's own file


def test_one_renamed_notebook_is_matched(tmp_path):
    write(tmp_path / "nb-Copy1.ipynb", notebook_with())
    matched, findings = match_files(tmp_path, {"nb": set()})
    assert matched == {"nb": tmp_path / "nb-Copy1.ipynb"}
    assert findings == [Finding("renamed", "nb-Copy1.ipynb graded as nb.ipynb",
                                "nb")]


def test_several_renamed_notebooks_are_told_apart_by_grade_ids(tmp_path):
    # sorted by name, "a.ipynb" holds the second notebook's cells
    write(tmp_path / "a.ipynb", notebook_with("part_b", "test_b"))
    write(tmp_path / "b.ipynb", notebook_with("answer"))
    matched, findings = match_files(tmp_path, EXPECTED)
    assert matched == {"nb": tmp_path / "b.ipynb", "other": tmp_path / "a.ipynb"}
    assert sorted(codes(findings)) == ["renamed", "renamed"]


def test_renamed_notebooks_without_grade_ids_are_not_guessed(tmp_path):
    write(tmp_path / "a.ipynb", notebook_with())
    write(tmp_path / "b.ipynb", notebook_with())
    matched, findings = match_files(tmp_path, EXPECTED)
    assert matched == {"nb": None, "other": None}
    assert sorted(codes(findings)) == ["extra_notebook", "extra_notebook",
                                       "missing_notebook", "missing_notebook"]


def test_a_missing_notebook_says_what_was_handed_in_instead(tmp_path):
    write(tmp_path / "sub" / "nb.ipynb", notebook_with("answer"))
    write(tmp_path / "nb.zip", b"PK")
    matched, findings = match_files(tmp_path, {"nb": {"answer"}})
    assert matched == {"nb": None}
    missing = [f for f in findings if f.code == "missing_notebook"]
    assert missing == [Finding("missing_notebook", "nb.ipynb was not handed in "
                               "(found instead: nb.zip, sub/nb.ipynb)", "nb")]
    assert sorted(f.message.split()[0] for f in findings
                  if f.code == "extra_file") == ["nb.zip"]


def test_a_missing_notebook_in_an_empty_folder(tmp_path):
    matched, findings = match_files(tmp_path, {"nb": set()})
    assert matched == {"nb": None}
    assert findings == [Finding("missing_notebook", "nb.ipynb was not handed in "
                                "(no other file was handed in)", "nb")]


def test_an_extra_notebook_is_reported_and_ignored(tmp_path):
    write(tmp_path / "nb.ipynb", notebook_with("answer"))
    write(tmp_path / "scratch.ipynb", notebook_with())
    matched, findings = match_files(tmp_path, {"nb": {"answer"}})
    assert matched == {"nb": tmp_path / "nb.ipynb"}
    assert findings == [Finding("extra_notebook", "scratch.ipynb is not part of "
                                "the assignment; ignored")]


def test_extra_files_are_reported_checkpoints_are_not(tmp_path):
    write(tmp_path / "nb.ipynb", notebook_with("answer"))
    write(tmp_path / "data.csv", "1,2")
    write(tmp_path / ".ipynb_checkpoints" / "nb-checkpoint.ipynb", notebook_with())
    matched, findings = match_files(tmp_path, {"nb": {"answer"}})
    assert matched == {"nb": tmp_path / "nb.ipynb"}
    assert codes(findings) == ["extra_file"]
    assert findings[0].message.startswith("data.csv was handed in")


def test_a_non_notebook_file_in_checkpoints_is_not_reported(tmp_path):
    """Jupyter checkpoints every file it edits, not only notebooks."""
    write(tmp_path / "nb.ipynb", notebook_with("answer"))
    write(tmp_path / ".ipynb_checkpoints" / "notes-checkpoint.txt", "draft")
    matched, findings = match_files(tmp_path, {"nb": {"answer"}})
    assert matched == {"nb": tmp_path / "nb.ipynb"}
    assert findings == []


def test_more_than_five_other_files_are_cut_with_an_ellipsis(tmp_path):
    """Six files handed in instead: the first five by name, then ", ...)"."""
    for name in "abcdef":
        write(tmp_path / f"{name}.txt", name)
    _, findings = match_files(tmp_path, {"nb": {"answer"}})
    missing = [f for f in findings if f.code == "missing_notebook"]
    assert missing == [Finding("missing_notebook", "nb.ipynb was not handed in "
                               "(found instead: a.txt, b.txt, c.txt, d.txt, "
                               "e.txt, ...)", "nb")]
    assert codes(findings).count("extra_file") == 6  # each still reported


def test_one_missing_notebook_and_two_spares_goes_by_grade_ids(tmp_path):
    """With two candidates the one holding the notebook's grade ids wins,
    whichever sorts last."""
    write(tmp_path / "a-copy.ipynb", notebook_with("answer", "test_f"))
    write(tmp_path / "z-scratch.ipynb", notebook_with())
    matched, findings = match_files(tmp_path, {"nb": {"answer", "test_f"}})
    assert matched == {"nb": tmp_path / "a-copy.ipynb"}
    assert findings == [
        Finding("renamed", "a-copy.ipynb graded as nb.ipynb", "nb"),
        Finding("extra_notebook", "z-scratch.ipynb is not part of the assignment; "
                "ignored"),
    ]


@pytest.mark.parametrize("flags, locked", [
    ({"locked": True}, True),
    ({"grade": True}, True),  # a test cell
    ({"grade": True, "solution": True}, False),  # an autograded answer
    ({"locked": True, "solution": True}, False),
    ({"solution": True}, False),
    ({}, False),
])
def test_is_locked_cell_follows_nbgrader_cell_kinds(flags, locked):
    """Locked (overwritten when graded): test and read-only cells, never answers,
    as nbgrader.utils.is_locked says."""
    assert checks.is_locked_cell(flags) is locked
    cell = new_code_cell("", metadata={"nbgrader": flags})
    assert bool(nbgrader.utils.is_locked(cell)) is locked


def test_a_link_named_like_the_notebook_is_flagged_and_never_read(tmp_path):
    secret = write(tmp_path / "elsewhere" / "solution.ipynb",
                   notebook_with("answer", "test_f"))
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "nb.ipynb").symlink_to(secret)
    (folder / "data").symlink_to(secret.parent, target_is_directory=True)
    release = nbformat.from_dict(notebook_with("answer", "test_f"))
    notebooks, submitted_as, findings = check_submission(folder, {"nb": release})
    assert notebooks == {"nb": None}  # the linked file's cells were not read
    assert submitted_as == {"nb": None}
    assert sorted(codes(findings)) == ["missing_notebook", "symlink", "symlink"]
    links = sorted(f.message.split()[0] for f in findings if f.code == "symlink")
    assert links == ["data", "nb.ipynb"]
    # the linked folder is not walked: its notebook is not "found instead"
    missing = next(f for f in findings if f.code == "missing_notebook")
    assert "solution" not in missing.message



@pytest.mark.parametrize("level", ["assignment folder", "student folder"])
def test_a_linked_submission_folder_is_flagged_and_never_read(tmp_path, level):
    """An unpacked archive can hold submitted/<student>/<assignment> as a link to
    solutions/ (full marks and the solutions in the feedback) or to a
    classmate's folder (their work graded as one's own)."""
    secret = write(tmp_path / "solutions" / "a1" / "nb.ipynb",
                   notebook_with("answer", "test_f"))
    student = tmp_path / "submitted" / "mallory"
    if level == "student folder":
        student.parent.mkdir()
        student.symlink_to(secret.parent.parent, target_is_directory=True)
    else:
        student.mkdir(parents=True)
        (student / "a1").symlink_to(secret.parent, target_is_directory=True)
    release = nbformat.from_dict(notebook_with("answer", "test_f"))
    notebooks, submitted_as, findings = check_submission(student / "a1",
                                                         {"nb": release})
    assert notebooks == {"nb": None} and submitted_as == {"nb": None}
    assert codes(findings) == ["symlink"]
    assert "mallory/a1" in findings[0].message
    assert "nb.ipynb" not in findings[0].message  # nothing behind it was listed


def test_a_submission_folder_in_a_linked_course_folder_is_read(tmp_path):
    """The instructor may keep submitted/ itself behind a link."""
    elsewhere = tmp_path / "disk" / "submitted"
    write(elsewhere / "ann" / "a1" / "nb.ipynb", notebook_with("answer", "test_f"))
    (tmp_path / "course").mkdir()
    (tmp_path / "course" / "submitted").symlink_to(elsewhere, target_is_directory=True)
    release = nbformat.from_dict(notebook_with("answer", "test_f"))
    notebooks, _, findings = check_submission(
        tmp_path / "course" / "submitted" / "ann" / "a1", {"nb": release})
    assert notebooks["nb"] is not None and not findings


def test_a_text_cell_past_its_limit_is_cut_and_reported(tmp_path):
    """Nothing else bounds a Markdown cell but the notebook's 50 MB, and the
    feedback page renders each (red-team pass 6: 302 s, or a 459 MB page)."""
    limit = MAX_TEXT_KB * 1024
    code = "x = 1  # " + "y" * (2 * limit)  # code is the learner's: kept whole
    cells = [raw_cell(code, metadata=nbg("answer")),
             raw_cell("*a " * limit, "markdown"), raw_cell("b" * limit, "raw")]
    write(tmp_path / "nb.ipynb", v4(cells))
    release = nbformat.from_dict(notebook_with("answer"))
    notebooks, _, findings = check_submission(tmp_path, {"nb": release})
    sources = [c.source for c in notebooks["nb"].cells]
    assert sources[0] == code and sources[2] == "b" * limit
    assert sources[1] == ("*a " * limit)[:limit] + "\n\n(cut here by the grader)"
    assert findings == [Finding("long_text", f"text cut to {MAX_TEXT_KB} kB a cell "
                                "and 1000 kB in all: cell 2 (300 kB)", "nb")]


def test_text_cells_together_are_cut_to_the_notebooks_limit(tmp_path):
    """Red-team pass 6: 49 cells of 1 MB, each an unclosed HTML comment, kept
    bleach past the job's budget; cut one by one, they could still add up."""
    count = MAX_TEXT_TOTAL_KB // MAX_TEXT_KB + 3
    cells = [raw_cell("<!--" * (MAX_TEXT_KB * 256), "markdown")
             for _ in range(count)]
    write(tmp_path / "nb.ipynb", v4([raw_cell("x = 1", metadata=nbg("answer")),
                                     *cells]))
    release = nbformat.from_dict(notebook_with("answer"))
    notebooks, _, findings = check_submission(tmp_path, {"nb": release})
    kept = [c.source.replace("\n\n(cut here by the grader)", "")
            for c in notebooks["nb"].cells[1:]]
    assert sum(map(len, kept)) == MAX_TEXT_TOTAL_KB * 1024
    assert [len(k) for k in kept][-4:] == [MAX_TEXT_KB * 1024, 0, 0, 0]
    assert findings == [Finding("long_text", f"text cut to {MAX_TEXT_KB} kB a cell "
                                f"and {MAX_TEXT_TOTAL_KB} kB in all: cell "
                                f"{count - 1} (100 kB), {count} (100 kB), "
                                f"{count + 1} (100 kB)", "nb")]


def test_a_pipe_named_like_the_notebook_is_reported_and_never_opened(tmp_path):
    os.mkfifo(tmp_path / "nb.ipynb")  # opening it to read would wait for ever
    release = nbformat.from_dict(notebook_with("answer"))
    with time_limit(10):
        notebooks, _, findings = check_submission(tmp_path, {"nb": release})
    assert notebooks == {"nb": None}
    assert sorted(codes(findings)) == ["extra_file", "missing_notebook"]
    assert "nb.ipynb is not a regular file" in next(
        f.message for f in findings if f.code == "extra_file")


def test_any_file_name_or_depth_is_reported_as_text(tmp_path):
    """A name that is not UTF-8, and folders nested past PATH_MAX: each is told
    about in text the report can write, and nothing stops the check."""
    write(tmp_path / "nb.ipynb", notebook_with("answer"))
    (tmp_path / os.fsdecode(b"notes\xff.txt")).write_text("y")
    (tmp_path / os.fsdecode(b"\xfe.ipynb")).write_text("{}")
    nested_past_path_max(tmp_path, "deep.ipynb")
    matched, findings = match_files(tmp_path, {"nb": {"answer"}})
    assert matched == {"nb": tmp_path / "nb.ipynb"}
    messages = sorted(f.message for f in findings)
    assert messages == [
        "notes\ufffd.txt was handed in beside the notebook; grading never gives it "
        "to the notebook",
        "\ufffd.ipynb is not part of the assignment; ignored"]
    for message in messages:
        message.encode("utf-8")  # writable in report.md

# -- restore_stripped -----------------------------------------------------------
def stripped(cell):
    cell = copy.deepcopy(cell)
    cell.metadata.pop("nbgrader")
    return cell


def test_stripped_metadata_is_restored_by_identical_content(assignment):
    release, _ = assignment
    nb = copy.deepcopy(release)
    nb.cells[1] = stripped(nb.cells[1])  # setup, unchanged text
    nb.cells.insert(0, new_code_cell("print('my own cell')"))  # moves positions
    findings = []
    restore_stripped(nb, release, findings, "nb")
    assert grade_id(nb.cells[2]) == "setup"
    assert nb.cells[2].metadata["nbgrader"] == release.cells[1].metadata["nbgrader"]
    assert grade_id(nb.cells[0]) is None
    assert findings == [Finding("metadata_restored", "nbgrader metadata was "
                                "missing from 1 cell(s); restored from the release",
                                "nb")]


def test_stripped_metadata_is_restored_by_position(assignment):
    release, _ = assignment
    nb = copy.deepcopy(release)
    nb.cells[2] = stripped(nb.cells[2])
    nb.cells[2].source = "def f(x):\n    return x + x"  # answered: new text
    findings = []
    restore_stripped(nb, release, findings, "nb")
    assert grade_id(nb.cells[2]) == "answer"
    assert nb.cells[2].source == "def f(x):\n    return x + x"
    assert codes(findings) == ["metadata_restored"]


def test_an_extra_cell_in_the_gap_leaves_the_answer_alone(assignment):
    release, _ = assignment
    nb = copy.deepcopy(release)
    nb.cells[2] = stripped(nb.cells[2])
    nb.cells[2].source = "def f(x):\n    return x + x"
    nb.cells.insert(3, new_code_cell("f(2)"))  # two candidates for one answer
    findings = []
    restore_stripped(nb, release, findings, "nb")
    assert [grade_id(c) for c in nb.cells] == [
        "intro", "setup", None, None, "test_f", "note", "test_g"]
    assert findings == []


def test_twin_cells_and_changed_types_are_left_alone(assignment):
    release, _ = assignment
    nb = copy.deepcopy(release)
    # setup stripped and copied: which copy is the original is unknowable
    nb.cells[1] = stripped(nb.cells[1])
    nb.cells.insert(1, copy.deepcopy(nb.cells[1]))
    # the read-only markdown note stripped, edited and made a code cell
    note = nb.cells.index(cell_of(nb, "note"))
    nb.cells[note] = new_code_cell("Now a check.")
    findings = []
    restore_stripped(nb, release, findings, "nb")
    assert [grade_id(c) for c in nb.cells] == [
        "intro", None, None, "answer", "test_f", None, "test_g"]
    assert findings == []


def test_nothing_to_restore_when_every_grade_id_is_present(assignment):
    release, _ = assignment
    nb = copy.deepcopy(release)
    nb.cells.append(new_code_cell("import math"))  # a copy of setup's text
    findings = []
    restore_stripped(nb, release, findings, "nb")
    assert grade_id(nb.cells[-1]) is None and findings == []



def test_restoring_looks_at_each_cell_a_bounded_number_of_times(assignment,
                                                                monkeypatch):
    """Many blank cells beside one stripped cell: the work grows with the cells,
    not with their square (4,000 cells once held up the whole run 24 s)."""
    release, _ = assignment
    calls = []
    monkeypatch.setattr(checks, "normalised_text",
                        lambda cell, real=checks.normalised_text:
                        calls.append(1) or real(cell))
    for blanks in (500, 1000):
        nb = copy.deepcopy(release)
        nb.cells[1] = stripped(nb.cells[1])
        nb.cells += [new_code_cell("") for _ in range(blanks)]
        calls.clear()
        restore_stripped(nb, release, [], "nb")
        assert len(calls) < 10 * (len(release.cells) + blanks), blanks

# -- check_submission -----------------------------------------------------------
def test_check_submission_returns_notebooks_names_and_findings(assignment,
                                                               tmp_path):
    release, _ = assignment
    other = nbformat.from_dict(notebook_with("part_b"))
    submitted = copy.deepcopy(release)
    submitted.cells[1] = stripped(submitted.cells[1])
    write(tmp_path / "nb (1).ipynb", nbformat.writes(submitted))
    write(tmp_path / "other.ipynb", b"\xff\xfe")
    notebooks, submitted_as, findings = check_submission(
        tmp_path, {"nb": release, "other": other})
    assert set(notebooks) == {"nb", "other"}
    assert notebooks["other"] is None
    assert [grade_id(c) for c in notebooks["nb"].cells] == [
        grade_id(c) for c in release.cells]
    assert submitted_as == {"nb": "nb (1).ipynb", "other": "other.ipynb"}
    assert sorted((f.code, f.notebook) for f in findings) == [
        ("metadata_restored", "nb"), ("not_utf8", "other"), ("renamed", "nb")]
    # the student's file is never written
    assert json.loads((tmp_path / "nb (1).ipynb").read_text()) == json.loads(
        nbformat.writes(submitted))


# -- nbgrader's repairs, recorded -----------------------------------------------
def test_an_untouched_release_needs_no_repair_and_gets_its_hidden_tests(assignment):
    release, _ = assignment
    nb, findings = sanitize(release, assignment)
    assert findings == []
    assert cell_of(nb, "test_f").source == TEST_F  # the gradebook's source
    for got, want in zip(nb.cells, release.cells, strict=True):
        for key in ("grade_id", "grade", "solution", "locked", "points"):
            assert got.metadata["nbgrader"].get(key) == want.metadata[
                "nbgrader"].get(key)


def test_a_duplicated_cell_keeps_its_last_copy(assignment):
    release, _ = assignment
    nb = copy.deepcopy(release)
    early = copy.deepcopy(cell_of(nb, "answer"))
    early.source = "def f(x):\n    return 0"
    nb.cells.insert(2, early)
    nb.cells[3].source = "def f(x):\n    return 2 * x"
    nb, findings = sanitize(nb, assignment)
    assert codes(findings) == ["duplicated_cell"]
    assert "'answer'" in findings[0]["message"]
    assert nb.cells[2].source == "def f(x):\n    return 0"
    assert "nbgrader" not in nb.cells[2].metadata  # an ordinary cell now
    assert cell_of(nb, "answer").source == "def f(x):\n    return 2 * x"
    assert [grade_id(c) for c in nb.cells].count("answer") == 1


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_copy_with_a_grade_id_and_no_flags_is_a_duplicate_too(assignment, where):
    """Red-team pass 14: nbgrader's DeduplicateIds passes over a cell whose only
    nbgrader key is a grade id; OverwriteCells then gives it the release's
    settings, and nbgrader refused the notebook (two test cells of one id): not
    graded, graded twice, and again at every run. Had it been accepted, the
    judge would run the hidden test once a copy, the last one counted."""
    release, _ = assignment
    nb = copy.deepcopy(release)
    test = nb.cells.index(cell_of(nb, "test_f"))
    bare = new_code_cell(cell_of(nb, "test_f").source,
                         metadata={"nbgrader": {"grade_id": "test_f"}})
    nb.cells.insert(test if where == "before" else test + 1, bare)
    nb, findings = sanitize(nb, assignment)
    # The last copy is graded: when it is the bare one, its settings are put back.
    repaired = [] if where == "before" else ["metadata_changed", "points_changed"]
    assert sorted(codes(findings)) == ["duplicated_cell", *repaired]
    assert [grade_id(c) for c in nb.cells].count("test_f") == 1
    graded = cell_of(nb, "test_f")
    assert graded.source == TEST_F and graded.metadata["nbgrader"]["points"] == 2
    CheckCellMetadata().preprocess(nb, {})  # nbgrader's own check accepts it


def test_an_unknown_grade_id_loses_its_metadata(assignment):
    release, _ = assignment
    nb = copy.deepcopy(release)
    nb.cells.append(new_code_cell("assert True", metadata=nbg(
        "bonus", grade=True, points=100)))
    nb, findings = sanitize(nb, assignment)
    assert codes(findings) == ["unknown_cell"]
    assert "'bonus'" in findings[0]["message"]
    assert "nbgrader" not in nb.cells[-1].metadata
    assert nb.cells[-1].source == "assert True"


def test_nbgrader_metadata_without_a_grade_id_is_dropped(assignment):
    release, _ = assignment
    nb = copy.deepcopy(release)
    nb.cells.append(new_code_cell("x = 1", metadata={"nbgrader": {"solution": False,
                                                                 "grade": False}}))
    nb, findings = sanitize(nb, assignment)
    assert findings == []
    assert "nbgrader" not in nb.cells[-1].metadata


def test_a_graded_flag_without_a_grade_id_is_dropped(assignment):
    release, _ = assignment
    nb = copy.deepcopy(release)
    nb.cells.append(new_code_cell("assert True", metadata={"nbgrader": {
        "grade": True, "solution": False, "locked": True, "points": 50}}))
    nb, findings = sanitize(nb, assignment)
    assert "nbgrader" not in nb.cells[-1].metadata
    assert [grade_id(c) for c in nb.cells[:-1]] == [
        grade_id(c) for c in release.cells]


def test_a_changed_cell_type_is_changed_back(assignment):
    release, _ = assignment
    nb = copy.deepcopy(release)
    setup = nb.cells.index(cell_of(nb, "setup"))
    nb.cells[setup] = new_markdown_cell("import math",
                                        metadata=copy.deepcopy(nb.cells[1].metadata))
    nb, findings = sanitize(nb, assignment)
    assert codes(findings) == ["cell_type_changed"]
    assert findings[0]["message"] == ("cell 'setup' was changed from code to "
                                      "markdown; changed back")
    assert nb.cells[setup].cell_type == "code"
    assert nb.cells[setup].outputs == []
    nbformat.validate(nb)


@pytest.mark.parametrize("points, shown", [(5, "from 2 to 5"),
                                           ("100", "from 2 to '100'"),
                                           (True, "from 2 to True"),
                                           (None, "from 2 to None")])
def test_changed_points_are_restored(assignment, points, shown):
    release, _ = assignment
    nb = copy.deepcopy(release)
    cell_of(nb, "test_f").metadata["nbgrader"]["points"] = points
    nb, findings = sanitize(nb, assignment)
    assert codes(findings) == ["points_changed"]
    assert shown in findings[0]["message"]
    assert float(cell_of(nb, "test_f").metadata["nbgrader"]["points"]) == 2


@pytest.mark.parametrize("gid, flag, value", [
    ("test_f", "grade", False), ("test_f", "solution", True),
    ("setup", "locked", False), ("answer", "locked", True),
    ("answer", "solution", False)])
def test_changed_flags_are_restored(assignment, gid, flag, value):
    release, _ = assignment
    nb = copy.deepcopy(release)
    cell_of(nb, gid).metadata["nbgrader"][flag] = value
    nb, findings = sanitize(nb, assignment)
    assert codes(findings) == ["metadata_changed"]
    assert findings[0]["cell"] == gid
    want = cell_of(release, gid).metadata["nbgrader"]
    got = cell_of(nb, gid).metadata["nbgrader"]
    assert {k: bool(got.get(k)) for k in ("grade", "solution", "locked")} == {
        k: bool(want.get(k)) for k in ("grade", "solution", "locked")}


@pytest.mark.parametrize("gid, edit, original, kind", [
    ("setup", "import os", "import math", "read-only cell"),
    ("intro", "# Nothing to see", "# Doubling", "read-only cell"),
    ("test_f", "assert True", TEST_F, "test cell")])
def test_an_edited_locked_cell_is_tampered_and_graded_as_the_gradebooks(
        assignment, gid, edit, original, kind):
    release, _ = assignment
    nb = copy.deepcopy(release)
    cell_of(nb, gid).source = edit
    nb, findings = sanitize(nb, assignment)
    assert codes(findings) == ["tampered"]
    assert findings[0]["message"] == (f"{kind} {gid!r} was edited; the original "
                                      "is graded")
    assert findings[0]["cell"] == gid
    assert cell_of(nb, gid).source == original


def test_trailing_spaces_in_a_locked_cell_are_not_tampering(assignment):
    release, _ = assignment
    nb = copy.deepcopy(release)
    cell_of(nb, "setup").source = "import math   \n"
    nb, findings = sanitize(nb, assignment)
    assert findings == []
    assert cell_of(nb, "setup").source == "import math"


def test_a_deleted_test_cell_is_put_back_after_its_answer(assignment):
    release, _ = assignment
    nb = copy.deepcopy(release)
    nb.cells.remove(cell_of(nb, "test_f"))
    nb, findings = sanitize(nb, assignment)
    assert codes(findings) == ["cell_deleted"]
    assert findings[0]["message"] == "test cell 'test_f' was deleted; put back"
    assert [grade_id(c) for c in nb.cells] == [grade_id(c) for c in release.cells]
    back = cell_of(nb, "test_f")
    assert back.source == TEST_F and back.cell_type == "code"
    assert back.metadata["nbgrader"]["points"] == 2
    nbformat.validate(nb)


def test_a_deleted_test_cell_after_a_read_only_markdown_cell(assignment):
    release, _ = assignment
    nb = copy.deepcopy(release)
    nb.cells.remove(cell_of(nb, "test_g"))
    nb, findings = sanitize(nb, assignment)
    assert codes(findings) == ["cell_deleted"]
    assert [grade_id(c) for c in nb.cells] == [grade_id(c) for c in release.cells]
    assert cell_of(nb, "test_g").source == "assert f(3) == 6"


def test_nbgrader_itself_cannot_put_back_a_cell_after_a_markdown_one(assignment):
    """Why RecordedOverwriteCells has its own add_missing_grade_cells."""
    release, db_url = assignment
    nb = copy.deepcopy(release)
    nb.cells.remove(cell_of(nb, "test_g"))
    resources = {"nbgrader": {"notebook": "nb", "assignment": "hw",
                              "db_url": db_url}}
    with pytest.raises(KeyError):
        OverwriteCells(add_missing_cells=True).preprocess(nb, resources)


@pytest.mark.parametrize("deleted, kinds", [
    (["setup"], ["read-only"]),
    (["intro"], ["read-only"]),
    (["note", "test_g"], ["read-only", "test"]),
    (["intro", "setup"], ["read-only", "read-only"])])
def test_deleted_read_only_cells_are_put_back_in_place(assignment, deleted, kinds):
    release, _ = assignment
    nb = copy.deepcopy(release)
    for gid in deleted:
        nb.cells.remove(cell_of(nb, gid))
    nb, findings = sanitize(nb, assignment)
    assert [grade_id(c) for c in nb.cells] == [grade_id(c) for c in release.cells]
    for got, want in zip(nb.cells, source_notebook().cells, strict=True):
        if grade_id(got) in deleted:
            assert (got.cell_type, got.source) == (want.cell_type, want.source)
    assert codes(findings) == ["cell_deleted"] * len(deleted)
    assert [f["message"].split()[0] for f in findings] == kinds
    nbformat.validate(nb)


def test_a_missing_answer_cell_is_reported_and_not_put_back(assignment):
    release, _ = assignment
    nb = copy.deepcopy(release)
    nb.cells.remove(cell_of(nb, "answer"))
    nb, findings = sanitize(nb, assignment)
    assert codes(findings) == ["answer_missing"]
    assert "'answer'" in findings[0]["message"]
    assert [grade_id(c) for c in nb.cells] == [
        "intro", "setup", "test_f", "note", "test_g"]


def test_release_cells_define_the_release(assignment):
    """Not the gradebook: a cell the gradebook knows but release_cells does not
    name is unknown, and a read-only cell it does not name is not put back."""
    release, _ = assignment
    reference = reference_cells(release)
    del reference["test_g"], reference["setup"]
    nb = copy.deepcopy(release)
    nb.cells.remove(cell_of(nb, "setup"))
    nb, findings = sanitize(nb, assignment, release_cells={"nb": reference})
    assert codes(findings) == ["unknown_cell"]
    assert "'test_g'" in findings[0]["message"]
    assert [grade_id(c) for c in nb.cells] == [
        "intro", "answer", "test_f", "note", None]


def test_a_scratch_folder_too_deep_for_a_socket_is_named(tmp_path):
    """A Unix socket's path has at most 107 bytes: under a long TMPDIR every
    judge failed to start, with no word of why."""
    settings = {"timeout": 9, "notebook_timeout": 99, "max_output_bytes": 999}
    with pytest.raises(CourseError, match="set TMPDIR to a shorter folder"):
        autograde_config(ROOT, tmp_path / "course", settings, tmp_path / ("d" * 120),
                         judge_names=["f"])


def test_autograde_config_puts_the_recorded_repairs_in_nbgrader(tmp_path):
    release_cells = {"nb": {"answer": {"cell_type": "code", "source": "",
                                       "nbgrader": {}}}}
    settings = {"timeout": 9, "notebook_timeout": 99, "max_output_bytes": 999}
    config = autograde_config(ROOT, tmp_path / "course", settings, tmp_path,
                              release_cells=release_cells, judge_names=["f"])
    assert RecordedOverwriteCells(config=config).release_cells == release_cells
    for pipeline in ("sanitize_preprocessors", "autograde_preprocessors"):
        default = Autograde.class_traits()[pipeline].default()
        steps = config.Autograde[pipeline]
        assert len(steps) == len(default) + 1 and steps[-1] is KeepFindings
    assert RecordedDeduplicateIds in config.Autograde.sanitize_preprocessors
    assert RecordedOverwriteCells in config.Autograde.sanitize_preprocessors
    assert SealedExecute in config.Autograde.autograde_preprocessors
    assert config.SealedExecute.judge_names == ["f"]
    # One schema check a pipeline, after its last step (not one after each).
    assert config.Exporter.optimistic_validation is True
    # The folder names, from nbgrader_config.py (which imports course.py's).
    assert [config.CourseDirectory[f"{kind}_directory"] for kind in (
        "source", "submitted", "autograded", "feedback")] == [
        SOURCE_DIR, SUBMITTED_DIR, AUTOGRADED_DIR, FEEDBACK_DIR]
    assert config.CourseDirectory.root == str(tmp_path / "course")
