"""Student feedback without the hidden tests.

nbgrader's feedback shows each test cell as it ran, hidden tests included, and a
failing hidden assert prints its source lines in the traceback. Before feedback is
rendered, :func:`hide_hidden_tests` puts the released (visible) version back into
every read-only cell and replaces any traceback that quotes a hidden or solution
line by the error's name and message. :class:`FeedbackExporter` renders the
pages.
"""

from __future__ import annotations

import base64
import copy
import functools
import gzip
import hashlib
import html as html_text
import importlib.metadata
import json
import re

import bleach
import jinja2
import tinycss2
from nbconvert.exporters import HTMLExporter, TemplateExporter
from nbconvert.filters import (
    Highlight2HTML,
    ansi2html,
    strip_ansi,
    strip_files_prefix,
)
from nbconvert.filters.markdown_mistune import (
    InvalidNotebook,
    IPythonRenderer,
    MarkdownWithMath,
)
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from traitlets import Bool

from coursetools.checks import grade_id, is_locked_cell, meta, text_of

BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
# IPython quotes source as "     15     code" or "---> 15     code"
LINE_NUMBER = re.compile(r"^\s*(?:-*>)?\s*\d+\s")
JUDGE_FRAME = re.compile(r"^---> *(\d{1,9}) ")  # judge._error_output's; int() fits
HIDDEN_NOTE = (
    "(This check is one of the hidden tests, so its code is not shown. "
    "The message above says what went wrong.)"
)


def secret_lines(source_nb, min_length: int = 12) -> set[str]:
    """Stripped lines that only occur inside hidden-test regions.

    Solution lines are not secret here: a student's feedback shows their own
    answer cells, which may well contain the same lines.
    """
    secret, visible = set(), set()
    for cell in source_nb.cells:
        for _, line, shown in _regions(text_of(cell)):
            if line.strip() not in (BEGIN, END):
                (visible if shown else secret).add(line.strip())
    return {s for s in secret - visible if len(s) >= min_length}


def _regions(text: str):
    """(line number, line, shown) for each line of a cell's source: a learner's
    copy leaves out the hidden tests and the markers around them."""
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        marker = stripped == BEGIN or (inside and stripped == END)
        yield number, line, not (inside or marker)
        inside = (inside or stripped == BEGIN) and stripped != END


def hide_hidden_tests(graded_nb, release_nb, secret: set[str]):
    """A copy of an autograded notebook that is safe to show its student."""
    nb = copy.deepcopy(graded_nb)
    nb.metadata.pop("coursetools", None)  # the grader's findings are for instructors
    released = {grade_id(c): c for c in release_nb.cells if grade_id(c)}
    for cell in nb.cells:
        ref = released.get(grade_id(cell))
        shown = {}  # line number as run -> as shown
        if ref is not None and is_locked_cell(meta(ref)):
            seen = [n for n, _, visible in _regions(text_of(cell)) if visible]
            shown = {number: k for k, number in enumerate(seen, 1)}
            cell.source = text_of(ref)
        for output in cell.get("outputs", []):
            _numeric_sizes(output.get("metadata", {}))
            if output.output_type != "error":
                continue
            output.traceback = _as_shown(output.get("traceback", []), shown)
            text = strip_ansi("\n".join(output.get("traceback", [])))
            if any(_quotes_secret(line, secret) for line in text.splitlines()):
                output.traceback = [f"{output.ename}: {output.evalue}", HIDDEN_NOTE]
    return nb


def _as_shown(traceback: list[str], shown: dict[int, int]) -> list[str]:
    """The judge's frame lines with the cell's line numbers as the page shows it."""
    def number(match) -> str:
        return f"---> {shown.get(int(match[1]), match[1]):>3} "

    return [JUDGE_FRAME.sub(number, line, count=1) for line in traceback]


