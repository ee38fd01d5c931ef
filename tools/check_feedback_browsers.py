"""Open feedback pages in Firefox, WebKitGTK and Chromium, and check that MathJax
typesets them under the page's content security policy.

A feedback page runs three scripts that its policy lists by their SHA-256: the
config, the unpacking script, and the MathJax bundle that the latter creates at
run time. A browser that hashed one of them differently would block it and show
raw TeX. tests/test_feedback.py checks this in Chromium only, the suite's
browser; this script checks the same pages in the other engines.

Each page is opened from a file:// copy with one script put first in its head,
ahead of the policy's <meta> (a policy covers only what follows it). That script
records every `securitypolicyviolation` event. The scripts the policy lists are
unchanged. For each page the script prints, in one JSON line per browser:
- typeset equations (mjx-container);
- raw TeX left in Markdown cells;
- MathJax errors (mjx-merror);
- policy violations;
- resources loaded (Chromium lists those the policy blocked, too).
It exits with 1 if a page has any raw TeX, error, violation or load, or does
not finish typesetting.

Browsers, from Debian: firefox-esr (driven through its own WebDriver BiDi, no
geckodriver), webkit2gtk-driver (WebKitWebDriver and MiniBrowser, which needs
an X display: xvfb), chromium and chromium-driver (through
tests/browser_helpers.py). A browser that is not installed is skipped.
Usage, from the repository root, as root, with no network and a virtual display:

    unshare -n sh -c 'ip link set lo up; xvfb-run -a \
        python tools/check_feedback_browsers.py feedback/*/ch02*/*.html'
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LISTENER = (
    "<script>window.__violations = [];"
    "document.addEventListener('securitypolicyviolation', e => window.__violations"
    ".push(e.effectiveDirective + ' ' + String(e.blockedURI).slice(0, 80)), true);"
    "</script>"
)
FACTS = """(async () => {
  const start = Date.now();
  while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)
         && Date.now() - start < 10000)
    await new Promise(r => setTimeout(r, 50));
  let failure = null;
  try {
    await Promise.race([MathJax.startup.promise, new Promise(
      (_, no) => setTimeout(() => no(new Error('not typeset in 60 s')), 60000))]);
  } catch (e) { failure = String(e); }
  // A violation's event is queued as a task of its own: wait for it.
  await new Promise(r => setTimeout(r, 1000));
  const markdown = Array.from(document.querySelectorAll('.text_cell_render'), e => {
    const copy = e.cloneNode(true);
    copy.querySelectorAll('mjx-container, pre, code').forEach(x => x.remove());
    return copy.textContent; }).join('\\n');
  return JSON.stringify({
    typeset: document.querySelectorAll('mjx-container').length,
    errors: document.querySelectorAll('mjx-merror').length,
    failure: failure, markdown: markdown, violations: window.__violations,
    loaded: performance.getEntriesByType('resource').map(e => e.name)});
})()"""
# $...$, a TeX command, \( or \[ left outside maths and code
RAW_TEX = re.compile(r"\$[^$\n]{1,40}\$?|\\[a-zA-Z]+|\\\(|\\\[")
ASYNC = "const done = arguments[arguments.length - 1]; {}.then(done, e => done(" \
    "JSON.stringify({{failure: String(e), violations: [], loaded: []}})));"


def with_listener(page: Path, folder: Path) -> Path:
    """A copy of the page in folder that records the policy's violations."""
    text = page.read_text(encoding="utf-8")
    head = text.index("<head>") + len("<head>")
    policy = text.find("Content-Security-Policy")
    if 0 <= policy < head:
        raise ValueError(f"{page}: the policy comes before <head>")
    copy = folder / "-".join(page.resolve().parts[-3:])
    copy.write_text(text[:head] + LISTENER + text[head:], encoding="utf-8")
    return copy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def firefox(pages):
    binary = shutil.which("firefox-esr") or shutil.which("firefox")
    if binary is None:
        return None
    import websocket  # websocket-client, a dependency of selenium

    port, profile = free_port(), tempfile.mkdtemp(prefix="ff-profile-")
    process = subprocess.Popen(
        [binary, "--headless", "--no-remote", "--profile", profile,
         "--remote-debugging-port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                # Firefox refuses a handshake that carries an Origin header.
                ws = websocket.create_connection(
                    f"ws://127.0.0.1:{port}/session", suppress_origin=True)
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("Firefox's WebDriver BiDi did not answer in 60 s")
        ids = iter(range(1, 10**6))

        def call(method, **params):
            number = next(ids)
            ws.send(json.dumps({"id": number, "method": method, "params": params}))
            while (answer := json.loads(ws.recv())).get("id") != number:
                pass  # an event
            if answer.get("type") == "error":
                raise RuntimeError(answer)
            return answer["result"]

        version = call("session.new", capabilities={})["capabilities"]["browserVersion"]
        context = call("browsingContext.getTree")["contexts"][0]["context"]
        ws.settimeout(120)
        for page in pages:
            call("browsingContext.navigate", context=context, url=page.as_uri(),
                 wait="complete")
            result = call("script.evaluate", expression=FACTS, awaitPromise=True,
                          target={"context": context})
            facts = (json.loads(result["result"]["value"])
                     if result["type"] == "success"
                     else {"failure": json.dumps(result)[:300]})
            yield f"Firefox {version}", page, facts
        call("session.end")
    finally:
        process.terminate()
        process.wait(30)
        shutil.rmtree(profile, ignore_errors=True)


def webkit(pages):
    browsers = sorted(Path("/usr/lib").glob("*/webkit2gtk-4.*/MiniBrowser"))
    if not (browsers and shutil.which("WebKitWebDriver")):
        return None
    from selenium import webdriver
    from selenium.webdriver.webkitgtk.options import Options
    from selenium.webdriver.webkitgtk.service import Service

    options = Options()
    options.binary_location = str(browsers[-1])
    options.add_argument("--automation")
    driver = webdriver.WebKitGTK(
        options=options, service=Service(shutil.which("WebKitWebDriver")))
    driver.set_script_timeout(120)
    try:
        yield from in_selenium(driver, "WebKitGTK", pages)
    finally:
        driver.quit()


def chromium(pages):
    sys.path.insert(0, str(ROOT / "tests"))
    from browser_helpers import CHROMEDRIVER, CHROMIUM, browser_session

    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return None
    with browser_session(CHROMIUM, CHROMEDRIVER) as driver:
        driver.set_script_timeout(120)
        yield from in_selenium(driver, "Chromium", pages)


def in_selenium(driver, name, pages):
    """(browser, page, facts) for each page, through a selenium driver."""
    version = driver.capabilities.get("browserVersion")
    for page in pages:
        driver.get(page.as_uri())
        yield f"{name} {version}", page, json.loads(
            driver.execute_async_script(ASYNC.format(FACTS)))


def report(browser: str, page: Path, facts: dict) -> tuple[dict, bool]:
    """One page's line, and whether it is clean: typeset with no raw TeX, no
    error, no violation and nothing loaded (Chromium lists blocked loads too)."""
    raw = RAW_TEX.findall(facts.pop("markdown", ""))
    line = {"browser": browser, "page": page.name, "typeset": facts.get("typeset", 0),
            "raw_tex": len(raw), "raw_sample": raw[:3], **facts}
    return line, not (raw or line.get("errors") or line.get("failure")
                      or line["violations"] or line["loaded"])


BROWSERS = {"firefox": firefox, "webkit": webkit, "chromium": chromium}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="+", type=Path)
    parser.add_argument("--browsers", default=",".join(BROWSERS),
                        help="comma-separated, from: " + ", ".join(BROWSERS))
    args = parser.parse_args(argv)
    bad = 0
    with tempfile.TemporaryDirectory(prefix="feedback-pages-") as folder:
        pages = [with_listener(page, Path(folder)) for page in args.pages]
        for name in args.browsers.split(","):
            found = False
            for result in BROWSERS[name](pages):
                found = True
                line, clean = report(*result)
                bad += not clean
                print(json.dumps(line), flush=True)
            if not found:
                print(f"{name}: not installed, skipped", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
