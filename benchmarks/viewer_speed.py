"""``deliberate bench view``: how fast the static viewer draws a large trace.

    deliberate bench view --nodes 5000                        # render time in headless Chromium
    deliberate bench view --trace T.json --screenshot docs/viewer.png

The page sets ``data-render-ms`` (milliseconds since navigation began, measured with
``performance.now()``) once the tree is laid out, then ``data-ready``. The benchmark
loads the page in a fresh headless Chromium, waits for ``data-ready``, and also times
the first painted frame after it. Chromium runs through Selenium with the system's
chromedriver, so nothing is downloaded.
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deliberate.errors import UsageError
from deliberate.graph import ThoughtGraph
from deliberate.trace import build_trace

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Flags that keep a headless Chromium quiet and offline (no updates, sync or field trials).
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
)
# After data-ready: two animation frames, so the tree has been painted once.
FIRST_FRAME = "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now())));"


def synthetic_trace(nodes: int = 5000, *, seed: int = 0, width: int = 6) -> dict[str, Any]:
    """A breadth-first search tree of exactly ``nodes`` nodes with its events.

    Thoughts are Game-of-24-like steps; each child gets a label-probability value and
    the weakest are pruned, so every status and event type the viewer draws occurs.
    """
    rng = random.Random(seed)
    graph = ThoughtGraph("Use the numbers 4 5 6 10 and + - * / to make 24.", {"left": [4, 5, 6, 10]}, "root", seed)
    events: list[dict[str, Any]] = []
    frontier, t = [0], 0.0
    while len(graph) < nodes and frontier:
        parent = frontier.pop(0)
        made = []
        for _ in range(min(rng.randint(1, width), nodes - len(graph))):
            t += 0.002
            a, b = rng.randint(1, 24), rng.randint(1, 24)
            child, _ = graph.add_child(
                parent, f"{a} + {b} = {a + b} (left: {a + b} {rng.randint(1, 9)})", {"left": [a + b]},
                f"n{len(graph)}", seed=rng.randrange(2**31), created=round(t, 4), tokens=rng.randint(6, 30),
            )
            made.append(child)
        graph.set_status(parent, "expanded")
        events.append({"t": round(t, 4), "type": "expand", "nodes": [parent], "children": [made], "mode": "sample",
                       "tokens": sum(graph[c]["tokens"] for c in made)})
        values = []
        for child in made:
            weights = [rng.random() for _ in range(3)]
            probs = {label: w / sum(weights) for label, w in zip(("sure", "likely", "impossible"), weights)}
            graph.add_value(child, probs["sure"] + 0.5 * probs["likely"], "value",
                            {k: round(p, 4) for k, p in probs.items()}, t)
            values.append(round(graph.value(child), 4))
        events.append({"t": round(t, 4), "type": "evaluate", "source": "value", "nodes": made, "values": values})
        for child in made:
            # Keep at least the best child, so the search never runs dry before ``nodes``.
            if graph.value(child) < 0.35 and child != max(made, key=graph.value):
                graph.set_status(child, "pruned")
                events.append({"t": round(t, 4), "type": "prune", "node": child, "reason": "value below 0.35"})
            else:
                frontier.append(child)
    answer = frontier[-1] if frontier else len(graph) - 1
    graph.set_status(answer, "solved")
    graph.set_answer(answer, "(10 - 4) * (5 - 6 + 5)")
    graph.add_value(answer, 1.0, "verifier", None, t)
    events.append({"t": round(t, 4), "type": "verify", "node": answer, "ok": True, "answer": graph[answer]["answer"]})
    events.append({"t": round(t, 4), "type": "answer", "node": answer, "answer": graph[answer]["answer"], "reason": "solved"})
    stats = {"nodes": len(graph), "thinking_seconds": round(t, 3), "load_seconds": 0.0, "stop_reason": "solved"}
    meta = {
        "question": graph.question, "task": "game24", "strategy": "bfs", "options": {"breadth": 5, "width": width},
        "model": "synthetic", "model_sha256": None, "seed": seed, "budget": {"think": 60.0, "max_nodes": nodes},
        "stop_reason": "solved", "answer": graph[answer]["answer"], "answer_node": answer, "stats": stats,
    }
    return build_trace(meta, events, graph)


@contextmanager
def chromium(*, width: int = 1600, height: int = 1000, log_network: bool = False) -> Iterator[Any]:
    """A fresh headless Chromium under Selenium, with its own throwaway profile.

    With ``log_network`` the DevTools performance log records every network event, so a
    caller can prove that a page made no request (``requests_made``).
    """
    if not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():
        raise UsageError(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise UsageError("needs selenium: pip install 'deliberate[test]' (or pip install selenium)") from None
    profile = tempfile.mkdtemp(prefix="deliberate-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    if log_network:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    # An explicit chromedriver path keeps Selenium Manager from looking for one online.
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.set_script_timeout(60)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_ready(driver: Any, timeout: float = 60.0) -> None:
    """Block until the viewer page has set ``data-ready`` (or raise, with the page's error)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if driver.execute_script("return document.documentElement.dataset.ready || null"):
            return
        time.sleep(0.02)
    raise TimeoutError(f"the viewer page set no data-ready within {timeout:.0f} s")


# Chromium's own pages (its new-tab page, loaded by the first tab) log their resources
# too, whenever they get to it, some as data: URLs: those requests, by URL or by the
# document that made them, are the browser's, never a page's.
BROWSER_INTERNAL = ("chrome://", "chrome-untrusted://", "chrome-search://", "devtools://")


def requests_made(driver: Any) -> list[str]:
    """URLs of every request the browser logged for pages (the performance log drains
    on read); Chromium's requests for its own pages are left out."""
    import json

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url, document = message["params"]["request"]["url"], message["params"].get("documentURL", "")
            if not url.startswith(BROWSER_INTERNAL) and not document.startswith(BROWSER_INTERNAL):
                urls.append(url)
    return urls


def measure(trace: dict[str, Any], *, repeat: int = 3, screenshot: Path | None = None) -> dict[str, Any]:
    """Median render time of ``trace``'s static page over ``repeat`` fresh page loads."""
    from deliberate.viewer import render_html

    html = render_html(trace)
    folder = Path(tempfile.mkdtemp(prefix="deliberate-view-"))
    page = folder / "trace.html"
    page.write_text(html, encoding="utf-8")
    ready, painted, wall = [], [], []
    try:
        with chromium() as driver:
            for _ in range(repeat):
                driver.get("about:blank")
                start = time.perf_counter()
                driver.get(page.as_uri())
                wait_ready(driver)
                ready.append(float(driver.execute_script("return document.documentElement.dataset.renderMs")))
                painted.append(float(driver.execute_async_script(FIRST_FRAME)))
                wall.append((time.perf_counter() - start) * 1000)
            count = int(driver.execute_script("return document.querySelectorAll('[data-node]').length"))
            if screenshot is not None:
                # Show one node's details too: the answer, else the best-valued thought.
                driver.execute_script("Viewer.focus(arguments[0])", _showcase(trace))
                driver.save_screenshot(str(screenshot))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "nodes": len(trace["graph"]["nodes"]), "drawn": count, "html_bytes": len(html.encode()), "repeat": repeat,
        "ready_ms": statistics.median(ready), "first_frame_ms": statistics.median(painted),
        "wall_ms": statistics.median(wall),
    }


def _showcase(trace: dict[str, Any]) -> int:
    answer = trace["meta"].get("answer_node")
    if isinstance(answer, int):
        return answer
    valued = [n for n in trace["graph"]["nodes"] if n["id"] != 0 and isinstance(n.get("value"), (int, float))]
    return max(valued, key=lambda n: (n["value"], -n["id"]))["id"] if valued else 0


def report(result: dict[str, Any]) -> str:
    return (
        f"viewer: {result['nodes']} nodes ({result['drawn']} drawn), page {result['html_bytes'] / 1e6:.2f} MB; "
        f"median of {result['repeat']}: laid out {result['ready_ms']:.0f} ms, first frame {result['first_frame_ms']:.0f} ms "
        f"after navigation, load as Selenium saw it {result['wall_ms']:.0f} ms"
    )