def _numeric_sizes(metadata: dict) -> None:
    """nbconvert writes an image's width and height into the page unquoted: a
    string there could add an attribute (onerror=...). Only numbers stay."""
    for level in [metadata, *(v for v in metadata.values() if isinstance(v, dict))]:
        for key in ("width", "height"):
            if key in level and (isinstance(level[key], bool)
                                 or not isinstance(level[key], int | float)):
                del level[key]


def _quotes_secret(line: str, secret: set[str]) -> bool:
    return "HIDDEN TESTS" in line or line.strip() in secret or (
        LINE_NUMBER.sub("", line, count=1).strip() in secret)


class _InMemory(dict):
    """A dict as the memcache client that Jinja's MemcachedBytecodeCache takes."""

    set = dict.__setitem__


# Compiled templates, kept for the life of the process. Jinja keys each by its
# name and source, so an edited template is compiled again.
COMPILED_TEMPLATES = jinja2.MemcachedBytecodeCache(_InMemory())


class _RememberedHighlight(Highlight2HTML):
    """Highlight2HTML that highlights each source once per process: test, set-up
    and unanswered cells are the same on every student's page, and pygments takes
    about 0.1 s a ch02 page; kept without the spans that style nothing
    (UNSTYLED). Always as IPython: a cell's magics_language or the
    notebook's language_info would let a submission pick among pygments' lexers,
    some of which take hours over a long run of spaces (red-team pass 6)."""

    def __call__(self, source, language=None, metadata=None):
        key = (source, repr(self.extra_formatter_options))
        if key not in HIGHLIGHTED:
            if len(HIGHLIGHTED) >= 4096:  # answers differ per student: bounded
                HIGHLIGHTED.clear()
            html = super().__call__(source, PYTHON_LEXER)
            HIGHLIGHTED[key] = UNSTYLED.sub(r"\1", html)
        return HIGHLIGHTED[key]


class _PythonBlocks(IPythonRenderer):
    """A fenced code block in Markdown is highlighted only as Python, and any
    other (its language named by the submission) shown as plain text."""

    def block_code(self, code: str, info: str | None = None) -> str:
        python = (info or "").strip().split(" ")[0].lower() in PYTHON_NAMES
        return super().block_code(code, PYTHON_LEXER if python else None)


HIGHLIGHTED: dict[tuple, str] = {}
# Pygments' default style, the page's, gives names (n) and punctuation (p) no
# style: their spans change nothing on screen and were 40% of a ch06 page.
UNSTYLED = re.compile(r'<span class="[np]">([^<]*)</span>')
PYTHON_LEXER, PYTHON_NAMES = "ipython3", {"python", "python3", "py", "ipython3"}

# What Markdown and plain HTML outputs are made of. nbconvert's own clean_html
# allows too little of it (it would show <p>, <h1> and <th> as text).
MARKUP = {"a", "abbr", "b", "blockquote", "br", "code", "del", "div", "em", "h1",
          "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre",
          "span", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr",
          "ul"}


def _harmless(tag: str, name: str, value: str) -> bool:
    if name in ("class", "id", "title", "alt", "align"):
        return True
    if tag == "img" and name == "src":  # scripts in an image (SVG) do not run
        return not value.startswith("data:") or value.startswith("data:image/")
    return tag == "a" and name == "href" and not value.startswith("data:")


@functools.lru_cache(maxsize=4096)  # the release's Markdown is on every page
def clean(html: str) -> str:
    """HTML from a submission with its markup kept and no script, style, form,
    frame or event handler: a page the instructor opens runs nothing of it."""
    return bleach.clean(str(html), tags=MARKUP, attributes=_harmless,
                        protocols={"http", "https", "mailto", "data"})


