"""A graph checked against a real server's recorded /object_info the way ComfyUI validates a
prompt: every node class exists, every required input is given and no unknown one, every link
points at an existing node's output of the input's type, combo values are in the lists, numbers
within min/max. Returns the problems found, one sentence each."""

from __future__ import annotations

from typing import Any

from comfy_bridge.families import ServerInfo, combo_values

_PRIMITIVES = {"INT", "FLOAT", "STRING", "BOOLEAN"}


def graph_errors(graph: dict[str, dict], schema: dict[str, Any], server: ServerInfo,
                 absent: set[str] = frozenset(), check_combos: bool = True) -> list[str]:
    """Problems of `graph` on the server whose compacted /object_info is `schema`; `server`
    gives the combo lists (with the model files the test put on it). Nodes in `absent` (the
    ones discovery says the server lacks) may appear; their own inputs and outputs are not
    known, so links to or from them are not type-checked."""
    errors: list[str] = []
    for node_id, node in graph.items():
        cls = node.get("class_type")
        where = f"{cls} (node {node_id})"
        if cls not in schema:
            if cls not in absent:
                errors.append(f"{where}: no such node on the server")
            continue
        inputs = node.get("inputs", {})
        declared = {**schema[cls]["input"].get("optional", {}),
                    **schema[cls]["input"].get("required", {})}
        for name in schema[cls]["input"].get("required", {}):
            if name not in inputs:
                errors.append(f"{where}: required input '{name}' missing")
        for name, value in inputs.items():
            if name not in declared:
                errors.append(f"{where}: no input '{name}'")
                continue
            spec = declared[name]
            problem = _value_error(graph, schema, server, absent, cls, name, spec, value,
                                   check_combos)
            if problem:
                errors.append(f"{where}: {name}: {problem}")
    return errors


def _value_error(graph: dict[str, dict], schema: dict[str, Any], server: ServerInfo,
                 absent: set[str], cls: str, name: str, spec: list, value: Any,
                 check_combos: bool) -> str | None:
    kind = spec[0]
    limits = spec[1] if len(spec) > 1 else {}
    if _is_link(value):
        source_id, index = value
        source = graph.get(source_id)
        if source is None:
            return f"links to node {source_id}, which is not in the graph"
        source_cls = source["class_type"]
        if source_cls in absent and source_cls not in schema:
            return None
        outputs = schema[source_cls]["output"]
        if not 0 <= index < len(outputs):
            return f"links to output {index} of {source_cls}, which has {len(outputs)}"
        wanted = kind if isinstance(kind, str) else "COMBO"
        if wanted != "*" and outputs[index] not in wanted.split(","):
            return f"wants {wanted}, linked to {source_cls} output {index} ({outputs[index]})"
        return None
    values = combo_values(spec)
    if values is not None:
        allowed = server.choices.get((cls, name), values)
        if check_combos and value not in allowed:
            return f"{value!r} is not one of the server's {len(allowed)} choices"
        return None
    if kind not in _PRIMITIVES:
        return f"wants a {kind} link, got the value {value!r}"
    if kind == "INT" and (isinstance(value, bool) or not isinstance(value, int)):
        return f"{value!r} is not an INT"
    if kind == "FLOAT" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return f"{value!r} is not a FLOAT"
    if kind == "STRING" and not isinstance(value, str):
        return f"{value!r} is not a STRING"
    if kind == "BOOLEAN" and not isinstance(value, bool):
        return f"{value!r} is not a BOOLEAN"
    if "min" in limits and value < limits["min"]:
        return f"{value} is below the minimum {limits['min']}"
    if "max" in limits and value > limits["max"]:
        return f"{value} is above the maximum {limits['max']}"
    return None


def _is_link(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int) and not isinstance(value[1], bool))
