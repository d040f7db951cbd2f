"""Change scalar values of a YAML file in place, keeping everything else byte for byte (comments, layout, quoting,
key order): each value is replaced at the span the parser reports for it, and the result is parsed again to check
that exactly those values changed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from fleet.yamlsrc import Path, safe_load


class EditError(ValueError):
    """The value to change is not a scalar of the file (missing, a mapping, written through an alias)."""


def _child(node: Node, key: str | int) -> Node | None:
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == str(key):
                return v
    elif isinstance(node, SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        return node.value[key]
    return None


def find(node: Node | None, path: Path) -> Node | None:
    for key in path:
        if node is None:
            return None
        node = _child(node, key)
    return node


def _scalar(value: str, style: str | None) -> str:
    if style == '"':
        return json.dumps(value)
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    plain = yaml.safe_dump(value, default_flow_style=True, width=10_000).removesuffix("\n...\n").strip()
    return plain


def set_scalars(text: str, edits: Mapping[Path, str]) -> str:
    """`replace_scalars`, adding a key that a block mapping lacks on the line after its first key (same indentation)."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    present = {path: value for path, value in edits.items() if isinstance(find(root, path), ScalarNode)}
    out = replace_scalars(text, present) if present else text
    for path, value in edits.items():
        if path in present:
            continue
        root = yaml.compose(out, Loader=yaml.SafeLoader)
        parent = find(root, path[:-1])
        if not isinstance(parent, MappingNode) or parent.flow_style or not parent.value or find(root, path) is not None:
            raise EditError(f"cannot add {'.'.join(map(str, path))}: its parent is not a block mapping of the file")
        first_key, first_value = parent.value[0]
        end = out.find("\n", first_value.end_mark.index)
        end = len(out) if end < 0 else end
        line = f"\n{' ' * first_key.start_mark.column}{path[-1]}: {_scalar(value, None)}"
        before = safe_load(out)
        out = out[:end] + line + out[end:]
        _set(before, path, value)
        if safe_load(out) != before:
            raise EditError(f"adding {'.'.join(map(str, path))} would change more than that key")
    return out


def replace_scalars(text: str, edits: Mapping[Path, str]) -> str:
    """`text` with the scalar at each path set to its new string value, in the quoting style it had (a plain scalar
    that would read back as another type is quoted)."""
    # The pure-Python composer: its marks count characters, as Python strings do (libyaml's count bytes).
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    spans: list[tuple[int, int, str]] = []
    for path, value in edits.items():
        node = find(root, path)
        if not isinstance(node, ScalarNode) or node.start_mark is None or node.end_mark is None:
            raise EditError(f"{'.'.join(map(str, path))} is not a value of the file")
        spans.append((node.start_mark.index, node.end_mark.index, _scalar(value, node.style)))
    out = text
    for start, end, new in sorted(spans, reverse=True):
        out = out[:start] + new + out[end:]
    before, after = safe_load(text), safe_load(out)
    for path, value in edits.items():
        _set(before, path, value)
    if before != after:  # the spans did not hold what the parser said: refuse rather than corrupt the file
        raise EditError("the edit would change more than the values asked for")
    return out


def _set(data: Any, path: Path, value: str) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value
