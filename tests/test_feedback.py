"""coursetools.feedback: what a student's feedback must not show.

The tracebacks here are IPython's own format, copied from an ipykernel 6 run of
a cell whose 15th line failed (colour codes and the "---> 15" marker included).
"""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import http.server
import re
import sys
import threading
from html import unescape
from pathlib import Path
from unittest import mock

import jinja2
import nbformat
import nbgrader
import pytest
from bs4 import BeautifulSoup
from conftest import ROOT
from coursetools.execute import GuardedExecute
from coursetools.feedback import (
    AS_TEXT,
    COMPILED_TEMPLATES,
    HIGHLIGHTED,
    MAX_CELL_MARKUP,
    MAX_PAGE_MARKUP,
    UNSTYLED,
    FeedbackExporter,
    fonts_for,
    hide_hidden_tests,
    lean_css,
    mathjax_inline,
    own_head,
    page_policy,
    secret_lines,
)
from coursetools.results import CellResult, Finding, NotebookResult, StudentResult
from nbconvert.exporters import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

SHOWN = 'assert f(1) == 2, "f(1) should be 2"'
HIDDEN = 'assert f(2) == 4, "f(2) should be 4"'
TEST_SOURCE = "\n".join([
    SHOWN,
    "### BEGIN HIDDEN TESTS",
    HIDDEN,
    "assert f(-3) == -6",
    "x = f(5)",  # under 12 characters: too common to count as secret
    "assert f(0) == 0",  # also in a visible cell
    "### END HIDDEN TESTS",
    "print('all checks passed')",
])


def nbg(gid: str, **flags) -> dict:
    return {"nbgrader": {"grade": False, "solution": False, "locked": False,
                         "grade_id": gid, **flags}}


def source_notebook():
    return new_notebook(cells=[
        new_markdown_cell("# Doubling", metadata=nbg("intro", locked=True)),
        new_code_cell("assert f(0) == 0", metadata=nbg("setup", locked=True)),
        new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return x * 2 + 0\n"
                      "    ### END SOLUTION", metadata=nbg("answer", solution=True)),
        new_code_cell(TEST_SOURCE, metadata=nbg("test_f", grade=True, points=2)),
    ])


def release_notebook():
    nb = source_notebook()
    nb.cells[2].source = (
        "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()")
    nb.cells[3].source = f"{SHOWN}\nprint('all checks passed')"
    return nb


# -- secret_lines -------------------------------------------------------------
def test_only_long_lines_found_only_in_hidden_regions_are_secret():
    assert secret_lines(source_notebook()) == {HIDDEN, "assert f(-3) == -6"}


def test_the_minimum_length_is_a_parameter():
    assert "x = f(5)" in secret_lines(source_notebook(), min_length=8)
    assert "x = f(5)" not in secret_lines(source_notebook(), min_length=9)


def test_indented_markers_and_lines_count_and_each_cell_starts_outside():
    nb = new_notebook(cells=[
        new_code_cell("def check():\n    ### BEGIN HIDDEN TESTS\n"
                      "    assert g(1) == 10\n    ### END HIDDEN TESTS\n"
                      "    assert g(2) == 20"),
        # a region left open ends with its cell
        new_code_cell("### BEGIN HIDDEN TESTS\nassert g(3) == 30"),
        new_code_cell("assert g(4) == 40"),
    ])
    assert secret_lines(nb) == {"assert g(1) == 10", "assert g(3) == 30"}


def test_solution_lines_are_not_secret():
    """A student's feedback shows their own answer, which may be the solution."""
    nb = new_notebook(cells=[new_code_cell(
        "### BEGIN SOLUTION\nreturn_value = compute_it()\n### END SOLUTION")])
    assert secret_lines(nb) == set()


# -- hide_hidden_tests --------------------------------------------------------
def ipython_traceback(quoted: str, ename="AssertionError", evalue="f(2) should be 4"):
    """IPython 8's colour traceback of line 15 of a cell, quoting lines 14-16."""
    return [
        "\x1b[31m---------------------------------------------------------------"
        "------------\x1b[39m",
        f"\x1b[31m{ename}\x1b[39m                            Traceback (most "
        "recent call last)",
        "\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[1]\x1b[39m\x1b[32m, line "
        "15\x1b[39m\n"
        "\x1b[32m     14\x1b[39m \x1b[38;5;28;01mdef\x1b[39;00m g():\n"
        f"\x1b[32m---> \x1b[39m\x1b[32m15\x1b[39m {quoted}\n"
        "\x1b[32m     16\x1b[39m x = \x1b[32m1\x1b[39m\n",
        f"\x1b[31m{ename}\x1b[39m: {evalue}",
    ]


def coloured(line: str) -> str:
    """`line` with IPython's syntax colours, as a traceback quotes it."""
    return line.replace("assert", "\x1b[38;5;28;01massert\x1b[39;00m").replace(
        "2)", "\x1b[32m2\x1b[39m)")


def graded_notebook():
    """What autograde leaves: tests with hidden parts, outputs, findings."""
    nb = source_notebook()
    nb.cells[1].source = "assert f(0) == 0  # edited, then overwritten"
    nb.cells[2].source = "def f(x):\n    return x + x"
    nb.cells[3].outputs = [new_output(
        "error", ename="AssertionError", evalue="f(2) should be 4",
        traceback=ipython_traceback(coloured(HIDDEN)))]
    nb.metadata["coursetools"] = {"findings": [{"code": "tampered"}]}
    return nb