# Markup beyond these is shown as text: bleach's parser is quadratic in nesting
# (20,000 nested <div>s take 23 s) and nbconvert's strip_files_prefix in "["
# without "]" (20,000: 10 s). Counted as "<" and "[", a cell's worth costs at
# most about 0.06 s, a page's 0.6 s; an exercise's own cells have at most 228, its
# pages 583 (tests/test_feedback.py checks they stay under).
MAX_CELL_MARKUP, MAX_PAGE_MARKUP = 1_000, 10_000
AS_TEXT = ("<p><em>(This has more markup than a feedback page shows, so here it "
           "is as text.)</em></p><pre>{}</pre>")
NOT_SHOWN = "<p><em>(This cell cannot be shown: {}.)</em></p><pre>{}</pre>"


class _Escaped(str):
    """A cell shown as its escaped text: safe as it is, whatever the limits left."""


def _markup(html: str) -> int:
    return html.count("<") + html.count("[")


def bounded_ansi2html(text: str) -> str:
    """nbconvert's ansi2html, whose time grows with the square of the numbers in
    one escape sequence and of the escapes in a text (red-team pass 7: 41 s for a
    1 MB output): past these limits the text is shown without its colours."""
    escapes = text.count("\x1b")  # below: up to its final byte, as nbconvert reads
    if escapes > 1_000 or escapes and max(
            map(len, re.findall(r"\x1b\[[^@-~\n]*", text)), default=0) > 64:
        return html_text.escape(re.sub(r"\x1b(\[[^@-~\n]*[@-~]?)?", "", text))
    return ansi2html(text)


IMAGE_WITHOUT_ALT = re.compile(r"<img(?![^>]*\salt=)", re.IGNORECASE)
# nbconvert's pages load MathJax 2 from cdnjs: offline, the maths shows as raw
# TeX. A page is sent alone (nbgrader's release_feedback copies only the .html,
# renamed), so no folder beside it can hold MathJax: the page carries it. "full"
# has every TeX package, so none is fetched, and html (\href, \style) and require
# are left out, as MathJax 2's Safe did; MathJax 3's safe extension, run before
# startup makes its handler, filters the links, ids, classes and styles that
# \mmlToken and \bbox still set.
# The CHTML build, not the SVG one: SVG carries every glyph of every TeX font as
# path data (1.07 MB of its 2.28 MB), CHTML only their metrics, and draws with
# MathJax's fonts, put in the page as data: URIs. A page carries those that any
# TeX needs (FONTS) and those that its own text names (FONTS_NAMED: \mathbf,
# \mathcal, ...), searched for in the whole page, not only its maths, so that
# none is missed; a font not carried would be drawn in the browser's own.
# Gzip and base64 make the bundle 0.40 MB (SVG's: 0.96 MB), unpacked by the
# browser's DecompressionStream. Until the bundle has run, MathJax.startup.promise
# is one that waits for it, so a caller that waits on it (a test, a print script)
# sees the maths typeset.
FONTS = ("Main-Regular", "Math-Italic", "AMS-Regular", "Size1-Regular",
         "Size2-Regular", "Size3-Regular", "Size4-Regular", "Vector-Regular", "Zero")
BOLD = r"\\(?:mathbf|bf|boldsymbol|bm|pmb|textbf|bold|bfseries|mathbfit)(?![a-zA-Z])"
ITALIC = r"\\(?:mathit|textit|it|emph|itshape|sl|textsl|mathsfit)(?![a-zA-Z])"
SANS = r"\\(?:mathsf|textsf|sf|sffamily|mathsfit)(?![a-zA-Z])"
FONTS_NAMED = {  # font: what must all be in the page for it to be carried
    "Main-Bold": [BOLD], "Math-BoldItalic": [BOLD], "Vector-Bold": [BOLD],
    "Main-Italic": [ITALIC],
    "Calligraphic-Regular": [r"\\(?:mathcal|cal)(?![a-zA-Z])"],
    "Calligraphic-Bold": [r"\\(?:mathcal|cal)(?![a-zA-Z])", BOLD],
    "Fraktur-Regular": [r"\\(?:mathfrak|frak|Frak)(?![a-zA-Z])"],
    "Fraktur-Bold": [r"\\(?:mathfrak|frak|Frak)(?![a-zA-Z])", BOLD],
    "Script-Regular": [r"\\(?:mathscr|scr)(?![a-zA-Z])"],
    "SansSerif-Regular": [SANS], "SansSerif-Bold": [SANS, BOLD],
    "SansSerif-Italic": [SANS, ITALIC],
    "Typewriter-Regular": [r"\\(?:mathtt|texttt|tt|ttfamily|verb)(?![a-zA-Z])"],
}
TABLE_STYLE = ("<style>.rendered_html table {margin-bottom: 0.8em} .rendered_html th, "
               ".rendered_html td {padding: 0.3em 0.8em; border-bottom: 1px solid #ddd}"
               # Bootstrap's classes (navbar-fixed-top) had laid a student's own
               # score over the page's (red-team pass 12): their markup stays put.
               f".rendered_html :is({', '.join(sorted(MARKUP))}) "
               "{position: static !important}</style>\n")
