"""Every way a reader reaches the book runs it: Binder, Colab, JupyterHub, a download.

- the install cell: first among the code cells of every chapter and exercise, up to
  date with `_config.yml`, outside every nbgrader region, a no-op where `rnnlib`
  imports, and a working install where it does not;
- Binder: a fresh venv made from requirements.txt alone plus the repository's
  Binder steps (postBuild, start) imports `rnnlib` and runs chapter 1 offline;
- the built pages' launch buttons, and the downloads of the exercises page;
- the repository's address written in one place; the Pages workflow builds with
  the README's command and publishes the folder that `make book` prints.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbtools
import pytest
import yaml
from conftest import ASSIGNMENTS, ROOT, chapter_files

sys.path.insert(0, str(ROOT / "tools"))
import sync_repository as sync  # noqa: E402

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
URL, BRANCH = sync.repository(ROOT)
OWNER, NAME = sync.owner_and_name(ROOT)
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def toc_pages() -> list[Path]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [toc["root"]] + [
        c["file"] for part in toc["parts"] for c in part["chapters"]
    ]
    pages = []
    for entry in entries:
        pages += [ROOT / f"{entry}{ext}" for ext in (".md", ".ipynb")
                  if (ROOT / f"{entry}{ext}").is_file()]
    return pages


def code_cells(page: Path) -> list[tuple[str, str]]:
    """(tags line or metadata tags, source) of every code cell of a page."""
    if page.suffix == ".ipynb":
        return [
            (" ".join(c["metadata"].get("tags", [])), nbtools.source(c))
            for c in nbtools.load(page)["cells"]
            if c["cell_type"] == "code"
        ]
    cells = []
    for match in sync.CODE_CELL.finditer(page.read_text(encoding="utf-8")):
        body = match["body"]
        tags = body.split("\n", 1)[0] if body.startswith(":tags:") else ""
        cells.append((tags, body))
    return cells


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\0")
    return [ROOT / p for p in listed if p and (ROOT / p).is_file()]


# -- the install cell -------------------------------------------------------------
def test_install_cells_and_readme_links_are_up_to_date():
    stale = [str(p.relative_to(ROOT)) for p in sync.out_of_date(ROOT)]
    assert not stale, (
        f"{stale} do not match _config.yml: run `python tools/sync_repository.py` "
        "(and `make exercises` after it changes solutions/)"
    )


@pytest.mark.parametrize("page", toc_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_first_code_cell_is_the_install_cell_or_needs_nothing(page):
    cells = code_cells(page)
    if not cells:
        return
    tags, source = cells[0]
    if sync.INSTALL_TAG in tags:
        assert "remove-cell" in tags, f"{page}: the install cell should be hidden"
        assert sync.archive_url(ROOT) in source
        return
    imported = set(sync.IMPORT.findall(source))
    assert imported <= STDLIB, (
        f"{page}: the first code cell imports {sorted(imported - STDLIB)}, which a "
        "fresh Jupyter may not have: put the install cell first "
        "(python tools/sync_repository.py)"
    )


def test_pages_that_import_the_course_start_with_the_install_cell():
    for page in toc_pages():
        cells = code_cells(page)
        if any("rnnlib" in sync.IMPORT.findall(s) for _, s in cells):
            assert sync.INSTALL_TAG in cells[0][0], f"{page} imports rnnlib"


@pytest.mark.parametrize("folder", ["solutions", "exercises"])
def test_install_cell_is_outside_every_graded_region(folder):
    for name in ASSIGNMENTS:
        for path in (ROOT / folder / name).glob("*.ipynb"):
            nb = nbtools.load(path)
            ids = [c.get("id") for c in nb["cells"]]
            assert sync.INSTALL_TAG in ids and sync.NOTE_ID in ids, path
            at = ids.index(sync.INSTALL_TAG)
            assert ids.index(sync.NOTE_ID) == at - 1, f"{path}: the note goes above"
            for cell in nb["cells"][at - 1 : at + 1]:
                assert "nbgrader" not in cell["metadata"], (
                    f"{path}: the install cell and its note must not be nbgrader cells"
                )
                text = nbtools.source(cell)
                assert "### BEGIN" not in text and "### END" not in text
            first_code = next(c for c in nb["cells"] if c["cell_type"] == "code")
            assert first_code.get("id") == sync.INSTALL_TAG, path


def _install_sources() -> list:
    found = []
    for page in [*chapter_files(), *sorted((ROOT / "exercises").glob("*/*.ipynb"))]:
        tags, source = code_cells(page)[0]
        assert sync.INSTALL_TAG in tags, page
        if page.suffix == ".md":
            source = source.split("\n", 2)[2]  # drop ":tags:" and the blank line
        page = str(page.relative_to(ROOT))
        found.append(pytest.param(page, source, id=page))
    return found


@pytest.mark.parametrize("page, source", _install_sources())
def test_install_cell_does_nothing_where_rnnlib_imports(page, source, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"{page}: the install cell ran {args} with rnnlib present")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "check_call", refuse)
    monkeypatch.setenv("KERAS_BACKEND", "unset")  # restored after the test
    monkeypatch.delenv("KERAS_BACKEND")
    start = time.perf_counter()
    exec(compile(source, page, "exec"), {"__name__": "__main__"})
    assert time.perf_counter() - start < 0.5, f"{page}: the install cell is slow"
    uses_keras = any("keras" in sync.IMPORT.findall(s)
                     for _, s in code_cells(ROOT / page))
    assert (os.environ.get("KERAS_BACKEND") == "torch") == uses_keras, (
        f"{page}: the install cell should set KERAS_BACKEND=torch exactly where the "
        "page imports keras"
    )


# -- Binder and the install cell in a fresh environment -------------------------
def _copy_of_the_clone(target: Path) -> Path:
    """The working tree's tracked and new files: what a clone of it would hold."""
    for path in tracked_files():
        destination = target / path.relative_to(ROOT)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
    return target


