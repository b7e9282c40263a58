"""How records name the model, whichever way it was given."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from deliberate.backends.scripted import ScriptedBackend
from deliberate.models import model_file, model_label


def test_a_server_is_named_by_its_url_and_has_no_file() -> None:
    backend = SimpleNamespace(model=SimpleNamespace(path=Path("/models/other.gguf")))
    url = "http://127.0.0.1:8080/v1"
    assert model_label(url, backend) == url
    assert model_file(url, backend) is None


def test_a_gguf_is_named_by_its_file(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    backend = SimpleNamespace(model=SimpleNamespace(path=path))
    assert model_label(str(path), backend) == "tiny.gguf"
    assert model_file(None, backend) == path


def test_a_backend_without_a_file_names_itself() -> None:
    backend = ScriptedBackend([])
    assert model_file(backend, backend) is None
    assert model_label(backend, backend) == backend.describe()["model"]
