"""`vllm-fleet pin`: every image a stack renders, resolved from its tag to the digest its registry serves, written
into the stack file in place (comments, order, quoting and the rest of the layout kept: only the value changes, or
one line is added where the stack took the field's default).

All or nothing: every image of every stack is resolved first; one that cannot be resolved (registry down, a timeout,
refused credentials, an unknown tag) is reported and no file is written.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path as FsPath

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from fleet.errors import format_path
from fleet.registry import ImageRef, RegistryError, Resolver
from fleet.render import cluster_autoscaler
from fleet.render.gpu_system import efa_pools, plugin_pools
from fleet.render.workload import behind_sidecar
from fleet.spec.engine_config import NAMESPACE
from fleet.spec.resolved import FleetSpec
from fleet.yamlsrc import SAFE_LOADER

# A digest no registry serves: what the bundled prod stack ships until `pin` runs (policy D15 refuses it).
PLACEHOLDER = "sha256:" + "0" * 64


class PinError(Exception):
    """A stack file pin cannot edit; the message names the file, line and fix."""


@dataclass(frozen=True)
class ImageField:
    """One image a stack renders and the stack-file field that pins it: `path` below `config:` (the project's keys
    with their namespace). `whole` fields hold the whole reference (`name:tag@sha256:…`); the others the digest alone
    (the vLLM images, whose name and tag come from `repository`, `version` and `tag`)."""

    path: tuple[str, ...]
    ref: ImageRef
    whole: bool

    @property
    def key(self) -> str:
        return format_path(("config", *self.path))


def image_fields(spec: FleetSpec, written: Callable[[tuple[str, ...]], bool]) -> list[ImageField]:
    """The images `spec` renders (or whose field its stack file writes), with the field that pins each; `written`
    says whether the stack file sets a path. The conditions are the renderers' own: the device plugin on AL2023
    pools, the EFA plugin on EFA pools, the gateway's pickers and sidecar where a model uses them, the Cluster
    Autoscaler where the stack installs it."""
    cfg = spec.config
    ns = f"{NAMESPACE}:"
    fields: list[ImageField] = []
    v = cfg.vllm
    fields.append(ImageField((f"{ns}vllm", "digest"), replace(ImageRef.parse(f"{v.repository}:v{v.version}"), digest=v.digest), False))
    if v.efa is not None:
        ref = replace(ImageRef.parse(f"{v.efa.repository}:{v.efa.tag or f'v{v.version}'}"), digest=v.efa.digest)
        fields.append(ImageField((f"{ns}vllm", "efa", "digest"), ref, False))
    models = spec.models
    inference = cfg.gateway.kind == "inference"
    rendered = {
        ("device_plugin", "image"): bool(plugin_pools(cfg.gpu_pools)),
        ("device_plugin", "dcgm_image"): cfg.device_plugin.dcgm_exporter,
        ("device_plugin", "efa_image"): bool(efa_pools(cfg.gpu_pools)),
        ("gateway", "epp_image"): inference and any(m.routing == "gateway" and m.pd_role is None for m in models),
        ("gateway", "bbr_image"): inference,
        ("gateway", "pd_scheduler_image"): inference and any(m.pd_role is not None for m in models),
        ("gateway", "routing_sidecar_image"): any(behind_sidecar(m) for m in models),
        ("node_autoscaler", "image"): cluster_autoscaler.installs(cfg),
    }
    for (block, name), used in rendered.items():
        path = (f"{ns}{block}", name)
        if used or written(path):
            # the Cluster Autoscaler's image defaults to the release of the stack's Kubernetes minor (no field default)
            image = cluster_autoscaler.image(cfg) if block == "node_autoscaler" else getattr(getattr(cfg, block), name)
            fields.append(ImageField(path, ImageRef.parse(image), True))
    return fields


# --- editing the stack file's text -------------------------------------------------------------------------------------

def _compose(text: str, file: str) -> MappingNode:
    try:
        root = yaml.compose(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise PinError(f"{file}: not valid YAML ({exc}) — fix the file first (`vllm-fleet validate`)") from None
    if not isinstance(root, MappingNode):
        raise PinError(f"{file}: expected a mapping with `config:` — is it a stack file?")
    return root


def _child(node: MappingNode, names: tuple[str, ...]) -> tuple[ScalarNode, Node] | None:
    for key, value in node.value:
        if isinstance(key, ScalarNode) and key.value in names:
            return key, value
    return None


def _names(part: str, top: bool) -> tuple[str, ...]:
    """A config key as it may be written: `vllm-fleet:vllm` or, for the project's own keys, just `vllm`."""
    if top and part.startswith(f"{NAMESPACE}:"):
        return part, part.removeprefix(f"{NAMESPACE}:")
    return (part,)


