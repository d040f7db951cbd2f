"""YAML loading that remembers the line of every key and item, and refuses duplicate keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from fleet.errors import ConfigIssue, format_path

Path = tuple[str | int, ...]

# libyaml's parser where PyYAML was built with it (the wheels are): same nodes, marks and errors, ~10x faster
# than the pure-Python parser, which was most of the time `load` took.
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(stream: Any) -> Any:
    """`yaml.safe_load` with SAFE_LOADER, for the bundled catalogs."""
    return yaml.load(stream, Loader=SAFE_LOADER)


@dataclass
class Located:
    """Parsed YAML data plus the 1-based line of every path in it."""

    file: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int:
        """Line of the deepest known prefix of `path` (a missing key reports its parent)."""
        for n in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:n]))
            if line is not None:
                return line
        return 1


class _Constructor(SafeConstructor):
    pass


def _build(node: Node, path: Path, out: Located, issues: list[ConfigIssue], ctor: _Constructor) -> Any:
    out.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, MappingNode):
        ctor.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = ctor.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                issues.append(ConfigIssue(out.file, key_node.start_mark.line + 1, format_path(path),
                                          f"mapping key {key!r} must be a plain string"))
                continue
            key = str(key) if not isinstance(key, str) else key
            if key in result:
                issues.append(ConfigIssue(out.file, key_node.start_mark.line + 1, format_path((*path, key)),
                                          f"duplicate key '{key}' (first at line {out.lines[(*path, key)]}); "
                                          "YAML keeps only the last one — remove one of them"))
            out.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _build(value_node, (*path, key), out, issues, ctor)
        return result
    if isinstance(node, SequenceNode):
        return [_build(item, (*path, i), out, issues, ctor) for i, item in enumerate(node.value)]
    assert isinstance(node, ScalarNode)
    return ctor.construct_object(node, deep=True)


def load_text(text: str, file: str) -> tuple[Located, list[ConfigIssue]]:
    located = Located(file=file, data=None)
    issues: list[ConfigIssue] = []
    try:
        try:
            docs = list(yaml.compose_all(text, Loader=SAFE_LOADER))
        except yaml.YAMLError:
            # libyaml's messages are terser ("did not find expected node content"): report the pure-Python
            # parser's ("expected the node content, but found '<stream end>'") at the same place.
            docs = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        issues.append(ConfigIssue(file, line, "", f"not valid YAML: {problem} — fix the syntax at this line"))
        return located, issues
    if len(docs) > 1:
        issues.append(ConfigIssue(file, docs[1].start_mark.line + 1, "",
                                  "more than one YAML document — keep one document per file"))
    if not docs or docs[0] is None:
        located.data = {}
        return located, issues
    try:
        located.data = _build(docs[0], (), located, issues, _Constructor())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        issues.append(ConfigIssue(file, line, "", f"unsupported YAML value: {getattr(exc, 'problem', exc)}"))
    return located, issues


def load_file(path: str, display: str | None = None) -> tuple[Located, list[ConfigIssue]]:
    name = display or path
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        return Located(file=name, data=None), [ConfigIssue(name, 0, "", f"cannot read file: {exc.strerror}")]
    except UnicodeDecodeError:
        return Located(file=name, data=None), [ConfigIssue(name, 0, "", "not UTF-8 text — save the file as UTF-8")]
    return load_text(text, name)
