"""Typed model config → `vllm serve` arguments for one pinned vLLM version.

Pure: no Pulumi, no I/O beyond the version's flag table. Every flag emitted exists in that version's
table (generated from vLLM's own parser); JSON-valued flags are serialised with sorted keys so the
rendered arguments are stable; values vLLM already defaults to are left out, and a boolean that is on
by default (prefix caching, chunked prefill) is only ever rendered as its negation when switched off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fleet.spec.team import ModelSpec
from fleet.vllm.flags import FlagTable, renames, table

# Tuning profiles from the deployment sheet's throughput-vs-latency table; explicit fields win.
PROFILES: dict[str, dict[str, int]] = {
    "balanced": {},
    "throughput": {"max_num_seqs": 512, "max_num_batched_tokens": 16384},
    "latency": {"max_num_seqs": 64, "max_num_batched_tokens": 4096},
}


# Parser default None, engine default on (arg_utils `_set_default_args` for generative models).
ON_BY_DEFAULT = frozenset({"--enable-prefix-caching", "--enable-chunked-prefill"})


class FlagError(ValueError):
    """A flag or value the pinned vLLM version does not accept."""


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass
class _Builder:
    flags: FlagTable
    args: list[str]

    def _opt(self, flag: str):
        opt = self.flags.lookup(flag)
        if opt is None:
            raise FlagError(f"{flag} does not exist in vLLM {self.flags.version}")
        return opt

    def value(self, flag: str, value: Any) -> None:
        if value is None:
            return
        opt = self._opt(flag)
        values = [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
        if opt.choices is not None:
            bad = [v for v in values if v not in opt.choices]
            if bad:
                raise FlagError(f"{flag} {bad[0]} is not accepted by vLLM {self.flags.version} (choices: {', '.join(opt.choices)})")
        self.args.extend([flag, *values])

    def switch(self, flag: str, on: bool | None) -> None:
        """Render a boolean only when it departs from vLLM's default: `--flag` to turn on an option that
        is off, the table's negation (`--disable-x`, `--no-x`) to turn off one that is on. Options whose
        parser default is None (prefix caching, chunked prefill) are on for generative models, so they are
        rendered only as their negation, never as a redundant `--enable-...`."""
        if on is None:
            return
        opt = self._opt(flag)
        if on:
            if opt.default is not True and flag not in ON_BY_DEFAULT:
                self.args.append(flag)
            return
        if opt.default is False:
            return
        if opt.negation is None:
            raise FlagError(f"{flag} cannot be switched off in vLLM {self.flags.version}")
        self.args.append(opt.negation)


# KV connectors (`--kv-transfer-config`): both roles of a disaggregated model run NIXL as kv_both (each can prefill and
# decode; the picker decides who does which); LMCache runs in the server's process.
NIXL = {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
LMCACHE = {"kv_connector": "LMCacheConnectorV1", "kv_role": "kv_both"}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def compile_args(spec: ModelSpec, version: str, *, shutdown_timeout: int | None = None, adapter_root: str | None = None,
                 pd_role: str | None = None) -> list[str]:
    """Arguments after `vllm serve` (the model id first). `adapter_root`: where the prefetch put the LoRA adapters
    (`<root>/<name>`); without it an adapter is named by its source, which is enough to check the flags. `pd_role`: the
    role of a disaggregated model's workload (prefill or decode)."""
    flags = table(version)
    b = _Builder(flags, [spec.model])
    profile = PROFILES[spec.profile or "balanced"]
    b.value("--revision", spec.revision)
    if spec.dtype not in (None, "auto"):
        b.value("--dtype", spec.dtype)
    if (spec.tensor_parallel_size or 1) > 1:
        b.value("--tensor-parallel-size", spec.tensor_parallel_size)
    if (spec.pipeline_parallel_size or 1) > 1:
        b.value("--pipeline-parallel-size", spec.pipeline_parallel_size)
    # Always passed: the fit check sizes for this value, and vLLM's own default moves (0.92 in 0.32-0.33, None from 0.34).
    b.value("--gpu-memory-utilization", spec.gpu_memory_utilization or 0.9)
    b.value("--max-model-len", spec.max_model_len)
    b.value("--max-num-seqs", spec.max_num_seqs or profile.get("max_num_seqs"))
    b.value("--max-num-batched-tokens", spec.max_num_batched_tokens or profile.get("max_num_batched_tokens"))
    b.value("--quantization", spec.quantization)
    if spec.quantization == "bitsandbytes":
        b.value("--load-format", "bitsandbytes")
    if spec.kv_cache_dtype not in (None, "auto"):
        b.value("--kv-cache-dtype", spec.kv_cache_dtype)
    b.switch("--enable-prefix-caching", False if spec.enable_prefix_caching is False else None)
    b.switch("--enable-chunked-prefill", False if spec.enable_chunked_prefill is False else None)
    b.switch("--enforce-eager", spec.enforce_eager or None)
    b.switch("--trust-remote-code", spec.trust_remote_code or None)
    if spec.served_model_name:
        b.value("--served-model-name", spec.served_model_name)
    b.value("--chat-template", spec.chat_template)
    if spec.runner == "pooling":
        b.value("--runner", "pooling")
        b.value("--convert", spec.convert)
    if spec.lora is not None:
        b.switch("--enable-lora", True)
        if spec.lora.modules:
            b.value("--lora-modules", [f"{m.name}={adapter_root}/{m.name}" if adapter_root else f"{m.name}={m.path}"
                                       for m in spec.lora.modules])
        if spec.lora.max_rank != 16:
            b.value("--max-lora-rank", spec.lora.max_rank)
        if spec.lora.max_loras != 1:
            b.value("--max-loras", spec.lora.max_loras)
    if spec.speculative is not None:
        sc = {k: v for k, v in spec.speculative.model_dump().items() if v is not None}
        b.value("--speculative-config", _json(sc))
    if spec.structured_outputs is not None and spec.structured_outputs.backend != "auto":
        b.value("--structured-outputs-config", _json({"backend": spec.structured_outputs.backend}))
    if spec.tool_calling is not None:
        b.switch("--enable-auto-tool-choice", spec.tool_calling.auto_tool_choice or None)
        b.value("--tool-call-parser", spec.tool_calling.parser)
    if spec.multimodal is not None:
        b.value("--limit-mm-per-prompt", _json(dict(spec.multimodal.limit_per_prompt)))
        if spec.multimodal.allowed_media_domains:
            b.value("--allowed-media-domains", spec.multimodal.allowed_media_domains)
    if spec.kv_offload is not None and spec.kv_offload.backend == "native":
        b.value("--kv-offloading-size", _number(spec.kv_offload.cpu_gib))   # GiB summed over the server's TP ranks
    elif spec.kv_offload is not None:
        b.value("--kv-transfer-config", _json(LMCACHE))
    if pd_role is not None:
        b.value("--kv-transfer-config", _json(NIXL))
    if shutdown_timeout:
        b.value("--shutdown-timeout", shutdown_timeout)
    if spec.extra_args:
        problems = check_args(spec.extra_args, version)
        if problems:
            raise FlagError("; ".join(problems))
        b.args.extend(spec.extra_args)
    return b.args


