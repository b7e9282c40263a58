"""A real ``python -m llama_cpp.server`` on 127.0.0.1, for tests that need an HTTP model server.

    with LlamaServer() as server:          # the embedded model, a free port
        backend = ServerBackend(server.url)

``kill()`` and ``restart()`` let a test take the server away and bring it back on the
same port. The server's output goes to a log file, which a failed start reports.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from deliberate.models import resolve_model

HOST = "127.0.0.1"  # loopback only: the test server must not be reachable from elsewhere


class ServerStartError(RuntimeError):
    """The server died or did not answer ``/v1/models`` in time."""


def free_port() -> int:
    """A port nobody listens on now (the OS picks it; another process could still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """One llama_cpp.server subprocess serving a GGUF model (the embedded one by default)."""

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        n_ctx: int = 2048,
        n_threads: int = 2,
        startup_timeout: float = 90.0,
    ) -> None:
        self.model = Path(model) if model else resolve_model()
        self.port = port or free_port()
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL, as users pass it to ``--model``."""
        return f"http://{HOST}:{self.port}/v1"

    def start(self) -> LlamaServer:
        """Start the server and wait until ``/v1/models`` answers."""
        if self.process is not None and self.process.poll() is None:
            return self
        command = [
            # llama_cpp.server, loading its weights as deliberate does (AMX-safe).
            sys.executable, "-c", "from deliberate.backends.llama_model import run_llama_cpp_server as r; r()",
            "--model", str(self.model),
            "--host", HOST,
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads),
            "--n_threads_batch", str(self.n_threads),
            "--logits_all", "true",  # completions with logprobs need every position's logits
            "--verbose", "false",
        ]  # fmt: skip
        # __main__ lets $HOST and $PORT override --host and --port, and the settings read
        # $API_KEY and $CONFIG_FILE: none of them may leak in from the test environment.
        leaks = {"HOST", "PORT", "API_KEY", "CONFIG_FILE"}
        env = {key: value for key, value in os.environ.items() if key.upper() not in leaks}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        try:
            self._wait_ready(self.process)
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if the server has not exited after ``grace`` seconds."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def kill(self) -> None:
        """SIGKILL at once, as a crash would."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def restart(self) -> LlamaServer:
        """Stop (if running) and start again on the same port."""
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                raise ServerStartError(f"llama_cpp.server exited with code {code}:\n{self.log()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/models", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.25)
        raise ServerStartError(
            f"llama_cpp.server did not answer within {self.startup_timeout:g}s:\n{self.log()[-4000:]}"
        )