PART_HEADING = re.compile(r"^#+ *Part (\d+)\b", re.MULTILINE)
TEST_ENTRY = re.compile(r'<li><a href="#([^"]*)">Test cell</a>')
MATHJAX_CDN = ("<!-- Load mathjax -->", "<!-- End of mathjax configuration -->")
MATHJAX_CONFIG = (
    "<script>window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], "
    "displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']], tags: 'ams', "
    "packages: {'[-]': ['html', 'require']}}, startup: {ready() {SAFE\n"
    # each @font-face of FONTS from its data: URI, the others left out
    "const tex = MathJax._.output.chtml.fonts.tex_ts.TeXFont, data = FONTS;"
    "tex.defaultFonts = Object.fromEntries(Object.entries(tex.defaultFonts).flatMap("
    "([rule, face]) => {const name = (/MathJax_([\\w-]+)\\.woff/.exec(face.src) "
    "|| [])[1]; return data[name] ? [[rule, {...face, src: "
    "`url(data:font/woff;base64,${data[name]}) format('woff')`}]] : [];}));"
    "MathJax.startup.defaultReady();}}};</script>\n")
# Only the promise is set: the config's startup.ready (the safe extension) stays.
UNPACK = (
    "<script>MathJax.startup.promise = (async () => {"
    "const packed = Uint8Array.from(atob('%s'), c => c.charCodeAt(0));"
    "const code = await new Response(new Blob([packed]).stream().pipeThrough("
    "new DecompressionStream('gzip'))).text();"
    "const script = document.createElement('script'); script.text = code;"
    "document.head.appendChild(script);})().then(() => MathJax.startup.promise);"
    "</script>")


def fonts_for(page: str) -> tuple[str, ...]:
    """The fonts a page carries: FONTS, and those of FONTS_NAMED it asks for."""
    return FONTS + tuple(font for font, needs in FONTS_NAMED.items()
                         if all(re.search(need, page) for need in needs))


@functools.cache
def mathjax_file(name: str) -> bytes:
    """A file of the MathJax that sphinx-mathjax-offline ships."""
    return importlib.metadata.distribution("sphinx-mathjax-offline").locate_file(
        f"sphinx-mathjax-offline/static/mathjax/{name}").read_bytes()


@functools.cache
def packed_bundle() -> str:
    """The bundle gzipped and in base64, once per process."""
    return base64.b64encode(gzip.compress(mathjax_file("tex-chtml-full.js"),
                                          mtime=0)).decode()


