"""Engine settings a team file may not set through `extra_args`, in any spelling the pinned release's parser accepts.

The settings are named once, by the `dest` of their option (the classes below); every spelling comes from the flag
table generated from vLLM's own parser (scripts/vllm_flags.py: each option's flag, aliases and negations, and whether
the parser allows abbreviations), read the way vLLM's `FlexibleArgumentParser.parse_args` reads a command line before
argparse sees it (vllm/utils/argparse_utils.py, the same in the vllm-0.33.0 and vllm-0.34.0 wheels):

- `--a_b` is `--a-b` (underscores become dashes up to the first `.`), `--flag=value` is `--flag value`;
- `-O3`, `-O=3` and `-O 3` are `--optimization-level 3`;
- `-cc.backend=x` and `--compilation-config.backend x` are `--compilation-config '{"backend": "x"}'` (dotted keys of a
  JSON option; a trailing `+` appends to a list);
- then argparse (`allow_abbrev` is on in the table: vLLM never turns it off): a unique prefix of a long option is that
  option (`--tensor-parallel` is `--tensor-parallel-size`), `-n2` is `-n 2`, and a unique prefix of a short one too.

JSON `--*-config` values are read key by key: a key that names a reserved setting (`tensor_parallel_size`), a socket
(`*_port`, `*_ip`, `host`, `endpoint`...) or code to import (`*_cls`, `*_plugin`, `module`, the compilation config's
`backend` and `inductor_passes`) is reserved there too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fleet.vllm.flags import FlagTable, Option

# What a team may not change: each class by the dests of the options that set it (those the pinned table lacks are
# ignored). The pod's GPUs, the port its probes, Service and NetworkPolicies use, the memory the fit check sized,
# the code the server runs.
RESERVED_SETTINGS: dict[str, tuple[str, ...]] = {
    "world size": ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "data_parallel_size_local",
                   "data_parallel_rank", "data_parallel_start_rank", "data_parallel_address", "data_parallel_backend",
                   "data_parallel_hybrid_lb", "data_parallel_external_lb", "data_parallel_multi_port_external_lb",
                   "prefill_context_parallel_size", "decode_context_parallel_size", "nnodes", "node_rank", "master_addr",
                   "distributed_executor_backend", "enable_expert_parallel"),
    "listening socket": ("host", "port", "uds", "grpc_port", "data_parallel_rpc_port", "data_parallel_supervisor_port",
                         "master_port", "ssl_keyfile", "ssl_certfile", "ssl_ca_certs", "ssl_cert_reqs", "root_path"),
    "memory budget": ("gpu_memory_utilization", "kv_cache_memory_bytes", "max_model_len", "max_num_seqs", "max_num_batched_tokens",
                      "kv_cache_dtype", "dtype", "quantization", "cpu_offload_gb", "cpu_offload_params", "swap_space",
                      "num_gpu_blocks_override", "block_size", "enforce_eager", "optimization_level", "cudagraph_capture_sizes",
                      "max_cudagraph_capture_size", "kv_offloading_size", "kv_offloading_backend", "mm_ipc_gpu_memory_gb",
                      "offload_backend", "offload_group_size", "offload_num_in_group", "offload_prefetch_step", "offload_params"),
    "code it imports": ("middleware", "tool_parser_plugin", "reasoning_parser_plugin", "io_processor_plugin", "worker_cls",
                        "worker_extension_cls", "scheduler_cls", "logits_processors", "log_config_file", "config"),
}
SOCKET_KEY = re.compile(r"(^|_)(port|ports|ip|host|address|addr|endpoint|uds|socket)$")
CODE_KEY = re.compile(r"(^|_)(cls|class|plugin|plugins|module|qualname)$")
CODE_KEYS_OF = {"compilation_config": {"backend", "inductor_passes"}}
OPTIMIZATION_LEVEL = "--optimization-level"


@dataclass(frozen=True)
class Read:
    """One word of a command line as the server reads it: the option, the value given in the same word (`=x`,
    `-n2`, `-O3`), and the JSON keys a dotted spelling sets (`-cc.backend` → ("backend",))."""

    option: Option
    inline: str | None
    keys: tuple[str, ...] = ()


def _flexible(token: str) -> tuple[str, str | None, tuple[str, ...]] | None:
    """FlexibleArgumentParser's rewriting of one word: (option string, inline value, dotted keys)."""
    if token.startswith("-O") and not token.startswith("--"):
        if token == "-O":
            return OPTIMIZATION_LEVEL, None, ()
        return OPTIMIZATION_LEVEL, token[3:] if token[2] == "=" else token[2:], ()
    name, eq, value = token.partition("=")
    if name.startswith("--"):
        head, dot, rest = name[2:].partition(".")
        name = "--" + head.replace("_", "-") + dot + rest
    head, _, dotted = name.partition(".")
    keys = tuple(k for k in dotted.rstrip("+").split(".") if k) if dotted else ()
    return head, value if eq else None, keys


def read(token: str, flags: FlagTable, allow_abbrev: bool = True) -> Read | None:
    """The option `token` sets, as the pinned parser resolves it, or None when it sets none (or is ambiguous)."""
    if not token.startswith("-") or token == "-" or token == "--":
        return None
    rewritten = _flexible(token)
    if rewritten is None:
        return None
    name, inline, keys = rewritten
    exact = flags.options.get(name)
    if exact is not None:
        return Read(exact, inline, keys)
    if name.startswith("--"):
        matches = {o.dest: o for s, o in flags.options.items() if s.startswith("--") and s.startswith(name)} if allow_abbrev else {}
    else:
        # argparse: `-n2` is `-n` with `2` attached; otherwise a unique prefix of a single-dash option
        short = flags.options.get(name[:2])
        if short is not None and len(name) > 2 and not keys:
            return Read(short, name[2:] if inline is None else f"{name[2:]}={inline}")
        matches = {o.dest: o for s, o in flags.options.items() if not s.startswith("--") and s.startswith(name)}
    return Read(next(iter(matches.values())), inline, keys) if len(matches) == 1 else None


def setting_of(dest: str) -> str | None:
    return next((cls for cls, dests in RESERVED_SETTINGS.items() if dest in dests), None)


def _key_paths(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield (*path, str(k))
            yield from _key_paths(v, (*path, str(k)))
    elif isinstance(value, list):
        for v in value:
            yield from _key_paths(v, path)


def reserved_key(dest: str, path: tuple[str, ...]) -> str | None:
    """The reserved class a key of a JSON option's value falls in, or None."""
    key = path[-1].replace("-", "_").lower()
    if setting_of(key) is not None:
        return setting_of(key)
    if SOCKET_KEY.search(key):
        return "listening socket"
    if CODE_KEY.search(key) or (len(path) == 1 and key in CODE_KEYS_OF.get(dest, set())):
        return "code it imports"
    return None


def json_settings(opt: Option, value: str | None, keys: tuple[str, ...]) -> list[tuple[str, str]]:
    """(key path, class) of each reserved setting a JSON option's value carries, given inline, as the next word or by
    dotted keys."""
    if not opt.dest.endswith("_config"):
        return []
    paths: list[tuple[str, ...]] = []
    if keys:
        paths.append(keys)
    if value is not None and value.lstrip().startswith(("{", "[")):
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            parsed = None
        paths += [(*keys, *p) for p in _key_paths(parsed)]
    found = []
    for path in paths:
        for i in range(1, len(path) + 1):
            cls = reserved_key(opt.dest, path[:i])
            if cls is not None:
                found.append((".".join(path[:i]), cls))
                break
    return list(dict.fromkeys(found))
