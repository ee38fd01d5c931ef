"""The built book, opened in a real browser as a learner would open it.

Headless Chromium (Debian's, installed here when missing and we are root) loads
every page of the book built by the session fixture `book` (conftest.py), served
from 127.0.0.1 with no other network: pages must load without console errors,
every image must load, math must be typeset by the book's own MathJax, every
internal link and anchor must resolve, and search must find "LSTM".
Screenshots go to test-artifacts/screenshots/.

Where Chromium cannot be had (not root, no package registry) these tests skip
with the reason; under CI (CI=true) they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import time

import pytest
from browser_helpers import (
    BookServer,
    BrowserUnavailable,
    browser_session,
    ensure_chromium,
    html_pages,
    internal_target,
    visit,
)
from conftest import ARTIFACTS

SCREENSHOTS = ARTIFACTS / "screenshots"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"browser tests cannot run under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def site(book):
    """The built HTML served on localhost."""
    _, log, html = book
    assert (html / "index.html").is_file(), f"the book was not built:\n{log[-3000:]}"
    with BookServer(html) as server:
        yield server


@pytest.fixture(scope="session")
def browser_log():
    return []


@pytest.fixture(scope="session")
def driver(browser_log):
    start = time.monotonic()
    with contextlib.ExitStack() as stack:
        try:
            browser = stack.enter_context(
                browser_session(*ensure_chromium(browser_log))
            )
        except BrowserUnavailable as error:
            _unavailable(str(error))
        browser_log.append(f"browser ready after {time.monotonic() - start:.1f} s")
        yield browser


@pytest.fixture(scope="session")
def crawl(site, driver, browser_log):
    """Every page of the book, loaded once: {page: PageFacts}."""
    start = time.monotonic()
    pages = {page: visit(driver, site, page) for page in html_pages(site.root)}
    browser_log.append(f"loaded {len(pages)} pages in {time.monotonic() - start:.1f} s")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "browser-report.txt").write_text(
        "\n".join(browser_log)
        + "\n"
        + "\n".join(
            f"{f.seconds:6.2f} s  {page}  math {f.facts.get('mathRendered')}"
            f"/{f.facts.get('mathSource')}  images {len(f.facts.get('imgs', []))}"
            for page, f in pages.items()
        )
        + "\n",
        encoding="utf-8",
    )
    return pages


def test_every_page_loads_without_console_errors(crawl):
    assert "index.html" in crawl and "search.html" in crawl
    broken = {page: f.facts["error"] for page, f in crawl.items() if "error" in f.facts}
    assert not broken, f"a page's scripts failed: {broken}"
    errors = {page: f.console_errors for page, f in crawl.items() if f.console_errors}
    assert not errors, "console errors (SEVERE):\n" + "\n".join(
        f"{page}: {messages[:3]}" for page, messages in list(errors.items())[:10]
    )


def test_nothing_is_loaded_from_outside_the_book(crawl, site):
    outside = {
        page: [
            url
            for url in f.facts["resources"]
            if not url.startswith((site.origin, "data:", "blob:"))
        ]
        for page, f in crawl.items()
    }
    outside = {page: urls for page, urls in outside.items() if urls}
    assert not outside, f"pages load resources from outside the book: {outside}"


def test_every_image_has_loaded(crawl):
    broken = [
        (page, img["src"])
        for page, f in crawl.items()
        for img in f.facts["imgs"]
        if not img["complete"] or img["width"] == 0
    ]
    assert not broken, f"images that did not load: {broken[:10]}"
    assert any(f.facts["imgs"] for f in crawl.values()), (
        "the book shows no image at all"
    )


def test_math_is_typeset_by_the_local_mathjax(crawl):
    with_math = {page: f.facts for page, f in crawl.items() if f.facts["mathSource"]}
    assert "book/notation.html" in with_math, "the notation page shows no math"
    for page, facts in with_math.items():
        assert facts["mathjax"], f"{page}: MathJax did not load"
        assert facts["mathjax"].startswith("3."), f"{page}: MathJax {facts['mathjax']}"
        assert facts["mathRendered"] >= facts["mathSource"], (
            f"{page}: {facts['mathSource']} formulas, "
            f"only {facts['mathRendered']} typeset"
        )
        assert facts["mathErrors"] == 0, f"{page}: {facts['mathErrors']} TeX errors"


def test_internal_links_and_anchors_resolve(crawl, site):
    broken = []
    for page, f in crawl.items():
        for link in f.facts["links"]:
            target = internal_target(site, link["href"])
            if target is None:
                continue
            path, fragment = target
            if not (site.root / path).is_file():
                broken.append(f"{page}: {link['raw']} -> missing page {path}")
            elif (
                fragment and path in crawl and fragment not in crawl[path].facts["ids"]
            ):
                broken.append(f"{page}: {link['raw']} -> no #{fragment} in {path}")
    assert not broken, f"{len(broken)} broken internal links:\n" + "\n".join(
        broken[:20]
    )


def test_search_finds_lstm(site, driver, crawl):
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(site.url("search.html?q=LSTM"))
    count = 'return document.querySelectorAll("#search-results ul.search li").length'
    try:
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(count) > 0)
    except Exception:  # a timeout: report what the page shows instead
        summary = driver.execute_script(
            'const s = document.querySelector("#search-results");'
            "return s ? s.innerText : document.body.innerText.slice(0, 500);"
        )
        pytest.fail(f"searching for LSTM found nothing: {summary!r}")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / "search-lstm.png"))
    assert driver.execute_script(count) >= 1


def test_screenshots(site, driver, crawl):
    """Pictures of a few pages for a person to look at (test-artifacts/screenshots)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    chapters = [
        page
        for page, f in crawl.items()
        if page.startswith("book/ch") and f.facts["imgs"] and f.facts["mathSource"]
    ]
    assert chapters, "no chapter shows both figures and math"
    shots = {
        "index": "index.html",
        "notation": "book/notation.html",
        "api": "book/api.html",
        "chapter": chapters[0],
    }
    for name, page in shots.items():
        driver.get(site.url(page))
        driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "(window.MathJax && MathJax.startup ? MathJax.startup.promise"
            " : Promise.resolve()).then(() => done(true));"
        )
        driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    # The chapter again, scrolled to its first figure.
    driver.execute_script(
        "const img = document.querySelector('article img');"
        "if (img) img.scrollIntoView({block: 'center'});"
    )
    time.sleep(0.3)
    driver.save_screenshot(str(SCREENSHOTS / "chapter-figure.png"))
    for name in [*shots, "chapter-figure"]:
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000, name
