"""Writes the bad-input corpus (tests/reliability/corpus/) and its index, corpus/index.json.

Each entry: the file, what is wrong with it, the public entry point that must answer it
(``validate``: engine.validation.validate_text; ``model``: engine.agents.model_files.load_model) and
the expected answer (issue code, or error type for models) with a fragment of the message. Run
``python tests/reliability/make_corpus.py`` to regenerate; the huge inputs are generated in the tests.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).with_name("corpus")
CAP = {"cpu": 4, "memory_mb": 4096, "gpus": []}
XSS = "<img src=x onerror=alert(1)>"


def doc(nodes: list[dict[str, Any]], edges: list[tuple[str, str]] = (), **extra: Any) -> dict[str, Any]:
    return {"schema_version": 1, "name": "corpus", "nodes": nodes,
            "edges": [{"source": s, "target": t} for s, t in edges], "capacity": CAP, **extra}


def sleep(node_id: str, **params: Any) -> dict[str, Any]:
    return {"id": node_id, "agent": "test.sleep", "params": params}


def js(data: Any) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False)


OK2 = doc([sleep("a"), sleep("b")], [("a", "b")])
E: list[tuple[str, str, str, str, str, Any]] = []  # file, description, entry, expected, fragment, content


def add(file: str, description: str, expected: str, fragment: str, content: Any, entry: str = "validate") -> None:
    E.append((file, description, entry, expected, fragment, content))


# -- unparseable and truncated -------------------------------------------------------------------
add("empty.json", "an empty file", "invalid_file", "not NoneType", "")
add("whitespace.json", "only whitespace", "invalid_file", "neither valid JSON nor valid YAML", "   \n\t\n")
add("truncated.json", "JSON cut in the middle of a node", "invalid_file", "not valid JSON", js(OK2)[:60])
add("truncated_string.json", "JSON cut inside a string", "invalid_file", "not valid JSON", '{"schema_version": 1, "name": "ab')
add("trailing_comma.json", "a trailing comma", "invalid_file", "not valid JSON", '{"schema_version": 1, "nodes": [],}')
add("single_quotes.json", "single-quoted keys", "invalid_file", "not valid JSON", "{'schema_version': 1}")
add("comments.json", "JSON with // comments", "invalid_file", "not valid JSON", '{\n// a comment\n"schema_version": 1}')
add("unclosed_bracket.json", "an unclosed array", "invalid_file", "not valid JSON", '{"schema_version": 1, "nodes": [')
add("garbage.json", "random punctuation", "invalid_file", "neither valid JSON nor valid YAML", "@@@ ::: {{{ ]]] %%%")
add("bad_indent.yaml", "YAML with broken indentation", "invalid_file", "neither valid JSON nor valid YAML",
    "schema_version: 1\nnodes:\n  - id: a\n   agent: test.sleep\n")
add("truncated.yaml", "YAML cut inside a flow mapping", "invalid_file", "neither valid JSON nor valid YAML",
    "schema_version: 1\nnodes: [{id: a, agent: test.sle")
add("yaml_tab.yaml", "YAML indented with a tab", "invalid_file", "neither valid JSON nor valid YAML",
    "schema_version: 1\nnodes:\n\t- id: a\n")
add("yaml_python_tag.yaml", "YAML asking for a Python object (must not construct it)", "invalid_file",
    "neither valid JSON nor valid YAML", "schema_version: 1\nname: !!python/object/apply:os.system ['touch /tmp/pwned']\n")
add("top_level_list.json", "a JSON list instead of an object", "invalid_file", "not list", "[1, 2, 3]")
add("top_level_string.json", "a JSON string", "invalid_file", "not str", '"workflow"')
add("top_level_number.json", "a bare number", "invalid_file", "not int", "42")
add("null.json", "JSON null", "invalid_file", "not NoneType", "null")
add("bom_only_yaml.yaml", "a YAML scalar", "invalid_file", "not str", "just some words\n")
# -- schema versions and fields ------------------------------------------------------------------
add("no_schema_version.json", "schema_version missing", "invalid_file", "no `schema_version`",
    {k: v for k, v in OK2.items() if k != "schema_version"})
add("future_schema.json", "schema_version 99", "invalid_file", "newer than this ServiceGrid understands", {**OK2, "schema_version": 99})
add("schema_zero.json", "schema_version 0", "invalid_file", "not supported", {**OK2, "schema_version": 0})
add("schema_negative.json", "schema_version -1", "invalid_file", "not supported", {**OK2, "schema_version": -1})
add("schema_string.json", "schema_version as a word", "invalid_file", "schema_version", {**OK2, "schema_version": "one"})
add("unknown_top_field.json", "an unknown top-level field", "invalid_file", "unknown field 'nodez'", {**OK2, "nodez": []})
add("unknown_node_field.json", "an unknown node field", "invalid_file", "unknown field 'agnt'",
    doc([{"id": "a", "agent": "test.sleep", "agnt": "x"}]))
add("unknown_edge_field.json", "an unknown edge field", "invalid_file", "unknown field 'from'",
    {**OK2, "edges": [{"source": "a", "target": "b", "from": "a"}]})
add("unknown_param.json", "an unknown agent parameter", "invalid_param", "unknown parameter 'secs'",
    doc([{"id": "a", "agent": "test.sleep", "params": {"secs": 1}}]))
add("unknown_resource.json", "an unknown resource override", "invalid_resources", "node 'a'",
    doc([{"id": "a", "agent": "test.sleep", "resources": {"ram": 5}}]))
add("unknown_lifecycle.json", "an unknown lifecycle section", "invalid_lifecycle", "node 'a'",
    doc([{"id": "a", "agent": "test.sleep", "lifecycle": {"when": {}}}]))
# -- NaN, infinity, negative and enormous numbers -------------------------------------------------
add("nan_param.json", "NaN literal in params", "invalid_file", "NaN is not allowed",
    '{"schema_version": 1, "nodes": [{"id": "a", "agent": "test.sleep", "params": {"seconds": NaN}}]}')
add("infinity_memory.json", "Infinity memory", "invalid_file", "Infinity is not allowed",
    '{"schema_version": 1, "nodes": [{"id": "a", "agent": "test.sleep", "resources": {"memory_mb": Infinity}}]}')
add("neg_infinity_capacity.json", "-Infinity capacity", "invalid_file", "-Infinity is not allowed",
    '{"schema_version": 1, "nodes": [], "capacity": {"cpu": -Infinity}}')
add("nan_position.yaml", "YAML .nan as a canvas position", "invalid_file", "position",
    "schema_version: 1\nnodes:\n  - id: a\n    agent: test.sleep\n    position: {x: .nan, y: 0}\n")
add("inf_yaml_param.yaml", "YAML .inf in params", "invalid_file", "only finite numbers",
    "schema_version: 1\nnodes:\n  - id: a\n    agent: test.sleep\n    params: {seconds: .inf}\n")
add("negative_duration.json", "a negative sleep", "invalid_param", "seconds = -5",
    doc([sleep("a", seconds=-5)]))
add("enormous_duration.json", "a sleep of 1e300 seconds", "invalid_param", "seconds = 1e+300",
    doc([sleep("a", seconds=1e300)]))
add("negative_sim_duration.json", "a negative simulated duration", "invalid_param", "duration_s",
    doc([{"id": "a", "agent": "sim.task", "params": {"duration_s": -1}}]))
add("negative_memory.json", "a negative memory demand", "invalid_resources", "node 'a'",
    doc([{"id": "a", "agent": "test.sleep", "resources": {"memory_mb": -100}}]))
add("enormous_memory.json", "a demand of 1e15 MB", "invalid_resources", "node 'a'",
    doc([{"id": "a", "agent": "test.sleep", "resources": {"memory_mb": 1e15}}]))
add("memory_over_capacity.json", "a demand larger than the capacity", "capacity_exceeded", "memory",
    doc([{"id": "a", "agent": "test.sleep", "resources": {"memory_mb": 100000}}]))
add("negative_cpu.json", "a negative cpu demand", "invalid_resources", "node 'a'",
    doc([{"id": "a", "agent": "test.sleep", "resources": {"cpu": -1}}]))
add("zero_capacity.json", "capacity cpu 0", "invalid_file", "capacity.cpu", {**OK2, "capacity": {"cpu": 0}})
add("negative_capacity.json", "negative capacity memory", "invalid_file", "capacity.memory_mb",
    {**OK2, "capacity": {"memory_mb": -1}})
add("enormous_capacity.json", "capacity of 1e300 CPUs", "invalid_file", "capacity.cpu", {**OK2, "capacity": {"cpu": 1e300}})
add("huge_int_param.json", "an integer with 400 digits", "invalid_param", "seconds",
    '{"schema_version": 1, "capacity": {"cpu": 4, "memory_mb": 4096, "gpus": []}, '
    '"nodes": [{"id": "a", "agent": "test.sleep", "params": {"seconds": 1' + "0" * 400 + "}}]}")
add("negative_timeout.json", "a negative timeout", "invalid_lifecycle", "node 'a'",
    doc([{"id": "a", "agent": "test.sleep", "lifecycle": {"execution": {"timeout_s": -1}}}]))
add("enormous_retries.json", "a million retries", "invalid_lifecycle", "node 'a'",
    doc([{"id": "a", "agent": "test.sleep", "lifecycle": {"execution": {"retries": 1000000}}}]))
add("position_far.json", "a canvas position at 1e12", "invalid_file", "position",
    doc([{"id": "a", "agent": "test.sleep", "position": {"x": 1e12, "y": 0}}]))
# -- unicode and markup in ids and labels ---------------------------------------------------------
add("nul_in_id.json", "a NUL byte in a node id", "invalid_file", "nodes[0].id",
    doc([{"id": "a\u0000b", "agent": "test.sleep"}]))
add("newline_in_id.json", "a newline in a node id", "invalid_file", "nodes[0].id",
    doc([{"id": "a\nb", "agent": "test.sleep"}]))
add("empty_id.json", "an empty node id", "invalid_file", "nodes[0].id", doc([{"id": "", "agent": "test.sleep"}]))
add("long_id.json", "a 1,000-character node id", "invalid_file", "nodes[0].id", doc([{"id": "x" * 1000, "agent": "test.sleep"}]))
add("long_label.json", "a 10,000-character label", "invalid_file", "nodes[0].label",
    doc([{"id": "a", "agent": "test.sleep", "label": "L" * 10000}]))
add("xss_id_unknown_agent.json", "markup in an id, with an unknown agent (message quotes it as text)",
    "unknown_agent", XSS, doc([{"id": XSS, "agent": "no.such"}]))
add("xss_agent.json", "markup as the agent name", "unknown_agent", "onerror", doc([{"id": "a", "agent": XSS}]))
add("rtl_ids_cycle.json", "RTL override marks in ids, in a cycle", "cycle", "\u202e",
    doc([sleep("\u202ea"), sleep("b\u200f")], [("\u202ea", "b\u200f"), ("b\u200f", "\u202ea")]))
add("emoji_self_loop.json", "an emoji id with a self-loop", "self_loop", "\U0001f680",
    doc([sleep("\U0001f680")], [("\U0001f680", "\U0001f680")]))
add("xss_edge_target.json", "markup in an edge target", "unknown_node", "onerror",
    doc([sleep("a")], [("a", XSS)]))
add("lone_surrogate.json", "a lone UTF-16 surrogate escape in a label", "invalid_file", "label",
    '{"schema_version": 1, "nodes": [{"id": "a", "agent": "test.sleep", "label": "\\ud800"}]}')
# -- graph shape ---------------------------------------------------------------------------------
add("self_loop.json", "an edge from a node to itself", "self_loop", "cannot feed itself", doc([sleep("a")], [("a", "a")]))
add("cycle3.json", "a three-node cycle", "cycle", "->", doc([sleep("a"), sleep("b"), sleep("c")],
                                                          [("a", "b"), ("b", "c"), ("c", "a")]))
add("two_cycles.json", "two separate cycles", "cycle", "->",
    doc([sleep(n) for n in "abcd"], [("a", "b"), ("b", "a"), ("c", "d"), ("d", "c")]))
add("duplicate_ids.json", "two nodes with one id", "duplicate_node", "two nodes have the id 'a'",
    doc([sleep("a"), sleep("a")]))
add("edge_missing_source.json", "an edge from a missing node", "unknown_node", "ghost", doc([sleep("a")], [("ghost", "a")]))
add("edge_missing_both.json", "an edge between missing nodes", "unknown_node", "nowhere",
    doc([sleep("a")], [("nowhere", "nothing")]))
add("duplicate_edge.json", "the same edge twice", "duplicate_edge", "appears twice", doc([sleep("a"), sleep("b")], [("a", "b"), ("a", "b")]))
add("bad_port.json", "an edge to a port that does not exist", "unknown_port", "nope",
    {**OK2, "edges": [{"source": "a", "target": "b", "target_port": "nope"}]})
add("unknown_agent_typo.json", "a mistyped agent name", "unknown_agent", "did you mean 'test.sleep'",
    doc([{"id": "a", "agent": "test.slep"}]))
add("unregistered_code_agent.json", "an agent name that looks like code (never imported)", "unknown_agent",
    "os.system", doc([{"id": "a", "agent": "os.system"}]))
# -- wrong types everywhere ----------------------------------------------------------------------
add("nodes_object.json", "nodes as an object", "invalid_file", "nodes", {**OK2, "nodes": {"a": 1}})
add("edges_string.json", "edges as a string", "invalid_file", "edges", {**OK2, "edges": "a->b"})
add("node_string.json", "a node given as a string", "invalid_file", "nodes[0]", {**OK2, "nodes": ["a"]})
add("id_number.json", "a numeric node id", "invalid_file", "nodes[0].id", doc([{"id": 7, "agent": "test.sleep"}]))
add("agent_list.json", "the agent as a list", "invalid_file", "nodes[0].agent", doc([{"id": "a", "agent": ["test.sleep"]}]))
add("params_list.json", "params as a list", "invalid_file", "nodes[0].params", doc([{"id": "a", "agent": "test.sleep", "params": [1]}]))
add("param_string.json", "a duration given as text", "invalid_param", "seconds", doc([sleep("a", seconds="soon")]))
add("param_bool_object.json", "a parameter given as an object", "invalid_param", "seconds", doc([sleep("a", seconds={"v": 1})]))
add("name_number.json", "the workflow name as a number", "invalid_file", "name", {**OK2, "name": 12})
add("capacity_list.json", "capacity as a list", "invalid_file", "capacity", {**OK2, "capacity": [4, 4096]})
add("edge_missing_target.json", "an edge without target", "invalid_file", "edges[0].target",
    {**OK2, "edges": [{"source": "a"}]})
add("node_missing_agent.json", "a node without agent", "invalid_file", "nodes[0].agent", doc([{"id": "a"}]))
add("resources_string.json", "resources as a string", "invalid_file", "nodes[0].resources",
    doc([{"id": "a", "agent": "test.sleep", "resources": "lots"}]))
add("gpu_required_none.json", "a node that needs a GPU on a machine without one", "no_device", "node 'a'",
    doc([{"id": "a", "agent": "test.sleep", "resources": {"device": "cuda", "gpu_memory_mb": 100}}]))
# -- encodings --------------------------------------------------------------------------------------
add("latin1.json", "Latin-1 bytes (not UTF-8)", "UnicodeDecodeError", "", js(doc([sleep("caf\u00e9")])).encode("latin-1"))
add("utf16.json", "UTF-16 text", "UnicodeDecodeError", "", js(OK2).encode("utf-16"))
add("binary.json", "random binary", "UnicodeDecodeError", "", bytes(range(128, 256)) * 8)


# -- corrupt model files (custom.model) --------------------------------------------------------------
class _Marker:
    """A pickle payload whose loading would create the marker file (it must never be loaded)."""

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return (open, ("MARKER_PATH", "w"))


def _pickle_bytes() -> bytes:
    return pickle.dumps(_Marker(), protocol=2).replace(b"MARKER_PATH", b"/tmp/sg_pickle_marker")


def _zip_with_pickle() -> bytes:
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", _pickle_bytes())
        zf.writestr("archive/version", "3\n")
    return buf.getvalue()


add("model_random.pt", "random bytes named .pt", "ModelFileError", "not a TorchScript archive",
    bytes((i * 37 + 11) % 256 for i in range(4096)), entry="model")
add("model_random.onnx", "random bytes named .onnx", "ModelFileError", "not an ONNX model",
    bytes((i * 53 + 7) % 256 for i in range(4096)), entry="model")
add("model_pickle.pt", "a pickle renamed .pt (its __reduce__ would create a marker file)", "ModelFileError",
    "not a TorchScript archive", _pickle_bytes(), entry="model")
add("model_truncated_zip.pt", "the first 300 bytes of a zip archive", "ModelFileError", "could not be loaded",
    _zip_with_pickle()[:300], entry="model")
add("model_zip_pickle.pt", "a torch.save-like zip holding a malicious data.pkl", "ModelFileError",
    "could not be loaded", _zip_with_pickle(), entry="model")
add("model_empty.onnx", "an empty .onnx file", "ModelFileError", "is empty", b"", entry="model")
add("model_zip.onnx", "a zip named .onnx", "ModelFileError", "not an ONNX model", _zip_with_pickle(), entry="model")
add("model_fake_onnx.onnx", "a file starting like protobuf but truncated", "ModelFileError", "could not be loaded",
    b"\x08\x07\x12\x04test" + b"\xff" * 40, entry="model")
add("model_text.pkl", "a pickle with an unknown suffix", "ModelFileError", "unknown model type", _pickle_bytes(), entry="model")


def write() -> int:
    CORPUS.mkdir(exist_ok=True)
    for old in CORPUS.iterdir():
        if old.name != "index.json":
            old.unlink()
    index = []
    for file, description, entry, expected, fragment, content in E:
        data = content if isinstance(content, bytes) else (
            content if isinstance(content, str) else js(content)).encode("utf-8", "surrogatepass")
        (CORPUS / file).write_bytes(data)
        index.append({"file": file, "description": description, "entry": entry, "expected": expected,
                      "fragment": fragment})
    (CORPUS / "index.json").write_text(json.dumps(index, indent=1, ensure_ascii=True) + "\n", encoding="utf-8")
    return len(index)


if __name__ == "__main__":
    print(f"wrote {write()} corpus files to {CORPUS}")
