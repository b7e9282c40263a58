"""The core imports fast: no llama.cpp, no numpy and no strategy module at import time.

Each check runs in a fresh interpreter, since this test process has imported
everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

CORE = "import deliberate, deliberate.api, deliberate.search, deliberate.graph, deliberate.tasks, deliberate.cli"


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(
        m for m in modules
        if m.split(".")[0] in ("llama_cpp", "numpy") or m.startswith("deliberate.strategies.")
    )


def test_importing_the_core_loads_no_model_library_and_no_strategy():
    assert heavy(loaded_after(CORE)) == []


def test_listing_names_reads_metadata_only():
    code = (
        f"{CORE}\nfrom deliberate import strategies, plugins\n"
        "strategies.names(); deliberate.tasks.names(); plugins.BACKENDS.names(); plugins.DATASETS.names()"
    )
    assert heavy(loaded_after(code)) == []


def test_using_a_strategy_imports_that_strategy_alone():
    modules = loaded_after(f"{CORE}\nfrom deliberate import strategies\nstrategies.make('bfs')")
    assert heavy(modules) == ["deliberate.strategies.base", "deliberate.strategies.bfs"]