def test_read_only_cells_show_their_released_source():
    safe = hide_hidden_tests(graded_notebook(), release_notebook(), set())
    release = release_notebook()
    assert safe.cells[3].source == release.cells[3].source
    assert "BEGIN HIDDEN" not in safe.cells[3].source
    assert safe.cells[1].source == "assert f(0) == 0"
    assert safe.cells[0].source == "# Doubling"
    assert safe.cells[2].source == "def f(x):\n    return x + x"  # the answer


def test_a_traceback_quoting_a_hidden_line_is_replaced():
    secret = secret_lines(source_notebook())
    safe = hide_hidden_tests(graded_notebook(), release_notebook(), secret)
    [output] = safe.cells[3].outputs
    assert output.ename == "AssertionError"
    assert output.traceback[0] == "AssertionError: f(2) should be 4"
    assert len(output.traceback) == 2
    assert "hidden" in output.traceback[1]
    assert "f(2) == 4" not in "\n".join(output.traceback)


def test_a_traceback_quoting_a_hidden_line_without_a_marker_is_replaced():
    """The judge's plain Python traceback quotes the line indented, no number."""
    nb = graded_notebook()
    nb.cells[3].outputs[0].traceback = [
        "Traceback (most recent call last):",
        '  File "<test_f>", line 3, in <module>',
        f"    {HIDDEN}",
        "AssertionError: f(2) should be 4"]
    safe = hide_hidden_tests(nb, release_notebook(), {HIDDEN})
    assert safe.cells[3].outputs[0].traceback[0] == (
        "AssertionError: f(2) should be 4")
    assert len(safe.cells[3].outputs[0].traceback) == 2


def test_a_traceback_quoting_the_hidden_marker_is_replaced():
    nb = graded_notebook()
    nb.cells[3].outputs[0].traceback = ipython_traceback(
        "\x1b[37m### BEGIN HIDDEN TESTS\x1b[39m")
    safe = hide_hidden_tests(nb, release_notebook(), set())
    assert len(safe.cells[3].outputs[0].traceback) == 2


def test_a_traceback_quoting_only_visible_lines_is_kept():
    nb = graded_notebook()
    visible = ipython_traceback(coloured(SHOWN), evalue="f(1) should be 2")
    nb.cells[3].outputs[0].traceback = visible
    nb.cells[2].outputs = [new_output(
        "error", ename="ZeroDivisionError", evalue="division by zero",
        traceback=ipython_traceback("\x1b[32m1\x1b[39m / \x1b[32m0\x1b[39m",
                                    "ZeroDivisionError", "division by zero"))]
    before = copy.deepcopy(nb.cells[2].outputs)
    safe = hide_hidden_tests(nb, release_notebook(), secret_lines(source_notebook()))
    assert safe.cells[3].outputs[0].traceback == visible
    assert safe.cells[2].outputs == before


def test_the_judges_frames_are_numbered_as_the_page_shows_the_cell():
    """Line 8 as run (after six hidden lines and their markers) is line 2 of the
    read-only cell the page shows; an answer cell is shown as it ran."""
    nb = graded_notebook()
    nb.cells[3].outputs[0].traceback = [
        f"--->   1 {SHOWN}", "--->   8 print('all checks passed')",
        "NameError: name 'print' is not defined"]
    nb.cells[2].outputs = [new_output(
        "error", ename="ZeroDivisionError", evalue="division by zero",
        traceback=["--->   2     return x + x", "ZeroDivisionError: division by zero"])]
    safe = hide_hidden_tests(nb, release_notebook(), secret_lines(source_notebook()))
    assert safe.cells[3].outputs[0].traceback[:2] == [
        f"--->   1 {SHOWN}", "--->   2 print('all checks passed')"]
    assert safe.cells[3].source.splitlines()[1] == "print('all checks passed')"
    assert safe.cells[2].outputs[0].traceback[0] == "--->   2     return x + x"
    huge = "---> " + "9" * 5000 + " boom"  # red-team pass 7: int() refused it
    nb.cells[2].outputs[0].traceback = [huge]
    safe = hide_hidden_tests(nb, release_notebook(), secret_lines(source_notebook()))
    assert safe.cells[2].outputs[0].traceback == [huge]


def test_other_outputs_are_kept():
    nb = graded_notebook()
    stream = new_output("stream", name="stdout", text="all checks passed\n")
    nb.cells[3].outputs = [stream]
    safe = hide_hidden_tests(nb, release_notebook(), secret_lines(source_notebook()))
    assert safe.cells[3].outputs == [stream]


def test_the_graders_findings_are_removed_and_the_input_is_untouched():
    nb = graded_notebook()
    before = copy.deepcopy(nb)
    safe = hide_hidden_tests(nb, release_notebook(), secret_lines(source_notebook()))
    assert "coursetools" not in safe.metadata
    assert nb == before
    assert "coursetools" in nb.metadata


