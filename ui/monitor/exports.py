"""Exports of a stored run: node runs and samples as CSV (for st.download_button); the whole run as
JSON is ``storage.transfer.run_document``, which History's import reads back."""

from __future__ import annotations

import csv
import io

from ui.monitor.view import RunView

NODE_COLUMNS = ("node", "agent", "status", "device", "attempts", "cached", "queued_at", "start", "end", "wall_s",
                "cpu_s", "wait_inputs_s", "wait_resource_s", "queue_s", "memory_mb", "peak_rss_mb", "peak_gpu_mb",
                "error_type", "error_message")


def nodes_csv(view: RunView) -> str:
    """One CSV row per node with its times (POSIX s), measurements and error."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(NODE_COLUMNS)
    for nid, n in view.nodes.items():
        err = n.get("error") or {}
        values = {"node": nid, "error_type": err.get("type"), "error_message": err.get("message"), **n}
        writer.writerow(["" if values.get(c) is None else values.get(c) for c in NODE_COLUMNS])
    return buf.getvalue()


def samples_csv(view: RunView) -> str:
    """System samples as CSV: time, process CPU %, RSS MB, then per-node CPU % columns."""
    names = sorted({nid for s in view.samples for nid in s["per_node"]})
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["time", "t_s", "cpu_percent", "rss_mb", *[f"cpu_percent.{n}" for n in names]])
    for s in view.samples:
        per = s["per_node"]
        writer.writerow([s["time"], round(s["time"] - view.t0, 3), s["cpu_percent"], s["rss_mb"],
                         *[per.get(n, {}).get("cpu_percent", "") for n in names]])
    return buf.getvalue()