def _github_archive(repo: Path, zip_path: Path) -> Path:
    """A zip laid out as GitHub's branch archive: one top folder <name>-<branch>."""
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(p for p in repo.rglob("*") if p.is_file()):
            archive.write(path, f"{NAME}-{BRANCH}/{path.relative_to(repo)}")
    return zip_path


def _clean_env(venv: Path, home: Path) -> dict[str, str]:
    """A learner's shell: only the new venv on PATH, an empty home, no course
    variables; the package index that pip is configured with here."""
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TMPDIR": str(home),
    }
    env |= {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    for user_config in (Path.home() / ".config/pip/pip.conf",
                        Path.home() / ".pip/pip.conf"):
        if user_config.is_file() and "PIP_CONFIG_FILE" not in env:
            env["PIP_CONFIG_FILE"] = str(user_config)
    return env


def _offline() -> list[str]:
    """A prefix that runs a command with no network but loopback (Jupyter's kernel
    talks to its client over 127.0.0.1), where the kernel lets an unprivileged user
    make a network namespace, as on the course's machines."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip") or "/usr/sbin/ip"
    prefix = [unshare or "unshare", "-rn", "sh", "-c",
              f'{ip} link set lo up && exec "$@"', "offline"]
    if unshare and subprocess.run([*prefix, "true"]).returncode == 0:
        return prefix
    return []


def _wheels(env: dict[str, str]) -> Path:
    """The wheels of requirements.txt and their dependencies, downloaded from the
    package index once per version of requirements.txt (kept in the course's venv,
    so `make clean` removes them): a later run installs without resolving against
    the index, about half the time."""
    digest = hashlib.sha256((ROOT / "requirements.txt").read_bytes()).hexdigest()
    cache = Path(sys.prefix) / "reach-wheels" / digest[:16]
    if not (cache / ".complete").is_file():
        shutil.rmtree(cache, ignore_errors=True)
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--dest",
              str(cache), "-r", str(ROOT / "requirements.txt")], env=env, cwd=ROOT)
        (cache / ".complete").touch()
    return cache


def _run(command, *, env, cwd, timeout=600):
    result = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.mark.slow
def test_fresh_venv_with_the_binder_steps_runs_chapter_1(tmp_path):
    """requirements.txt alone, then the install cell (from the local clone), then
    repo2docker's steps: postBuild in the repository, every command through start."""
    timings = {}
    repo = _copy_of_the_clone(tmp_path / "repo")
    home = tmp_path / "home"
    home.mkdir()
    venv = tmp_path / "venv"
    env = _clean_env(venv, home)
    python = str(venv / "bin" / "python")
    assert (repo / "runtime.txt").read_text().strip() == "python-3.11"
    assert sys.version_info[:2] == (3, 11)

    start = time.monotonic()
    _run([sys.executable, "-m", "venv", str(venv)], env=env, cwd=tmp_path)
    # --no-compile: byte-compiling torch's sources is a third of an install's time
    # here and changes nothing the test looks at.
    _run([python, "-m", "pip", "install", "--quiet", "--no-compile", "--no-index",
          "--find-links", str(_wheels(env)), "-r", "requirements.txt"],
         env=env, cwd=repo)
    timings["requirements"] = time.monotonic() - start
    missing = subprocess.run([python, "-c", "import rnnlib"], env=env, cwd=home,
                             capture_output=True, text=True)
    assert missing.returncode != 0, "requirements.txt alone should not bring rnnlib"

    # The install cell as Colab runs it, pointed at the local clone's archive.
    start = time.monotonic()
    page = repo / "book" / "ch01_feedforward_vs_recurrent.md"
    cell = code_cells(page)[0][1].split("\n", 2)[2]
    archive = _github_archive(repo, tmp_path / f"{BRANCH}.zip")
    assert sync.archive_url(ROOT) in cell
    cell = cell.replace(sync.archive_url(ROOT), archive.as_uri())
    check = "\nimport rnnlib\nprint(rnnlib.__file__)\n"
    (tmp_path / "cell.py").write_text(cell + check)
    installed = _run([python, str(tmp_path / "cell.py")], env=env, cwd=home)
    assert str(venv) in installed.stdout, installed.stdout
    _run([python, "-m", "pip", "uninstall", "--quiet", "--yes", "rnnlib"], env=env,
         cwd=home)
    timings["install cell"] = time.monotonic() - start

    # repo2docker: postBuild from the repository's root, then Jupyter via start.
    start = time.monotonic()
    _run(["./postBuild"], env=env, cwd=repo)
    timings["postBuild"] = time.monotonic() - start
    overrides = json.loads(
        (venv / "share/jupyter/lab/settings/overrides.json").read_text()
    )
    viewers = overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers["markdown"] == "Jupytext Notebook", viewers

    start = time.monotonic()
    output = tmp_path / "ch01.ipynb"
    env_seen = _run(
        [*_offline(), "./start", python, "-c",
         "import os, rnnlib; print(os.environ['KERAS_BACKEND'], rnnlib.__file__)"],
        env=env, cwd=repo,
    ).stdout
    assert env_seen.startswith("torch ") and str(repo / "lib") in env_seen, env_seen
    _run(
        [*_offline(), "./start", str(venv / "bin" / "jupytext"), "--to", "ipynb",
         "--execute", "--output", str(output), str(page)],
        env=env, cwd=repo,
    )
    timings["chapter 1"] = time.monotonic() - start
    executed = nbtools.load(output)
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code"
               for o in c["outputs"]]
    assert outputs, "chapter 1 ran but shows no output"
    errors = [o for o in outputs if o["output_type"] == "error"
              or (o["output_type"] == "stream" and o["name"] == "stderr")]
    assert not errors, errors[:3]
    print("fresh venv:", ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))


