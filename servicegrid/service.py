"""The original library's ``Service``: a unit of work with a compute demand and an execution time.

Kept verbatim-compatible with the article: subclasses set ``compute_resource`` and
``execution_time`` in their own ``__init__`` without calling ``super().__init__``.
"""

from __future__ import annotations

from typing import Any


class Service:
    """A service in a ``Graph``.

    Attributes:
        compute_resource: how much compute the service holds while it runs. The article's unit
            is GB of memory (preprocessing 1, classification 2, capacity 4); see
            ``Graph.to_workflow`` for how it maps onto engine resources.
        execution_time: how long it runs, in the article's unit (minutes).

    A subclass may override ``run(inputs)`` to do real work; ``Graph.execute`` calls it with the
    results of the node's parents (by node name). Without an override a service is simulated:
    it only takes its execution time on the graph's virtual clock.
    """

    compute_resource: float = 0
    execution_time: float = 0

    def __init__(self, compute_resource: float = 0, execution_time: float = 0) -> None:
        self.compute_resource = compute_resource
        self.execution_time = execution_time

    def run(self, inputs: dict[str, Any]) -> Any:
        """Do the service's work on its parents' results. The base class does nothing."""
        return None

    @property
    def simulated(self) -> bool:
        """True when the service has no ``run`` of its own (it only takes virtual time)."""
        return type(self).run is Service.run

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(compute_resource={self.compute_resource!r}, "
                f"execution_time={self.execution_time!r})")
