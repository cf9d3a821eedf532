"""A component open for editing in place, in the designer (``engine.inside``): what the canvas draws
inside it (its nodes, its Inputs and Outputs, what validation and a run say of them), and the
panel of its ports and description.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from engine.components import SEP, instance_agent, instances_of
from engine.inside import (
    INPUTS,
    INPUTS_AGENT,
    OUTPUTS,
    OUTPUTS_AGENT,
    boundary_ports,
    holders_of,
    inside_issues,
    inside_states,
    is_boundary,
    placed_instances,
)
from engine.issues import Issue
from engine.items import PlannedItems
from engine.registry import Registry
from engine.workflow import Workflow
from storage.summaries import ComponentSummary
from ui.component_library import library_palette, mark_library_versions
from ui.editor import DesignerSession
from ui.graphmodel import COMPONENT_COLOR, canvas_graph, counted_labels, palette_of, port_entry
from ui.render import code_md, escape_md, issues_by_node

Saver = Callable[[DesignerSession], None]
BOUNDARY_CATEGORY = "boundary"  # palette entries the canvas draws but does not list


def inside_canvas(sess: DesignerSession, registry: Registry, document: Workflow, sized: PlannedItems,
                  issues: list[Issue], statuses: dict[str, str], shelf: list[ComponentSummary],
                  counted: dict[tuple[str, str], int] | None = None) -> dict[str, Any]:
    """What ``ui.canvas.draw_canvas`` draws while a component is open: its inside (the session's
    workflow) with the items planned on its wires (and, after a run, counted: ``counted`` by node
    of the expansion and port) in the instance it was opened from, the findings and run states of
    its nodes in every instance, and a palette without the components it may not hold."""
    view, name = sess.workflow, sess.scope_name or ""
    placed = placed_instances(document, name)
    shown = shown_instance(sess, placed)  # the instance whose plan and counts the wires show
    inside_sized = sized.inside(shown) if shown is not None else PlannedItems({}, {})
    graph = mark_library_versions(canvas_graph(view, registry, sess.selected, inside_sized), shelf, view)
    outs, ins = boundary_ports(document, name, registry)
    for item in graph["nodes"]:
        if is_boundary(item["id"]):
            item["boundary"] = True
            item["sub"] = "wire + to add an input" if item["id"] == INPUTS else "wire to + to add an output"
    refused = {instance_agent(h) for h in holders_of(view, name)}  # it cannot hold itself
    palette = [p for p in palette_of(registry, view) + library_palette(shelf, view, registry) if p["name"] not in refused]
    palette += [
        {"name": INPUTS_AGENT, "label": "Inputs", "category": BOUNDARY_CATEGORY, "hidden": True,
         "description": f"the inputs of component {name}", "color": COMPONENT_COLOR, "inputs": [],
         "outputs": [port_entry(p) for p in outs]},
        {"name": OUTPUTS_AGENT, "label": "Outputs", "category": BOUNDARY_CATEGORY, "hidden": True,
         "description": f"the outputs of component {name}", "color": COMPONENT_COLOR,
         "inputs": [port_entry(p) for p in ins], "outputs": []},
    ]
    head = f"{shown}{SEP}"
    inner_counts = {(node[len(head):], port): n for (node, port), n in (counted or {}).items()
                    if shown is not None and node.startswith(head) and SEP not in node[len(head):]}
    return {"palette": palette, "graph": graph,
            "issues": issues_by_node(inside_issues(issues, placed), instances_of(view)),
            "status": inside_states(statuses, placed),
            "counted": counted_labels(view, registry, inner_counts, inside_sized),
            "scope": {"workflow": document.name, "component": name, "instances": len(placed),
                      "trail": list(sess.scope.trail) if sess.scope is not None else []}}


def shown_instance(sess: DesignerSession, placed: list[str] | None = None) -> str | None:
    """With a component open, the id in the expansion of the instance it was opened from (the
    first instance when that one no longer holds it): whose plan, counts and outputs are shown.
    ``placed``: the component's instances in the expansion, when the caller has them."""
    scope = sess.scope
    if scope is None:
        return None
    placed = placed_instances(sess.document, scope.name) if placed is None else placed
    here = [p for p in placed if p == scope.instance or p.startswith(scope.instance + SEP)]
    return (here or placed or [None])[0]


def inside_panel(sess: DesignerSession, save: Saver) -> None:
    """The panel of the open component (nothing selected, or its Inputs or Outputs): its
    description, its ports (renamed here: the wires of its instances follow), and the way back."""
    scope, view = sess.scope, sess.workflow
    if scope is None:
        return
    users = len(placed_instances(sess.document, scope.name))
    st.markdown(f"#### Inside {escape_md(scope.name)}")
    st.caption(f"component {code_md(scope.name)} · {len(view.nodes) - 2} nodes inside · "
               f"{users} node{'s' if users != 1 else ''} of the workflow run it: a change here is theirs too. "
               "A node's values here are the component's; a node of it may set its own in its panel.")
    st.button("Back to the workflow", key="inside.leave", icon=":material/arrow_back:", on_click=_leave,
              args=(sess, save), help="Close the component (the path above the canvas does the same)")
    key = f"inside.description.{sess.rev}"
    st.text_area("Description", value=view.description, key=key, max_chars=4000, height=80,
                 on_change=_describe, args=(sess, key, save), help="shown in the palette and in every node's panel")
    for side, boundary in (("inputs", INPUTS), ("outputs", OUTPUTS)):
        wires = [e for e in view.edges if boundary in (e.source, e.target)]
        names = list(dict.fromkeys((e.source_port if side == "inputs" else e.target_port) or "" for e in wires))
        st.markdown(f"**{side.capitalize()}**")
        if not names:
            st.caption(f"none yet: wire {'Inputs + to a port inside' if side == 'inputs' else 'a port inside to Outputs +'}")
        for port in names:
            inner = [_end(e.target, e.target_port) if side == "inputs" else _end(e.source, e.source_port)
                     for e in wires if ((e.source_port if side == "inputs" else e.target_port) or "") == port]
            key = f"inside.port.{side}.{port}.{sess.rev}"
            st.text_input(f"{side[:-1]} {port}", value=port, key=key, max_chars=100, label_visibility="collapsed",
                          on_change=_rename, args=(sess, side, port, key, save),
                          help=f"{'feeds' if side == 'inputs' else 'gives out'} {', '.join(inner)}; rename it here "
                               "(the wires of its nodes follow), or delete its wire on the canvas to remove it")
            st.caption(("→ " if side == "inputs" else "← ") + escape_md(", ".join(inner)))


def _end(node: str, port: str | None) -> str:
    return f"{node}.{port}" if port else node


def _leave(sess: DesignerSession, save: Saver) -> None:
    sess.leave()
    save(sess)


def _describe(sess: DesignerSession, key: str, save: Saver) -> None:
    text = str(st.session_state.get(key) or "")[:4000]
    if text != sess.workflow.description:
        sess.push(sess.workflow.model_copy(update={"description": text}))
        save(sess)


def _rename(sess: DesignerSession, side: str, old: str, key: str, save: Saver) -> None:
    new = str(st.session_state.get(key) or "")
    if new.strip() and new.strip() != old:
        sess.rename_port(side, old, new)
        save(sess)
