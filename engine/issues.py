"""Validation findings: what is wrong (or worth a look) in a workflow, where, and how to fix it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Literal

Severity = Literal["error", "warning"]


class IssueCode(StrEnum):
    INVALID_FILE = "invalid_file"
    DUPLICATE_NODE = "duplicate_node"
    UNKNOWN_AGENT = "unknown_agent"
    UNKNOWN_NODE = "unknown_node"
    UNKNOWN_PORT = "unknown_port"
    AMBIGUOUS_PORT = "ambiguous_port"
    TYPE_MISMATCH = "type_mismatch"
    MISSING_INPUT = "missing_input"
    DUPLICATE_INPUT = "duplicate_input"
    DUPLICATE_EDGE = "duplicate_edge"
    SELF_LOOP = "self_loop"
    CYCLE = "cycle"
    INVALID_PARAM = "invalid_param"
    MISSING_FILE = "missing_file"
    UNREADABLE_FILE = "unreadable_file"
    INVALID_RESOURCES = "invalid_resources"
    INVALID_LIFECYCLE = "invalid_lifecycle"
    CAPACITY_EXCEEDED = "capacity_exceeded"
    NO_DEVICE = "no_device"
    ISOLATED_NODE = "isolated_node"
    UNUSED_OUTPUT = "unused_output"
    OUTPUTS_NOT_KEPT = "outputs_not_kept"
    MEMORY_BELOW_NEED = "memory_below_need"
    MISSING_COLUMNS = "missing_columns"
    UNKNOWN_CLASS = "unknown_class"
    NEVER_MATCHES = "never_matches"
    IMAGE_SIZE_MISMATCH = "image_size_mismatch"
    EMPTY_WORKFLOW = "empty_workflow"
    PIN_NOT_ALLOWED = "pin_not_allowed"
    PIN_STALE = "pin_stale"
    PIN_MISSING = "pin_missing"
    BYPASS_NOT_POSSIBLE = "bypass_not_possible"
    UNKNOWN_COMPONENT = "unknown_component"
    COMPONENT_CYCLE = "component_cycle"
    INVALID_COMPONENT = "invalid_component"
    FAULT_DRILL = "fault_drill"
    BREAK_CONDITION = "break_condition"
    AGENT_UPGRADED = "agent_upgraded"
    AGENT_NEWER = "agent_newer"


@dataclass(frozen=True)
class Issue:
    """One finding. ``severity`` is "error" (blocks a run) or "warning"."""

    code: str
    message: str
    node: str | None = None
    port: str | None = None
    hint: str = ""
    severity: Severity = "error"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"
