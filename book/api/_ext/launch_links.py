"""Launch buttons that work: no Colab button on a page Colab cannot open.

sphinx-book-theme links every notebook page to Colab as
``colab.research.google.com/github/<org>/<repo>/blob/<branch>/<path>``, and for a
MyST chapter ``<path>`` is the ``.md`` source (it uses an ``.ipynb`` only when one
of the same name lies beside it). Colab opens ``.ipynb`` files only, so on a
chapter that button leads to an error page. Drop it there; the exercise pages,
which are ``.ipynb`` files, keep theirs. A chapter reaches Colab through its
downloaded ``.ipynb`` (the download menu), whose first cell installs ``rnnlib``.
Binder and JupyterHub open the ``.md`` with jupytext (see ``postBuild``).
"""

from __future__ import annotations

from pathlib import Path


def _drop_colab_on_text_notebooks(app, pagename, templatename, context, doctree):
    if pagename not in app.env.all_docs:
        return
    if Path(app.env.doc2path(pagename)).suffix == ".ipynb":
        return
    for group in context.get("header_buttons", []):
        if group.get("label") == "launch-buttons":
            group["buttons"] = [
                b for b in group.get("buttons", []) if b.get("text") != "Colab"
            ]


def setup(app):
    # The theme adds the launch buttons at priority 501; run after it.
    app.connect("html-page-context", _drop_colab_on_text_notebooks, priority=502)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
