"""See a search: one self-contained HTML page per trace, and a live page while it runs.

    render_html(trace) -> str     the static page (no network access of any kind)
    view(file, out)               ``deliberate trace view``: read, render, write atomically
    live.LiveView                 the same renderer, fed search events over SSE

Both pages share one renderer (``viewer.js``) laid out by the vendored d3-hierarchy.
"""

from deliberate.viewer.html import render_html, view

__all__ = ["render_html", "view"]