def test_binder_files_follow_repo2docker():
    """Root-level configuration (no binder/ folder, which would hide it)."""
    assert not (ROOT / "binder").exists() and not (ROOT / ".binder").exists()
    assert (ROOT / "requirements.txt").is_file()
    for script in ("postBuild", "start"):
        path = ROOT / script
        assert os.access(path, os.X_OK), f"{script} must be executable"
        assert path.read_text().startswith("#!/bin/bash\n")
    assert 'exec "$@"' in (ROOT / "start").read_text()
    assert "KERAS_BACKEND=torch" in (ROOT / "start").read_text()
    assert "pip install" in (ROOT / "postBuild").read_text()
    assert not (ROOT / "environment.yml").exists(), "it would replace requirements.txt"


# -- the repository's address ----------------------------------------------------
def test_the_repository_url_is_written_in_one_place():
    """Only _config.yml names the repository; the files that tools/sync_repository.py
    writes from it (checked above) and nbgrader's copies of them may repeat it."""
    written = {p.resolve() for p in sync.targets(ROOT)}
    released = {p.resolve() for p in (ROOT / "exercises").glob("*/*.ipynb")}
    forms = [
        f"github.com/{OWNER}/{NAME}",
        f"{OWNER}.github.io",
        f"/gh/{OWNER}/{NAME}",
        f"githubusercontent.com/{OWNER}/{NAME}",
    ]
    config_hits = (ROOT / "_config.yml").read_text().count(URL)
    assert config_hits == 1, f"_config.yml names the repository {config_hits} times"
    offenders = []
    for path in tracked_files():
        if path.resolve() in written | released or path.name == "_config.yml":
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        offenders += [f"{path.relative_to(ROOT)}: {form}" for form in forms
                      if form.lower() in text.lower()]
    assert not offenders, offenders