def test_cells_without_a_released_twin_are_left_as_graded():
    nb = graded_notebook()
    nb.cells.append(new_code_cell("print('mine')"))
    nb.cells.append(new_code_cell("assert True", metadata=nbg("extra", grade=True)))
    safe = hide_hidden_tests(nb, release_notebook(), set())
    assert [c.source for c in safe.cells[-2:]] == ["print('mine')", "assert True"]


# -- the exporter ----------------------------------------------------------------
PIXEL = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA"
         "60e6kgAAAABJRU5ErkJggg==")  # a 1x1 PNG


def notebook_with_images():
    nb = source_notebook()
    nb.cells[2].outputs = [
        new_output("display_data", data={"image/png": PIXEL, "text/plain": "<Figure>"}),
        new_output("display_data",
                   data={"text/html": '<img src="cat.png" alt="a cat">'}),
        new_output("stream", name="stdout", text="x < 3 & y > 2\n"),
    ]
    return nb


def structure(html: str):
    """Every tag with its attributes, and the text: what a browser shows."""
    soup = BeautifulSoup(html, "html.parser")
    return ([(t.name, sorted((k, str(v)) for k, v in t.attrs.items()))
             for t in soup.find_all(True)], " ".join(soup.get_text().split()))


def test_the_page_has_the_same_tags_attributes_and_text_as_nbconverts():
    nb = notebook_with_images()
    ours, _ = FeedbackExporter(template_name="classic").from_notebook_node(nb)
    theirs, _ = HTMLExporter(template_name="classic").from_notebook_node(nb)
    # MathJax aside, and the spans of names and punctuation, which no rule styles
    assert structure(ours) == structure(own_head(UNSTYLED.sub(r"\1", theirs)))
    assert theirs.count('<span class="n">') > ours.count('<span class="n">') == 0
    assert not re.search(r"\.highlight \.[np] ", ours)
    assert ours.count('alt="No description has been provided for this image"') == 1
    assert 'alt="a cat"' in ours


def test_templates_are_compiled_once_per_process():
    nb = notebook_with_images()
    first, _ = FeedbackExporter(template_name="classic").from_notebook_node(nb)
    assert COMPILED_TEMPLATES.client
    with mock.patch.object(jinja2.Environment, "compile",
                           side_effect=AssertionError("a template compiled again")):
        again, _ = FeedbackExporter(template_name="classic").from_notebook_node(nb)
    assert again == first


def test_each_source_is_highlighted_once_per_process_with_the_same_result():
    nb = notebook_with_images()
    first, _ = FeedbackExporter(template_name="classic").from_notebook_node(nb)
    with mock.patch("pygments.highlight",
                    side_effect=AssertionError("a source highlighted again")):
        again, _ = FeedbackExporter(template_name="classic").from_notebook_node(nb)
    assert again == first
    nb.cells[2].source += "\nz = 1"  # a new answer is highlighted, not looked up
    changed, _ = FeedbackExporter(template_name="classic").from_notebook_node(nb)
    assert 'z <span class="o">=</span>' in changed


def test_no_submission_picks_a_lexer():
    """A cell's magics_language, the notebook's language_info and a fenced
    block's info string each named one of pygments' lexers, and systemd's takes
    hours over a long run of spaces (red-team pass 6): code is highlighted as
    IPython, a fenced block as Python or else not at all."""
    nb = new_notebook(cells=[
        new_code_cell("echo $HOME", metadata={"magics_language": "bash"}),
        new_markdown_cell("```systemd\n[Unit]\nA=b\n```\n\n```Python\nx = 1\n```"
                          "\n\n```mermaid\n<b>graph</b>\n```")])
    nb.metadata["language_info"] = {"name": "bash", "pygments_lexer": "systemd"}
    page, _ = FeedbackExporter(template_name="classic").from_notebook_node(nb)
    assert '<span class="nv">$HOME</span>' not in page  # not bash's variable
    assert '<span class="nb">echo</span>' not in page
    assert "<pre><code>[Unit]\nA=b\n</code></pre>" in page  # systemd's: plain
    assert '<span class="n">x</span> <span class="o">=</span>' in page  # Python's
    assert "<pre><code>&lt;b&gt;graph&lt;/b&gt;\n</code></pre>" in page


def test_the_remembered_highlights_are_bounded():
    HIGHLIGHTED.clear()
    HIGHLIGHTED.update({(str(i), "x", None, "{}"): "" for i in range(4096)})
    FeedbackExporter(template_name="classic").from_notebook_node(
        notebook_with_images())
    assert 0 < len(HIGHLIGHTED) < 100


def feedback_page(nb) -> tuple[str, BeautifulSoup, list]:
    """The page nbgrader's own feedback template makes, as GenerateFeedback sets
    it up, parsed, and the tags that would run a script (alert) of the page's."""
    formgrader = Path(nbgrader.__file__).parent / "server_extensions/formgrader"
    templates = formgrader / "templates"
    css = formgrader / "static/node_modules/bootstrap/dist/css"
    page, _ = FeedbackExporter(
        template_name="feedback", extra_template_basedirs=[str(templates)],
        extra_template_paths=[str(css)],
    ).from_notebook_node(nb, resources={"nbgrader": {
        "notebook": "nb", "score": 0, "max_score": 1, "late_penalty": 0}})
    # MathJax (2 MB, the template's own) aside: parsing it took 1 s a page
    soup = BeautifulSoup(page.replace(mathjax_inline(), ""), "html.parser")
    mine = [t for t in soup.find_all(True) if "alert(" in t.get_text()
            or any("alert(" in str(v) for v in t.attrs.values())]
    return page, soup, [t for t in mine if t.name in ("script", "iframe", "style")
                        or any(k.startswith("on") for k in t.attrs)
                        or "javascript:" in str(t.get("href", ""))]


