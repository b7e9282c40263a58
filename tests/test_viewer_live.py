"""The live view: a real server on 127.0.0.1, read by a real SSE client (httpx) and by
headless Chromium, fed by events from another thread as a search would feed it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import SOLVABLE, think_guarded
from deliberate.errors import TraceError
from deliberate.viewer.live import LiveView
from test_viewer import Page, small_trace
from test_viewer_browser import browser, drawn  # noqa: F401  (browser is a fixture)

pytest.importorskip("sse_starlette", reason="the live view needs the server extra")


def sse(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    """(event name, decoded data) for each message of an event stream; pings are skipped."""
    name, data = "message", []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))


class Client(threading.Thread):
    """Reads ``/events`` until the trace arrives, keeping every message."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.got, self.connected = url, [], threading.Event()
        self.content_type = ""

    def run(self) -> None:
        with httpx.stream("GET", self.url + "events", timeout=20) as response:
            self.content_type = response.headers["content-type"]
            self.connected.set()
            for name, data in sse(response):
                self.got.append((name, data))
                if name == "trace":
                    return


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_events_stream_while_the_search_runs_then_the_trace(tmp_path: Any) -> None:
    trace = small_trace()
    events = trace["events"]
    with LiveView(question=trace["meta"]["question"]) as live:
        assert live.url.startswith("http://127.0.0.1:") and live.port > 0
        first = httpx.get(live.url)
        policy = Page(first.text).csp()
        assert first.status_code == 200 and "connect-src 'self'" in policy and "default-src 'none'" in policy
        assert 'new EventSource("events")' in first.text
        client = Client(live.url)
        client.start()
        assert client.connected.wait(10)
        search = threading.Thread(target=lambda: [live.on_event(e) for e in events[:3]])
        search.start()
        # Streamed as they happen: the first events arrive before the search has finished.
        wait_for(lambda: len(client.got) == 3)
        assert client.content_type.startswith("text/event-stream")
        search = threading.Thread(target=lambda: [live.on_event(e) for e in events[3:]])
        search.start()
        search.join()
        assert not live.wait_delivered(0.05)
        live.finish(trace)
        assert live.wait_delivered(10)
        client.join(10)
        assert [d for n, d in client.got if n == "event"] == events
        assert client.got[-1] == ("trace", json.loads(json.dumps(trace)))
        # A client that comes late gets the whole search at once; the page is the static view now.
        late = Client(live.url)
        late.run()
        assert late.got == client.got
        static = Page(httpx.get(live.url).text).csp()
        assert "connect-src" not in static
        url = live.url
    with pytest.raises(httpx.ConnectError):  # closed: nothing listens on the port any more
        httpx.get(url, timeout=2)


def test_a_scripted_search_streams_every_event(game24_backend: Any) -> None:
    with LiveView(question=SOLVABLE) as live:
        client = Client(live.url)
        client.start()
        assert client.connected.wait(10)
        result = think_guarded(SOLVABLE, game24_backend(), task="game24", strategy="bfs", think=20, seed=1,
                               on_event=live.on_event)
        live.finish(result.trace)
        client.join(20)
    assert [d for n, d in client.got if n == "event"] == json.loads(json.dumps(result.trace["events"]))
    assert client.got[-1][1]["meta"]["answer"] == result.answer


def test_bad_trace_and_nan_are_handled_and_close_ends_open_streams() -> None:
    with LiveView() as live:
        client = Client(live.url)
        client.start()
        assert client.connected.wait(10)
        broken = small_trace()
        broken["graph"]["nodes"] = []
        with pytest.raises(TraceError):
            live.finish(broken)
        live.on_event({"t": 0.0, "type": "expand", "nodes": [0], "children": [[1]]})
        live.on_event({"t": 0.1, "type": "evaluate", "source": "value", "nodes": [1], "values": [float("nan")]})
        wait_for(lambda: len(client.got) == 2)
        assert client.got[1][1]["values"] == [None]  # NaN is not JSON; the page would drop the event
    client.join(10)
    assert not client.is_alive()  # close() ended the stream instead of leaving it hanging


@pytest.mark.browser
def test_the_live_page_grows_in_chromium_then_becomes_the_static_view(browser: Any) -> None:  # noqa: F811
    from deliberate.benchmarks.viewer_speed import requests_made, wait_ready

    trace = small_trace()
    with LiveView(question=trace["meta"]["question"]) as live:
        requests_made(browser)
        browser.get(live.url)
        wait_ready(browser)
        assert drawn(browser) == [0]
        for event in trace["events"][:4]:  # two expands and a prune: nodes 0, 1, 2, 3
            live.on_event(event)
        wait_for(lambda: sorted(drawn(browser)) == [0, 1, 2, 3])
        wait_for(lambda: browser.execute_script(
            "return document.querySelector(\"[data-node='2']\").dataset.status") == "pruned")
        for event in trace["events"][4:]:
            live.on_event(event)
        live.finish(trace)
        wait_for(lambda: browser.execute_script("return document.body.classList.contains('live')") is False)
        assert sorted(drawn(browser)) == [0, 1, 2, 3, 4]
        assert sorted(drawn(browser, "[data-on-path='1']")) == [0, 1, 3, 4]
        assert browser.execute_script("return window.__violations") == []
        assert set(requests_made(browser)) == {live.url, live.url + "events"}


@pytest.mark.model
def test_solve_view_streams_node_events_before_the_solve_ends(tmp_path) -> None:
    import re
    import subprocess

    from helpers_real import THREADS, cli_command, cli_env

    process = subprocess.Popen(
        cli_command("solve", "Use 1 1 5 13 to make 24.", "--think", "6s", "--view", "--threads", str(THREADS),
                    "--trace", str(tmp_path / "t.json")),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )
    try:
        line = process.stderr.readline()  # printed before the model loads
        found = re.search(r"live view: (http://127\.0\.0\.1:\d+/)", line)
        assert found, line
        got: list[tuple[str, Any, bool]] = []  # (name, data, was the trace file written yet)
        with httpx.stream("GET", found[1] + "events", timeout=60) as response:
            for name, data in sse(response):
                got.append((name, data, (tmp_path / "t.json").exists()))
                if name == "trace":
                    break
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode in (0, 3)
    expands = [(data, written) for name, data, written in got if name == "event" and data["type"] == "expand"]
    assert expands, "no node event came"
    # Live, not replayed at the end: the solve writes its trace file when the search is over,
    # and the first thoughts reached the page before that. An order, not a timing, so no
    # machine is too fast or too slow for it.
    assert not expands[0][1], "the first node event came only after the solve had ended"
    trace = next(data for name, data, _ in got if name == "trace")
    assert trace["meta"]["question"] == "Use 1 1 5 13 to make 24."
    assert [e for n, e, _ in got if n == "event"] == trace["events"]
    assert json.loads((tmp_path / "t.json").read_text())["events"] == trace["events"]
