"""The browser side of the server: an index of recent searches, and one page per search.

``/`` lists the searches the server remembers, newest first, each linking to
``/traces/{id}/``. That page is the viewer's own: the live page (``viewer.live``'s
boot script, fed by ``/traces/{id}/events``) while the search runs, and the static
``render_html`` page once it is done. Every string from a question or a model is
escaped.
"""

from __future__ import annotations

import html
import time

from deliberate.serve.store import Entry
from deliberate.viewer.html import page, render_html
from deliberate.viewer.live import LIVE_BOOT, LIVE_POLICY

INDEX_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
_STYLE = "body{font:14px system-ui,sans-serif;margin:2em}td,th{padding:.3em .8em;text-align:left}tr:nth-child(even){background:#f4f4f4}"


def index_page(entries: list[Entry]) -> str:
    """The list of recent searches."""
    rows = []
    for entry in entries:
        summary = entry.summary
        when = time.strftime("%H:%M:%S", time.localtime(entry.created))
        question = entry.question if len(entry.question) <= 120 else entry.question[:117] + "..."
        rows.append(
            "<tr>"
            f'<td><a href="/traces/{html.escape(entry.id)}/">{html.escape(entry.id)}</a></td>'
            f"<td>{when}</td><td>{html.escape(entry.status)}</td>"
            f"<td>{html.escape(str(summary.get('stop_reason', '')))}</td>"
            f"<td>{html.escape(str(summary.get('nodes', '')))}</td>"
            f"<td>{html.escape(question)}</td>"
            "</tr>"
        )
    body = "".join(rows) or '<tr><td colspan="6">No searches yet.</td></tr>'
    return (
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>deliberate serve</title>"
        f"<style>{_STYLE}</style></head><body><h1>deliberate serve</h1>"
        "<table><tr><th>trace</th><th>started</th><th>status</th><th>stop</th><th>nodes</th><th>question</th></tr>"
        f"{body}</table></body></html>"
    )


def trace_page(entry: Entry) -> str:
    """The viewer for one search: live while it runs, static once it is done."""
    if entry.trace is not None:
        return render_html(entry.trace)
    return page({"meta": {"question": entry.question}}, policy=LIVE_POLICY, boot=LIVE_BOOT)
