"""Small fixes to what the toolchain writes into every page of the book.

Sphinx 7.4 adds an inline script registered after the builder started (as
sphinx-thebe does for its configuration, ``const THEBE_JS_URL = ...``) a second
time, once with filename ``None`` and once with ``''``. The second copy throws
"Identifier 'THEBE_JS_URL' has already been declared" in every browser console.
Drop exact duplicates from each page's scripts; the browser tests
(tests/test_browser.py) fail on any console error.
"""

from __future__ import annotations


def _key(script):
    return (
        getattr(script, "filename", script) or "",
        getattr(script, "priority", None),
        tuple(sorted(getattr(script, "attributes", {}).items())),
    )


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
