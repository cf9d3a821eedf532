"""The tests that bench/gpu/check.sh runs on a lent GPU machine run there without streamlit (its
PyTorch image lacks it, and a lease is too short to find that out): every ``ui`` module they
import, at the top or inside a test, must import with streamlit missing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("tests/agents", "tests/engine", "tests/executor", "tests/planner", "tests/test_original_api.py")
_IMPORT = re.compile(r"^\s*(?:from\s+((?:ui|pages|streamlit)(?:\.\w+)*)\s+import|import\s+((?:ui|pages|streamlit)(?:\.\w+)*))",
                     re.MULTILINE)


def _imported() -> dict[str, str]:
    """Each ui / pages / streamlit module the checked tests import, and one file that does."""
    found: dict[str, str] = {}
    for place in CHECKED:
        path = ROOT / place
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            for match in _IMPORT.finditer(file.read_text(encoding="utf-8")):
                found.setdefault(match.group(1) or match.group(2), str(file.relative_to(ROOT)))
    return found


def test_the_gpu_checks_tests_need_no_streamlit() -> None:
    modules = _imported()
    assert "streamlit" not in modules, modules["streamlit"]
    code = ("import importlib, sys; sys.modules['streamlit'] = None\n"
            f"for name in {sorted(modules)!r}:\n"
            "    try:\n        importlib.import_module(name)\n"
            "    except ImportError as exc:\n        print(name, exc)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    failed = {line.split()[0]: modules[line.split()[0]] for line in out.stdout.splitlines() if line.strip()}
    assert not failed, f"these need streamlit (move the test to tests/ui): {failed}"