def check_args(args: list[str], version: str) -> list[str]:
    """Problems with user-typed `vllm serve` arguments, abbreviations off (argparse would accept
    `--max-model` for `--max-model-len`; a deployment must not depend on that)."""
    flags = table(version)
    problems = []
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if not token.startswith("-"):
            problems.append(f"'{token}' is not a flag (values follow their flag)")
            continue
        name, eq, inline = token.partition("=")
        opt = flags.lookup(name)
        if opt is None:
            hint = renames().get(name)
            if hint:
                problems.append(f"{name} is not a flag of vLLM {flags.version} — use {hint}")
            else:
                near = [s for s in flags.options if s.startswith(name)]
                extra = f" (abbreviations are not accepted: did you mean {near[0]}?)" if len(near) >= 1 else ""
                problems.append(f"{name} is not a flag of vLLM {flags.version}{extra}")
            while not eq and i < len(args) and not args[i].startswith("-"):
                i += 1  # its values; one problem per unknown flag
            continue
        if not opt.takes_value or flags.is_negation(name):
            if eq:
                problems.append(f"{name} takes no value")
            continue
        values = [inline] if eq else []
        if not eq:
            # a token that starts with '-' is a flag to argparse (`-q` after a value is --quantization): never a value
            while i < len(args) and not args[i].startswith("-"):
                values.append(args[i])
                i += 1
                if opt.nargs in (None, 1, "?"):
                    break
        if not values and opt.nargs not in ("?", "*"):
            problems.append(f"{name} needs a value")
        elif opt.choices is not None and any(v not in opt.choices for v in values):
            problems.append(f"{name} {' '.join(values)} is not one of {', '.join(opt.choices)}")
    return problems
