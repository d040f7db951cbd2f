"""Reading untrusted input files, and YAML loading that remembers the line of every key and item and refuses
duplicate keys.

Team files come from pull requests (forks included) and `check`/`guard` read whatever they are pointed at, so every
reader goes through `read_input` (regular files only, a size limit, symlinks kept inside the repository for config)
and YAML through `yaml_limits` (nesting depth, alias count and expansion, self-referencing aliases), checked on the
parser's event stream before anything recursive sees the document: a billion-laughs file, 100,000 nested brackets or
`/dev/zero` fail in milliseconds with a message, never a hang, a RecursionError or a crash of the C parser.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path as FsPath
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


CONFIG_MAX_BYTES = 1 << 20          # a stack or team file: 1 MiB is ~100x the largest sane one
DOCUMENT_MAX_BYTES = 64 << 20       # manifests (`helm template` of a large chart) and preview JSON
MAX_DEPTH = 100                     # Kubernetes objects nest ~20 deep
MAX_ALIASES = 10_000
MAX_EXPANDED_NODES = 2_000_000      # nodes after aliases are expanded (a billion-laughs file expands to 10^9)


class InputError(Exception):
    """An input file that cannot be read safely; the message names the file and the fix."""


def read_input(path: str | FsPath, *, max_bytes: int, inside: FsPath | None = None, display: str | None = None) -> str:
    """The text of a regular file of at most `max_bytes` bytes, UTF-8. `inside`: the file (symlinks resolved) must
    lie under this directory (config files come from the repository)."""
    name = display or str(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise InputError(f"{name}: cannot read file: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        what = "a directory" if stat.S_ISDIR(info.st_mode) else "a device or pipe, not a regular file"
        raise InputError(f"{name}: is {what} — give the path of a file")
    if inside is not None:
        real, root = FsPath(os.path.realpath(path)), FsPath(os.path.realpath(inside))
        if real != root and root not in real.parents:
            raise InputError(f"{name}: is a symlink to {real}, outside the repository {root} — config files must live in "
                             "the repository (copy the file in instead of linking it)")
    if info.st_size > max_bytes:
        raise InputError(f"{name}: is {info.st_size:,} bytes, over the limit of {max_bytes:,} — is it the right file?")
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(f"{name}: cannot read file: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise InputError(f"{name}: is over the limit of {max_bytes:,} bytes — is it the right file?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not UTF-8 text (byte {exc.start}) — save the file as UTF-8") from None


def yaml_limits(text: str, file: str) -> tuple[int, str] | None:
    """(line, problem) when the YAML nests deeper than MAX_DEPTH, uses more than MAX_ALIASES aliases, an alias that
    refers to its own node, or expands beyond MAX_EXPANDED_NODES; None when it is within the limits (or not valid
    YAML at all, which the loader reports with its own message)."""
    depth = aliases = 0
    try:
        for event in yaml.parse(text, Loader=SAFE_LOADER):
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    return _line(event), f"nests deeper than {MAX_DEPTH} levels — flatten the document"
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    return _line(event), f"uses more than {MAX_ALIASES:,} aliases — write the values out"
        if not aliases:
            return None
        for doc in yaml.compose_all(text, Loader=SAFE_LOADER):
            problem = _expansion(doc) if doc is not None else None
            if problem is not None:
                return problem
    except yaml.YAMLError:
        return None
    return None


def _line(event: yaml.Event) -> int:
    return event.start_mark.line + 1 if event.start_mark is not None else 1


def _expansion(root: Node) -> tuple[int, str] | None:
    """Nodes the document holds once every alias is expanded, counted without expanding (each shared node once, times
    its uses); a node that contains itself is reported."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise _Cycle(node)
        active.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(item) for item in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        active.discard(key)
        sizes[key] = min(total, MAX_EXPANDED_NODES + 1)
        return sizes[key]

    try:
        if size(root) > MAX_EXPANDED_NODES:
            return root.start_mark.line + 1, (f"expands to more than {MAX_EXPANDED_NODES:,} values through its aliases (an alias "
                                              "bomb?) — write the values out")
    except _Cycle as cycle:
        return cycle.node.start_mark.line + 1, "an alias refers to the node that contains it (a self-referencing alias) — remove it"
    return None


class _Cycle(Exception):
    def __init__(self, node: Node) -> None:
        self.node = node


def plain_data(value: Any) -> Any:
    """YAML data as JSON data (what the engine and kubectl send): dates as their ISO text, keys as strings, NaN and
    infinities as text."""
    if isinstance(value, dict):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_data(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


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
    limit = yaml_limits(text, file)
    if limit is not None:
        line, problem = limit
        return located, [ConfigIssue(file, line, "", problem)]
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


def load_file(path: str, display: str | None = None, inside: FsPath | None = None) -> tuple[Located, list[ConfigIssue]]:
    """A config file (stack or team) of the repository `inside`: a regular file within the size limit, then YAML
    within the limits."""
    name = display or path
    try:
        text = read_input(path, max_bytes=CONFIG_MAX_BYTES, inside=inside, display=name)
    except InputError as exc:
        return Located(file=name, data=None), [ConfigIssue(name, 0, "", str(exc).removeprefix(f"{name}: "))]
    return load_text(text, name)
