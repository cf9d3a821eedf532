"""Answers one corpus entry through its public entry point: (what came back, the message)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import ModelFileError
from engine.validation import validate_text

CORPUS = Path(__file__).with_name("corpus")


def answer(entry: dict[str, Any]) -> tuple[list[str], str]:
    """The codes (issue codes, or the exception type) and the joined messages for one entry."""
    path = CORPUS / entry["file"]
    if entry["entry"] == "model":
        from engine.agents.model_files import load_model

        try:
            load_model(str(path))
        except ModelFileError as exc:
            return ["ModelFileError"], str(exc)
        return ["loaded"], ""
    try:
        _, issues = validate_text(path)
    except UnicodeDecodeError as exc:
        return ["UnicodeDecodeError"], str(exc)
    return [i.code for i in issues], "\n".join(f"{i.message} (hint: {i.hint})" for i in issues)