# -- publishing -------------------------------------------------------------------
def _readme_build_command() -> str:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^\s*(make \w+)\s*$", quick_start, flags=re.M)
    return next(c for c in commands if c == "make book")


def _folder_make_book_prints() -> str:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nbook:", 1)[1].split("\n\n", 1)[0]
    printed = re.search(r"\$\(CURDIR\)/(\S+)/index\.html", recipe)
    assert printed, "make book no longer prints where the book is"
    return printed.group(1)


def test_pages_workflow_builds_with_the_readme_command_and_publishes_the_book():
    workflow = yaml.safe_load((ROOT / ".github/workflows/pages.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))
    assert BRANCH in triggers["push"]["branches"]
    assert workflow["permissions"]["pages"] == "write"
    assert workflow["permissions"]["id-token"] == "write"
    (job,) = workflow["jobs"].values()
    assert job["environment"]["name"] == "github-pages"
    steps = job["steps"]
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    order = ["actions/checkout", "actions/setup-python",
             "actions/upload-pages-artifact", "actions/deploy-pages"]
    assert [u for u in uses if u in order] == order, uses
    setup = steps[uses.index("actions/setup-python")]
    assert str(setup["with"]["python-version"]) == "3.11"
    runs = [s["run"].strip() for s in steps if "run" in s]
    assert runs == [_readme_build_command()], runs
    build_at = next(i for i, s in enumerate(steps) if "run" in s)
    upload_at = uses.index("actions/upload-pages-artifact")
    assert uses.index("actions/setup-python") < build_at < upload_at
    published = steps[upload_at]["with"]["path"].strip()
    published = published.removeprefix("./").rstrip("/")
    assert published == _folder_make_book_prints() == "_build/html"


def test_the_readme_tells_learners_which_button_needs_what():
    readme = (ROOT / "README.md").read_text()
    learners = readme.split("## For learners", 1)[1].split("\n## ", 1)[0]
    for way, needs in [("Binder", "nothing"), ("Colab", "Google account"),
                       ("JupyterHub", "hub"), ("Download", "Python 3.11")]:
        row = next((ln for ln in learners.splitlines() if f"**{way}**" in ln), "")
        assert needs in row, f"README, For learners: the {way} row should say {needs!r}"
    assert "published book" in learners and f"{OWNER}.github.io/{NAME}" in learners


def test_instructor_guide_and_config_agree_on_the_hub():
    guide = (ROOT / "book" / "instructor_guide.md").read_text()
    hub = CONFIG["launch_buttons"].get("jupyterhub_url", "")
    assert "jupyterhub_url" in guide and "nbgitpuller" in guide
    assert "nbgrader release_assignment" in guide
    assert not re.search(r"example\.(org|com)", hub), (
        "a placeholder hub address makes a JupyterHub button that leads nowhere"
    )


# -- the built pages ------------------------------------------------------------------
def _launch_links(page_html: str) -> dict[str, str]:
    links = {}
    for href, text in re.findall(
        r'<a href="([^"]+)"[^>]*class="btn btn-sm dropdown-item"[^>]*>.*?'
        r'<span class="btn__text-container">([^<]+)</span>', page_html, flags=re.S
    ):
        links[text.strip()] = html_lib.unescape(href)
    return links


def test_chapter_pages_launch_on_binder_and_not_on_colab(book):
    _, _, html = book
    for chapter in chapter_files():
        page = (html / "book" / f"{chapter.stem}.html").read_text(encoding="utf-8")
        links = _launch_links(page)
        assert links.get("Binder") == (
            f"https://mybinder.org/v2/gh/{OWNER}/{NAME}/{BRANCH}"
            f"?urlpath=lab/tree/book/{chapter.name}"
        ), links
        assert "Colab" not in links, f"{chapter.name}: Colab cannot open a .md file"
        assert ("JupyterHub" in links) == bool(
            CONFIG["launch_buttons"].get("jupyterhub_url")
        )
        # The note is shown, the install cell is not.
        assert "installs the course library" in html_lib.unescape(page)
        assert "find_spec" not in page
        # The downloadable notebook opens with the install cell.
        download = html / "_sources" / "book" / f"{chapter.stem}.ipynb"
        first = next(c for c in nbtools.load(download)["cells"]
                     if c["cell_type"] == "code")
        assert sync.INSTALL_TAG in first["metadata"].get("tags", []), download


def test_exercise_pages_launch_on_colab_and_binder(book):
    _, _, html = book
    for name in ASSIGNMENTS:
        for notebook in (ROOT / "exercises" / name).glob("*.ipynb"):
            path = f"exercises/{name}/{notebook.name}"
            page = (html / "exercises" / name / f"{notebook.stem}.html").read_text()
            links = _launch_links(page)
            assert links.get("Colab") == (
                f"https://colab.research.google.com/github/{OWNER}/{NAME}/blob/"
                f"{BRANCH}/{path}"
            ), links
            assert links.get("Binder", "").endswith(f"?urlpath=lab/tree/{path}")


def test_exercises_page_offers_the_release_notebooks(book):
    """The {download} links are copied into the site (_downloads/), so they work
    wherever the HTML is served, GitHub Pages included."""
    _, _, html = book
    page = (html / "book" / "exercises.html").read_text(encoding="utf-8")
    for name in ASSIGNMENTS:
        for notebook in (ROOT / "exercises" / name).glob("*.ipynb"):
            hrefs = re.findall(
                rf'href="(\.\./_downloads/[^"]+/{re.escape(notebook.name)})"', page
            )
            assert len(hrefs) == 1, f"the exercises page should offer {notebook.name}"
            served = (html / "book" / hrefs[0]).resolve()
            assert served.read_bytes() == notebook.read_bytes(), (
                f"{hrefs[0]} is not the release notebook {notebook}"
            )
