"""The long-task attribution of the monitor's browser test (tests/e2e/monitor_trace.py) on a small
hand-made Chromium trace: which tasks count, their self times, their sampled scripts, the verdict."""

from __future__ import annotations

import json

from tests.e2e import monitor_trace

EMBED = "http://127.0.0.1:8501/static/js/embed.CX5AQgxi.js"


def trace(samples: int = 100, mark: bool = True) -> bytes:
    main = {"pid": 1, "tid": 7}
    events = [
        {"ph": "M", "name": "thread_name", "args": {"name": "CrRendererMain"}, **main},
        {"ph": "M", "name": "thread_name", "args": {"name": "Compositor"}, "pid": 1, "tid": 9},
        {"ph": "R", "cat": "blink.user_timing", "name": monitor_trace.START_MARK if mark else "other",
         "ts": 100_500.0, **main},
        {"ph": "X", "name": "RunTask", "ts": 0.0, "dur": 90_000, "tdur": 1_000, **main},  # before the mark
        {"ph": "X", "name": "RunTask", "ts": 101_000.0, "dur": 300_000, "tdur": 250_000, **main},
        {"ph": "X", "name": "ThreadControllerImpl::RunTask", "ts": 101_500.0, "dur": 299_000, **main},  # nested
        {"ph": "X", "name": "FunctionCall", "ts": 102_000.0, "dur": 200_000, "args": {"data": {"url": EMBED}},
         **main},
        {"ph": "X", "name": "Layout", "ts": 200_000.0, "dur": 50_000, **main},  # inside the call: forced layout
        {"ph": "X", "name": "UpdateLayoutTree", "ts": 310_000.0, "dur": 30_000, **main},
        {"ph": "X", "name": "RunTask", "ts": 500_000.0, "dur": 20_000, **main},  # short
        {"ph": "X", "name": "RunTask", "ts": 101_000.0, "dur": 500_000, "pid": 1, "tid": 9},  # not the main thread
        {"ph": "P", "name": "Profile", "id": "0x1", "ts": 101_000.0, "args": {"data": {"startTime": 101_000.0}},
         **main},
        {"ph": "P", "name": "ProfileChunk", "id": "0x1", "ts": 102_000.0, "pid": 1, "tid": 3, "args": {"data": {
            "cpuProfile": {"nodes": [
                {"id": 1, "callFrame": {"functionName": "(root)", "url": ""}},
                {"id": 2, "callFrame": {"functionName": "parse", "url": EMBED}, "parent": 1},
                {"id": 3, "callFrame": {"functionName": "(program)", "url": ""}, "parent": 1}],
                "samples": [2] * samples + [3] * 10},
            "timeDeltas": [1_000] * (samples + 10)}}},
    ]
    return json.dumps({"traceEvents": events}).encode()


def test_counts_only_outermost_main_thread_tasks_after_the_mark():
    tasks = monitor_trace.analyse(trace())
    assert [t["duration_ms"] for t in tasks] == [300]
    assert tasks[0]["cpu_ms"] == 250 and tasks[0]["at_ms"] == 0  # 1 ms after the mark rounds to 0


def test_self_times_remove_nested_events():
    events = monitor_trace.analyse(trace())[0]["trace_events_self_ms"]
    assert events == {"script embed.CX5AQgxi.js": 150, "layout": 50, "style": 30}


def test_samples_attribute_the_chunk_and_the_verdict_names_vega():
    task = monitor_trace.analyse(trace())[0]
    assert task["sampled_scripts_ms"]["embed.CX5AQgxi.js"] == 100
    assert task["sampled_functions_ms"] == {"embed.CX5AQgxi.js:parse": 100}
    assert task["what"].startswith("Vega-Lite charts")
    assert "waiting for a core" not in task["what"]  # CPU 250 of 300 ms


def test_verdict_flags_tasks_that_mostly_waited_for_the_cpu_and_tracing_start_up():
    assert "waiting for a core (CPU 20 of 300 ms)" in monitor_trace.verdict(
        {"react-dom.Dzbslgj4.js": 15_000.0}, {}, 300_000.0, 20_000.0)
    assert "artifact" in monitor_trace.verdict({}, {"V8.InvokeApiInterruptCallbacks": 290_000.0}, 300_000.0, None)
    without_mark = monitor_trace.analyse(trace(mark=False))
    assert len(without_mark) == 2  # no mark: every long task counts, the tracing start-up one too
