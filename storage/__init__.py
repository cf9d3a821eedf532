"""Storage: SQLModel tables, database setup and Alembic migrations, and the Store (an observer of
run events that also answers run-history queries). Imports engine data types, never the UI."""

from storage.db import database_url, make_engine, upgrade
from storage.errors import SchemaOutdatedError, StorageError, WorkflowNotFoundError
from storage.store import Store
from storage.summaries import (
    MetricSample,
    NodeRunSummary,
    RunDetail,
    RunSummary,
    ValidationSummary,
    WorkflowSummary,
    WorkflowVersionSummary,
)

__all__ = [
    "MetricSample",
    "NodeRunSummary",
    "RunDetail",
    "RunSummary",
    "SchemaOutdatedError",
    "StorageError",
    "Store",
    "ValidationSummary",
    "WorkflowNotFoundError",
    "WorkflowSummary",
    "WorkflowVersionSummary",
    "database_url",
    "make_engine",
    "upgrade",
]
