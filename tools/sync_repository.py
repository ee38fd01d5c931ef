"""Write everything that names the course's repository from the one line that does.

`_config.yml`'s `repository.url` (with `repository.branch`) is the only place a
maintainer edits. From it this script writes:

- the install cell, the first code cell of every chapter (`book/chNN_*.md`) and of
  every source exercise notebook (`solutions/*/*.ipynb`), with a one-line note for
  the reader above it. Where `rnnlib` imports (the course's venv, Binder, the
  grader) the cell does nothing; where it does not (Colab, a downloaded notebook in
  a fresh Jupyter) it installs the course library from the repository's archive,
  and the pinned packages the page imports that are missing;
- the block of links for learners in `README.md` (published book, Binder).

Usage, from the repository root:

    python tools/sync_repository.py           # rewrite what is out of date
    python tools/sync_repository.py --check   # list it and exit 1, change nothing

After a change to `solutions/`, run `make exercises` (the release is nbgrader's copy).
tests/test_reach.py fails while anything here is out of date.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
INSTALL_TAG = "course-install"
NOTE_ID = "course-install-note"
NOTE = (
    "*Running this page yourself (Colab, a downloaded notebook)? Its first code "
    "cell installs the course library `rnnlib` where it is missing.*"
)
README_BEGIN = "<!-- links written by tools/sync_repository.py from _config.yml -->"
README_END = "<!-- end of links -->"
CODE_CELL = re.compile(
    r"^```\{code-cell\}[^\n]*\n(?P<body>.*?)^```[ \t]*\n", re.M | re.S
)
IMPORT = re.compile(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", re.M)


def repository(root: Path = ROOT) -> tuple[str, str]:
    """(url, branch) from _config.yml, the url without a trailing slash or .git."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    url = config["repository"]["url"].rstrip("/").removesuffix(".git")
    return url, config["repository"].get("branch", "main")


def archive_url(root: Path = ROOT) -> str:
    """The zip of the branch that GitHub serves: pip installs it without git."""
    url, branch = repository(root)
    return f"{url}/archive/refs/heads/{branch}.zip"


def owner_and_name(root: Path = ROOT) -> tuple[str, str]:
    url, _ = repository(root)
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+)", url)
    if not match:
        raise SystemExit(f"_config.yml: repository.url {url!r} is not a GitHub URL")
    return match.group(1), match.group(2)


