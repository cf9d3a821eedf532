"""Attribution of browser long tasks from a Chromium performance trace (what DevTools' Performance
panel records): each main-thread task over 50 ms with its wall and CPU time, where its time went
(trace events by self time: script, style, layout, paint, GC) and which scripts the V8 sampling
profiler saw running (by bundle chunk and function). Used by the monitor's browser tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

CATEGORIES = ("devtools.timeline", "disabled-by-default-devtools.timeline", "v8.execute", "toplevel",
              "blink.user_timing", "disabled-by-default-v8.cpu_profiler")
LONG_MS = 50.0  # what PerformanceObserver('longtask') reports
START_MARK = "sg-phase-start"  # performance.mark: tasks before it (tracing start-up) are left out
TASK_NAMES = ("RunTask", "ThreadControllerImpl::RunTask")
LABELS = {"UpdateLayoutTree": "style", "RecalculateStyles": "style", "Layout": "layout", "Paint": "paint",
          "PrePaint": "paint", "Layerize": "paint", "UpdateLayer": "paint", "Commit": "paint",
          "ParseHTML": "parse html", "ParseAuthorStyleSheet": "parse css", "v8.compile": "compile",
          "V8.CompileCode": "compile", "v8.compileModule": "compile", "MinorGC": "gc", "MajorGC": "gc",
          "BlinkGC.AtomicPhase": "gc", "V8.GCScavenger": "gc", "V8.GCFinalizeMC": "gc", "HitTest": "hit test",
          "IntersectionObserverController::computeIntersections": "intersection observer"}
SPECIAL = {"(program)": "(native: style, layout, paint, parsing)", "(garbage collector)": "(gc)",
           "(idle)": "(idle)", "(root)": "(native)"}


@dataclass
class Task:
    """One long main-thread task: microsecond times from the trace, and its attribution."""

    pid: int
    tid: int
    ts: float
    dur: float
    cpu: float | None
    events: dict[str, float] = field(default_factory=dict)  # label -> self µs
    scripts: dict[str, float] = field(default_factory=dict)  # chunk (file) -> sampled µs
    functions: dict[str, float] = field(default_factory=dict)  # chunk:function -> sampled µs
    marks: list[str] = field(default_factory=list)  # performance.mark names inside it


def load_events(raw: bytes) -> list[dict[str, Any]]:
    data = json.loads(raw)
    return data["traceEvents"] if isinstance(data, dict) else data


def renderer_main_threads(events: list[dict[str, Any]]) -> set[tuple[int, int]]:
    return {(e["pid"], e["tid"]) for e in events
            if e.get("ph") == "M" and e.get("name") == "thread_name"
            and (e.get("args") or {}).get("name") == "CrRendererMain"}


def basename(url: str) -> str:
    return url.rstrip("/").split("/")[-1].split("?")[0] if url else ""


def event_label(event: dict[str, Any]) -> str:
    name = event.get("name", "")
    data = (event.get("args") or {}).get("data") or {}
    if name == "FunctionCall":
        return f"script {basename(data.get('url', ''))}".strip()
    if name == "EvaluateScript":
        return f"evaluate {basename(data.get('url', ''))}".strip()
    if name == "EventDispatch":
        return f"event {data.get('type', '')}".strip()
    if name.startswith("V8.GC") or name.startswith("BlinkGC"):
        return "gc"
    return LABELS.get(name, name)


def find_long_tasks(events: list[dict[str, Any]], threshold_ms: float = LONG_MS) -> list[Task]:
    """The outermost RunTask events over ``threshold_ms`` on every renderer main thread."""
    mains = renderer_main_threads(events)
    runs = sorted((e for e in events if e.get("ph") == "X" and e.get("name") in TASK_NAMES
                   and (e["pid"], e["tid"]) in mains), key=lambda e: (e["ts"], -e.get("dur", 0)))
    tasks: list[Task] = []
    end: dict[tuple[int, int], float] = {}
    for e in runs:
        key = (e["pid"], e["tid"])
        if e["ts"] < end.get(key, -1.0):
            continue  # nested inside an outer task
        end[key] = e["ts"] + e.get("dur", 0)
        if e.get("dur", 0) > threshold_ms * 1000:
            tasks.append(Task(e["pid"], e["tid"], float(e["ts"]), float(e["dur"]),
                              float(e["tdur"]) if "tdur" in e else None))
    return tasks


def _inside(task: Task, ts: float) -> bool:
    return task.ts <= ts < task.ts + task.dur


def attribute_events(task: Task, events: list[dict[str, Any]]) -> None:
    """Self time per label of the complete ('X') events nested in ``task``."""
    inner = sorted((e for e in events if e.get("ph") == "X" and e["pid"] == task.pid and e["tid"] == task.tid
                    and e.get("name") not in TASK_NAMES and _inside(task, e["ts"])),
                   key=lambda e: (e["ts"], -e.get("dur", 0)))
    stack: list[tuple[float, str]] = []  # (end, label)
    for e in inner:
        dur = float(e.get("dur", 0))
        while stack and e["ts"] >= stack[-1][0]:
            stack.pop()
        label = event_label(e)
        task.events[label] = task.events.get(label, 0.0) + dur
        if stack:  # self time: remove it from the parent
            task.events[stack[-1][1]] = task.events.get(stack[-1][1], 0.0) - dur
        stack.append((e["ts"] + dur, label))
    task.marks = [e["name"] for e in events if e.get("cat", "").startswith("blink.user_timing")
                  and e["pid"] == task.pid and e.get("ts") is not None and _inside(task, e["ts"])]


def cpu_samples(events: list[dict[str, Any]]) -> list[tuple[int, int, float, float, str, str]]:
    """(pid, tid, ts µs, weight µs, chunk, function) of every V8 sample in the trace."""
    profiles: dict[tuple[int, str], dict[str, Any]] = {}
    for e in events:
        if e.get("ph") != "P" or e.get("name") not in ("Profile", "ProfileChunk"):
            continue
        prof = profiles.setdefault((e["pid"], str(e.get("id"))), {"tid": e["tid"], "t": None, "nodes": {},
                                                                   "samples": []})
        data = (e.get("args") or {}).get("data") or {}
        if e["name"] == "Profile":
            prof["tid"], prof["t"] = e["tid"], float(data.get("startTime", e["ts"]))
            continue
        cpu = data.get("cpuProfile") or {}
        for node in cpu.get("nodes") or []:
            frame = node.get("callFrame") or {}
            name = frame.get("functionName") or ""
            prof["nodes"][node["id"]] = SPECIAL.get(name) or (basename(frame.get("url", "")) or "(no url)", name)
        t = prof["t"] if prof["t"] is not None else float(e["ts"])
        for sample, delta in zip(cpu.get("samples") or [], data.get("timeDeltas") or [], strict=False):
            t += delta
            prof["samples"].append((t, sample))
        prof["t"] = t
    out = []
    for (pid, _), prof in profiles.items():
        samples = sorted(prof["samples"])
        for i, (t, node) in enumerate(samples):
            weight = min(samples[i + 1][0] - t, 5000.0) if i + 1 < len(samples) else 0.0
            where = prof["nodes"].get(node, ("(unknown)", ""))
            chunk, fn = (where, "") if isinstance(where, str) else where
            out.append((pid, prof["tid"], t, weight, chunk, fn))
    return out


def attribute_samples(tasks: list[Task], samples: list[tuple[int, int, float, float, str, str]]) -> None:
    for pid, _tid, t, weight, chunk, fn in samples:
        for task in tasks:
            if task.pid == pid and _inside(task, t):
                task.scripts[chunk] = task.scripts.get(chunk, 0.0) + weight
                if fn:
                    key = f"{chunk}:{fn}"
                    task.functions[key] = task.functions.get(key, 0.0) + weight
                break


GROUPS = (  # (chunk name prefixes, what that code is), first match wins
    (("embed.", "vega", "ArrowVegaLiteChart", "ordinal.", "cubic.", "opacities.", "band.", "linear."),
     "Vega-Lite charts (vega-embed: compile, dataflow, draw)"),
    (("DataFrame.", "glide", "recordbatch.", "Quiver.", "serialization."), "st.dataframe / Arrow decoding"),
    (("react-dom.", "emotion", "StreamlitMarkdown.", "styled-components.", "index.", "useCollection.",
      "DynamicIcon.", "(no url)"), "React render of Streamlit elements (markdown, widgets, styles, DOM)"),
    (("(gc)",), "garbage collection"),
    (("(native",), "browser: HTML parsing, style, layout, paint"),
)


def verdict(scripts: dict[str, float], events: dict[str, float], dur: float, cpu: float | None) -> str:
    """One line on what a long task was: the dominant code group by sampled time, and whether it
    mostly waited for the CPU (wall time far above thread time: other processes had the cores)."""
    if events.get("V8.InvokeApiInterruptCallbacks", 0.0) > dur / 2:
        return "tracing start-up (V8's profiler logging code): a measurement artifact"
    weights: dict[str, float] = {}
    for chunk, us in scripts.items():
        group = next((what for prefixes, what in GROUPS if chunk.startswith(prefixes)), "other scripts: " + chunk)
        weights[group] = weights.get(group, 0.0) + us
    if not weights or max(weights.values()) < 1000:
        evaluated = events.get("v8.evaluateModule", 0.0) + events.get("compile", 0.0)
        top = "module evaluation / compile" if evaluated > dur / 3 else max(events, key=events.get, default="?")
        what = f"no JS samples; trace: {top}"
    else:
        what = max(weights, key=weights.get)
    if cpu is not None and cpu < dur / 2:
        what += f"; mostly waiting for a core (CPU {cpu / 1000:.0f} of {dur / 1000:.0f} ms)"
    return what


def _top(values: dict[str, float], n: int) -> dict[str, int]:
    return {k: round(v / 1000) for k, v in sorted(values.items(), key=lambda kv: -kv[1])[:n] if v >= 1000}


def analyse(raw: bytes, threshold_ms: float = LONG_MS) -> list[dict[str, Any]]:
    """Every long task of a trace after START_MARK (else all), as JSON-ready dicts (ms from the mark)."""
    events = load_events(raw)
    marks = [e["ts"] for e in events if e.get("name") == START_MARK and e.get("ts") is not None]
    origin = min(marks) if marks else min((e["ts"] for e in events if e.get("ts") is not None and e.get("ph") != "M"), default=0.0)
    tasks = [t for t in find_long_tasks(events, threshold_ms) if t.ts >= origin]
    for task in tasks:
        attribute_events(task, events)
    attribute_samples(tasks, cpu_samples(events))
    return [{"at_ms": round((t.ts - origin) / 1000), "duration_ms": round(t.dur / 1000),
             "what": verdict(t.scripts, t.events, t.dur, t.cpu),
             "cpu_ms": round(t.cpu / 1000) if t.cpu is not None else None,
             "trace_events_self_ms": _top(t.events, 6), "sampled_scripts_ms": _top(t.scripts, 6),
             "sampled_functions_ms": _top(t.functions, 6), "marks": t.marks} for t in tasks]
