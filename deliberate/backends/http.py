"""The server backend's HTTP layer: posting with retries under the deadline, turning
httpx's errors into deliberate's at this one boundary, and finding the server's base URL.

``ServerBackend`` (``deliberate.backends.server``) maps the search's requests onto the
OpenAI completions protocol; everything about the wire is here. A retry is made only
for a transient failure (``_retryable``), never sleeps into the deadline, and a
request cut off by the deadline raises ``_Cutoff`` for the caller to turn into a
"deadline" sample.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import tenacity

from deliberate.clock import Deadline
from deliberate.errors import BackendError, ContextOverflowError, ServerError

PROBE_TIMEOUT = 5.0  # seconds for GET /models at construction: fail fast on a wrong URL
_CONTEXT = re.compile(r"context (length|size|window)", re.IGNORECASE)


class _Cutoff(Exception):
    """The deadline ended a request; callers turn it into "deadline" samples or no scores."""


class _StatusError(ServerError):
    """The server answered with an HTTP error status (after any retries)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code == 429 or exc.response.status_code >= 500
    return isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError))


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def _reason(exc: BaseException) -> str:
    """The OS's words for a connection failure ("connection refused"), else httpx's."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    return _one_line(str(exc)) or type(exc).__name__


def _error_message(response: httpx.Response) -> str:
    """The server's own error text, from whichever shape it uses."""
    try:
        body = response.json()
    except ValueError:
        return _one_line(response.text) or response.reason_phrase
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail") or error
    return _one_line(str(error))


class HttpLayer:
    """The HTTP part of ``ServerBackend``: it uses the backend's ``_client``,
    ``base_url``, ``timeout``, ``max_retries`` and ``_sleep``."""

    def _post(
        self, url: str, body: dict[str, Any], deadline: Deadline, retries: int | None = None
    ) -> dict[str, Any]:
        """POST with retries; the one place where HTTP errors become deliberate errors."""

        def attempt() -> httpx.Response:
            remaining = deadline.remaining()
            if remaining <= 0:
                raise _Cutoff
            response = self._client.post(url, json=body, timeout=min(self.timeout, remaining))
            response.raise_for_status()
            return response

        def no_time_left(state: tenacity.RetryCallState) -> bool:
            # Never sleep into the deadline: stop when the next back-off would reach it.
            return deadline.remaining() <= state.upcoming_sleep

        attempts = retries or self.max_retries
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_retryable),
            wait=tenacity.wait_random_exponential(multiplier=0.25, max=4.0),
            stop=tenacity.stop_any(tenacity.stop_after_attempt(attempts), no_time_left),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            response = retrying(attempt)
            reply = response.json()
        except httpx.HTTPError as exc:
            # A retryable failure that ends early was ended by the deadline, not by attempts.
            gave_up_early = retrying.statistics.get("attempt_number", 0) < attempts
            if _retryable(exc) and (deadline.expired() or gave_up_early):
                raise _Cutoff from exc
            raise self._translate(exc, url) from exc
        except ValueError as exc:
            raise ServerError(f"the model server at {url} sent a reply that is not JSON") from exc
        if not isinstance(reply, dict):
            raise ServerError(f"the model server at {url} sent an unexpected reply: {_one_line(str(reply))}")
        return reply

    def _translate(self, exc: httpx.HTTPError, url: str) -> BackendError:
        if isinstance(exc, httpx.HTTPStatusError):
            status, message = exc.response.status_code, _error_message(exc.response)
            if status == 400 and _CONTEXT.search(message):
                return ContextOverflowError(message)
            return _StatusError(f"the model server at {url} answered {status}: {message}", status)
        if isinstance(exc, httpx.ConnectError):
            return ServerError(f"cannot reach the model server at {self.base_url}: {_reason(exc)}")
        if isinstance(exc, httpx.TimeoutException):
            return ServerError(f"the model server at {url} did not answer within {self.timeout:g}s")
        return ServerError(f"request to the model server at {url} failed: {_reason(exc)}")

    def _probe(self) -> str:
        """The id of the server's first model; also checks that the server is there at all."""
        response = self._get_models(self.base_url)
        if response.status_code == 404 and not self.base_url.endswith("/v1"):
            # "http://host:port" as printed by llama-server: the API lives under /v1.
            self.base_url += "/v1"
            response = self._get_models(self.base_url)
        url = f"{self.base_url}/models"
        try:
            response.raise_for_status()
            models = [m["id"] for m in response.json().get("data") or []]
        except httpx.HTTPStatusError as exc:
            raise self._translate(exc, url) from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ServerError(f"{url} is not an OpenAI-compatible model list") from exc
        if not models:
            raise ServerError(f"the model server at {self.base_url} lists no models")
        return str(models[0])

    def _get_models(self, base: str) -> httpx.Response:
        try:
            return self._client.get(f"{base}/models", timeout=PROBE_TIMEOUT)
        except httpx.HTTPError as exc:
            raise self._translate(exc, f"{base}/models") from exc

    # -- helpers -----------------------------------------------------------------
