"""Fast checks that the repository's pieces point at each other correctly."""

from __future__ import annotations

import re

import nbtools
import yaml
from conftest import ASSIGNMENTS, ROOT, chapter_files

TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())


def toc_files() -> list[str]:
    files = [TOC["root"]]
    for part in TOC.get("parts", []):
        files += [entry["file"] for entry in part.get("chapters", [])]
    return files


def test_readme_quick_start_is_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^\s*(make \w+)\s*$", quick_start, flags=re.M)
    assert commands == ["make book", "make test"]


def test_ci_runs_exactly_the_readme_test_command():
    lines = [
        ln.strip()
        for ln in (ROOT / ".ci" / "run").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[-1] == "make test"
    assert all(ln.startswith(("set ", "cd ")) for ln in lines[:-1]), lines


def test_every_chapter_and_exercise_is_in_the_toc_and_exists():
    listed = toc_files()
    for chapter in chapter_files():
        assert f"book/{chapter.stem}" in listed, f"{chapter.name} is not in _toc.yml"
    for name in ASSIGNMENTS:
        for notebook in (ROOT / "exercises" / name).glob("*.ipynb"):
            assert f"exercises/{name}/{notebook.stem}" in listed, (
                f"{notebook} not in _toc.yml"
            )
    for entry in listed:
        assert any((ROOT / f"{entry}{ext}").is_file() for ext in (".md", ".ipynb")), (
            entry
        )


def test_chapters_are_myst_notebooks_for_the_python3_kernel():
    for chapter in chapter_files():
        header = chapter.read_text().split("---", 2)[1]
        meta = yaml.safe_load(header)
        assert meta["jupytext"]["text_representation"]["format_name"] == "myst", chapter
        assert meta["kernelspec"]["name"] == "python3", chapter


def test_exercises_page_lists_every_notebook_with_its_points():
    page = (ROOT / "book" / "exercises.md").read_text()
    for name in ASSIGNMENTS:
        for notebook in sorted((ROOT / "exercises" / name).glob("*.ipynb")):
            link = f"../exercises/{name}/{notebook.name}"
            row = next((ln for ln in page.splitlines() if link in ln), None)
            assert row is not None, f"book/exercises.md does not link {link}"
            points = sum(
                nbtools.nbgrader_meta(c).get("points", 0)
                for c in nbtools.test_cells(nbtools.load(notebook))
            )
            cells = [c.strip() for c in row.split("|")]
            assert f"{points:g}" in cells, (
                f"{link}: the page should state {points:g} points"
            )