def open_page(chromium, tmp_path, nb) -> None:
    """The notebook's feedback page, written to a file and opened in the browser."""
    path = tmp_path / "nb.html"
    path.write_text(feedback_page(nb)[0])
    chromium.get(path.as_uri())


def test_a_submissions_scripts_do_not_reach_the_page_and_its_markup_does():
    nb = new_notebook(cells=[new_markdown_cell(
        "# Mine\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<script>alert(1)</script>"
        '<img src="x" onerror="alert(2)"> <a href="javascript:alert(3)">link</a>'
        ' <a href="files/javascript:alert(6)">six</a> [seven](files/javascript:'
        "alert(7))"),
        new_code_cell("show()", outputs=[
            new_output("display_data", data={"text/html": "<b>bold</b><script>"
                                             "alert(4)</script><iframe src='x'>"}),
            new_output("display_data", data={"application/javascript": "alert(5)"}),
            new_output("display_data", data={"text/markdown": "<style>*{}</style>"
                                             "\n\n*md*"})])])
    page, soup, scripts = feedback_page(nb)
    assert not scripts
    assert "alert(5)" not in page  # JavaScript outputs are left out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown as text
    names = [t.name for t in soup.find_all(True)]
    assert {"h1", "table", "th", "td", "b", "em"} <= set(names)
    assert soup.find("img", src="x") is not None  # the image stays, its handler goes



def test_a_pasted_image_is_shown_and_a_missing_one_names_itself():
    """Red-team pass 5: nbconvert raises on an attachment a cell names and does
    not have, and that failed the whole page: the student was 'not graded'."""
    pasted = new_markdown_cell("Mine: ![plot](attachment:plot.png)")
    pasted.attachments = {"plot.png": {"image/png": PIXEL}}
    page, soup, _ = feedback_page(new_notebook(cells=[
        pasted, new_markdown_cell("<b>Gone</b>: ![x](attachment:x.png)")]))
    assert soup.find("img", src=f"data:image/png;base64,{PIXEL}") is not None
    assert "cannot be shown: missing attachment: x.png." in page
    assert "&lt;b&gt;Gone&lt;/b&gt;" in page and soup.find("b") is None  # as text


def test_markup_past_the_limits_is_shown_as_text_and_the_rest_as_markup():
    """Deep nesting and unclosed brackets cost the page's cleaning quadratic time
    (red-team pass 4: 40,000 nested <div>s held a worker until its watchdog)."""
    as_text = AS_TEXT.split("{}")[0]
    deep = "<div>" * 20_000 + "<script>alert(11)</script>"
    nb = new_notebook(cells=[
        new_markdown_cell("# Mine\n\n<b>kept</b>"),
        new_markdown_cell(deep),
        new_markdown_cell("![" * 20_000),
        new_code_cell("show()", outputs=[
            new_output("display_data", data={"text/html": deep}),
            new_output("display_data", data={"text/markdown": "[" * 20_000})]),
        # each under the cell limit, together past the page's
        *[new_markdown_cell("<span>" * (MAX_CELL_MARKUP - 10)) for _ in range(30)],
    ])
    # A span cell renders with <p> and </p>; the first cell has 6 tags.
    fitting = (MAX_PAGE_MARKUP - 6) // (MAX_CELL_MARKUP - 10 + 2)
    page, soup, scripts = feedback_page(nb)
    assert not scripts
    assert soup.find("h1") is not None and soup.find("b").get_text() == "kept"
    assert "&lt;div&gt;&lt;div&gt;" in page and "![![![" in page
    assert 0 < fitting < 30
    assert page.count(as_text) == 4 + 30 - fitting  # four past the cell limit


def test_markdown_past_the_limits_is_shown_as_written_not_as_its_rendering():
    """The rendering escaped is several times the text: 20,000 paragraphs of *a*
    (100 kB) rendered as <p><em>a</em></p> and escaped made 840 kB of page."""
    source = "*a*\n\n" * 20_000
    blank, _, _ = feedback_page(new_notebook(cells=[new_markdown_cell("")]))
    page, soup, _ = feedback_page(new_notebook(cells=[new_markdown_cell(source)]))
    assert soup.find("pre").get_text() == source
    assert "&lt;em&gt;" not in page and soup.find("em", string="a") is None
    assert len(page) - len(blank) < 1.2 * len(source)


