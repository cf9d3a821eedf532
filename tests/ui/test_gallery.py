"""The template gallery: each card's facts come from the template and the registry, the thumbnail
is a static, escaped picture of the graph, the family filter picks cards, and the last run shown is
the newest stored one of that template's name (Issue 4: templates loadable in one click)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from types import SimpleNamespace

from streamlit.testing.v1 import AppTest

from engine.components import flatten
from engine.registry import default_registry
from engine.runs import RunManager, RunOptions
from engine.workflow import load_workflow, workflow_from_data
from storage import Store
from tests.recording import record_runs
from ui import state
from ui.gallery import (
    PREVIEW_H,
    PREVIEW_W,
    last_run_line,
    last_runs,
    preview_svg,
    summary_of,
    template_card,
    template_title,
)
from ui.session import EXAMPLES_DIR

SVG = "{http://www.w3.org/2000/svg}"


def card(stem: str):
    return template_card(stem, load_workflow(EXAMPLES_DIR / f"{stem}.json"), default_registry())


def test_every_template_has_a_title_a_summary_and_the_families_of_its_agents() -> None:
    registry = default_registry()
    for path in sorted(EXAMPLES_DIR.glob("*.json")):
        workflow = load_workflow(path)
        c = template_card(path.stem, workflow, registry)
        assert c.title and c.summary, path.name
        if workflow.description:  # two-stage.json is the original issue's file, byte for byte
            assert c.title != path.stem and workflow.description.startswith(c.summary.rstrip("…")), path.name
        runs = flatten(workflow)  # the agents inside its components count
        assert c.n_agents == len(runs.nodes) and c.n_links == len(workflow.edges)
        categories = {registry.get(n.agent).category for n in runs.nodes}
        assert c.families, path.name
        assert "simulated" not in c.families or "simulation" in categories
    assert card("finance-risk").families == ("tabular", "decision")
    assert card("nlp-sentiment").families == ("text",)
    assert card("two-stage").simulated and not card("medical-imaging").simulated
    assert card("two-stage").summary == "Nodes: pre, cls." and card("two-stage").title == "Two stage"
    assert "Credit MLP" not in card("finance-risk").agents  # agents by their palette names, once each
    assert card("finance-risk").agents.count("Tabular data source") <= 1
    assert {"Intent", "Entities", "Dialogue routing"} <= set(card("support-desks").agents)


def test_the_filter_keeps_cards_of_any_family_picked() -> None:
    text, finance = card("nlp-sentiment"), card("finance-risk")
    assert text.matches(set()) and finance.matches(set())
    assert text.matches({"text", "vision"}) and not finance.matches({"text", "vision"})
    assert finance.matches({"decision"})


def test_summary_is_the_first_sentence_cut_at_a_word() -> None:
    assert summary_of("One thing. Then (another) thing.") == "One thing."
    assert summary_of("Version 1.5 of it, e.g. this. Next.") == "Version 1.5 of it, e.g. this."
    long = "word " * 80
    cut = summary_of(long, limit=50)
    assert cut.endswith("…") and len(cut) <= 50 and " wor…" not in cut and cut[:-1].strip().endswith("word")
    assert summary_of("  \n ") == ""


def test_title_comes_from_the_metadata_or_the_name() -> None:
    plain = workflow_from_data({"schema_version": 1, "name": "my-first_flow", "nodes": []})
    assert template_title(plain, "x") == "My first flow"
    titled = workflow_from_data({"schema_version": 1, "name": "a", "metadata": {"title": " Lab 1 "}, "nodes": []})
    assert template_title(titled, "a") == "Lab 1"


def test_the_thumbnail_draws_every_node_and_link_inside_its_box() -> None:
    workflow = load_workflow(EXAMPLES_DIR / "finance-risk.json")
    root = ET.fromstring(preview_svg(workflow, default_registry()))
    groups = root.findall(f"{SVG}g")
    assert len(groups) == len(workflow.nodes)
    assert len(root.findall(f"{SVG}path")) == len(workflow.edges)
    titles = {g.find(f"{SVG}title").text for g in groups}
    assert titles == {n.label or n.id for n in workflow.nodes}
    for g in groups:
        box = g.find(f"{SVG}rect")
        x, y = float(box.get("x")), float(box.get("y"))
        assert x >= 0 and x + float(box.get("width")) <= PREVIEW_W
        assert y >= 0 and y + float(box.get("height")) <= PREVIEW_H
    stripes = {g.findall(f"{SVG}rect")[1].get("fill") for g in groups}
    assert "#10b981" in stripes and "#f59e0b" in stripes  # tabular and decision colours, as the palette


def test_the_thumbnail_escapes_labels_and_refuses_odd_colours() -> None:
    from engine.registry import Registry

    registry = Registry()
    registry.register(replace(default_registry().get("sim.task"), color="red;}</style><script>"))
    workflow = workflow_from_data({"schema_version": 1, "name": "x", "nodes": [
        {"id": "a", "agent": "sim.task", "label": "<script>alert(1)</script>"},
        {"id": "b", "agent": "not.registered"}], "edges": [{"source": "a", "target": "b"}]})
    svg = preview_svg(workflow, registry)
    assert "<script" not in svg and "&lt;script&gt;" in svg
    root = ET.fromstring(svg)  # still well-formed
    fills = {r.get("fill") for r in root.iter(f"{SVG}rect")}
    assert "#94a3b8" in fills and not any(f and "script" in f for f in fills)
    assert len(root.findall(f"{SVG}g")) == 2  # an unknown agent is still drawn
    assert "empty workflow" in preview_svg(workflow_from_data({"schema_version": 1, "name": "e", "nodes": []}), registry)


def test_last_run_is_the_newest_of_each_name_and_reads_as_a_sentence() -> None:
    def run(name: str, created: float, status: str = "succeeded", took: float | None = 2.5):
        return SimpleNamespace(workflow_name=name, created=created, status=status, duration_s=took)

    newest = last_runs([run("a", 10.0), run("b", 5.0), run("a", 30.0, "failed", 0.25), run("a", 20.0)])
    assert newest["a"].created == 30.0 and newest["b"].created == 5.0
    assert last_run_line(newest["a"], now=30.0 + 7200) == "Last run here: failed in 0.2 s, 2 hours ago."
    assert last_run_line(run("c", 0.0, took=95.0), now=90.0) == "Last run here: succeeded in 1.6 min, 1 min ago."
    assert last_run_line(run("c", 0.0, "cancelled", None), now=3.0) == "Last run here: cancelled, just now."
    assert last_run_line(None, now=0.0) == "Not run on this server yet."


def test_gallery_shows_cards_filters_them_and_says_how_each_last_ran(app: AppTest) -> None:
    store = Store()
    try:
        record_runs(store, RunManager(registry=default_registry(), machine=None),
                    [load_workflow(EXAMPLES_DIR / "two-stage.json")], RunOptions(time_scale=0.001))
    finally:
        store.close()
    app.run()
    assert not app.exception, app.exception
    stems = sorted(p.stem for p in EXAMPLES_DIR.glob("*.json"))
    assert sorted(b.key for b in app.button if b.key and b.key.startswith("tpl.")) == [f"tpl.{s}" for s in stems]
    captions = [str(c.value).replace("\\", "") for c in app.caption]
    assert sum(c.startswith("Last run here: succeeded in") for c in captions) == 1
    assert sum(c == "Not run on this server yet." for c in captions) == len(stems) - 1
    assert any(str(m.value).replace("\\", "") == "**Finance risk: credit, fraud and market stress**" for m in app.markdown)

    app.pills(key="tpl.filter").set_value(["text"]).run()
    shown = sorted(b.key for b in app.button if b.key and b.key.startswith("tpl."))
    assert shown == ["tpl.customer-service", "tpl.nlp-sentiment", "tpl.support-desks"]
    app.button(key="tpl.nlp-sentiment").click().run()
    assert not app.exception
    assert app.session_state[state.DESIGNER].workflow.name == "nlp-sentiment"
