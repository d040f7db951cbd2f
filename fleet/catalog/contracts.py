"""The component contract catalogue (fleet/catalog/components/): what each pinned release of a component accepts and
needs, read from its source at the tag, with the flag tables generated from the release (scripts/component_flags.py).

`lookup(image)` finds the entry of a container image; `parse_args` reads a command line the way the release's own
parser does (Go's `flag`, pflag, urfave/cli, click), so an argument the release would refuse is found before deploy.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from fleet.catalog import CATALOG_DIR
from fleet.yamlsrc import safe_load

COMPONENTS_DIR = CATALOG_DIR / "components"
FLAGS_DIR = COMPONENTS_DIR / "flags"

# How each parser refuses a flag it does not define (the message the container exits with).
UNKNOWN_FLAG = {"go-flag": "flag provided but not defined: -{name}", "pflag": "unknown flag: --{name}",
                "urfave-cli": "flag provided but not defined: -{name}", "click": "No such option: --{name}"}
GO_BOOLS = {"1": True, "t": True, "T": True, "true": True, "TRUE": True, "True": True,
            "0": False, "f": False, "F": False, "false": False, "FALSE": False, "False": False}


@dataclass(frozen=True)
class Flag:
    name: str
    type: str
    default: Any
    source: str
    env: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class FlagTable:
    name: str
    parser: str
    flags: dict[str, Flag]

    def find(self, name: str) -> Flag | None:
        if name in self.flags:
            return self.flags[name]
        return next((f for f in self.flags.values() if name in f.aliases or f"--{name}" in f.aliases), None)


@dataclass(frozen=True)
class Release:
    component: str
    title: str
    version: str
    data: dict[str, Any]
    flags: FlagTable | None

    @property
    def label(self) -> str:
        return f"{self.component} {self.version}"

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def source(self) -> str:
        """Where a reviewer re-checks this release's command line."""
        if self.flags is not None and self.flags.flags:
            return next(iter(self.flags.flags.values())).source
        return str(self.data.get("source") or self.data.get("args_source") or "")


@dataclass(frozen=True)
class Component:
    name: str
    title: str
    repository: str
    images: tuple[str, ...]
    tags: tuple[str, ...]
    releases: dict[str, Release] = field(default_factory=dict)

    def release_for_tag(self, tag: str) -> Release | None:
        for version, release in self.releases.items():
            if tag in (t.format(version=version) for t in self.tags):
                return release
        return None


