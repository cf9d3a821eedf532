"""The engine's exceptions: one root, a few subclasses named by phase.

Each subclass is also the builtin it resembles, so callers that know nothing of ServiceGrid
can still catch it (`except ValueError`). Messages say what went wrong, where, and how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


class ServiceGridError(Exception):
    """Root of every error the engine raises on purpose."""


class WorkflowFileError(ServiceGridError, ValueError):
    """A workflow file cannot be parsed or does not follow the schema.

    Attributes:
        location: where in the file (``line 3, column 5`` or ``nodes[1].params``), if known.
        hint: how to fix it.
    """

    def __init__(self, message: str, *, location: str | None = None, hint: str = "") -> None:
        self.location = location
        self.hint = hint
        full = f"{message} (at {location})" if location else message
        super().__init__(full)


class WorkflowInvalidError(ServiceGridError, ValueError):
    """A workflow was submitted although validation found errors."""

    def __init__(self, issues: list) -> None:  # list[Issue]; untyped to avoid a cycle
        self.issues = issues
        errors = [i for i in issues if i.severity == "error"]
        lines = [f"  - [{i.code}] {i.message}" + (f"\n      hint: {i.hint}" if i.hint else "") for i in errors[:10]]
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        super().__init__(
            f"the workflow has {len(errors)} error(s); fix them before running:\n"
            + "\n".join(lines)
            + more
        )


class AgentNotFoundError(ServiceGridError, LookupError):
    """No agent of that name is registered."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.suggestions = suggest(name, known)
        hint = f" Did you mean {_quote_list(self.suggestions)}?" if self.suggestions else ""
        super().__init__(
            f"no agent named {name!r} is registered.{hint} "
            "Run `servicegrid agents` to list the registered agents."
        )


class CapacityError(ServiceGridError, ValueError):
    """A capacity or resource specification is malformed or cannot hold a demand."""


class AgentExecutionError(ServiceGridError, RuntimeError):
    """An agent raised while running; wraps the original as ``__cause__``."""

    def __init__(self, node_id: str, agent_name: str, original: BaseException) -> None:
        self.node_id = node_id
        self.agent_name = agent_name
        self.original = original
        super().__init__(
            f"node {node_id!r} (agent {agent_name!r}) failed: "
            f"{type(original).__name__}: {original}"
        )


class AgentTimeoutError(ServiceGridError, TimeoutError):
    """A node ran past its timeout."""


class RunCancelledError(ServiceGridError, RuntimeError):
    """Raised inside an agent (by its run context) when its node or run was cancelled."""


class ModelFileError(ServiceGridError, ValueError):
    """A user-supplied model file is too large, of the wrong type, or corrupt."""


class DataPathError(ServiceGridError, ValueError):
    """A node names a file outside the folders this server lets nodes read
    (``engine.settings.file_roots``)."""


class PinError(ServiceGridError, ValueError):
    """A node's output cannot be pinned (``engine.results.pin_from_run``); the message says why."""


class AmendError(ServiceGridError, ValueError):
    """A node's settings cannot change in a run under way (``engine.amend``): it started already,
    something other than its settings changed, or the new settings do not validate. The message
    says which node and what to do instead."""


def suggest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Close matches for a mistyped name, best first."""
    return difflib.get_close_matches(name, list(known), n=n, cutoff=0.6)


def shown_names(names: Sequence[str], limit: int = 8, *, quoted: bool = True) -> str:
    """Names for a message: the first ``limit``, comma-separated (``repr`` when ``quoted``), then
    how many there are in all when there are more."""
    shown = ", ".join(repr(n) if quoted else str(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _quote_list(names: list[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
