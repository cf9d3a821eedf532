"""Errors the storage layer raises on purpose: each says what is wrong and how to fix it."""

from __future__ import annotations

from engine.errors import ServiceGridError


class StorageError(ServiceGridError, RuntimeError):
    """The database cannot be used as asked."""


class SchemaOutdatedError(StorageError):
    """The database schema is older (or newer) than this version of ServiceGrid expects."""

    def __init__(self, current: str | None, head: str, url: str) -> None:
        self.current = current
        self.head = head
        super().__init__(
            f"the database at {url} is at schema revision {current or '(empty)'}, but this version "
            f"of ServiceGrid needs {head}. Run `servicegrid db upgrade` (or open the Store with "
            "migrate=True) to bring it up to date."
        )


class WorkflowNotFoundError(StorageError, LookupError):
    """No stored workflow (or version) has that id."""

    def __init__(self, workflow_id: str, version: int | None = None) -> None:
        self.workflow_id = workflow_id
        self.version = version
        what = f"version {version} of workflow {workflow_id!r}" if version else f"workflow {workflow_id!r}"
        super().__init__(
            f"{what} is not in the database. List the stored workflows with Store.list_workflows() "
            "(or the Workflows page) and use one of their ids."
        )


class ComponentNotFoundError(StorageError, LookupError):
    """No component of that name (or id) in the workflow or the library."""
