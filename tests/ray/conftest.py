"""One local Ray for the Ray backend tests: 2 CPUs and a custom resource standing for a GPU."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

ray = pytest.importorskip("ray")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[object]:
    """Start Ray for the session (no dashboard, a namespace of its own) and stop it at the end."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token written to the home folder
    ray.init(num_cpus=2, resources={"GPU_SIM": 1}, include_dashboard=False,
             namespace=f"servicegrid-tests-{uuid.uuid4().hex[:8]}", log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def backend(ray_cluster: object) -> Iterator[object]:
    from engine.backends.ray import RayBackend

    b = RayBackend()
    yield b
    b.shutdown()