def find(text: str, file: str, path: tuple[str, ...]) -> Node | None:
    """The node at `config.<path>`, None when the file does not set it."""
    node: Node = _compose(text, file)
    for i, part in enumerate(("config", *path)):
        if not isinstance(node, MappingNode):
            return None
        hit = _child(node, _names(part, i == 1))
        if hit is None:
            return None
        node = hit[1]
    return node


def line_of(text: str, file: str, path: tuple[str, ...]) -> int:
    """The line of `config.<path>`'s value, or of the key of its deepest parent the file sets."""
    node: Node = _compose(text, file)
    line = 1
    for i, part in enumerate(("config", *path)):
        hit = _child(node, _names(part, i == 1)) if isinstance(node, MappingNode) else None
        if hit is None:
            return line
        key, node = hit
        assert key.start_mark is not None and node.start_mark is not None
        line = (node if isinstance(node, ScalarNode) else key).start_mark.line + 1  # type: ignore[union-attr]
    return line


def _end(node: Node) -> int:
    """Where the text of `node` ends (a block collection ends with its last value)."""
    if isinstance(node, (MappingNode, SequenceNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        return _end(last[1] if isinstance(node, MappingNode) else last)
    assert node.end_mark is not None
    return node.end_mark.index


def _scalar(value: str, like: ScalarNode | None) -> str:
    quote = like.style if like is not None and like.style in ("'", '"') else ""
    return f"{quote}{value}{quote}"


def set_value(text: str, file: str, path: tuple[str, ...], value: str) -> str:
    """`text` with `config.<path>` set to the plain string `value`: the value's own text replaced where the file sets
    it, else a line (and the missing parents) added at the end of the deepest mapping it has, indented like its keys."""
    root = _compose(text, file)
    node: Node = root
    parents: list[MappingNode] = []
    full = ("config", *path)
    for i, part in enumerate(full):
        if not isinstance(node, MappingNode):
            assert node.start_mark is not None
            raise PinError(f"{file}:{node.start_mark.line + 1} {format_path(full[:i])}: expected a mapping — fix the file "
                           "first (`vllm-fleet validate`)")
        hit = _child(node, _names(part, i == 1))
        if hit is None:
            return _insert(text, file, node, parents, full[i:], value)
        parents.append(node)
        node = hit[1]
    if not isinstance(node, ScalarNode):
        assert node.start_mark is not None
        raise PinError(f"{file}:{node.start_mark.line + 1} {format_path(full)}: expected a string — fix the file first")
    assert node.start_mark is not None and node.end_mark is not None
    return text[:node.start_mark.index] + _scalar(value, node) + text[node.end_mark.index:]


def _insert(text: str, file: str, mapping: MappingNode, parents: list[MappingNode], rest: tuple[str, ...], value: str) -> str:
    assert mapping.start_mark is not None
    if mapping.flow_style or not mapping.value:
        raise PinError(f"{file}:{mapping.start_mark.line + 1}: cannot add `{'.'.join(rest)}: {value}` to a flow mapping "
                       "({…}) — write the mapping as a block, or add the line by hand")
    indent = mapping.value[0][0].start_mark.column
    outer = parents[-1].value[0][0].start_mark.column if parents else 0
    step = max(indent - outer, 2)
    at = text.find("\n", _end(mapping.value[-1][1]))
    at = len(text) if at < 0 else at + 1
    lines = [f"{' ' * (indent + step * i)}{part}:" for i, part in enumerate(rest[:-1])]
    lines.append(f"{' ' * (indent + step * (len(rest) - 1))}{rest[-1]}: {value}")
    prefix = "" if at == 0 or text[at - 1] == "\n" else "\n"
    return text[:at] + prefix + "\n".join(lines) + "\n" + text[at:]


# --- the command -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    file: str
    line: int
    field: ImageField
    digest: str

    @property
    def changed(self) -> bool:
        return self.field.ref.digest != self.digest

    def value(self) -> str:
        return self.field.ref.with_digest(self.digest) if self.field.whole else self.digest


def _short(digest: str | None) -> str:
    if digest is None:
        return "(tag only)"
    return "placeholder" if digest == PLACEHOLDER else digest[:19] + "…"


def pin(specs: list[FleetSpec], resolver: Resolver, dry_run: bool, out: Callable[[str], None] = print) -> int:
    """Resolve every image of `specs`, show the changes, and (unless `dry_run`) write them. Exit 0, or 1 when an image
    could not be resolved (nothing written)."""
    plans: list[tuple[FsPath, str, str, list[Change]]] = []
    errors: list[str] = []
    digests: dict[str, str | RegistryError] = {}
    for spec in specs:
        path = FsPath(spec.root) / spec.source
        text = path.read_text(encoding="utf-8")
        changes: list[Change] = []
        for f in image_fields(spec, lambda p, text=text, source=spec.source: find(text, source, p) is not None):  # type: ignore[misc]
            name = str(ImageRef(f.ref.registry, f.ref.repository, f.ref.tag))
            if name not in digests:
                try:
                    digests[name] = resolver.digest(f.ref)
                except RegistryError as exc:
                    digests[name] = exc
            line = line_of(text, spec.source, f.path)
            result = digests[name]
            if isinstance(result, RegistryError):
                errors.append(f"{spec.source}:{line} {f.key}: {result}")
                continue
            changes.append(Change(spec.source, line, f, result))
        plans.append((path, spec.source, text, changes))
    if errors:
        for e in dict.fromkeys(errors):
            print(f"error: {e}", file=sys.stderr)
        failed = sum(isinstance(d, RegistryError) for d in digests.values())
        print(f"pin: {failed} image{'s' if failed != 1 else ''} not resolved — nothing written", file=sys.stderr)
        return 1
    writes: list[tuple[FsPath, str, str]] = []
    for path, source, text, changes in plans:
        new = text
        for c in changes:
            out(f"{c.file}:{c.line} {c.field.key}: {c.field.ref.with_digest(c.digest).split('@')[0]} "
                + (f"{_short(c.field.ref.digest)} -> {c.digest}" if c.changed else f"{c.digest} (unchanged)"))
            if c.changed:
                new = set_value(new, source, c.field.path, c.value())
        for c in changes:  # the edit reads back as the value intended, or nothing is written
            node = find(new, source, c.field.path)
            if not isinstance(node, ScalarNode) or node.value != c.value():
                raise PinError(f"{source}: could not set {c.field.key} in place — set it by hand to {c.value()}")
        if new != text:
            writes.append((path, source, new))
    n = sum(c.changed for _, _, _, changes in plans for c in changes)
    if dry_run:
        out(f"dry run: {n} digest{'s' if n != 1 else ''} would change; nothing written")
        return 0
    for path, display, new in writes:
        _write(path, new)
        out(f"wrote {display}")
    if not writes:
        out("every image is pinned to the digest its registry serves; nothing to write")
    return 0


def _write(path: FsPath, text: str) -> None:
    """Replace `path` atomically (a crash leaves the old file or the new one, never half of it), keeping its mode."""
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
