"""Cache hits, resume after failure, safe result serialisation, warm models, process isolation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from executor_kit import workflow

from engine.backends.local import WarmPool
from engine.events import RunStatus
from engine.metrics import NodeMetrics
from engine.results import ResultStore, UnserializableError, load_value, save_value, summarize_outputs
from engine.runs import RunOptions

CHAIN = [{"id": "a", "agent": "test.source", "params": {"value": [1, 2, 3]}},
         {"id": "b", "agent": "test.hold_memory", "params": {"mb": 1, "seconds": 0.01}},
         {"id": "c", "agent": "test.echo"}]


def test_second_run_is_served_from_the_cache(manager) -> None:
    m, rec = manager
    wf = workflow(CHAIN, [("a", "b"), ("b", "c")])
    first = m.submit(wf)
    assert first.wait(10) == RunStatus.SUCCEEDED
    second = m.submit(wf)
    assert second.wait(10) == RunStatus.SUCCEEDED
    finished = rec.of(second.run_id, "NodeFinished")
    assert {e.node_id for e in finished if e.cached} == {"a", "b", "c"}
    assert not rec.of(second.run_id, "NodeStarted")  # nothing recomputed
    assert {v["status"] for v in second.snapshot().nodes.values()} == {"cached"}
    assert m.outputs(second.run_id, "c") == m.outputs(first.run_id, "c")


def test_a_stored_runs_results_are_found_again_from_its_workflow(manager) -> None:
    """``workflow_cache_keys`` gives the keys the run stored its results under (History reads
    past runs' outputs by them); a side-effect or simulated node has none, nor does one after it."""
    from engine.registry import default_registry
    from engine.results import workflow_cache_keys

    m, _ = manager
    nodes = [*CHAIN, {"id": "sim", "agent": "sim.task", "params": {"duration_s": 0.001}},
             {"id": "after_sim", "agent": "test.echo"}]
    wf = workflow(nodes, [("a", "b"), ("b", "c"), ("a", "sim"), ("sim", "after_sim")])
    handle = m.submit(wf, RunOptions(time_scale=0.01))
    assert handle.wait(10) == RunStatus.SUCCEEDED
    keys = workflow_cache_keys(wf, default_registry())
    assert set(keys) == {"a", "b", "c"}
    for node_id, key in keys.items():
        assert m.results.load(key) == m.outputs(handle.run_id, node_id), node_id
    changed = workflow([{**CHAIN[0], "params": {"value": [9]}}, *CHAIN[1:]], [("a", "b"), ("b", "c")])
    assert not set(workflow_cache_keys(changed, default_registry()).values()) & set(keys.values())


def test_changed_params_invalidate_downstream_cache(manager) -> None:
    m, rec = manager
    m.submit(workflow(CHAIN, [("a", "b"), ("b", "c")])).wait(10)
    changed = [dict(CHAIN[0], params={"value": [9]}), *CHAIN[1:]]
    h = m.submit(workflow(changed, [("a", "b"), ("b", "c")]))
    assert h.wait(10) == RunStatus.SUCCEEDED
    assert not [e for e in rec.of(h.run_id, "NodeFinished") if e.cached]


def test_resume_after_failure_does_not_recompute_finished_nodes(manager) -> None:
    m, rec = manager
    nodes = [*CHAIN, {"id": "bad", "agent": "test.fail"}]
    wf = workflow(nodes, [("a", "b"), ("b", "c"), ("c", "bad")])
    failed = m.submit(wf)
    assert failed.wait(10) == RunStatus.FAILED
    resumed = m.submit(wf, RunOptions(resume_from=failed.run_id))
    assert resumed.wait(10) == RunStatus.FAILED  # test.fail always fails; the rest came from the cache
    started = rec.of(resumed.run_id, "NodeStarted")
    assert [e.node_id for e in started] == ["bad"]
    (run_started,) = rec.of(resumed.run_id, "RunStarted")
    assert run_started.resumed_from == failed.run_id


def test_no_cache_recomputes(manager) -> None:
    m, rec = manager
    wf = workflow(CHAIN[:1])
    m.submit(wf).wait(10)
    h = m.submit(wf, RunOptions(use_cache=False))
    h.wait(10)
    assert [e.node_id for e in rec.of(h.run_id, "NodeStarted")] == ["a"]


def test_safe_roundtrip_of_tensors_arrays_and_json(tmp_path: Path) -> None:
    value = {"t": torch.arange(6, dtype=torch.float32).reshape(2, 3), "n": np.ones((2, 2), dtype=np.int64),
             "nested": [{"x": 1.5, "s": "text", "none": None, "flag": True}], "scalar": np.float32(2.5)}
    save_value(tmp_path / "r", value)
    assert not list((tmp_path / "r").glob("*.pkl"))
    doc = json.loads((tmp_path / "r" / "value.json").read_text())
    assert doc["t"] == {"__tensor__": "t0", "lib": "torch"}
    back = load_value(tmp_path / "r")
    assert torch.equal(back["t"], value["t"]) and np.array_equal(back["n"], value["n"])
    assert back["nested"] == value["nested"] and back["scalar"] == 2.5


def test_unserialisable_values_are_refused_and_not_cached(tmp_path: Path, manager) -> None:
    with pytest.raises(UnserializableError, match="object"):
        save_value(tmp_path / "x", {"bad": object()})
    store = ResultStore(tmp_path / "results")
    with pytest.raises(UnserializableError):
        store.save("k", {"bad": {1, 2}})
    assert not store.has("k")


def test_output_summary_is_small(manager) -> None:
    summary = summarize_outputs({"big": list(range(100_000)), "t": torch.zeros(1000, 1000), "s": "x" * 10_000})
    assert len(json.dumps(summary)) < 4096
    assert summary["t"]["shape"] == [1000, 1000] and summary["big"]["length"] == 100_000


def test_warm_pool_evicts_least_recently_used() -> None:
    from engine.agents.testing import Source

    spec = Source.spec
    pool = WarmPool(budget_mb=250)
    keys = [("test.source", "1.0", f"p{i}", "cpu") for i in range(3)]
    agents = []
    for key in keys:
        agent = pool.checkout(key, spec, spec.parse_params({}), 100)
        agents.append(agent)
        pool.checkin(key, agent, 100)
    assert pool.keys() == keys[1:] and pool.evictions == 1  # 300 MB > 250: the oldest went
    again = pool.checkout(keys[2], spec, spec.parse_params({}), 100)
    assert again is agents[2] and pool.loads == 3  # warm: not rebuilt


def test_node_metrics_dict_has_the_documented_keys() -> None:
    keys = set(NodeMetrics().to_dict())
    assert {"wait_inputs_s", "wait_resource_s", "wait_resource", "queue_s", "wall_s", "cpu_s", "peak_rss_mb",
            "memory_mb", "peak_gpu_mb", "items", "attempts", "device", "threads"} <= keys


def test_isolated_node_runs_in_its_own_process_and_reports_its_memory(manager) -> None:
    import os

    m, rec = manager
    wf = workflow([{"id": "iso", "agent": "test.hold_memory", "params": {"mb": 40, "seconds": 0.01},
                    "lifecycle": {"execution": {"isolate": True}}}])
    h = m.submit(wf, RunOptions(use_cache=False))
    assert h.wait(60) == RunStatus.SUCCEEDED
    out = m.outputs(h.run_id, "iso")["out"]
    assert out["pid"] != os.getpid()
    metrics = rec.of(h.run_id, "NodeFinished")[0].metrics
    assert metrics["isolated"] and metrics["peak_rss_mb"] >= 40
    # its own memory: the growth from just before the agent loaded (what the kill limit checks),
    # not the interpreter and imports that every child holds
    assert 39 <= metrics["memory_mb"] < metrics["peak_rss_mb"] - 20, metrics


def test_isolated_hung_node_is_killed_on_timeout(manager) -> None:
    m, rec = manager
    wf = workflow([{"id": "stuck", "agent": "test.hang", "params": {"ignore_cancel": True},
                    "lifecycle": {"execution": {"isolate": True, "timeout_s": 1.0}}}])
    h = m.submit(wf, RunOptions(use_cache=False))
    assert h.wait(60) == RunStatus.FAILED
    failed = rec.of(h.run_id, "NodeFailed")[0]
    assert failed.error_type == "AgentTimeoutError" and "timed out" in failed.message


def test_isolated_node_whose_process_dies_is_failed_clearly(manager, monkeypatch) -> None:
    from engine import isolation

    m, rec = manager
    monkeypatch.setattr(isolation, "_supervise", _kill_then_supervise(isolation._supervise))
    wf = workflow([{"id": "dies", "agent": "test.hang", "params": {"ignore_cancel": True},
                    "lifecycle": {"execution": {"isolate": True, "timeout_s": 30}}}])
    h = m.submit(wf, RunOptions(use_cache=False))
    assert h.wait(60) == RunStatus.FAILED
    failed = rec.of(h.run_id, "NodeFailed")[0]
    assert "died" in failed.message and "SIGKILL" in failed.message


def _kill_then_supervise(original):
    def supervise(proc, recv, ctx, scratch, stats, *rest):
        import os
        import signal

        os.kill(proc.pid, signal.SIGKILL)  # as if the OOM killer took it
        return original(proc, recv, ctx, scratch, stats, *rest)

    return supervise


def test_non_cacheable_agents_run_again(tmp_path: Path) -> None:
    from executor_kit import MACHINE, Recorder

    from engine.agents.testing import Source
    from engine.kinds import DataKind
    from engine.registry import Registry, agent
    from engine.runs import RunManager
    from engine.spec import Agent, PortSpec

    @agent("t.side_effect", category="testing", description="Pretends to write a file.", cacheable=False,
           inputs=[PortSpec("in", DataKind.ANY, required=False)], outputs=[PortSpec("out", DataKind.ANY)])
    class SideEffect(Agent):
        def run(self, inputs, ctx):
            return {"out": inputs.get("in")}

    m = RunManager(Registry([Source.spec, SideEffect.spec]), machine=MACHINE, results=ResultStore(tmp_path))
    rec = Recorder()
    m.bus.subscribe(rec)
    try:
        wf = workflow([{"id": "a", "agent": "test.source"}, {"id": "w", "agent": "t.side_effect"}], [("a", "w")])
        m.submit(wf).wait(10)
        h = m.submit(wf)
        assert h.wait(10) == RunStatus.SUCCEEDED
        assert [e.node_id for e in rec.of(h.run_id, "NodeStarted")] == ["w"]  # the source came from the cache
    finally:
        m.shutdown()


def test_a_file_changed_in_place_is_read_again_and_the_same_bytes_keep_the_cache(manager, tmp_path: Path) -> None:
    """A node's cache key covers the content of the files it reads (ComfyUI's IS_CHANGED): edit
    the CSV a node reads and the next run reads it again (a stale cached table was reused before);
    write the same bytes again and the cached result stands."""
    import os

    m, rec = manager
    table = tmp_path / "rows.csv"
    table.write_text("id,x\na,1\nb,2\n")
    wf = workflow([{"id": "t", "agent": "tabular.csv", "params": {"path": str(table)}},
                   {"id": "lim", "agent": "flow.limit", "params": {"n": 100}}], [("t", "lim")])

    def rows(handle) -> int:
        assert handle.wait(20) == RunStatus.SUCCEEDED
        from engine.kinds import DataKind
        from engine.payloads import rows_of

        return rows_of(m.outputs(handle.run_id, "lim")["out"], DataKind.TABLE)

    assert rows(m.submit(wf)) == 2
    table.write_text("id,x\na,1\nb,2\nc,3\n")
    changed = m.submit(wf)
    assert rows(changed) == 3
    assert {e.node_id for e in rec.of(changed.run_id, "NodeStarted")} == {"t", "lim"}
    stat = table.stat()
    table.write_text("id,x\na,1\nb,2\nc,3\n")  # the same bytes, a newer time
    os.utime(table, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    same = m.submit(wf)
    assert rows(same) == 3 and not rec.of(same.run_id, "NodeStarted")


def test_rerun_from_a_node_computes_it_and_what_follows_and_replaces_their_entries(manager) -> None:
    """Re-run from here (n8n's execute-from-node, Dify's rerun from a node): the node and all
    after it compute again although the cache holds them, the nodes before it stay cached, and the
    fresh results replace the cached ones (a bad entry does not come back)."""
    from engine.registry import default_registry
    from engine.results import workflow_cache_keys

    m, rec = manager
    wf = workflow([*CHAIN, {"id": "side", "agent": "test.echo"}], [("a", "b"), ("b", "c"), ("a", "side")])
    first = m.submit(wf)
    assert first.wait(10) == RunStatus.SUCCEEDED
    key_c = workflow_cache_keys(wf, default_registry())["c"]
    m.results.save(key_c, {"out": "stale"}, replace=True)  # an entry no longer to be trusted
    assert m.results.load(key_c) == {"out": "stale"}
    again = m.submit(wf, RunOptions(rerun=("b",)))
    assert again.wait(10) == RunStatus.SUCCEEDED
    assert sorted(e.node_id for e in rec.of(again.run_id, "NodeStarted")) == ["b", "c"]
    assert {n for n, v in again.snapshot().nodes.items() if v["status"] == "cached"} == {"a", "side"}
    fresh = m.outputs(again.run_id, "c")
    assert fresh == m.outputs(first.run_id, "c") and fresh != {"out": "stale"}
    assert m.results.load(key_c) == fresh  # replaced
    assert not [p for p in m.results.root.iterdir() if ".old." in p.name]  # nothing left aside
    with pytest.raises(ValueError, match="no node 'nope' to re-run"):
        m.submit(wf, RunOptions(rerun=("nope",)))
