"""Sphinx glue for the rnnlib API page (book/api.md).

1. rnnlib's docstrings follow numpydoc's layout, but the part after ``name :``
   is prose ("(N, D) array, the inputs at this time step"), not a type name.
   napoleon would put that prose in italics and in a type slot, where inline
   literals and ``|x|`` break the reStructuredText. Before napoleon runs, the
   Parameters / Returns / Yields sections are rewritten as a rubric and a bullet
   list, ``name`` -- text, which reads the way the docstring does in a terminal.
2. Chapters call functions the way a learner imports them (``rnnlib.rnn_forward``);
   the API page documents each one in its defining module (``rnnlib.rnn``). A
   Python reference that does not resolve, and names something the ``rnnlib``
   package re-exports, is retried under the defining module's name. Anything
   else stays unresolved, and ``-n`` warns as usual.
"""

from __future__ import annotations

import importlib
import re

SECTIONS = ("Parameters", "Other Parameters", "Returns", "Yields")
_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")
_ITEM = re.compile(
    r"^(?P<name>[A-Za-z_*][\w*]*(?:\s*,\s*[A-Za-z_*][\w*]*)*)\s+:\s+(?P<text>.*)$"
)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _escape(text: str) -> str:
    # A bare "|x|" is a substitution reference in reStructuredText.
    return re.sub(r"(?<!\\)\|", r"\\|", text)


def rewrite_sections(lines: list[str]) -> list[str]:
    """Numpydoc Parameters/Returns/Yields sections -> rubric + bullet list."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        title = line.strip()
        if (
            title in SECTIONS
            and i + 1 < len(lines)
            and _UNDERLINE.match(lines[i + 1])
            and _indent(lines[i + 1]) == _indent(line)
        ):
            base = " " * _indent(line)
            out += [f"{base}.. rubric:: {title}", ""]
            i += 2
            items: list[list[str]] = []
            while i < len(lines) and lines[i].strip():
                text = lines[i].strip()
                if _indent(lines[i]) <= len(base) or not items:
                    items.append([text])
                else:
                    items[-1].append(text)
                i += 1
            for item in items:
                head, rest = item[0], item[1:]
                match = _ITEM.match(head)
                if match:
                    head = f"``{match['name']}`` -- {match['text']}"
                body = [_escape(head)] + [_escape(t) for t in rest]
                out.append(f"{base}- {body[0]}")
                out += [f"{base}  {t}" for t in body[1:]]
            out.append("")
            continue
        out.append(line)
        i += 1
    return out


def _process_docstring(app, what, name, obj, options, lines):
    if not name.startswith("rnnlib"):
        return
    lines[:] = rewrite_sections(lines)


def _defining_name(target: str) -> str | None:
    parts = target.split(".")
    if len(parts) < 2 or parts[0] != "rnnlib":
        return None
    try:
        package = importlib.import_module("rnnlib")
    except ImportError:
        return None
    module = getattr(getattr(package, parts[1], None), "__module__", None)
    if not module or module == "rnnlib":
        return None
    return ".".join([module, *parts[1:]])


def _resolve(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = _defining_name(node.get("reftarget", ""))
    if target is None:
        return None
    return env.get_domain("py").resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], target, node, contnode
    )


def setup(app):
    # Before napoleon (priority 500), so it never sees these sections.
    app.connect("autodoc-process-docstring", _process_docstring, priority=400)
    app.connect("missing-reference", _resolve)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
