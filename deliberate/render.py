"""``deliberate trace show``: a trace as a terminal tree, or exported as GraphML or JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import networkx as nx

from deliberate.errors import TraceError, UsageError
from deliberate.graph import ROOT, ThoughtGraph
from deliberate.trace import answer_path, load_graph, read_trace

STYLE = {
    "solved": "bold green",
    "terminal": "cyan",
    "failed": "red",
    "pruned": "dim strike",
    "expanded": "",
    "open": "dim",
}


def show(file: Path, *, format: str = "tree", out: Path | None = None, max_depth: int | None = None) -> None:
    trace = read_trace(file)
    graph = load_graph(trace)
    if format == "tree":
        _print_tree(trace, graph, max_depth)
    elif format == "graphml":
        _write(out, "\n".join(nx.generate_graphml(graphml_ready(graph))) + "\n")
    elif format == "json":
        _write(out, json.dumps(trace, ensure_ascii=False, indent=1) + "\n")
    else:
        raise UsageError(f"unknown format {format!r} (formats: tree, graphml, json)")


def graphml_ready(graph: ThoughtGraph) -> nx.DiGraph:
    """A copy whose attributes GraphML can hold: scalars stay, the rest become JSON text."""
    copy = nx.DiGraph()
    copy.graph["question"] = graph.question
    for node, attrs in graph.g.nodes(data=True):
        copy.add_node(node, **{key: _scalar(value) for key, value in attrs.items()})
    copy.add_edges_from(graph.g.edges)
    return copy


def _scalar(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, ensure_ascii=False)


def _write(out: Path | None, text: str) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"cannot write {out}: {exc.strerror or exc}") from exc


def _print_tree(trace: dict[str, Any], graph: ThoughtGraph, max_depth: int | None) -> None:
    from rich.console import Console
    from rich.text import Text
    from rich.tree import Tree

    meta = trace["meta"]
    on_path = set(answer_path(trace, graph))
    title = Text(f"{meta['question']}", style="bold")
    title.append(
        f"   [{meta['task']} · {meta['strategy']} · {meta['stats']['thinking_seconds']:.1f}s · "
        f"{len(graph)} nodes · stop: {meta['stop_reason']}]",
        style="dim",
    )
    tree = Tree(title)
    stack = [(ROOT, tree)]
    while stack:
        node, branch = stack.pop()
        children = sorted(graph.children(node), key=lambda c: (c not in on_path, -(graph.value(c) or 0.0), c))
        # Add the branches in order (the answer path first), then push them reversed so
        # the walk also takes the answer path first.
        added = [
            (child, branch.add(_label(graph, child, child in on_path)))
            for child in children
            if max_depth is None or graph.depth(child) <= max_depth
        ]
        stack.extend(reversed(added))
    console = Console()
    console.print(tree)
    answer = meta.get("answer")
    console.print(Text(f"answer: {answer}" if answer else "no answer", style="bold green" if answer else "yellow"))


def _label(graph: ThoughtGraph, node: int, on_path: bool) -> Any:
    from rich.text import Text

    attrs = graph[node]
    value = attrs["value"]
    text = Text(attrs["thought"] or "(root)", style="bold green" if on_path else STYLE.get(attrs["status"], ""))
    details = [attrs["status"]]
    if value is not None:
        sources = sorted({v["source"] for v in attrs["values"]})
        details.append(f"{value:.2f} {'/'.join(sources)}")
    if attrs["aliases"]:
        details.append(f"merged ×{len(attrs['aliases'])}")
    text.append(f"  #{node} " + " · ".join(details), style="dim")
    return text
