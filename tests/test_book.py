"""The book builds clean from scratch, with every chapter executed, and leaks nothing.

One clean build (a fresh output folder, so no cache can hide a failure) serves
every test here and the browser tests in test_browser.py: the session fixture
`book` lives in conftest.py. It is the slowest part of the suite.
"""

from __future__ import annotations

import html as html_lib
import re

import nbtools
import pytest
from conftest import ASSIGNMENTS, ROOT, chapter_files

# myst-nb wraps every executed output in this element; the theme's scripts mention
# the bare class name on every page, so match the attribute.
OUTPUT_MARKER = 'class="cell_output'


def test_book_builds_clean_without_warnings(book):
    result, log, html = book
    warnings = [
        line
        for line in log.splitlines()
        if "WARNING" in line and "IPKernelApp" not in line
    ]
    assert result.returncode == 0, f"jupyter-book build failed:\n{log[-5000:]}"
    assert not warnings, "the build warned:\n" + "\n".join(warnings[:20])
    assert (html / "index.html").is_file()


@pytest.mark.parametrize("chapter", [p.stem for p in chapter_files()])
def test_chapter_executes_without_error(book, chapter):
    _, log, html = book
    page = html / "book" / f"{chapter}.html"
    assert page.is_file(), f"{chapter} was not built: is it in _toc.yml?"
    report = html / "reports" / "book" / f"{chapter}.err.log"
    assert not report.exists(), report.read_text()[-3000:]
    text = page.read_text(encoding="utf-8")
    assert OUTPUT_MARKER in text, f"{chapter} shows no executed output"
    for marker in ("Traceback (most recent call last)", 'class="output traceback'):
        assert marker not in text, f"{chapter} shows an error output"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_exercise_page_is_shown_but_not_executed(book, name):
    _, _, html = book
    for notebook in (ROOT / "exercises" / name).glob("*.ipynb"):
        page = html / "exercises" / name / f"{notebook.stem}.html"
        assert page.is_file(), f"the exercise page for {name} is missing from the book"
        text = page.read_text(encoding="utf-8")
        assert "NotImplementedError" in text and OUTPUT_MARKER not in text


def test_every_exercise_notebook_is_downloadable(book):
    _, _, html = book
    downloads = {p.name for p in (html / "_downloads").rglob("*.ipynb")}
    for name in ASSIGNMENTS:
        for notebook in (ROOT / "exercises" / name).glob("*.ipynb"):
            assert notebook.name in downloads, (
                f"{notebook.name} is not offered for download"
            )


def test_built_html_reveals_no_solution(book):
    _, _, html = book
    pages = list(html.rglob("*.html")) + list(html.rglob("*.ipynb"))
    assert not (html / "solutions").exists(), "solutions/ was published"
    blocks = []
    for name in ASSIGNMENTS:
        for path in (ROOT / "solutions" / name).glob("*.ipynb"):
            for cell in nbtools.load(path)["cells"]:
                text = nbtools.source(cell)
                for begin, end in [
                    (nbtools.BEGIN_SOLUTION, nbtools.END_SOLUTION),
                    (nbtools.BEGIN_HIDDEN, nbtools.END_HIDDEN),
                ]:
                    for region in nbtools.regions(text, begin, end):
                        lines = [ln.strip() for ln in region if ln.strip()]
                        if len(lines) >= 2:
                            blocks.append(lines)
    squash, tag = re.compile(r"\s+"), re.compile(r"<[^>]+>")
    for page in pages:
        text = page.read_text(encoding="utf-8", errors="replace")
        if page.suffix == ".html":
            # Highlighted code is split into spans; compare the text a reader sees.
            text = html_lib.unescape(tag.sub("", text))
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, page
        flat = squash.sub(" ", text)
        for lines in blocks:
            assert " ".join(lines) not in flat, (
                f"{page} shows a solution block: {lines[:2]}"
            )
