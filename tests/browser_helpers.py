"""Headless Chromium for the browser tests: install it, serve the book, crawl it.

Chromium and ChromeDriver come from Debian (`chromium`, `chromium-driver`); the
tests install them when they are missing and the user is root. Selenium drives
them through /usr/bin/chromedriver, never a driver or browser it downloads.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
APT_PACKAGES = ("chromium", "chromium-driver")

# As root, without a sandbox, and with no traffic of its own: Chromium's background
# services would otherwise try to reach Google's hosts, which this network refuses.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
    # Only localhost resolves: anything the book tried to load from the internet
    # fails loudly (a console error) instead of silently working online.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)


class BrowserUnavailable(Exception):
    """Chromium, ChromeDriver or Selenium is missing and cannot be installed."""


def ensure_chromium(log: list[str]) -> tuple[Path, Path]:
    """Chromium and ChromeDriver paths, installing them from Debian if needed."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.geteuid() != 0:
            raise BrowserUnavailable(
                "chromium/chromium-driver are not installed and installing them "
                "needs root: apt-get install -y " + " ".join(APT_PACKAGES)
            )
        if shutil.which("apt-get") is None:
            raise BrowserUnavailable(
                "chromium is not installed and there is no apt-get"
            )
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        start = time.monotonic()
        for command in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", *APT_PACKAGES],
        ):
            result = subprocess.run(
                command, capture_output=True, text=True, env=env, timeout=1200
            )
            if result.returncode != 0:
                raise BrowserUnavailable(
                    f"{' '.join(command)} failed ({result.returncode}):\n"
                    + (result.stdout + result.stderr)[-2000:]
                )
        log.append(
            f"installed {' '.join(APT_PACKAGES)} in {time.monotonic() - start:.1f} s"
        )
        if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
            raise BrowserUnavailable("apt-get succeeded but chromium is still missing")
    else:
        log.append("chromium and chromedriver already installed")
    return CHROMIUM, CHROMEDRIVER


def start_driver(chromium: Path, chromedriver: Path, profile: Path):
    """A Selenium Chrome driver on Debian's Chromium with a fresh profile."""
    # Selenium Manager would look for drivers online; both paths are given anyway.
    os.environ.setdefault("SE_OFFLINE", "true")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as error:  # pragma: no cover - selenium is pinned
        raise BrowserUnavailable(f"selenium is not installed: {error}") from error
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(
        service=Service(executable_path=str(chromedriver)), options=options
    )
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    return driver


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


class BookServer:
    """The built HTML on http://127.0.0.1:<free port>/, in a background thread."""

    def __init__(self, root: Path):
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.root = root
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, page: str) -> str:
        return f"{self.origin}/{page}"


# Everything the checks need from one loaded page, read in one script call.
_PAGE_FACTS = """
const done = arguments[arguments.length - 1];
const wait = (window.MathJax && MathJax.startup && MathJax.startup.promise)
  ? MathJax.startup.promise : Promise.resolve();
wait.then(() => new Promise(r => setTimeout(r, 50))).then(() => {
  const imgs = Array.from(document.images).map(i => ({
    src: i.currentSrc || i.src, complete: i.complete, width: i.naturalWidth}));
  const links = Array.from(document.querySelectorAll('a[href]')).map(
    a => ({href: a.href, raw: a.getAttribute('href')}));
  const ids = Array.from(document.querySelectorAll('[id]')).map(e => e.id)
    .concat(Array.from(document.querySelectorAll('a[name]')).map(e => e.name));
  const resources = performance.getEntriesByType('resource').map(e => e.name);
  done({
    title: document.title,
    imgs: imgs, links: links, ids: ids, resources: resources,
    mathSource: document.querySelectorAll('.math').length,
    mathRendered: document.querySelectorAll('mjx-container').length,
    mathErrors: document.querySelectorAll('mjx-merror').length,
    mathjax: !!(window.MathJax && MathJax.version) ? MathJax.version : null,
  });
}).catch(e => done({error: String(e)}));
"""


@dataclass
class PageFacts:
    page: str
    seconds: float
    console_errors: list[str]
    facts: dict = field(default_factory=dict)


def visit(driver, server: BookServer, page: str) -> PageFacts:
    start = time.monotonic()
    driver.get(server.url(page))
    facts = driver.execute_async_script(_PAGE_FACTS)
    severe = [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE"
    ]
    return PageFacts(page, time.monotonic() - start, severe, facts or {})


def html_pages(root: Path) -> list[str]:
    """Every page of the book (not the theme's template fragments in _static/)."""
    pages = (p.relative_to(root).as_posix() for p in root.rglob("*.html"))
    return sorted(p for p in pages if not p.startswith("_static/"))


def internal_target(server: BookServer, href: str) -> tuple[str, str] | None:
    """(path from the book root, fragment) for a link into the book, else None."""
    if not href.startswith(server.origin + "/"):
        return None
    url, fragment = urldefrag(href)
    path = unquote(urlsplit(url).path).lstrip("/")
    if path == "" or path.endswith("/"):
        path += "index.html"
    return path, unquote(fragment)


@contextlib.contextmanager
def browser_session(chromium: Path, chromedriver: Path):
    """A driver on a fresh profile; on exit the browser quits and the profile
    (about 20 MB) is removed."""
    with tempfile.TemporaryDirectory(
        prefix="chromium-profile-", ignore_cleanup_errors=True
    ) as profile:
        driver = start_driver(chromium, chromedriver, Path(profile))
        try:
            yield driver
        finally:
            driver.quit()
