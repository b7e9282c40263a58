"""The static viewer page, from the Python side: escaping, the CSP, self-containment,
and ``deliberate trace view`` on good and bad traces (through the real CLI)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from deliberate.errors import TraceError
from deliberate.graph import ThoughtGraph
from deliberate.trace import build_trace, write_trace
from deliberate.viewer import render_html
from deliberate.viewer.html import asset, embed_json

HOSTILE = [
    "<script>window.__pwned=1</script>",
    "</script><script>window.__pwned=2;document.title='pwned'</script>",
    "<!-- <script>window.__pwned=3</script>",
    '"><img src=x onerror="window.__pwned=4;document.title=\'pwned\'">',
    "a & b > c < d \u2028 line separator",
]


def small_trace(question: str = "Use the numbers 1 1 11 11 and + - * / to make 24.", thoughts: list[str] | None = None) -> dict[str, Any]:
    """A four-level trace built the way the search builds one: graph, events, meta."""
    thoughts = thoughts or ["11 + 11 = 22 (left: 1 1 22)", "1 + 1 = 2 (left: 2 22)", "22 + 2 = 24 (left: 24)", "11 - 1 = 10 (left: 1 10 11)"]
    graph = ThoughtGraph(question, {"left": [1, 1, 11, 11]}, "root", 7)
    a, _ = graph.add_child(0, thoughts[0], {"left": [1, 1, 22]}, "a", seed=1, created=0.1, tokens=9)
    b, _ = graph.add_child(0, thoughts[3], {"left": [1, 10, 11]}, "b", seed=2, created=0.1, tokens=8)
    c, _ = graph.add_child(a, thoughts[1], {"left": [2, 22]}, "c", seed=3, created=0.2, tokens=7)
    d, _ = graph.add_child(c, thoughts[2], {"left": [24]}, "d", seed=4, created=0.3, tokens=6)
    graph.add_value(a, 0.7, "value", {"sure": 0.5, "likely": 0.4, "impossible": 0.1}, 0.15)
    graph.add_value(b, 0.1, "value", {"sure": 0.0, "likely": 0.2, "impossible": 0.8}, 0.15)
    graph.add_value(d, 1.0, "verifier", None, 0.3)
    for node, status in ((0, "expanded"), (a, "expanded"), (b, "pruned"), (c, "expanded"), (d, "solved")):
        graph.set_status(node, status)
    graph[d]["answer"] = "(11 + 11) + (1 + 1) = 24"
    events = [
        {"t": 0.1, "type": "expand", "nodes": [0], "children": [[a, b]], "mode": "sample", "tokens": 17},
        {"t": 0.15, "type": "evaluate", "source": "value", "nodes": [a, b], "values": [0.7, 0.1]},
        {"t": 0.16, "type": "prune", "node": b, "reason": "value 0.10 below 0.2"},
        {"t": 0.2, "type": "expand", "nodes": [a], "children": [[c]], "mode": "sample", "tokens": 7},
        {"t": 0.3, "type": "expand", "nodes": [c], "children": [[d]], "mode": "sample", "tokens": 6},
        {"t": 0.3, "type": "verify", "node": d, "ok": True, "answer": graph[d]["answer"]},
        {"t": 0.31, "type": "answer", "node": d, "answer": graph[d]["answer"], "reason": "solved"},
    ]
    meta = {"question": question, "task": "game24", "strategy": "bfs", "options": {"breadth": 2},
            "model": "gemma-3-270m.gguf", "model_sha256": "abc123def456", "seed": 7,
            "budget": {"think": 5.0, "max_nodes": None, "reserve": 0.1}, "stop_reason": "solved",
            "answer": graph[d]["answer"], "answer_node": d, "stats": {"nodes": 5, "tokens": 30}}
    return build_trace(meta, events, graph)


def hostile_trace() -> dict[str, Any]:
    """Every thought and the question carry markup that would run if it reached innerHTML."""
    return small_trace(question=" ".join(HOSTILE), thoughts=HOSTILE[:4])


class Page(HTMLParser):
    """The parts of a page the checks need: tags with attributes, and script bodies."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._script: dict[str, str | None] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script = dict(attrs)
            self.scripts.append((self._script, ""))

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            attrs, body = self.scripts[-1]
            self.scripts[-1] = (attrs, body + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None

    def csp(self) -> str:
        [policy] = [a["content"] for t, a in self.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
        return policy or ""


def data_block(html: str) -> str:
    start = html.index('<script type="application/json" id="trace">') + len('<script type="application/json" id="trace">')
    return html[start : html.index("</script>", start)]


def test_hostile_text_stays_inside_the_data_block_and_reads_back_exactly() -> None:
    trace = hostile_trace()
    html = render_html(trace)
    block = data_block(html)
    assert not {"<", ">", "&"} & set(block)  # only \u003c-style escapes inside the block
    assert json.loads(block) == trace  # JSON.parse reads the same trace back
    page = Page(html)
    # The parser sees exactly the page's own five scripts: no payload opened another.
    assert [a.get("type") for a, _ in page.scripts] == ["application/json", None, None, None, None]
    assert not [t for t, _ in page.tags if t == "img"]


def test_embed_json_escapes_the_three_characters_and_rejects_nan() -> None:
    assert embed_json({"x": "</script>&"}) == '{"x":"\\u003c/script\\u003e\\u0026"}'
    with pytest.raises(TraceError):
        embed_json({"value": float("nan")})


def test_csp_forbids_every_fetch_and_allows_exactly_the_pages_scripts() -> None:
    page = Page(render_html(small_trace()))
    directives = dict(d.strip().split(" ", 1) for d in page.csp().split(";"))
    assert directives["default-src"] == "'none'"
    assert "connect-src" not in directives and "unsafe-inline" not in directives["script-src"]
    assert directives["img-src"] == "data:"
    hashes = {f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
              for attrs, body in page.scripts if attrs.get("type") is None}
    assert set(directives["script-src"].split()) == hashes and len(hashes) == 4


def test_page_is_self_contained() -> None:
    html = render_html(small_trace())
    page = Page(html)
    links = [(t, k, v) for t, attrs in page.tags for k, v in attrs.items() if k in ("src", "href", "action", "srcset")]
    assert not [link for link in links if "http:" in (link[2] or "") or "https:" in (link[2] or "")]
    assert not [t for t, a in page.tags if t in ("link", "iframe", "object", "embed") or (t == "script" and "src" in a)]
    assert asset("vendor/d3-hierarchy.min.js") in html  # the vendored layout, inline
    assert "Mike Bostock" in asset("vendor/d3-hierarchy.LICENSE")
    assert len(html) - len(data_block(html)) < 5_000_000


@pytest.mark.parametrize(
    "broken",
    [
        lambda t: t["graph"]["nodes"].append({**t["graph"]["nodes"][1], "id": 99, "key": "orphan", "parent": 42}),
        lambda t: t["graph"]["nodes"].pop(0),
        lambda t: t.pop("events"),
    ],
    ids=["orphan-node", "no-root", "no-events"],
)
def test_a_trace_the_page_cannot_draw_is_a_trace_error(broken: Any) -> None:
    trace = small_trace()
    broken(trace)
    with pytest.raises(TraceError):
        render_html(trace)


# -- the command line ---------------------------------------------------------------------

def deliberate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    script = Path(sys.executable).parent / "deliberate"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "deliberate"]
    clean = {k: v for k, v in os.environ.items() if k != "DELIBERATE_DEBUG"}
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120,
                          env={**clean, **(env or {})}, stdin=subprocess.DEVNULL)