def pins(root: Path = ROOT) -> dict[str, str]:
    """{module: 'name==version'} for the pinned requirements (module = name)."""
    found = {}
    for line in (root / "requirements.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if match:
            found[match.group(1).lower().replace("-", "_")] = match.group(0)
    return found


def install_cell(imported: set[str], root: Path = ROOT) -> str:
    """The install cell's code for a page that imports the given modules."""
    needed = {m: pin for m, pin in pins(root).items() if m in imported}
    lines = [
        "# Installs the course library, rnnlib, where it is missing (Colab, a fresh",
        "# Jupyter); where the course is installed it does nothing.",
        "import importlib.util",
        "import os",
        "import subprocess",
        "import sys",
        "",
    ]
    if "keras" in imported:
        lines += [
            'os.environ.setdefault("KERAS_BACKEND", "torch")'
            "  # before keras is imported",
            "",
        ]
    lines += ['if importlib.util.find_spec("rnnlib") is None:']
    if needed:
        lines += ["    packages = {"]
        lines += [f'        "{module}": "{pin}",' for module, pin in needed.items()]
        lines += [
            "    }",
            "    missing = [pin for module, pin in packages.items()",
            "               if importlib.util.find_spec(module) is None]",
        ]
    else:
        lines += ["    missing = []"]
    lines += [
        f'    course = "{archive_url(root)}"',
        '    command = [sys.executable, "-m", "pip", "install", "--quiet", *missing]',
        "    subprocess.run([*command, course], check=True)",
        "    import site"
        "  # a --user install must be importable now, not after a restart",
        "",
        "    site.addsitedir(site.getusersitepackages())",
        "    importlib.invalidate_caches()",
    ]
    return "\n".join(lines)


# -- chapters: MyST notebooks --------------------------------------------------
def _md_code_cells(text: str) -> list[re.Match]:
    return list(CODE_CELL.finditer(text))


def md_imports(text: str) -> set[str]:
    return {m for cell in _md_code_cells(text) for m in IMPORT.findall(cell["body"])}


def sync_chapter(text: str, root: Path = ROOT) -> str:
    """The chapter with its install cell (and note) first among its code cells."""
    cells = _md_code_cells(text)
    first = cells[0]
    code = install_cell(md_imports(text), root)
    header = f"```{{code-cell}} ipython3\n:tags: [remove-cell, {INSTALL_TAG}]\n"
    block = f"{header}\n{code}\n```\n"
    if INSTALL_TAG in first.group(0).split("\n", 2)[1]:
        return text[: first.start()] + block + text[first.end() :]
    return text[: first.start()] + f"{NOTE}\n\n{block}\n" + text[first.start() :]


# -- exercises: nbgrader source notebooks ----------------------------------------
def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def nb_imports(nb: dict) -> set[str]:
    return {
        m
        for cell in nb["cells"]
        if cell["cell_type"] == "code"
        for m in IMPORT.findall("".join(cell["source"]))
    }


def sync_notebook(nb: dict, root: Path = ROOT) -> dict:
    """The source notebook with the note and the install cell before its first code
    cell. Neither has nbgrader metadata: they are outside every graded region."""
    cells = [c for c in nb["cells"] if c.get("id") not in (INSTALL_TAG, NOTE_ID)]
    code = install_cell(nb_imports({"cells": cells}), root)
    note = {
        "cell_type": "markdown",
        "id": NOTE_ID,
        "metadata": {},
        "source": _lines(NOTE),
    }
    cell = {
        "cell_type": "code",
        "execution_count": None,
        "id": INSTALL_TAG,
        "metadata": {"tags": ["remove-cell", INSTALL_TAG]},
        "outputs": [],
        "source": _lines(code),
    }
    at = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    return dict(nb, cells=[*cells[:at], note, cell, *cells[at:]])


def dump_notebook(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


# -- README ----------------------------------------------------------------------
def readme_links(root: Path = ROOT) -> str:
    owner, name = owner_and_name(root)
    url, branch = repository(root)
    return "\n".join([
        README_BEGIN,
        f"- the published book: https://{owner}.github.io/{name}/",
        f"- Binder (opens the chapters in JupyterLab): "
        f"https://mybinder.org/v2/gh/{owner}/{name}/{branch}?urlpath=lab/tree/book",
        f"- the repository: {url}",
        README_END,
    ])


def sync_readme(text: str, root: Path = ROOT) -> str:
    begin, end = text.index(README_BEGIN), text.index(README_END) + len(README_END)
    return text[:begin] + readme_links(root) + text[end:]


# -- all of it -------------------------------------------------------------------
def targets(root: Path = ROOT) -> dict[Path, str]:
    """{file: the text it should have}, for every file this script writes."""
    wanted = {}
    for path in sorted((root / "book").glob("ch[0-9][0-9]_*.md")):
        wanted[path] = sync_chapter(path.read_text(encoding="utf-8"), root)
    for path in sorted((root / "solutions").glob("*/*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        wanted[path] = dump_notebook(sync_notebook(nb, root))
    readme = root / "README.md"
    wanted[readme] = sync_readme(readme.read_text(encoding="utf-8"), root)
    return wanted


def out_of_date(root: Path = ROOT) -> list[Path]:
    wanted = targets(root)
    return [p for p, text in wanted.items() if p.read_text(encoding="utf-8") != text]


def main(argv: list[str]) -> int:
    stale = out_of_date(ROOT)
    for path in stale:
        print(path.relative_to(ROOT))
    if "--check" in argv:
        return 1 if stale else 0
    for path, text in targets(ROOT).items():
        if path in stale:
            path.write_text(text, encoding="utf-8")
    if any(p.parts[-3] == "solutions" for p in stale if len(p.parts) >= 3):
        print("solutions/ changed: run `make exercises` and commit exercises/ with it")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
