"""Parameter forms generated from a pydantic model's JSON schema.

``schema_fields`` reads the schema (pure, testable): int/float with ranges, enums, bools,
strings, optional values and anything else as JSON. ``render_fields`` draws one widget per field
(number_input, selectbox, checkbox, text_input) with the description as help, and reports each
change through ``on_change(name, value)`` from a widget callback (so it applies before the rerun).

A field that names what the node receives (a column of its input table, a class of its input
scores) says so in its schema (``engine.spec.picks``); given the ``choices`` the
workflow knows for it, the form offers them in a selectbox (a list of columns: a multiselect)
instead of a text box, as Orange's widgets list their input's variables.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st
from pydantic import BaseModel, ValidationError

from engine.spec import PICKS_KEY


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str  # int | float | bool | enum | str | json
    title: str
    help: str = ""
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    options: tuple[Any, ...] = ()
    optional: bool = False
    picks: str | None = None  # "column", "columns", "class", "value": offered from what the node receives


NOT_SET = "(not set)"


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return {**defs.get(ref.split("/")[-1], {}), **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def schema_fields(schema: Mapping[str, Any]) -> list[FieldSpec]:
    """One FieldSpec per property of an object schema, in declaration order."""
    defs = schema.get("$defs", {})
    out = []
    for name, raw in (schema.get("properties") or {}).items():
        prop = _resolve(raw, defs)
        optional = False
        variants = prop.get("anyOf")
        if variants:
            non_null = [_resolve(v, defs) for v in variants if v.get("type") != "null"]
            optional = len(non_null) < len(variants)
            body = {**non_null[0], **{k: v for k, v in prop.items() if k != "anyOf"}} if len(non_null) == 1 else {}
        else:
            body = prop
        out.append(_field(name, body, prop, optional))
    return out


def _field(name: str, body: Mapping[str, Any], prop: Mapping[str, Any], optional: bool) -> FieldSpec:
    title = str(prop.get("title") or name.replace("_", " "))
    # a list or mapping made by a default factory has no default in the schema: it starts empty
    empty = [] if body.get("type") == "array" else {} if body.get("type") == "object" else None
    common = {"name": name, "title": title, "help": str(prop.get("description") or ""),
              "default": prop.get("default", None if optional else empty), "optional": optional,
              "picks": prop.get(PICKS_KEY)}
    if "enum" in body:
        return FieldSpec(kind="enum", options=tuple(body["enum"]), **common)
    kind = body.get("type")
    if kind in ("integer", "number"):
        low = body.get("minimum", body.get("exclusiveMinimum"))
        high = body.get("maximum", body.get("exclusiveMaximum"))
        if kind == "integer":
            low = low + 1 if "minimum" not in body and low is not None else low
            high = high - 1 if "maximum" not in body and high is not None else high
        return FieldSpec(kind="int" if kind == "integer" else "float", minimum=low, maximum=high, **common)
    if kind == "boolean":
        return FieldSpec(kind="bool", **common)
    if kind == "string":
        return FieldSpec(kind="str", **common)
    return FieldSpec(kind="json", **common)


def parse_text(field: FieldSpec, text: str) -> Any:
    """The value typed into a text box for ``field`` (optional numbers, JSON). Raises ValueError."""
    text = text.strip()
    if field.optional and text == "":
        return None
    if field.kind == "int":
        return int(text)
    if field.kind == "float":
        return float(text)
    if field.kind == "str":
        return text
    if text == "" and isinstance(field.default, list | dict):
        return type(field.default)()  # an emptied list or mapping box means an empty one, not invalid JSON
    return json.loads(text)


def shown_values(model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with those of the fields whose default a factory makes (a list of rules, of
    columns) where ``values`` lacks them: the form shows what will be used, not an empty list
    (JSON Schema carries no default for them)."""
    made = [n for n, f in model.model_fields.items() if f.default_factory is not None and n not in values]
    if not made:
        return dict(values)
    try:
        defaults = model.model_validate({}).model_dump(mode="json")
    except ValidationError:  # a field without a default: the schema's defaults are all there is
        return dict(values)
    return {**{n: defaults[n] for n in made if n in defaults}, **values}


def render_fields(fields: list[FieldSpec], values: Mapping[str, Any], *, key_prefix: str,
                  on_change: Callable[[str, Any], None], disabled: bool = False,
                  choices: Mapping[str, Sequence[str]] | None = None, many: Collection[str] = ()) -> None:
    """Draw a widget per field showing ``values`` (else the default); changes go to ``on_change``.
    ``choices``: by ``FieldSpec.picks``, what the workflow knows the node receives (columns,
    classes); a field whose choices are unknown keeps its text box. ``many``: the picks that take
    several values (a branch's ``in``), offered as a multiselect whatever the value holds now."""
    for field in fields:
        value = values.get(field.name, field.default)
        key = f"{key_prefix}.{field.name}"
        options = (choices or {}).get(field.picks or "")
        if options:
            _picker(field, value, key, list(options), on_change, disabled, field.picks in many)
        else:
            _widget(field, value, key, on_change, disabled)


