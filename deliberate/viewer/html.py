"""The static viewer page: a trace embedded as JSON, rendered by inline script.

Every asset is inlined and a Content-Security-Policy forbids all fetches, so the file
works offline and cannot phone home. The trace goes into a
``<script type="application/json">`` block with ``<``, ``>`` and ``&`` written as
``\\u003c``, ``\\u003e`` and ``\\u0026``: a thought containing ``</script>`` or ``<!--``
stays inside the block, and ``JSON.parse`` reads the same text back. Scripts are allowed
by their SHA-256 hashes, not by 'unsafe-inline', so even markup that did slip into the
page could not run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import webbrowser
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import networkx as nx

from deliberate.errors import TraceError
from deliberate.trace import FORMAT, load_graph, read_trace, readable, write_text_atomic

# No connect-src, no default fallback: the static page may load nothing at all.
STATIC_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
# A page that cannot draw says so in its details panel, and the tests read data-error.
STATIC_BOOT = """try { Viewer.setTrace(JSON.parse(document.getElementById("trace").textContent)); } catch (e) {
  document.documentElement.dataset.error = String(e);
  document.getElementById("details").textContent = "This trace cannot be drawn: " + e;
}"""
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    """A file shipped beside this module (``vendor/...`` for d3-hierarchy)."""
    return resources.files("deliberate.viewer").joinpath(name).read_text(encoding="utf-8")


def embed_json(data: Any) -> str:
    """``data`` as JSON that is safe between ``<script>`` tags."""
    try:
        text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    except ValueError as exc:  # NaN or infinity: JSON.parse would reject the page
        raise TraceError(f"the trace holds a number JSON cannot carry: {exc}") from exc
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page(data: Any, *, policy: str, boot: str) -> str:
    """The viewer page around ``data`` (a trace, or a live page's first meta).

    ``policy`` is the CSP without its script-src, which is added here from the hashes
    of the page's own scripts.
    """
    scripts = {"d3": asset("vendor/d3-hierarchy.min.js"), "panels": asset("panels.js"), "viewer": asset("viewer.js"), "boot": boot}
    for name, code in scripts.items():
        # Only a literal "</script" could end an inline script early; none of ours has one.
        if "</script" in code.lower():
            raise TraceError(f"internal error: the {name} script contains '</script'")
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()}'" for code in scripts.values()
    )
    parts = {"csp": f"{policy}; script-src {hashes}", "css": asset("viewer.css"), "data": embed_json(data), **scripts}
    # One pass, so text inserted for one placeholder is never scanned for another.
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], asset("page.html"))


def render_html(trace: dict[str, Any]) -> str:
    """The self-contained static page for ``trace`` (a dict as ``read_trace`` returns)."""
    check_tree(trace)
    return page(trace, policy=STATIC_POLICY, boot=STATIC_BOOT)


def check_tree(trace: dict[str, Any]) -> None:
    """Reject what the page could not draw, with a one-line reason."""
    if not readable(trace):
        raise TraceError(f"not a deliberate trace (expected format {FORMAT!r})")
    if not isinstance(trace.get("meta"), dict) or not isinstance(trace.get("events"), list):
        raise TraceError("the trace's meta or events part is malformed")
    graph = load_graph(trace)
    if len(graph) == 0 or 0 not in graph.g:
        raise TraceError("the trace's graph has no root node")
    if not nx.is_arborescence(graph.g):
        raise TraceError("the trace's graph is not a tree rooted at the question")
    for node, parent in graph.g.nodes(data="parent"):
        expected = next(iter(graph.g.predecessors(node)), None)
        if parent != expected:
            raise TraceError(f"node {node} names parent {parent!r} but its edge comes from {expected!r}")


def view(file: Path, out: Path | None = None, *, open_browser: bool = False) -> Path:
    """``deliberate trace view``: the page for the trace in ``file``, written to ``out``
    (default: ``file`` with an .html suffix); nothing is written if the trace is bad."""
    target = out if out is not None else file.with_suffix(".html")
    if target.expanduser().resolve() == file.expanduser().resolve():
        raise TraceError(f"refusing to overwrite the trace {file} with its page")
    text = render_html(read_trace(file))
    written = write_text_atomic(target, text)
    if open_browser:
        webbrowser.open(written.resolve().as_uri())
    return written
