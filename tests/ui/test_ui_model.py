"""Pure-Python parts of the designer: canvas <-> workflow, the revision protocol, undo/redo,
schema forms, the Python-script export, sidebar lines and the `servicegrid ui` command line."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from engine.issues import Issue
from engine.registry import default_registry
from engine.resources import Capacity, GpuDevice
from engine.workflow import Workflow, workflow_from_data
from ui.editor import Accepted, DesignerSession
from ui.export import NotExpressibleError, python_script
from ui.forms import parse_text, schema_fields
from ui.graphmodel import canvas_graph, ensure_positions, palette_of, with_layout, workflow_from_canvas
from ui.render import capacity_lines, issues_by_node, run_blocker

ROOT = Path(__file__).resolve().parents[2]

TWO_STAGE = {"schema_version": 1, "name": "two-stage",
             "nodes": [{"id": "pre", "agent": "sim.task", "params": {"duration_s": 120},
                        "resources": {"memory_mb": 1024}},
                       {"id": "cls", "agent": "sim.task", "params": {"duration_s": 240},
                        "resources": {"memory_mb": 2048}}],
             "edges": [{"source": "pre", "target": "cls"}]}


def two_stage() -> Workflow:
    return workflow_from_data(TWO_STAGE)


def test_layout_puts_parents_left_of_children() -> None:
    laid = with_layout(two_stage())
    pre, cls = laid.node("pre").position, laid.node("cls").position
    assert pre is not None and cls is not None and pre.x < cls.x


def test_canvas_graph_resolves_omitted_ports_and_round_trips() -> None:
    registry = default_registry()
    wf = ensure_positions(two_stage())
    graph = canvas_graph(wf, registry, ["pre"])
    assert graph["edges"] == [{"id": "pre.out->cls.in", "src": "pre", "srcPort": "out", "dst": "cls", "dstPort": "in",
                               "label": ""}]  # simulated tasks carry no items
    assert graph["selected"] == ["pre"]
    graph["nodes"][0]["x"] = 999
    back = workflow_from_canvas(wf, graph)
    assert back.node("pre").position.x == 999
    assert back.node("pre").params == {"duration_s": 120}  # params kept (the canvas never sends them)
    assert back.node("cls").resources == {"memory_mb": 2048}


def test_pinned_nodes_their_cut_wires_and_the_nodes_only_they_need_are_marked() -> None:
    from engine.workflow import PinSpec, with_pin

    wf = with_pin(ensure_positions(two_stage()), "cls", PinSpec(key="a" * 32, run_id="r9"))
    graph = canvas_graph(wf, default_registry())
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes["cls"]["pinned"] == "run r9" and "idle" not in nodes["cls"]
    assert nodes["pre"]["idle"] is True and "pinned" not in nodes["pre"]  # it only feeds the pinned node
    assert graph["edges"][0]["cut"] is True
    back = workflow_from_canvas(wf, graph)  # what the canvas sends back never drops (nor sets) a pin
    assert back.node("cls").pin == PinSpec(key="a" * 32, run_id="r9") and back.node("pre").pin is None
    plain = canvas_graph(two_stage(), default_registry())
    assert not any("pinned" in n or "idle" in n for n in plain["nodes"]) and "cut" not in plain["edges"][0]


def test_disabling_toggles_and_the_canvas_marks_what_does_not_run() -> None:
    from ui.graphmodel import toggle_flag

    def set_disabled(workflow, ids):
        return toggle_flag(workflow, ids, "disabled")

    wf = ensure_positions(two_stage())
    off, state = set_disabled(wf, ["pre"])
    assert state is True and off.node("pre").disabled and not off.node("cls").disabled
    nodes = {n["id"]: n for n in canvas_graph(off, default_registry())["nodes"]}
    assert nodes["pre"].get("disabled") is True and nodes["cls"].get("muted") is True  # after a disabled node
    mixed, state = set_disabled(off, ["pre", "cls"])  # not all disabled: disable both
    assert state is True and mixed.node("cls").disabled
    back, state = set_disabled(mixed, ["pre", "cls"])  # all disabled: enable them
    assert state is False and not any(n.disabled for n in back.nodes)
    assert set_disabled(wf, ["nope"]) == (wf, None)
    assert workflow_from_canvas(off, canvas_graph(off, default_registry())).node("pre").disabled  # a report keeps it
    passed, state = toggle_flag(wf, ["pre"], "bypass")
    assert state is True and passed.node("pre").bypass
    assert {n["id"]: n.get("bypassed") for n in canvas_graph(passed, default_registry())["nodes"]} == \
        {"pre": True, "cls": None}
    with pytest.raises(ValueError, match="unknown node flag"):
        toggle_flag(wf, ["pre"], "label")


def test_a_conditional_breakpoint_is_drawn_with_its_condition_and_goes_with_its_breakpoint() -> None:
    from engine.breaks import parse
    from ui.graphmodel import toggle_flag

    wf = ensure_positions(two_stage())
    marked, state = toggle_flag(wf, ["cls"], "breakpoint")
    assert state is True
    marked = marked.model_copy(update={"nodes": tuple(
        n.model_copy(update={"break_when": parse("confidence < 0.6")}) if n.id == "cls" else n for n in marked.nodes)})
    nodes = {n["id"]: n for n in canvas_graph(marked, default_registry())["nodes"]}
    assert nodes["cls"]["breakpoint"] is True and nodes["cls"]["breakWhen"] == "confidence < 0.6"
    assert "breakWhen" not in nodes["pre"]
    assert workflow_from_canvas(marked, canvas_graph(marked, default_registry())).node("cls").break_when == \
        parse("confidence < 0.6")  # a canvas report keeps it
    cleared, state = toggle_flag(marked, ["cls"], "breakpoint")  # F9 again: the condition goes with it
    assert state is False and cleared.node("cls").break_when is None


def test_edges_say_how_many_items_flow_along_them() -> None:
    from engine.workflow import load_workflow
    from ui.graphmodel import items_label

    wf = ensure_positions(load_workflow(ROOT / "examples" / "image-pipeline.json"))
    labels = {(e["src"], e["dst"]): e["label"] for e in canvas_graph(wf, default_registry())["edges"]}
    assert labels == {("scans", "preprocess"): "256 items · 64 px", ("preprocess", "classify"): "256 items · 64 px"}
    data = wf.model_dump(mode="json")
    data["nodes"][0]["params"]["n_items"] = 1
    data["nodes"][1]["params"]["size"] = 256  # the planned images follow the resize
    labels = {e["src"]: e["label"] for e in canvas_graph(Workflow.model_validate(data), default_registry())["edges"]}
    assert labels["scans"] == "1 item · 64 px" and labels["preprocess"] == "1 item · 256 px"
    assert items_label(12345) == "12,345 items" and items_label(None) == ""
    assert items_label(3, (1, 32, 48)) == "3 items · 32x48 px"
    shop = ensure_positions(load_workflow(ROOT / "examples" / "recommendation.json"))
    by_port = {(e["src"], e["srcPort"], e["dst"]): e["label"] for e in canvas_graph(shop, default_registry())["edges"]}
    assert by_port[("behaviour", "users", "with_users")] == "300 items"  # one row per user
    assert by_port[("behaviour", "interactions", "cf")] == "9,000 items"  # the log's events
    assert by_port[("cf", "scores", "rank")] == "300 items"  # a row of scores per user


def test_palette_lists_every_agent_with_typed_ports() -> None:
    palette = {a["name"]: a for a in palette_of(default_registry())}
    assert palette["sim.task"]["inputs"][0]["kind"] == "any"
    assert palette["sim.task"]["inputs"][0]["multiple"] is True
    assert "accepts" not in palette["sim.task"]["inputs"][0]  # reads every kind
    assert palette["flow.sink_csv"]["inputs"][0]["accepts"] == ["table", "scores", "labels", "text_batch",
                                                                 "embedding", "tensor"]
    from ui.agents_page import port_rows

    assert port_rows(default_registry().get("flow.merge"))[0]["kind"] == (
        "any (table, scores, labels, text_batch, embedding, tensor)")
    fraud = {r["side"]: r for r in port_rows(default_registry().get("tabular.fraud_score"))}
    assert fraud["in"]["columns"].startswith("amount, hour, distance_km")  # what it needs
    assert fraud["out"]["columns"] == "predicted, confidence, label, score_legit, score_fraud"  # what it gives
    assert port_rows(default_registry().get("sim.task"))[1]["columns"] == ""  # not declared


def _graph(sess: DesignerSession, **changes) -> dict:
    graph = canvas_graph(sess.workflow, default_registry())
    graph.update(changes)
    graph["rev"] = changes.get("rev", sess.rev)
    return graph


def test_session_accepts_reports_at_its_revision_and_ignores_echoes() -> None:
    sess = DesignerSession(ensure_positions(two_stage()))
    moved = _graph(sess)
    moved["nodes"][0]["x"] = 500
    assert sess.accept(moved) is Accepted.CHANGED
    assert sess.workflow.node("pre").position.x == 500
    assert sess.accept(moved) is Accepted.IGNORED  # the same report again changes nothing
    sess.push(sess.workflow.model_copy(update={"name": "renamed"}))
    assert sess.accept(moved) is Accepted.IGNORED  # an echo of the older revision: nothing new
    older = _graph(sess, rev=sess.rev - 1)  # a delete made before the canvas drew the rename
    older["nodes"], older["edges"] = older["nodes"][:1], []
    assert sess.accept(older) is Accepted.CHANGED  # replayed onto the renamed workflow (test_designer_revisions)
    assert [n.id for n in sess.workflow.nodes] == ["pre"] and sess.workflow.name == "renamed"
    assert sess.accept(_graph(sess, selected=["pre"])) is Accepted.SELECTION
    assert sess.selected == ["pre"]


def test_identical_push_keeps_the_revision() -> None:
    sess = DesignerSession(two_stage())
    rev = sess.rev
    sess.push(two_stage())
    assert sess.rev == rev and not sess.undo_stack


def test_undo_and_redo_walk_the_history() -> None:
    sess = DesignerSession(ensure_positions(two_stage()))
    graph = _graph(sess)
    graph["nodes"], graph["edges"] = graph["nodes"][:1], []
    assert sess.accept(graph) is Accepted.CHANGED
    assert sess.undo() and len(sess.workflow.nodes) == 2
    assert sess.redo() and len(sess.workflow.nodes) == 1
    assert not sess.redo()
    rev = sess.rev
    assert sess.undo() and sess.rev == rev + 1  # Python's change: a new revision for the canvas


def test_accept_refuses_malformed_reports() -> None:
    sess = DesignerSession(two_stage())
    assert sess.accept({"rev": sess.rev, "nodes": [{"id": "x"}]}) is Accepted.IGNORED
    assert sess.accept(None) is Accepted.IGNORED


class _Params(BaseModel):
    count: int = Field(3, ge=1, le=9, description="how many")
    ratio: float = Field(0.5, gt=0, lt=1)
    mode: Literal["fast", "slow"] = "fast"
    on: bool = False
    name: str = "x"
    limit: int | None = None
    tags: list[str] = Field(default_factory=list)


def test_schema_fields_read_types_ranges_enums_and_help() -> None:
    fields = {f.name: f for f in schema_fields(_Params.model_json_schema())}
    assert (fields["count"].kind, fields["count"].minimum, fields["count"].maximum) == ("int", 1, 9)
    assert fields["count"].help == "how many" and fields["count"].default == 3
    assert fields["ratio"].kind == "float" and fields["ratio"].minimum == 0
    assert fields["mode"].kind == "enum" and fields["mode"].options == ("fast", "slow")
    assert fields["on"].kind == "bool" and fields["name"].kind == "str"
    assert fields["limit"].kind == "int" and fields["limit"].optional
    assert parse_text(fields["limit"], "") is None and parse_text(fields["limit"], "7") == 7
    with pytest.raises(ValueError):
        parse_text(fields["limit"], "seven")
    # a list box emptied (or re-created by the browser with an empty default) is an empty list
    assert fields["tags"].default == [] and parse_text(fields["tags"], "") == []
    assert parse_text(fields["tags"], '["a"]') == ["a"]


def test_python_export_runs_with_the_original_api(tmp_path) -> None:
    pytest.importorskip("servicegrid.graph")
    script = tmp_path / "wf.py"
    script.write_text(python_script(two_stage()))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Resource demand: 3, Execution time: 6"


def test_python_export_explains_what_it_cannot_express() -> None:
    data = {**TWO_STAGE, "nodes": [*TWO_STAGE["nodes"], {"id": "e", "agent": "test.echo"}]}
    with pytest.raises(NotExpressibleError, match=r"'e' uses agent 'test\.echo'"):
        python_script(workflow_from_data(data))


def test_capacity_lines_label_simulated_gpus_and_no_gpu() -> None:
    lines = capacity_lines(Capacity(cpu=4, memory_mb=8192, gpus=(GpuDevice(memory_mb=4096, simulated=True),)))
    assert "CPU threads: 4" in lines and "Memory: 8.0 GB" in lines
    assert "GPU cuda:0: simulated GPU, 4.0 GB" in lines
    assert "GPU: no GPU" in capacity_lines(Capacity(cpu=1, memory_mb=1024, gpus=()))


def test_findings_group_by_node_and_block_runs() -> None:
    issues = [Issue("missing_input", "not connected", node="b", port="in"),
              Issue("isolated_node", "alone", node="c", severity="warning")]
    assert issues_by_node(issues)["b"] == [{"severity": "error", "message": "not connected", "port": "in"}]
    assert "not connected on b" in (run_blocker(issues) or "")
    assert run_blocker(issues[1:]) is None


def test_ui_command_binds_to_loopback_by_default() -> None:
    from servicegrid.commands import ui as ui_command

    parser = argparse.ArgumentParser()
    ui_command.add_parser(parser.add_subparsers())
    args = parser.parse_args(["ui", "--port", "8600"])
    cmd = ui_command.command(args)
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.port") + 1] == "8600"
    assert "--server.maxUploadSize" in cmd
    assert ui_command.app_path().is_file()


def test_a_canvas_report_is_acknowledged_by_its_sid_and_seq():
    from ui.canvas import report_ack

    assert report_ack({"sid": "abc", "seq": 7, "rev": 3, "nodes": []}) == {"sid": "abc", "seq": 7}
    assert report_ack({"sid": "x" * 500, "seq": 1})["sid"] == "x" * 64  # bounded
    for bad in (None, {}, {"sid": "abc"}, {"sid": 5, "seq": 1}, {"sid": "a", "seq": "1"}, ["sid", "seq"]):
        assert report_ack(bad) is None


def test_the_properties_panel_says_what_the_memory_grows_with() -> None:
    from types import SimpleNamespace

    from engine.workflow import load_workflow
    from ui.properties import _memory_growth

    registry = default_registry()
    data = load_workflow(ROOT / "examples" / "medical-imaging.json").model_dump(mode="json")
    data["nodes"][1]["params"]["size"] = 256  # preprocessing
    wf = Workflow.model_validate(data)
    sess = SimpleNamespace(workflow=wf)
    explain = wf.node("explanation")
    text = _memory_growth(sess, explain, registry.get(explain.agent), registry)  # type: ignore[arg-type]
    assert "for 128 items of 256 x 256 px" in text and "the run reserves 416 MB" in text
    source = wf.node("scans")
    assert "px" not in _memory_growth(sess, source, registry.get(source.agent), registry)  # type: ignore[arg-type]


def test_pickers_offer_the_columns_and_classes_a_node_receives() -> None:
    from engine.workflow import load_workflow
    from ui.properties import received_choices

    examples = Path(__file__).resolve().parents[2] / "examples"
    registry = default_registry()
    sentiment = load_workflow(examples / "nlp-sentiment.json")
    choices = received_choices(sentiment, "negative", registry)
    assert choices["column"] == ["id", "text", "predicted", "confidence", "label", "score_negative",
                                 "score_neutral", "score_positive"]
    assert choices["class"] == ["negative", "neutral", "positive"]
    assert choices["value"] == ["negative", "neutral", "positive"]  # its field 'predicted' holds class names
    merged = received_choices(sentiment, "with_vectors", registry)  # scores and vectors: only the id in common
    assert merged["column"] == ["id"] and merged["columns"] == []
    finance = load_workflow(examples / "finance-risk.json")
    assert received_choices(finance, "decision", registry)["class"] == ["risk"]
    numbers = sentiment.model_copy(update={"nodes": [
        n.model_copy(update={"params": {"field": "confidence", "op": ">="}}) if n.id == "negative" else n
        for n in sentiment.nodes]})
    assert received_choices(numbers, "negative", registry)["value"] == []  # a number: the text box stays
    tickets = load_workflow(examples / "customer-service.json")  # a branch on the routed tickets' priority
    assert received_choices(tickets, "priority", registry)["value"] == ["low", "normal", "high", "urgent"]
    assert received_choices(finance, "applicants", registry) == {}  # a source receives nothing
    custom = Workflow.model_validate({"schema_version": 1, "nodes": [
        {"id": "t", "agent": "tabular.source"},
        {"id": "m", "agent": "custom.model", "params": {"path": "m.onnx", "input_kind": "table"}},
        {"id": "b", "agent": "flow.branch"}], "edges": [{"source": "t", "target": "m"}, {"source": "m", "target": "b"}]})
    assert received_choices(custom, "b", registry) == {}  # a custom model's output: unknown, the text box stays
    assert "income_k" in received_choices(custom, "m", registry)["columns"]


def test_a_branch_on_a_csv_text_column_offers_its_few_values(tmp_path: Path) -> None:
    """A user's CSV 'region' column (3 values) is offered by name in a branch's value picker."""
    from ui.properties import received_choices

    path = tmp_path / "sales.csv"
    rows = [f"r{i},{['North', 'South', 'East'][i % 3]},{i * 1.5},note {i}" for i in range(40)]
    path.write_text("id,region,amount,note\n" + "\n".join(rows) + "\n")
    flow = Workflow.model_validate({"schema_version": 1, "nodes": [
        {"id": "t", "agent": "tabular.csv", "params": {"path": str(path), "max_rows": 2}},
        {"id": "b", "agent": "flow.branch", "params": {"field": "region", "op": "in", "value": "North"}}],
        "edges": [{"source": "t", "target": "b"}]})
    assert received_choices(flow, "b", default_registry())["value"] == ["North", "South", "East"]
    flow.nodes[1].params["field"] = "note"  # free text (40 values): no names to offer
    assert received_choices(flow, "b", default_registry())["value"] == []


def test_a_run_up_to_a_node_is_stopped_only_by_errors_on_what_it_runs() -> None:
    from engine.validation import validate
    from engine.workflow import upstream_workflow
    from ui.designer_page import partial_blocker

    wf = workflow_from_data({"schema_version": 1, "name": "half-done", "nodes": [
        {"id": "src", "agent": "sim.task", "params": {"duration_s": 1}},
        {"id": "mid", "agent": "sim.task", "params": {"duration_s": 1}},
        {"id": "broken", "agent": "no.such.agent"}],
        "edges": [{"source": "src", "target": "mid"}, {"source": "mid", "target": "broken"}]})
    issues = validate(wf, default_registry())
    assert run_blocker(issues) is not None  # the whole workflow cannot run
    assert partial_blocker(issues, set(upstream_workflow(wf, ["mid"]).node_ids())) is None  # up to mid it can
    assert "broken" in (partial_blocker(issues, set(upstream_workflow(wf, ["broken"]).node_ids())) or "")


def test_the_resources_panel_says_what_a_gpu_agent_reserves_on_a_gpu() -> None:
    """gpu_memory_mb shows the agent's fixed part (0): the caption gives what the node reserves
    there for one batch of its own size."""
    from engine.workflow import load_workflow
    from ui.properties import gpu_reserve_text

    registry = default_registry()
    flow = load_workflow(ROOT / "examples" / "image-pipeline.json")  # classify: batches of 32
    node = flow.node("classify")
    assert node is not None
    assert gpu_reserve_text(flow, node, registry.get("vision.classify"), registry).startswith(
        "On a GPU it reserves 42 MB of GPU memory: 34 MB, plus 0.25 MB for each item of a batch of 32,")
    bigger = node.model_copy(update={"lifecycle": {"execution": {"batch_size": 64}}})
    flow = flow.model_copy(update={"nodes": tuple(bigger if n.id == "classify" else n for n in flow.nodes)})
    assert "reserves 50 MB of GPU memory: 34 MB, plus 0.25 MB for each item of a batch of 64" in gpu_reserve_text(
        flow, bigger, registry.get("vision.classify"), registry)
    broken = node.model_copy(update={"params": {"model": "no_such_cnn"}})
    assert "fix the parameters" in gpu_reserve_text(flow, broken, registry.get("vision.classify"), registry)