def _picker(field: FieldSpec, value: Any, key: str, options: list[str],
            on_change: Callable[[str, Any], None], disabled: bool, many: bool = False) -> None:
    """A selectbox over ``options``; a multiselect when the value is a list (a field of several
    columns) or the pick takes several (``many``: the classes an ``in`` condition lists). A value
    the input lacks stays listed, marked, so the form never changes it by itself (validation
    reports it)."""
    key += ".pick"  # not the text box's key: the field may switch between the two
    common: dict[str, Any] = {"key": key, "help": field.help or None, "disabled": disabled,
                              "on_change": _from_pick, "args": (field, key, on_change)}

    def shown_as(option: str) -> str:
        if option == "":
            return NOT_SET
        return option if option in options else f"{option} (not in the input)"

    if isinstance(value, list) or many:
        items = value if isinstance(value, list) else [] if value in (None, "") else [value]
        current = [str(v) for v in items]
        listed = options + [v for v in current if v not in options]
        st.multiselect(field.title, listed, default=_default(key, current, []), format_func=shown_as, **common)
        return
    listed = ([""] if field.optional else []) + options  # "": not set, the agent's default
    current = "" if field.optional and value is None else str(value)
    if current not in listed:
        listed.append(current)
    index = listed.index(current) if not sync_widget(key, current) else 0
    st.selectbox(field.title, listed, index=index, format_func=shown_as, **common)


def _widget(field: FieldSpec, value: Any, key: str, on_change: Callable[[str, Any], None], disabled: bool) -> None:
    # The widget shows the session's value through st.session_state[key] (set before it is drawn),
    # so keys stay stable (focus kept) and undo or a Python edit still shows up in the form. The
    # shown value is also the widget's default (except in the run that sets it, where Streamlit
    # would warn): a widget the browser re-creates after an interrupted rerun reports its default,
    # which must not read as a user edit (it once wrote 0.0 / "" into params and overrides).
    label = field.title
    common: dict[str, Any] = {"key": key, "help": field.help or None, "disabled": disabled}
    if field.kind == "bool":
        shown: Any = bool(value)
        st.checkbox(label, value=_default(key, shown, False), on_change=_from_state, args=(field, key, on_change), **common)
    elif field.kind == "enum":
        options = list(field.options)
        shown = value if value in options else options[0]
        index = options.index(shown) if not sync_widget(key, shown) else 0
        st.selectbox(label, options, index=index, on_change=_from_state, args=(field, key, on_change), **common)
    elif field.kind in ("int", "float") and not field.optional and isinstance(value, int | float) \
            and not isinstance(value, bool) and _in_range(field, value):
        is_int = field.kind == "int"
        shown = int(value) if is_int else float(value)
        low = None if field.minimum is None else (int(field.minimum) if is_int else float(field.minimum))
        high = None if field.maximum is None else (int(field.maximum) if is_int else float(field.maximum))
        st.number_input(label, value=_default(key, shown, "min"), min_value=low, max_value=high, step=1 if is_int else None,
                        format=None if is_int else "%g", on_change=_from_state, args=(field, key, on_change),
                        **common)
    else:
        text = "" if value is None else (value if field.kind == "str" and isinstance(value, str) else json.dumps(value))
        common["key"] = key + ".text"
        st.text_input(label, value=_default(key + ".text", text, ""), placeholder="empty = not set" if field.optional else None,
                      on_change=_from_text, args=(field, key + ".text", on_change), **common)


def _default(key: str, shown: Any, plain: Any) -> Any:
    """Show ``shown``: through session state when it changed (default ``plain``), else as the default too."""
    return plain if sync_widget(key, shown) else shown


def sync_widget(key: str, shown: Any) -> bool:
    """Make the widget under ``key`` show ``shown`` (call before the widget is created); True if set now."""
    if key not in st.session_state or st.session_state[key] != shown:
        st.session_state[key] = shown
        return True
    return False


def _in_range(field: FieldSpec, value: float) -> bool:
    return (field.minimum is None or value >= field.minimum) and (field.maximum is None or value <= field.maximum)


def _from_state(field: FieldSpec, key: str, on_change: Callable[[str, Any], None]) -> None:
    on_change(field.name, st.session_state[key])


def _from_pick(field: FieldSpec, key: str, on_change: Callable[[str, Any], None]) -> None:
    value = st.session_state[key]
    on_change(field.name, None if field.optional and value == "" else value)


def _from_text(field: FieldSpec, key: str, on_change: Callable[[str, Any], None]) -> None:
    try:
        value = parse_text(field, str(st.session_state[key]))
    except ValueError:
        value = str(st.session_state[key])  # keep what was typed; validation reports it on the node
    on_change(field.name, value)
