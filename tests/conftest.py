"""Shared fixtures: the repository's layout and a scratch nbgrader course."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
# nbgrader runs `alembic` from PATH when it makes a gradebook, also in-process:
# put this interpreter's bin first, as `make test` does, for a bare `pytest` too.
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]

from coursetools.book import build as build_book  # noqa: E402
from coursetools.course import assignments, run_nbgrader  # noqa: E402

ASSIGNMENTS = assignments(ROOT)
ARTIFACTS = ROOT / "test-artifacts"


def chapter_files() -> list[Path]:
    return sorted((ROOT / "book").glob("ch[0-9][0-9]_*.md"))


@pytest.fixture(scope="session")
def scratch_course(tmp_path_factory) -> Path:
    """A copy of the course config and sources with a freshly generated release.

    Tests grade here, never in the repository, so they cannot touch a real
    gradebook or the committed exercises/.
    """
    course = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions", course / "solutions")
    for name in ASSIGNMENTS:
        run_nbgrader(course, "generate_assignment", name, "--force")
    return course


@pytest.fixture(scope="session")
def book(tmp_path_factory):
    """Build the book into a fresh folder with -n -W --keep-going.

    Session-scoped and shared by test_book.py and test_browser.py: the build
    executes every chapter, so it runs once per test session.
    """
    output = tmp_path_factory.mktemp("book")
    result = build_book(ROOT, output)
    ARTIFACTS.mkdir(exist_ok=True)
    log = result.stdout + "\n" + result.stderr
    (ARTIFACTS / "book-build.log").write_text(log, encoding="utf-8")
    html = output / "_build" / "html"
    reports = html / "reports"
    if reports.is_dir():
        shutil.copytree(reports, ARTIFACTS / "book-reports", dirs_exist_ok=True)
    return result, log, html


@pytest.fixture(scope="session")
def chromium():
    """Headless Debian Chromium through selenium, installed on first use.

    Under CI=true a browser that cannot be had fails the test instead of
    skipping it.
    """
    from browser_helpers import (
        BrowserUnavailable,
        browser_session,
        ensure_chromium,
    )

    with contextlib.ExitStack() as stack:
        try:
            browser = stack.enter_context(browser_session(*ensure_chromium([])))
        except BrowserUnavailable as error:
            if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
                pytest.fail(f"browser test cannot run under CI: {error}")
            pytest.skip(str(error))
        yield browser


def nested_past_path_max(top: Path, file_name: str) -> None:
    """25 folders of 200 bytes under `top`, past Linux's PATH_MAX (4,096 bytes),
    each made from the last by its descriptor, and an empty file at the bottom."""
    fd = os.open(top, os.O_DIRECTORY)
    try:
        for _ in range(25):
            os.mkdir("d" * 200, dir_fd=fd)
            inner = os.open("d" * 200, os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.close(os.open(file_name, os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    finally:
        os.close(fd)
