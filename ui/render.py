"""Small renderers shared by pages: the machine sidebar, validation findings, user-facing errors."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st

from engine.components import owner_of
from engine.issues import Issue
from engine.resources import Capacity


def capacity_lines(capacity: Capacity) -> list[str]:
    """Human lines describing a machine: CPU threads, memory, each GPU (simulated ones labelled)."""
    lines = [f"CPU threads: {capacity.cpu:g}" if capacity.cpu is not None else "CPU threads: unbounded",
             f"Memory: {capacity.memory_mb / 1024:,.1f} GB" if capacity.memory_mb else "Memory: unbounded"]
    if capacity.gpus:
        for gpu in capacity.gpus:
            tag = "simulated GPU" if gpu.simulated else gpu.name
            lines.append(f"GPU {gpu.device_id}: {tag}, {gpu.memory_mb / 1024:,.1f} GB")
    else:
        lines.append("GPU: no GPU")
    lines += [f"{name}: {amount:g}" for name, amount in sorted(capacity.custom.items())]
    return lines


def machine_sidebar(capacity: Capacity) -> None:
    with st.sidebar:
        st.subheader("This machine")
        st.markdown("\n".join(f"- {line}" for line in capacity_lines(capacity)))


def issues_by_node(issues: Sequence[Issue], instances: Sequence[str] = ()) -> dict[str, list[dict[str, str | None]]]:
    """Findings grouped by node id, as the canvas draws them (badge, outline, port, tooltip); a
    finding on a node inside a component instance (``instances``) is drawn on the instance."""
    out: dict[str, list[dict[str, str | None]]] = {}
    pool = set(instances)
    for issue in issues:
        if issue.node:
            owner = owner_of(issue.node, pool) if pool else issue.node
            out.setdefault(owner, []).append({"severity": issue.severity, "message": issue.message,
                                              "port": issue.port if owner == issue.node else None})
    return out


def run_blocker(issues: Sequence[Issue]) -> str | None:
    """Why a run is not possible yet (None when it is)."""
    errors = [i for i in issues if i.is_error]
    if not errors:
        return None
    first = errors[0]
    where = f" on {first.node}" if first.node else ""
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"Fix {len(errors)} error(s) before running: {first.message}{where}{more}"


def issue_md(issue: Issue) -> str:
    """A finding's message, and its hint (how to fix it) on a line of its own, as Markdown."""
    hint = f"  \n*{escape_md(issue.hint)}*" if issue.hint else ""
    return escape_md(issue.message) + hint


def issue_list(issues: Sequence[Issue], *, on_select: Callable[[str], None], key: str = "issue") -> None:
    """Findings as a list; a finding on a node has a button that selects that node."""
    if not issues:
        st.success("No problems found.")
        return
    for i, issue in enumerate(issues):
        icon = ":material/error:" if issue.is_error else ":material/warning:"
        cols = st.columns([5, 1], vertical_alignment="center")
        text = f"**{issue.code}**{f' · {code_md(issue.node)}' if issue.node else ''}: {issue_md(issue)}"
        (cols[0].error if issue.is_error else cols[0].warning)(text, icon=icon)
        if issue.node:
            cols[1].button("Select", key=f"{key}.{i}", on_click=on_select, args=(issue.node,),
                           help=f"select {issue.node} on the canvas")


def escape_md(text: str) -> str:
    """Text shown through Markdown without being interpreted (user-typed names, messages)."""
    out = []
    for ch in str(text):
        out.append("\\" + ch if ch in "\\`*_{}[]()#+-.!|<>~$:" else ch)
    return "".join(out)


def code_md(text: str) -> str:
    """User text as inline code (backticks inside are replaced, nothing else is interpreted)."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"


def show_error(what: str, exc: BaseException, *, hint: str | None = None) -> None:
    """A user-facing error: what failed and why (never a traceback), with a hint when known."""
    hint = hint or getattr(exc, "hint", None)
    text = f"{what}: {escape_md(str(exc))}"
    if hint:
        text += f"  \n*{escape_md(hint)}*"
    st.error(text, icon=":material/error:")
