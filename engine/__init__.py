"""ServiceGrid engine: agents as services, workflows, validation, planning and execution.

Pure Python: it never imports streamlit, sqlmodel, storage or ui (checked by import-linter).
Torch is imported only inside agents and device code.
"""

from engine.errors import (
    AgentExecutionError,
    AgentNotFoundError,
    AgentTimeoutError,
    CapacityError,
    ModelFileError,
    RunCancelledError,
    ServiceGridError,
    WorkflowFileError,
    WorkflowInvalidError,
)
from engine.events import Event, EventBus, NodeStatus, RunObserver, RunStatus
from engine.issues import Issue, IssueCode
from engine.kinds import DataKind, is_compatible
from engine.registry import Registry, agent, default_registry
from engine.resources import Capacity, GpuDevice, ResourceDemand, ResourceLedger, parse_capacity
from engine.spec import (
    Agent,
    AgentSpec,
    ExecutionStrategy,
    ExitCondition,
    Lifecycle,
    PortSpec,
    RunContext,
    StartCondition,
)
from engine.workflow import (
    EdgeSpec,
    NodeSpec,
    Position,
    Workflow,
    dump_workflow,
    load_workflow,
    workflow_json_schema,
)

__all__ = [
    "Agent", "AgentExecutionError", "AgentNotFoundError", "AgentSpec", "AgentTimeoutError",
    "Capacity", "CapacityError", "DataKind", "EdgeSpec", "Event", "EventBus", "ExecutionStrategy",
    "ExitCondition", "GpuDevice", "Issue", "IssueCode", "Lifecycle", "ModelFileError", "NodeSpec",
    "NodeStatus", "PortSpec", "Position", "Registry", "ResourceDemand", "ResourceLedger",
    "RunCancelledError", "RunContext", "RunObserver", "RunStatus", "ServiceGridError",
    "StartCondition", "Workflow", "WorkflowFileError", "WorkflowInvalidError", "agent",
    "default_registry", "dump_workflow", "is_compatible", "load_workflow", "parse_capacity",
    "workflow_json_schema",
]