@functools.lru_cache(maxsize=16)  # a set of fonts each, 0.5 to 0.8 MB
def mathjax_inline(fonts: tuple[str, ...] = FONTS) -> str:
    """MathJax 3 as script elements, with `fonts`. Base64 has no "<", so it cannot
    end its element; the safe extension is put in the config as it is."""
    safe = mathjax_file("ui/safe.js")
    if b"</script" in safe.lower():  # would end the element early
        raise ValueError("MathJax's safe extension cannot be put in a page as it is")
    data = {name: base64.b64encode(mathjax_file(
        f"output/chtml/fonts/woff-v2/MathJax_{name}.woff")).decode() for name in fonts}
    parts = {"SAFE": safe.decode(), "FONTS": json.dumps(data)}  # in one pass
    return (re.sub("SAFE|FONTS", lambda m: parts[m[0]], MATHJAX_CONFIG)
            + UNPACK % packed_bundle())


def own_head(page: str) -> str:
    """The page with nbconvert's MathJax from the CDN replaced by the inline one,
    and padded table cells (nbgrader's page has none: "partwhat"); only the
    first block, in the head, before anything a student wrote."""
    start, end = page.find(MATHJAX_CDN[0]), page.find(MATHJAX_CDN[1])
    if start < 0 or end < start:
        return page
    fonts = fonts_for(page)
    return (page[:start] + page_policy(fonts) + TABLE_STYLE + mathjax_inline(fonts)
            + page[end + len(MATHJAX_CDN[1]):])


@functools.lru_cache(maxsize=16)
def page_policy(fonts: tuple[str, ...] = FONTS) -> str:
    """Only MathJax's own scripts run, and nothing is fetched: whatever a
    submission slips past bleach or MathJax runs nothing (a javascript: link, a
    handler) and tells no server that its page was opened (an image's address)."""
    head = mathjax_inline(fonts)
    scripts = re.findall(r"<script>(.*?)</script>", head, re.DOTALL)
    # The unpacked bundle runs as an inline script made at run time, which the
    # policy checks by its own hash: the text as Response.text() decodes it.
    scripts += [gzip.decompress(base64.b64decode(packed)).decode("utf-8-sig", "replace")
                for packed in re.findall(r"atob\('([^']*)'\)", head)]
    hashes = " ".join("'sha256-{}'".format(base64.b64encode(hashlib.sha256(
        code.encode()).digest()).decode()) for code in scripts)
    return ('<meta http-equiv="Content-Security-Policy" content="default-src '
            f"'none'; script-src {hashes}; style-src 'unsafe-inline'; "
            "img-src data:; font-src data: file:\">\n")


# nbgrader's template puts all of Bootstrap 3 (117 kB) in every page; a page uses
# about a tenth of it. A rule is kept when every class of one of its selectors is
# on some element of the page (the template's, nbconvert's, a student's own
# markup): the page looks the same, only rules that match nothing go.
BOOTSTRAP = re.compile(r'(<style type="text/css">)(\s*/\*!\s*\* Bootstrap.*?)</style>',
                       re.DOTALL)


@functools.lru_cache(maxsize=4)
def bootstrap_rules(css: str) -> list:
    """nbgrader's block as tinycss2 reads it, without comments or whitespace; the
    "{}" added comes back alone unless something left open or unfinished took it."""
    *rules, end = tinycss2.parse_stylesheet(css + "{}", True, True)
    if end.serialize() != "{}":
        raise ValueError(f"CSS that does not end where it should: {end.serialize()}")
    return rules


def used_css(rules: list, classes: set[str]):
    """The rules that can match an element with these classes (at-rules need none,
    an @media keeps its own that can); ValueError on any tinycss2 finds an error in."""
    for rule in rules:
        if rule.type == "error" or "error" in {token.type for token in rule.prelude}:
            raise ValueError(f"CSS with an error: {tinycss2.serialize([rule])}")
        needs = [set()]  # each selector's classes, not those in :not(.x) or [a=".x"]
        for dot, token in zip(rule.prelude, rule.prelude[1:], strict=False):
            if token == ",":
                needs.append(set())
            elif dot == "." and token.type == "ident":
                needs[-1].add(token.value)
        if rule.type == "at-rule" and rule.lower_at_keyword == "media":
            body = "".join(used_css(tinycss2.parse_rule_list(rule.content, True, True),
                                    classes))
            yield body and f"@media{tinycss2.serialize(rule.prelude)}{{{body}}}"
        elif rule.type == "at-rule" or any(need <= classes for need in needs):
            yield rule.serialize()