def test_trace_view_writes_the_page_beside_the_trace(tmp_path: Path) -> None:
    write_trace(tmp_path / "t.json", small_trace())
    done = deliberate("trace", "view", str(tmp_path / "t.json"))
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "t.html").read_text(encoding="utf-8")
    assert json.loads(data_block(page))["meta"]["answer"] == "(11 + 11) + (1 + 1) = 24"
    assert "wrote" in done.stderr and done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.html", "t.json"]  # no temporary file left


def test_trace_view_open_hands_the_file_to_the_browser(tmp_path: Path) -> None:
    # webbrowser runs $BROWSER with %s replaced by the URL: a real program that records it.
    opened = tmp_path / "opened.txt"
    recorder = tmp_path / "browser.py"
    recorder.write_text(f"import sys; open({str(opened)!r}, 'w').write(sys.argv[1])\n")
    write_trace(tmp_path / "t.json", small_trace())
    done = deliberate("trace", "view", str(tmp_path / "t.json"), "-o", str(tmp_path / "tree.html"), "--open",
                      env={"BROWSER": f"{sys.executable} {recorder} %s"})
    assert done.returncode == 0, done.stderr
    assert opened.read_text() == (tmp_path / "tree.html").resolve().as_uri()


def _truncated(tmp: Path) -> str:
    text = json.dumps(small_trace())
    return text[: len(text) // 2]


BAD = {
    "not-json": (lambda tmp: "this is not json at all", "not valid JSON"),
    "truncated": (_truncated, "not valid JSON"),
    "newer-format": (lambda tmp: json.dumps({**small_trace(), "format": "deliberate-trace/3"}), "newer format"),
    "other-format": (lambda tmp: json.dumps({**small_trace(), "format": "something-else/1"}), "not a deliberate trace"),
    "not-a-tree": (lambda tmp: json.dumps({**small_trace(), "graph": {"directed": True, "multigraph": False, "graph": {},
                                                                    "nodes": [], "edges": []}}), "no root"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_trace_gives_one_line_and_writes_nothing(tmp_path: Path, kind: str) -> None:
    make, words = BAD[kind]
    (tmp_path / "t.json").write_text(make(tmp_path), encoding="utf-8")
    (tmp_path / "old.html").write_text("the page from before", encoding="utf-8")
    done = deliberate("trace", "view", str(tmp_path / "t.json"), "-o", str(tmp_path / "old.html"))
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith("deliberate: error:") and words in lines[0]
    assert (tmp_path / "old.html").read_text() == "the page from before"  # untouched: the write is atomic
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.html", "t.json"]


def test_missing_trace_missing_folder_and_overwriting_the_trace_are_one_line_errors(tmp_path: Path) -> None:
    done = deliberate("trace", "view", str(tmp_path / "absent.json"))
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "not found" in done.stderr
    write_trace(tmp_path / "t.json", small_trace())
    done = deliberate("trace", "view", str(tmp_path / "t.json"), "-o", str(tmp_path / "no" / "such" / "t.html"))
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "cannot write" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json"]
    done = deliberate("trace", "view", str(tmp_path / "t.json"), "-o", str(tmp_path / "t.json"))
    assert done.returncode == 1 and "refusing to overwrite the trace" in done.stderr
    assert json.loads((tmp_path / "t.json").read_text())["format"] == "deliberate-trace/2"