@cache
def flag_table(name: str) -> FlagTable:
    data = json.loads((FLAGS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    flags = {f["name"]: Flag(f["name"], f["type"], f.get("default"), f["source"], tuple(f.get("env") or ()),
                             tuple(f.get("aliases") or ())) for f in data["flags"]}
    return FlagTable(name, data["parser"], flags)


@lru_cache(maxsize=1)
def components() -> dict[str, Component]:
    out: dict[str, Component] = {}
    for path in sorted(COMPONENTS_DIR.glob("*.yaml")):
        if path.name == "matrix.yaml":
            continue
        with open(path, encoding="utf-8") as fh:
            doc = safe_load(fh)
        comp = Component(doc["component"], doc["title"], doc["repository"], tuple(doc.get("images") or ()),
                         tuple(doc.get("tags") or ("{version}",)))
        for rel in doc["releases"]:
            version = str(rel["version"])
            table = flag_table(rel["flags"]) if rel.get("flags") not in (None, "vllm") else None
            data = dict(rel)
            base = rel.get("builds_on")
            if base is not None:   # a release built on another's runner: its contract, with its own flag table
                parent = doc_release(base["component"], base["version"])
                data = {**parent.data, **data}
            comp.releases[version] = Release(comp.name, comp.title, version, data, table)
        out[comp.name] = comp
    return out


def doc_release(component: str, version: str) -> Release:
    """A release from its file (for `builds_on`, which may name a release catalogued in another file)."""
    with open(COMPONENTS_DIR / f"{component}.yaml", encoding="utf-8") as fh:
        doc = safe_load(fh)
    versions = {str(r["version"]): r for r in doc["releases"]}
    # GIE v1.0.0 is catalogued through its patch release v1.0.1 (same runner, same ports and RBAC)
    rel = versions.get(version) or versions[max(v for v in versions if v.rsplit(".", 1)[0] == version.rsplit(".", 1)[0])]
    table = flag_table(rel["flags"]) if rel.get("flags") else None
    return Release(doc["component"], doc["title"], str(rel["version"]), dict(rel), table)


@lru_cache(maxsize=1)
def matrix() -> list[dict[str, Any]]:
    with open(COMPONENTS_DIR / "matrix.yaml", encoding="utf-8") as fh:
        return list(safe_load(fh)["combinations"])


def split_image(image: str) -> tuple[str, str]:
    """registry/repo:tag@digest → (registry/repo, tag); an image without a tag has tag ''."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag
    return ref, ""


def component_of(image: str) -> Component | None:
    repo, _ = split_image(image)
    return next((c for c in components().values() if repo in c.images), None)


def lookup(image: str) -> tuple[Component | None, Release | None]:
    """(component, release) of an image; (component, None) when the repository is catalogued but not this tag."""
    comp = component_of(image)
    if comp is None:
        return None, None
    return comp, comp.release_for_tag(split_image(image)[1])


@dataclass
class ParsedArgs:
    values: dict[str, Any]                 # flag name → value given on the command line
    errors: list[str]


def _typed(flag: Flag, raw: str) -> tuple[Any, str | None]:
    if flag.type == "bool":
        if raw in GO_BOOLS:
            return GO_BOOLS[raw], None
        return None, f"invalid boolean value {raw!r} for -{flag.name}"
    if flag.type in ("int", "integer"):
        if re.fullmatch(r"[+-]?\d+", raw):
            return int(raw), None
        return None, f"invalid value {raw!r} for flag -{flag.name}: parse error"
    return raw, None


def parse_args(table: FlagTable, args: list[str]) -> ParsedArgs:
    """The flags `args` sets, parsed as the release's parser does; `errors` holds what it would exit on."""
    values: dict[str, Any] = {}
    errors: list[str] = []
    i = 0
    while i < len(args):
        arg = str(args[i])
        i += 1
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            if table.parser == "go-flag":
                break          # Go's flag stops at the first non-flag argument
            continue
        name, eq, raw = arg.lstrip("-").partition("=")
        flag = table.find(name)
        if flag is None:
            errors.append(UNKNOWN_FLAG[table.parser].format(name=name))
            continue
        if not eq:
            if flag.type == "bool":
                raw = "true"
            elif i < len(args):
                raw = str(args[i])
                i += 1
            else:
                errors.append(f"flag needs an argument: -{name}")
                continue
        value, err = _typed(flag, raw)
        if err:
            errors.append(err)
        values[flag.name] = value
    return ParsedArgs(values, errors)


def effective(table: FlagTable | None, parsed: ParsedArgs | None, env: dict[str, str]) -> dict[str, Any]:
    """Every flag's value as the release runs: its default, overridden by an env var it reads, then by the args."""
    if table is None:
        return {}
    out: dict[str, Any] = {}
    for f in table.flags.values():
        out[f.name] = f.default
        for var in f.env:
            if var in env:
                out[f.name] = _typed(f, env[var])[0]
    if parsed is not None:
        out.update(parsed.values)
    return out


def port_number(value: Any) -> int | None:
    """A port flag's value as a number: 9002, "8000", ":9400", "0.0.0.0:8085"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        m = re.search(r"(\d+)$", value)
        return int(m.group(1)) if m else None
    return None


def flag_on(values: dict[str, Any], name: str | None) -> bool:
    return name is not None and values.get(name) is True