def test_colours_past_the_limits_are_dropped_and_the_text_kept():
    """nbconvert's ansi2html is quadratic in one escape's numbers and in a text's
    escapes (red-team pass 7: 41 s for one 1 MB output); past 64 characters an
    escape, or 1,000 escapes a text, the page shows the text without colours."""
    many, long = "\x1b[31mx" * 1_001, "\x1b[" + ";" * 100_000 + "my"
    spaced = "\x1b[" + "; " * 50_000 + "mz"  # nbconvert reads up to the final m
    nb = new_notebook(cells=[new_code_cell("show()", outputs=[
        new_output("stream", name="stdout", text=text)
        for text in ("\x1b[31mred\x1b[0m <b>", many, long, spaced)])])
    _, soup, _ = feedback_page(nb)
    shown = [pre.get_text() for pre in soup.select(".output_stdout pre")]
    assert shown == ["red <b>", "x" * 1_001, "y", "z"]
    assert len(soup.select(".output_stdout .ansi-red-fg")) == 1  # the first only


def test_no_exercise_reaches_the_markup_limits():
    for path in sorted((ROOT / "solutions").glob("*/*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:  # the page of an ungraded notebook: markup only
            cell.metadata.pop("nbgrader", None)
        page, _, _ = feedback_page(nb)
        assert AS_TEXT.split("{}")[0] not in page, path.name


def test_an_images_size_from_the_kernel_adds_no_attribute():
    """nbconvert writes width and height unquoted: a string could add onerror."""
    output = new_output("display_data", data={"image/png": PIXEL}, metadata={
        "image/png": {"width": "1 onerror=alert(8)", "height": 7},
        "height": "2 onload=alert(9)"})
    top_level = new_output("display_data", data={"image/png": PIXEL},
                           metadata={"width": "3 onerror=alert(10)"})
    graded = new_notebook(cells=[new_code_cell("plot()", outputs=[output, top_level])])
    safe = hide_hidden_tests(graded, new_notebook(), set())
    _, soup, scripts = feedback_page(safe)
    assert not scripts
    assert soup.find("img", height="7") is not None  # a number stays
    assert graded.cells[0].outputs[0].metadata["height"] == "2 onload=alert(9)"


def test_the_maths_is_typeset_with_no_network(tmp_path, chromium):
    """The page once loaded MathJax from cdnjs: offline (this browser resolves no
    host), a student saw raw TeX. The page now carries MathJax itself."""
    nb = new_notebook(cells=[new_markdown_cell(
        "$$h_t = \\tanh(W_{ih} x_t + b)$$\n\nwith $x_t$, \\$5 for a dollar."
        "\n\n$\\href{javascript:alert(1)}{click}$\n\n| part | kind |\n|--|--|\n"
        "| 1 | build |")])
    page, _, _ = feedback_page(nb)
    path = tmp_path / "nb.html"
    path.write_text(page)
    chromium.get(path.as_uri())
    facts = chromium.execute_async_script("""
        const done = arguments[arguments.length - 1];
        (window.MathJax ? MathJax.startup.promise : Promise.resolve()).then(() =>
          done({
            typeset: document.querySelectorAll('mjx-container').length,
            errors: Array.from(document.querySelectorAll('mjx-merror')).map(
              e => e.getAttribute('data-mjx-error')),
            links: document.querySelectorAll('a[href^="javascript"]').length,
            padding: Array.from(document.querySelectorAll('td, th')).map(
              e => getComputedStyle(e).paddingLeft),
            text: document.body.innerText,
            loaded: performance.getEntriesByType('resource').map(e => e.name),
          }));""")
    assert facts["loaded"] == [], "the page loads something from outside itself"
    assert facts["typeset"] == 3 and facts["errors"] == []
    assert "$" not in facts["text"].replace("$5", "") and "\\tanh" not in facts["text"]
    # \href is left out (shown as an unknown macro), as MathJax 2's Safe did
    assert "\\href" in facts["text"] and facts["links"] == 0
    # nbgrader's page ran a table's columns together ("partkind")
    assert len(facts["padding"]) == 4
    assert all(float(p.removesuffix("px")) >= 8 for p in facts["padding"])


def test_the_page_carries_mathjax_packed_under_a_megabyte():
    """MathJax's SVG build as plain text made every page 2.3 MB larger: a ch02
    page 2.6 MB, about 26 GB for 10,000 pages a term; gzip and base64 made it
    0.96 MB. The CHTML build with the fonts any TeX needs is 0.57 MB, and
    base64 has no "<", so the bundle cannot end its script element."""
    head = mathjax_inline()
    assert len(head) < 600_000
    packed = re.search(r"atob\('([^']*)'\)", head)[1]
    assert re.fullmatch(r"[A-Za-z0-9+/]+=*", packed)
    assert gzip.decompress(base64.b64decode(packed)).startswith(b"(function(){")


def test_the_maths_adds_no_link_class_id_or_style_of_the_students(tmp_path, chromium):
    """Without html, \\mmlToken and \\bbox still set any attribute (red-team pass
    12: a click on x ran the student's javascript: link). MathJax's own safe
    extension filters them as it typesets."""
    nb = new_notebook(cells=[new_markdown_cell(
        '$\\mmlToken{mi}[href="javascript:alert(1)",class="navbar-fixed-top",'
        'id="toc",style="position:fixed"]{x}$ $\\bbox[position:fixed;top:0]{y}$ '
        "$\\bbox[yellow,5px]{z}$")])
    open_page(chromium, tmp_path, nb)
    facts = chromium.execute_async_script("""
        const done = arguments[arguments.length - 1];
        MathJax.startup.promise.then(() => {
          const maths = Array.from(document.querySelectorAll('mjx-container *'));
          done({typeset: document.querySelectorAll('mjx-container').length,
                links: maths.filter(e => e.hasAttribute('href')).length,
                ids: maths.filter(e => e.id == 'toc').length,
                cls: maths.filter(e => /navbar/.test(e.getAttribute('class'))).length,
                fixed: maths.filter(e => /fixed/.test(e.getAttribute('style'))).length,
                padded: maths.filter(e => /yellow/.test(e.outerHTML)).length});
        });""")
    assert facts["typeset"] == 3 and facts["padded"] > 0
    assert facts["links"] == facts["ids"] == facts["cls"] == facts["fixed"] == 0


@pytest.mark.parametrize("solution", sorted(ROOT.glob("solutions/*/*.ipynb")),
                         ids=lambda path: path.stem)
def test_a_chapters_page_is_under_a_megabyte_and_shows_no_hidden_test(solution):
    """Pages were 1.3 to 1.6 MB: 0.97 MB of MathJax's SVG build, 0.12 MB of
    Bootstrap, and highlighted code of which names and punctuation were half the
    spans. A solution's page, hidden tests removed as for a student, is under
    1 MB with its equations still there as TeX for MathJax."""
    source = nbformat.read(solution, as_version=4)
    release = nbformat.read(ROOT / "exercises" / solution.parent.name / solution.name,
                            as_version=4)
    secret = secret_lines(source)
    for cell in source.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.metadata.nbgrader.score = cell.metadata.nbgrader.points
    page, _, _ = feedback_page(hide_hidden_tests(source, release, secret))
    assert len(page.encode()) < 1_000_000
    text = unescape(re.sub(r"<[^>]+>", "", page))
    assert "HIDDEN TESTS" not in text and secret
    assert secret.isdisjoint(line.strip() for line in text.splitlines())
    assert "$" in page and "MathJax.startup" in page


def test_a_page_carries_the_fonts_its_text_names_and_only_those():
    """Fonts are 26 to 54 kB each as data: URIs: a page carries those any TeX
    needs, and a bold, calligraphic or typewriter one only if its text asks."""
    plain = fonts_for("$h_t = \\tanh(a_t)$ and $\\mathbb{R}^H$ in **bold**")
    assert "Main-Regular" in plain and "AMS-Regular" in plain
    assert not {"Main-Bold", "Calligraphic-Regular", "Typewriter-Regular"} & set(plain)
    named = fonts_for("$\\mathbf{x} + \\mathcal{L}$, $\\texttt{W_hh}$")
    assert {"Main-Bold", "Calligraphic-Regular", "Calligraphic-Bold",
            "Typewriter-Regular"} <= set(named)
    assert "Fraktur-Regular" not in named
    assert "Main-Bold" not in fonts_for("$\\mathbfx$ $\\boldsymbols$")  # other names
    small, large = (len(mathjax_inline(fonts)) for fonts in (plain, named))
    assert large - small > 100_000


def test_the_maths_is_drawn_in_mathjaxs_fonts_from_the_page(tmp_path, chromium):
    """The CHTML build draws with MathJax's web fonts, which the page carries as
    data: URIs: each font its maths uses is loaded from the page, none fails."""
    nb = new_notebook(cells=[new_markdown_cell(
        "$$\\mathbf{x}_t \\in \\mathbb{R}^D, \\quad \\mathcal{L} = \\sum_t "
        "\\left(\\frac{1}{2}\\right)^t \\texttt{loss}$$")])
    open_page(chromium, tmp_path, nb)
    facts = chromium.execute_async_script("""
        const done = arguments[arguments.length - 1];
        MathJax.startup.promise.then(() => document.fonts.ready).then(() => done({
          typeset: document.querySelectorAll('mjx-container').length,
          errors: document.querySelectorAll('mjx-merror').length,
          fonts: Array.from(document.fonts).map(f => f.family + ' ' + f.status),
          loaded: performance.getEntriesByType('resource').map(e => e.name)}));""")
    assert facts["typeset"] == 1 and facts["errors"] == 0 and facts["loaded"] == []
    for family in ("MJXTEX", "MJXTEX-I", "MJXTEX-B", "MJXTEX-A", "MJXTEX-C",
                   "MJXTEX-T"):
        assert f"{family} loaded" in facts["fonts"]
    assert not [f for f in facts["fonts"] if f.endswith(" error")]


EVERY_STYLE = """
    const done = arguments[arguments.length - 1];
    MathJax.startup.promise.then(() => done(Array.from(document.querySelectorAll(
      'body *')).filter(e => !e.closest('mjx-container')).flatMap(e => [
        null, '::before', '::after'].map(pseudo => {
          const style = getComputedStyle(e, pseudo);
          return e.tagName + (pseudo || '') + ' ' + Array.from(style).map(
            name => name + ':' + style.getPropertyValue(name)).join(';');}))));"""


def test_only_bootstrap_rules_that_match_nothing_are_left_out(tmp_path, chromium):
    """All of Bootstrap (117 kB) was in every page; a page keeps the rules whose
    classes it has, its own and a student's, and every element (and its ::before
    and ::after) looks as it did with the whole of it."""
    code = new_code_cell("x = f(2)  # a comment", execution_count=1, outputs=[
        new_output("stream", name="stdout", text="4\n"),
        new_output("error", ename="ValueError", evalue="no", traceback=["ValueError"])])
    nb = new_notebook(cells=[new_markdown_cell(
        '<div class="alert alert-info">a note</div> <span class="label label-success">'
        'ok</span>\n\n<table class="table table-striped"><tr><td>1</td></tr></table>'
        '\n\n<div class="row"><div class="col-md-6">left</div></div> $x_t$'), code])
    lean, _, _ = feedback_page(nb)
    with mock.patch("coursetools.feedback.lean_css", lambda page: page):
        full, _, _ = feedback_page(nb)
    assert len(full) - len(lean) > 100_000
    assert ".alert-info{" in lean and ".navbar{" not in lean
    styles = []
    for name, page in (("full", full), ("lean", lean)):
        (tmp_path / f"{name}.html").write_text(page)
        chromium.get((tmp_path / f"{name}.html").as_uri())
        styles.append(chromium.execute_async_script(EVERY_STYLE))
    assert len(styles[0]) > 100 and styles[0] == styles[1]


def bootstrap_page(css: str, banner="/*!\n * Bootstrap v3.3.4\n */") -> str:
    return (f'<html><head><style type="text/css">{banner}{css}</style></head>'
            '<body><span class="label">ok</span></body></html>')


@pytest.mark.parametrize("css", [
    ".label{color:red}}.navbar{color:blue}",  # a "}" that closes nothing
    ".label{color:red}.navbar){color:blue}",  # a ")" that closes nothing
    ".label{color:rgb(1,2,3}.navbar{color:blue}",  # a "(" left open
    ".label{color:red}@media print{.navbar{color:blue}",  # a "{" left open
    ".label{color:red}.navbar",  # a selector without its rule
])
def test_a_bootstrap_block_with_an_error_is_left_as_it_was(css):
    """Only a block that parses is trimmed. The hand-written parser trimmed one
    with a stray "}" or ")", an open "(" or a selector without its rule, and
    left whole one with a "{" or "/*" in a string, which is no error."""
    assert lean_css(bootstrap_page(css)) == bootstrap_page(css)
    lean = lean_css(bootstrap_page('.label:after{content:"{/*"}.navbar{color:blue}'))
    assert lean == bootstrap_page('.label:after{content:"{/*"}', banner="")


def test_a_students_markup_cannot_cover_the_pages_score(tmp_path, chromium):
    """bleach keeps class, and Bootstrap's navbar-fixed-top had laid a made-up
    score over the page's own heading (red-team pass 12)."""
    fake = ('<div class="navbar-fixed-top panel panel-default"><h4>nb (Score: 9 / 9)'
            "</h4></div>")
    open_page(chromium, tmp_path, new_notebook(cells=[new_markdown_cell(fake)]))
    seen = chromium.execute_script("""
        const r = document.querySelector('h4').getBoundingClientRect();
        return document.elementFromPoint(r.x + 5, r.y + 5).textContent;""")
    assert seen == "nb (Score: 0.0 / 1.0)"


def test_opening_a_page_tells_no_server(tmp_path, chromium):
    """An image's address or a colour's url() in a student's text made the
    browser that opened the page ask the student's server (red-team pass 12)."""
    asked = []

    class Server(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    nb = new_notebook(cells=[new_markdown_cell(
        f"![seen]({url}/image.png) <img src='{url}/tag.png'> "
        f"$\\color{{url({url}/colour.png)}}{{x}}$")])
    try:
        open_page(chromium, tmp_path, nb)
        typeset = chromium.execute_async_script("""
            const done = arguments[arguments.length - 1];
            MathJax.startup.promise.then(() => setTimeout(() => done(
              document.querySelectorAll('mjx-container').length), 500));""")
    finally:
        server.shutdown()
    assert typeset == 1 and asked == []


def test_the_policy_lets_the_unpacked_bundle_run():
    """The packed bundle runs as an inline script made at run time, and a
    hash-based script-src blocks such a script unless its own text's hash is
    listed: without it every page showed raw TeX."""
    packed = re.search(r"atob\('([^']*)'\)", mathjax_inline())[1]
    bundle = gzip.decompress(base64.b64decode(packed))
    digest = base64.b64encode(hashlib.sha256(bundle).digest()).decode()
    assert f"'sha256-{digest}'" in page_policy()


def test_the_browser_check_sees_the_policy_block_the_bundle(tmp_path, chromium):
    """tools/check_feedback_browsers.py checks the pages in Firefox and WebKit,
    which this suite does not install; here it runs in Chromium on a page, and
    on a copy whose policy lacks the bundle's hash."""
    sys.path.insert(0, str(ROOT / "tools"))
    import check_feedback_browsers as check

    page, _, _ = feedback_page(new_notebook(cells=[new_markdown_cell(
        "$x_t$ and $$h_t = \\tanh(a_t)$$")]))
    packed = re.search(r"atob\('([^']*)'\)", mathjax_inline())[1]
    bundle = "'sha256-{}'".format(base64.b64encode(hashlib.sha256(
        gzip.decompress(base64.b64decode(packed))).digest()).decode())
    assert page.count(bundle) == 1
    (tmp_path / "whole.html").write_text(page)
    (tmp_path / "no_bundle.html").write_text(page.replace(bundle, ""))
    folder = tmp_path / "copies"
    folder.mkdir()
    pages = [check.with_listener(tmp_path / name, folder)
             for name in ("whole.html", "no_bundle.html")]
    (whole, clean), (blocked, blocked_clean) = [
        check.report(*result) for result in check.in_selenium(chromium, "C", pages)]
    assert clean and whole["typeset"] == 2 and whole["violations"] == []
    assert not blocked_clean and blocked["typeset"] == 0 and blocked["raw_tex"] > 0
    assert blocked["violations"] == ["script-src-elem inline"]


def test_the_index_names_each_test_and_its_part():
    """nbgrader's index said "Test cell" for every test (walkthrough 12). Only
    the assignment's own headings count: a student's "## Part 9" had renamed the
    tests after it (red-team pass 12)."""
    nb = graded_notebook()
    nb.cells.insert(2, new_markdown_cell("Intro\n\n## Part 2: doubling <x>",
                                         metadata=nbg("part2", locked=True)))
    nb.cells.insert(4, new_markdown_cell("## Part 9"))
    nb.cells.append(new_code_cell("assert True", metadata=nbg("test_<b>", grade=True)))
    nb.cells.insert(0, new_code_cell("", metadata=nbg("test_before", grade=True)))
    for cell in nb.cells:
        cell.metadata.get("nbgrader", {}).update(score=0, points=1)
    # an element of the student's with a test's id caught the index's link
    nb.cells.append(new_markdown_cell('<h2 id="test_f">mine</h2>'))
    _, soup, _ = feedback_page(nb)
    assert [a.get_text() for a in soup.select("#toc a")] == [
        "test_before", "Part 2, test_f", "Part 2, test_<b>"]
    assert soup.find(id="test_f") is None and soup.find("a", attrs={"name": "test_f"})


# -- cells the grader did not run ------------------------------------------------
@pytest.fixture(scope="module")
def stopped():
    """A notebook whose kernel dies three times, past GuardedExecute's two
    restarts, before its Part 2: the grader leaves Part 2's cells not run."""
    cells = [
        new_markdown_cell("## Part 1: x"),
        new_code_cell("x = 1", metadata=nbg("ex_x", solution=True)),
        new_code_cell("assert x == 1", metadata=nbg("test_x", grade=True, points=2)),
        *(new_code_cell("import os\nos._exit(1)", metadata=nbg(f"ex_exit{n}",
                                                               solution=True))
          for n in range(3)),
        new_markdown_cell("## Part 2: y"),
        new_code_cell("y = 2", metadata=nbg("ex_y", solution=True)),
        new_code_cell("assert y == 2", metadata=nbg("test_y", grade=True, points=3)),
        new_code_cell("assert y > 1", metadata=nbg("test_y2", grade=True, points=1)),
    ]
    nb, _ = GuardedExecute(kernel_name="python3", timeout=10, notebook_timeout=120
                           ).preprocess(new_notebook(cells=cells),
                                        {"nbgrader": {"notebook": "nb"}})
    for cell in nb.cells:  # what nbgrader's autograde records
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.metadata.nbgrader.score = 2 if cell.outputs == [] else 0
    return nb


def test_the_page_says_once_why_cells_were_not_run_and_what_they_cost(stopped):
    """Each such cell said only "CellNotRun: not run: ..." (walkthrough 12)."""
    assert [o.ename for o in stopped.cells[-1].outputs] == ["CellNotRun"]
    page, soup, _ = feedback_page(stopped)
    assert page.count('id="not-run"') == 1
    notice = " ".join(soup.select_one("#toc + #not-run").get_text().split())
    assert notice.startswith("3 cells were not run, among them 2 tests worth 4 "
                             "points: they scored 0. The grader stopped after the "
                             "cell ex_exit2 (the kernel died in an earlier cell).")
    assert "used all the memory or crashed the kernel" in notice
    assert "a loop that never ends" in notice


def test_the_report_lists_the_tests_not_run_and_their_points(stopped, tmp_path):
    from coursetools import report
    from coursetools.execute import cell_failures

    failures = cell_failures(stopped)
    cells = {c.metadata.nbgrader.grade_id: CellResult(
        c.metadata.nbgrader.score, c.metadata.nbgrader.points,
        failure=failures.get(c.metadata.nbgrader.grade_id))
        for c in stopped.cells if c.metadata.get("nbgrader", {}).get("grade")}
    died = Finding("kernel_died", "kernel died in cell 5", "nb", "ex_exit2")
    result = StudentResult("eve", "a", notebooks={"nb": NotebookResult(
        "nb", graded=True, cells=cells, findings=[died])})
    text = report.write(tmp_path, "a", {"eve": result}, {"eve": (2.0, 6.0)}
                        ).read_text()
    assert ("- **eve**: nb: kernel died in cell 5 (cell ex_exit2) \\| nb: 2 tests "
            "not run, 4 points lost (the kernel died in an earlier cell)") in text
