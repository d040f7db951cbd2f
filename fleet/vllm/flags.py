"""The `vllm serve` option table of one vLLM version, read from fleet/catalog/vllm/flags-<version>.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from fleet.versions import FLAG_TABLE_DIR, bundled_vllm_versions, flag_table_path
from fleet.yamlsrc import safe_load

TABLE_DIR = FLAG_TABLE_DIR


def normal_flag(name: str) -> str:
    """vLLM's parser (FlexibleArgumentParser) reads `--max_model_len` as `--max-model-len`."""
    return "--" + name[2:].replace("_", "-") if name.startswith("--") else name


@dataclass(frozen=True)
class Option:
    flag: str
    aliases: tuple[str, ...]
    negations: tuple[str, ...]
    dest: str
    takes_value: bool
    nargs: Any
    choices: tuple[str, ...] | None
    default: Any

    @property
    def negation(self) -> str | None:
        """The preferred negative spelling (`--disable-x` over `--no-enable-x`)."""
        visible = [n for n in self.negations if not n.startswith(("--no-enable-", "--no-disable-"))]
        candidates = visible or list(self.negations)
        return candidates[0] if candidates else None


@dataclass(frozen=True)
class FlagTable:
    version: str
    options: dict[str, Option]      # every spelling (flag, alias, negation) → option
    metrics: frozenset[str]
    allow_abbrev: bool = True       # the parser's: a unique prefix of a long option is that option
    tool_parsers: tuple[str, ...] | None = None   # registered tool-call parsers, where the table recorded them

    def lookup(self, spelling: str) -> Option | None:
        return self.options.get(normal_flag(spelling))

    def is_negation(self, spelling: str) -> bool:
        opt = self.lookup(spelling)
        return opt is not None and normal_flag(spelling) in opt.negations


def available_versions() -> list[str]:
    return bundled_vllm_versions()


def has_table(version: str) -> bool:
    """Whether vLLM `version` has a bundled flag table (the releases the fleet supports)."""
    return flag_table_path(version) is not None


def missing_table(version: str) -> str:
    """The problem and its fix when vLLM `version` has no bundled flag table."""
    return (f"no flag table for vLLM {version} (bundled: {', '.join(available_versions())}) — run `vllm-fleet upgrade vllm {version}`: "
            "it generates the table from the release's own parser and checks every stack against it")


@cache
def table(version: str) -> FlagTable:
    path = flag_table_path(version)
    if path is None:
        raise KeyError(missing_table(version))
    raw = json.loads(path.read_text())
    options: dict[str, Option] = {}
    for row in raw["options"]:
        opt = Option(flag=row["flag"], aliases=tuple(row["aliases"]), negations=tuple(row["negations"]),
                     dest=row["dest"], takes_value=row["takes_value"], nargs=row["nargs"],
                     choices=tuple(row["choices"]) if row["choices"] is not None else None, default=row["default"])
        for spelling in (opt.flag, *opt.aliases, *opt.negations):
            options[spelling] = opt
    return FlagTable(version=raw["vllm_version"], options=options, metrics=frozenset(raw["metrics"]),
                     allow_abbrev=bool(raw.get("parser_allow_abbrev", True)),
                     tool_parsers=tuple(raw["tool_parsers"]) if raw.get("tool_parsers") else None)


@lru_cache(maxsize=1)
def _tool_parsers() -> dict[str, list[str]]:
    return dict(json.loads((TABLE_DIR / "tool-parsers.json").read_text())["versions"])


def tool_parsers(version: str) -> list[str] | None:
    """The built-in tool-call parsers of vLLM `version`: those its flag table recorded from the release
    (fleet/vllm/table_gen.py dumps them), else those scripts/vllm_tool_parsers.py read from its source for the
    tables made before; None when neither has them."""
    recorded = table(version).tool_parsers if has_table(version) else None
    return list(recorded) if recorded else _tool_parsers().get(version)


@lru_cache(maxsize=1)
def renames() -> dict[str, str]:
    with open(TABLE_DIR / "renames.yaml", encoding="utf-8") as fh:
        return dict(safe_load(fh))


class MetricError(KeyError):
    """A metric name the pinned vLLM version does not export."""


def metric(name: str, version: str) -> str:
    """`name` if vLLM `version` exports it; removed names fail with the replacement (autoscalers, alerts, dashboards)."""
    if name in table(version).metrics:
        return name
    renamed = {"vllm:gpu_cache_usage_perc": "vllm:kv_cache_usage_perc", "vllm:cpu_cache_usage_perc": "(removed with V0)",
               "vllm:num_requests_swapped": "(removed with V0)", "vllm:time_per_output_token_seconds": "vllm:inter_token_latency_seconds"}
    hint = f" — use {renamed[name]}" if name in renamed else ""
    raise MetricError(f"vLLM {version} does not export {name}{hint}")