def lean_css(page: str) -> str:
    """The page with only the Bootstrap rules that can match one of its elements;
    only the block in the head, nbgrader's, before anything a student wrote."""
    found = BOOTSTRAP.search(page, 0, max(page.find("</head>"), 0))
    if found is None:
        return page
    classes = set(" ".join(re.findall(r'class="([^"]*)"', page)).split())
    try:
        css = "".join(used_css(bootstrap_rules(found[2]), classes))
    except ValueError:  # CSS that tinycss2 finds an error in: kept as it is
        return page
    return f"{page[:found.start()]}{found[1]}{css}</style>{page[found.end():]}"


def page_top(page: str, nb) -> str:
    """The index at the top names each test ("Part 3, test_shapes") where
    nbgrader's says "Test cell" for every one; below it, once, why cells were
    not run, if any were (each such cell says only "CellNotRun")."""
    names, part = {}, None
    for cell in nb.cells:
        if cell.cell_type == "markdown" and is_locked_cell(meta(cell)):  # not theirs
            found = PART_HEADING.findall(text_of(cell))
            part = found[-1] if found else part
        elif meta(cell).get("grade") and not meta(cell).get("solution"):
            gid = str(grade_id(cell))
            names[gid] = f"Part {part}, {gid}" if part else gid
    start = page.find('<div id="toc">')
    end = page.find("</div>", start) + len("</div>")
    if start < 0:
        return page

    def name(match) -> str:
        label = names.get(html_text.unescape(match[1]))
        return match[0] if label is None else match[0].replace(
            ">Test cell<", f">{html_text.escape(label)}<")

    rest = page[end:]
    for gid in map(html_text.escape, names):  # a student's id had caught its link
        rest = rest.replace(f' id="{gid}"', f' id="{gid}-student"')
    return (page[:start] + TEST_ENTRY.sub(name, page[start:end]) + not_run_notice(nb)
            + rest)


NOT_RUN_ADVICE = [  # (words in the grader's reason, what to look for)
    ("time limit", "The whole notebook may run only so long, and it used that time "
     "up. Look in the cells above for slow code (a loop over the examples of a "
     "batch where one matrix product would do) or a loop that never ends."),
    ("interrupt", "Your code there ran past the time limit and did not stop when "
     "interrupted. Look for a loop that never ends, and for a <code>try</code> / "
     "<code>except</code> that catches every exception, the interrupt too."),
    ("", "Your code there used all the memory or crashed the kernel. Look for a "
     "loop that never ends (one that appends to a list grows until the memory "
     "runs out), an array far larger than the task needs, or a call that ends "
     "the process."),
]


def not_run_notice(nb) -> str:
    """Why the grader stopped running the notebook and what it cost: HTML, or ""."""
    code = [c for c in nb.cells if c.cell_type == "code" and text_of(c).strip()]
    skipped = [c for c in code if c.execution_count is None and any(
        o.output_type == "error" and o.ename == "CellNotRun" for o in c.outputs)]
    if not skipped:
        return ""
    tests = [c for c in skipped if meta(c).get("grade") and not meta(c).get("solution")]
    points = sum(float(meta(c).get("points") or 0) for c in tests)
    ran = code[:code.index(skipped[0])]
    where = (f"after the cell <code>{html_text.escape(grade_id(ran[-1]) or '')}</code>"
             if ran and grade_id(ran[-1]) else "after the cell just above it")
    reason = next(o.evalue for o in skipped[0].outputs if o.output_type == "error")
    reason = html_text.escape(reason.removeprefix("not run: ").removesuffix(
        " before this cell"))
    advice = next(a for words, a in NOT_RUN_ADVICE if words in reason)
    return (f'<div class="alert alert-danger" id="not-run"><b>{len(skipped)} cells '
            f"were not run, among them {len(tests)} tests worth {points:g} points: "
            f"they scored 0.</b> The grader stopped {where} ({reason})."
            f" {advice} Fix that, and every later part is graded.</div>")


