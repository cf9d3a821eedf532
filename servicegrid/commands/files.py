"""Reading and rewriting a workflow file for the commands that edit one in place (pin, components,
upgrade): an unreadable file is one clear line, a rewrite is atomic and keeps the file's format."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from engine.errors import WorkflowFileError
from engine.workflow import Workflow, dump_workflow, load_workflow


def read_workflow(command: str, path: Path) -> Workflow | int:
    """The workflow in ``path``, or 1 after saying why it cannot be read (as ``servicegrid COMMAND``)."""
    try:
        return load_workflow(path)
    except WorkflowFileError as exc:
        print(f"servicegrid {command}: {path}: {exc}" + (f"\n  hint: {exc.hint}" if exc.hint else ""),
              file=sys.stderr)
        return 1


def write_workflow(path: Path, workflow: Workflow) -> None:
    """Write ``workflow`` over ``path`` atomically, in the file's own format (YAML or JSON)."""
    fmt = "yaml" if path.suffix.lower() in (".yaml", ".yml") else "json"
    text = dump_workflow(workflow, fmt=fmt)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
