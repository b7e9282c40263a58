"""The static viewer page in a real headless Chromium (Selenium + the system chromedriver).

Each page is loaded from a file written by ``deliberate trace view``. The checks read
the rendered DOM, and the DevTools performance log shows every request the browser
made, which must be the page's own file alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from deliberate.trace import answer_path, load_graph, read_trace, write_trace
from helpers_real import THREADS
from test_viewer import HOSTILE, deliberate, hostile_trace, small_trace

pytestmark = pytest.mark.browser

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# Installed before any page script runs, and not subject to the page's CSP: it records
# every CSP violation, so a blocked attempt to load something fails the test too.
WATCH = "window.__violations = []; document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("needs /usr/bin/chromium and /usr/bin/chromedriver: apt-get install chromium chromium-driver")
    pytest.importorskip("selenium", reason="needs selenium (pip install 'deliberate[test]')")
    from deliberate.benchmarks.viewer_speed import chromium

    with chromium(log_network=True) as driver:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH})
        yield driver


def open_page(driver: Any, trace: dict[str, Any], folder: Path) -> str:
    """Write ``trace``, make its page with the real CLI, load it, and check it fetched nothing."""
    from deliberate.benchmarks.viewer_speed import requests_made, wait_ready

    write_trace(folder / "trace.json", trace)
    done = deliberate("trace", "view", str(folder / "trace.json"), "-o", str(folder / "trace.html"))
    assert done.returncode == 0, done.stderr
    url = (folder / "trace.html").resolve().as_uri()
    requests_made(driver)  # drain what earlier pages logged
    driver.get(url)
    wait_ready(driver)
    assert driver.execute_script("return document.documentElement.dataset.error || null") is None
    assert requests_made(driver) == [url]  # the document itself, and nothing else
    assert driver.execute_script("return window.__violations") == []
    return url


def drawn(driver: Any, selector: str = "[data-node]") -> list[int]:
    return driver.execute_script("return [...document.querySelectorAll(arguments[0])].map(e => +e.dataset.node)", selector)


def check_tree(driver: Any, trace: dict[str, Any]) -> None:
    """Every node of the trace is drawn once, and exactly the answer path is marked."""
    graph = load_graph(trace)
    assert sorted(drawn(driver)) == sorted(graph.g.nodes)
    assert driver.execute_script("return document.body.dataset.nodeCount") == str(len(graph))
    assert sorted(drawn(driver, "[data-on-path='1']")) == sorted(answer_path(trace, graph))


def seek(driver: Any, k: int) -> None:
    driver.execute_script("const s = document.getElementById('step'); s.value = arguments[0];"
                          "s.dispatchEvent(new Event('input'));", k)


def test_small_trace_replays_and_shows_node_details(browser: Any, tmp_path: Path) -> None:
    trace = small_trace()
    open_page(browser, trace, tmp_path)
    check_tree(browser, trace)
    status = lambda: browser.execute_script(  # noqa: E731
        "return Object.fromEntries([...document.querySelectorAll('[data-node]')]"
        ".filter(e => e.dataset.hidden !== '1').map(e => [e.dataset.node, e.dataset.status]))")
    seek(browser, 0)
    assert status() == {"0": "open"}
    seek(browser, 1)  # the first expand: two children, both open
    assert status() == {"0": "expanded", "1": "open", "2": "open"}
    seek(browser, 3)  # after the prune
    assert status()["2"] == "pruned"
    seek(browser, len(trace["events"]))
    assert status() == {str(n["id"]): n["status"] for n in trace["graph"]["nodes"]}
    # A real click on the solved node shows its thought, values with their source and labels, and seed.
    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR, "[data-node='4']").click()
    panel = browser.find_element(By.ID, "details").text
    assert "22 + 2 = 24 (left: 24)" in panel and "verifier" in panel and "seed" in panel
    browser.find_element(By.CSS_SELECTOR, "[data-node='1']").click()
    panel = browser.find_element(By.ID, "details").text
    assert "sure 0.5 · likely 0.4 · impossible 0.1" in panel and "tokens" in panel
    # Folding the first child hides its two descendants; unfolding brings them back.
    browser.find_element(By.CSS_SELECTOR, "[data-toggle='1']").click()
    assert sorted(drawn(browser)) == [0, 1, 2]
    browser.find_element(By.CSS_SELECTOR, "[data-toggle='1']").click()
    assert sorted(drawn(browser)) == [0, 1, 2, 3, 4]
    header = browser.find_element(By.ID, "head").text
    assert "bfs" in header and "breadth=2" in header and "gemma-3-270m.gguf" in header and "solved" in header
    browser.save_screenshot(str(tmp_path / "small.png"))


def test_hostile_text_is_shown_as_text_and_never_runs(browser: Any, tmp_path: Path) -> None:
    trace = hostile_trace()
    open_page(browser, trace, tmp_path)
    check_tree(browser, trace)
    assert browser.execute_script("return window.__pwned === undefined")
    question = trace["meta"]["question"]
    assert browser.title == "deliberate · " + (question if len(question) <= 80 else question[:79] + "…")
    assert browser.execute_script("return document.querySelectorAll('img, iframe').length") == 0
    assert browser.execute_script("return document.scripts.length") == 5  # the page's own, no more
    assert browser.execute_script("return document.querySelector('#head h1').textContent") == question
    for node, thought in zip((1, 3, 4, 2), HOSTILE):  # small_trace's node order for thoughts[0..3]
        browser.execute_script("document.querySelector(`[data-node='${arguments[0]}']`)"
                               ".dispatchEvent(new MouseEvent('click', {bubbles: true}))", node)
        assert browser.execute_script("return document.querySelector('#details pre').textContent") == thought
    assert browser.execute_script("return window.__pwned === undefined")
    browser.save_screenshot(str(tmp_path / "hostile.png"))


def test_five_thousand_nodes_are_all_drawn(browser: Any, tmp_path: Path) -> None:
    from deliberate.benchmarks.viewer_speed import synthetic_trace

    trace = synthetic_trace(5000)
    open_page(browser, trace, tmp_path)
    check_tree(browser, trace)
    assert float(browser.execute_script("return document.documentElement.dataset.renderMs")) > 0
    seek(browser, 0)
    assert browser.execute_script("return document.querySelectorAll('[data-node]:not([data-hidden=\"1\"])').length") == 1
    seek(browser, len(trace["events"]) // 2)
    half = browser.execute_script("return document.querySelectorAll('[data-node]:not([data-hidden=\"1\"])').length")
    assert 1 < half < 5000
    seek(browser, len(trace["events"]))
    # Fold the root's first child: its whole subtree leaves the drawing.
    graph = load_graph(trace)
    first = graph.children(0)[0]
    below = len(nx.descendants(graph.g, first))
    browser.execute_script("document.querySelector(`[data-toggle='${arguments[0]}']`)"
                           ".dispatchEvent(new MouseEvent('click', {bubbles: true}))", first)
    assert len(drawn(browser)) == 5000 - below
    browser.execute_script("document.getElementById('expand-all').click()")
    assert len(drawn(browser)) == 5000
    browser.save_screenshot(str(tmp_path / "5000.png"))


@pytest.mark.model
def test_a_real_search_trace(browser: Any, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "deliberate"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "deliberate"]
    solved = subprocess.run(
        [*command, "solve", "Use the numbers 1 1 11 11 and + - * / to make 24.", "--think", "5s",
         "--threads", str(THREADS), "--trace", str(tmp_path / "T.json")], capture_output=True, text=True, timeout=300)
    assert solved.returncode in (0, 3), solved.stderr  # 3: no answer within 5 s, still a trace
    trace = read_trace(tmp_path / "T.json")
    open_page(browser, trace, tmp_path)
    check_tree(browser, trace)
    header = browser.execute_script("return document.getElementById('head').textContent")
    assert trace["meta"]["question"] in header and trace["meta"]["strategy"] in header
    assert trace["meta"]["model"] in header
    if trace["meta"]["answer"] is not None:
        assert trace["meta"]["answer"] in header
        assert len(drawn(browser, "[data-on-path='1']")) >= 2
    label = browser.execute_script("return document.getElementById('step-label').textContent")
    assert label.startswith(f"event {len(trace['events'])}/{len(trace['events'])}")
    browser.save_screenshot(str(tmp_path / "real.png"))
    assert (tmp_path / "real.png").stat().st_size > 10_000
    json.loads((tmp_path / "T.json").read_text())  # the solve's trace is intact beside its page