class FeedbackExporter(HTMLExporter):
    """nbconvert's HTML exporter for nbgrader's feedback pages, without two costs
    that are the same for every student (together about 0.8 s a ch02 page).

    nbgrader makes a new exporter for each student, and each compiled its
    templates again: here every exporter shares one in-memory Jinja bytecode
    cache. And HTMLExporter parses its finished page again with BeautifulSoup
    (0.5 s for a ch02 page) only to give images without alt text a placeholder
    and JupyterLab-template cells a tabindex. The feedback template is based on
    the classic one, which has no such cells; the placeholder is added here.
    Code is highlighted once per source and process (:class:`_RememberedHighlight`).
    """

    # HTML outputs through `clean`; JavaScript and widget outputs left out.
    sanitize_html = Bool(True).tag(config=True)
    _markup_left = MAX_PAGE_MARKUP  # of this page; set again for each

    @jinja2.pass_context
    def markdown2html(self, context, source):
        # HTMLExporter.markdown2html with Python-only code blocks
        renderer = _PythonBlocks(
            escape=False, attachments=context.get("cell", {}).get("attachments", {}),
            embed_images=self.embed_images,
            path=context.get("resources", {}).get("metadata", {}).get("path", ""),
            anchor_link_text=self.anchor_link_text,
            exclude_anchor_links=self.exclude_anchor_links, **self.lexer_options)
        try:
            html = MarkdownWithMath(renderer=renderer).render(source)
        except InvalidNotebook as error:  # "missing attachment: a.png"
            return _Escaped(NOT_SHOWN.format(html_text.escape(str(error)),
                                             html_text.escape(str(source))))
        if _markup(html) > min(MAX_CELL_MARKUP, self._markup_left):
            # what the learner wrote, not its rendering escaped (often 10x longer)
            return _Escaped(AS_TEXT.format(html_text.escape(str(source))))
        return html

    def _create_environment(self):
        environment = super()._create_environment()
        environment.bytecode_cache = COMPILED_TEMPLATES
        return environment

    def from_notebook_node(self, nb, resources=None, **kw):
        # HTMLExporter.from_notebook_node up to its BeautifulSoup pass.
        self.register_filter("highlight_code", self.filters.get(
            "highlight_code", _RememberedHighlight(pygments_lexer=PYTHON_LEXER,
                                                   parent=self)))
        resources = self._init_resources(resources)
        self._markup_left = MAX_PAGE_MARKUP

        def bounded(html, strip_prefix: bool) -> str:
            if isinstance(html, _Escaped):
                return html
            html = str(html)
            size = _markup(html)
            if size > min(MAX_CELL_MARKUP, self._markup_left):
                return _Escaped(AS_TEXT.format(html_text.escape(html)))
            self._markup_left -= size
            return clean(strip_files_prefix(html) if strip_prefix else html)

        self.register_filter("ansi2html", bounded_ansi2html)
        self.register_filter("clean_html", lambda html: bounded(html, False))
        # Every template renders Markdown as markdown2html | strip_files_prefix,
        # nbgrader's feedback template unsanitized whatever sanitize_html says:
        # cleaned after the prefix goes, as files/javascript:... turns into a link.
        self.register_filter("strip_files_prefix", lambda html: bounded(html, True))
        self.register_filter("filter_data_type", WidgetsDataTypeFilter(
            notebook_metadata=self._nb_metadata, parent=self, resources=resources))
        html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
        html = IMAGE_WITHOUT_ALT.sub(
            '<img alt="No description has been provided for this image"', html)
        return lean_css(page_top(own_head(html), nb)), resources
