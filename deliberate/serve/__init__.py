"""``deliberate serve``: an OpenAI-compatible HTTP endpoint whose model thinks.

    from deliberate.serve import ServeConfig, create_app
    app = create_app(backend, ServeConfig(max_concurrent=4))     # a FastAPI app

- ``requests``  reads and checks an OpenAI request body (errors name the field)
- ``runner``    runs one search on its own thread, with reasoning lines and a token cap
- ``replies``   the OpenAI-shaped replies, chunks and usage
- ``stream``    the streamed reply over SSE
- ``store``     the last N traces, with feeds that live streams follow
- ``pages``     the index page and the viewer page of each search
- ``app``       the routes, the API key guard and the limits

Needs the ``server`` extra (FastAPI, uvicorn, sse-starlette).
"""

from deliberate.serve.app import ServeConfig, create_app
from deliberate.serve.requests import Limits

__all__ = ["Limits", "ServeConfig", "create_app"]
