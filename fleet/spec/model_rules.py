"""Rules for one model of one team in one stack (overrides applied), one small function each, and the model's
placement (GPUs per replica and pod, nodes, replicas) and sizing. Problems are (field path inside the model,
message); the loader adds the file, the line and the full path."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path as FsPath

from fleet.capacity.lengths import longest
from fleet.capacity.memory import (
    GPU_CAPABILITY,
    Arch,
    Settings,
    Sizing,
    batch_limits_problem,
    default_batched_tokens,
    model_catalog,
    parallelism_problems,
    size,
)
from fleet.catalog import InstanceType, gpu_instance
from fleet.errors import CREDENTIAL
from fleet.pods import memory_share_gib, offload_room_gib
from fleet.spec.architecture import resolve_arch, settings_for
from fleet.spec.s3 import parse_s3_prefix
from fleet.spec.stack import GpuPool, StackConfig
from fleet.spec.team import ModelSpec
from fleet.versions import parse_version
from fleet.vllm.compiler import PROFILES, FlagError, compile_args
from fleet.vllm.flags import table, tool_parsers
from fleet.vllm.reserved import json_settings, read, setting_of

Problem = tuple[tuple[str | int, ...], str]

# Flags with a typed field in the team file, or that only a Secret may carry; extra_args may not set them.
RESERVED_FLAGS = {
    "--model", "--host", "--port", "--api-key", "--served-model-name", "--dtype", "--tensor-parallel-size",
    "--pipeline-parallel-size", "--gpu-memory-utilization", "--max-model-len", "--max-num-seqs",
    "--max-num-batched-tokens", "--quantization", "--kv-cache-dtype", "--enable-prefix-caching",
    "--no-enable-prefix-caching", "--enable-chunked-prefill", "--no-enable-chunked-prefill", "--enforce-eager",
    "--trust-remote-code", "--chat-template", "--revision", "--enable-lora", "--lora-modules", "--max-lora-rank",
    "--max-loras", "--speculative-config", "--structured-outputs-config", "--tool-call-parser",
    "--enable-auto-tool-choice", "--limit-mm-per-prompt", "--allowed-media-domains", "--runner", "--convert",
    "--hf-token", "--shutdown-timeout", "--distributed-executor-backend", "--data-parallel-size", "--data-parallel-size-local",
    "--kv-transfer-config", "--kv-offloading-size", "--kv-offloading-backend",
}


@dataclass(frozen=True)
class ModelContext:
    stack: str
    cfg: StackConfig
    spec: ModelSpec
    team_file: FsPath
    environments: tuple[str, ...] = ()
    granted_secrets: frozenset[str] | None = None   # what stacks/tenancy.yaml grants the team (None: not checked)
    granted_sources: tuple[str, ...] | None = None  # the S3 prefixes stacks/tenancy.yaml lets its pods read (None: not checked)
    team: str = ""
    pd_role: str | None = None                      # one role of a disaggregated model (its spec from role_spec)


@dataclass(frozen=True)
class Placement:
    pool: GpuPool
    instance: InstanceType
    gpus_per_replica: int
    nodes_per_replica: int
    gpus_per_pod: int
    min_replicas: int
    max_replicas: int


def secret_references_exist(ctx: ModelContext) -> Iterator[Problem]:
    for field_name in ("api_key", "hf_token"):
        ref = getattr(ctx.spec, field_name)
        if ref is None or ref.secret is None:
            continue
        if ctx.granted_secrets is not None and ref.secret not in ctx.granted_secrets:
            yield (field_name,), (f"secret '{ref.secret}' is not granted to team {ctx.team} — the platform team grants secrets "
                                  f"per team in stacks/tenancy.yaml (teams.{ctx.team}.secrets); another team's secret is never "
                                  "shared by naming it")
            continue
        if ref.secret in ctx.cfg.secrets or ctx.environments:
            continue  # a secret an imported ESC environment may provide is unknown offline (the loader notes it)
        yield (field_name,), (f"secret '{ref.secret}' is not set in stack {ctx.stack} — run `pulumi config set --stack "
                              f"{ctx.stack} --secret --path 'vllm-fleet:secrets.{ref.secret}' <value>`")


def data_sources_are_granted(ctx: ModelContext) -> Iterator[Problem]:
    """An S3 adapter makes the plan give the model's pods read access to its prefix: the platform grants what a team may
    read (stacks/tenancy.yaml `data_sources`), never the team's own file."""
    if ctx.granted_sources is None or ctx.spec.lora is None:
        return
    grants = [parse_s3_prefix(g) for g in ctx.granted_sources]
    for k, adapter in enumerate(ctx.spec.lora.modules):
        if not adapter.path.startswith("s3://"):
            continue
        wanted = parse_s3_prefix(adapter.path)
        if any(wanted.within(g) for g in grants):
            continue
        granted = ", ".join(g.uri for g in grants) or "none"
        yield ("lora", "modules", k, "path"), (
            f"{wanted.uri} is not granted to team {ctx.team}: its pods may read only the S3 prefixes the platform team grants in "
            f"stacks/tenancy.yaml (teams.{ctx.team}.data_sources; granted: {granted}) — move the adapter under a granted "
            f"prefix, or ask the platform team to add {wanted.uri} there")


def autoscaling_has_a_backend(ctx: ModelContext) -> Iterator[Problem]:
    auto = ctx.spec.autoscaling
    if auto is None:
        return
    if ctx.cfg.autoscaling.backend == "none":
        yield ("autoscaling",), f"stack {ctx.stack} has autoscaling backend none — set fixed `replicas` or enable hpa/keda in the stack"
    if auto.min_replicas == 0 and not ctx.cfg.autoscaling.allow_scale_to_zero:
        yield ("autoscaling",), (f"min_replicas 0 needs autoscaling.backend keda with allow_scale_to_zero in stack {ctx.stack} "
                                 "— use min_replicas ≥ 1")
    elif auto.min_replicas == 0 and not (ctx.cfg.gateway.kind == "ingress" and ctx.cfg.gateway.ingress_class == "nginx"):
        yield ("autoscaling",), ("min_replicas 0 could never wake up: at zero replicas the pods' own vllm: metrics do not exist, "
                                 "so nothing would scale the model back up — route it through the ingress gateway (gateway.kind "
                                 "ingress, ingress_class nginx), whose request count wakes it, or use min_replicas ≥ 1")


def routing_of(cfg: StackConfig, spec: ModelSpec) -> str:
    """`gateway` for generative models when the stack runs the inference gateway, unless the model says otherwise."""
    if spec.routing is not None:
        return spec.routing
    return "gateway" if cfg.gateway.kind == "inference" and spec.runner != "pooling" else "service"


def routing_has_a_gateway(ctx: ModelContext) -> Iterator[Problem]:
    spec, kind = ctx.spec, ctx.cfg.gateway.kind
    if spec.routing == "gateway" and kind != "inference":
        yield ("routing",), (f"routing gateway needs the inference gateway, and stack {ctx.stack}'s gateway kind is {kind} — set "
                             "vllm-fleet:gateway.kind inference in the stack (docs/gateway.md), or `routing: service`")
    if spec.priority is not None and routing_of(ctx.cfg, spec) != "gateway":
        yield ("priority",), "priority is the InferenceObjective of a gateway-routed model — it needs `routing: gateway`"


PD_ROLES = ("prefill", "decode")


def disaggregation_is_safe(ctx: ModelContext) -> Iterator[Problem]:
    """What the pinned stack can run with separate prefill and decode workloads, and why the rest is refused."""
    spec, pd = ctx.spec, ctx.spec.disaggregated_prefill
    if pd is None or ctx.pd_role is not None:
        return
    where = ("disaggregated_prefill",)
    if routing_of(ctx.cfg, spec) != "gateway":
        yield where, ("prefill/decode disaggregation needs `routing: gateway`: only the P/D-aware endpoint picker pairs a "
                      "request's prefill pod with its decode pod (a Service would send it to either role)")
    if spec.replicas is not None or spec.autoscaling is not None:
        yield where, "replicas and autoscaling are set per role (`disaggregated_prefill.prefill/decode`), not on the model"
    if (spec.pipeline_parallel_size or 1) > 1:
        yield ("pipeline_parallel_size",), ("vLLM's NIXL connector does not support pipeline parallelism on the decode side — use "
                                            "tensor parallelism within a node for each role")
    if spec.kv_offload is not None:
        yield ("kv_offload",), ("a server takes one --kv-transfer-config: NIXL for P/D and a CPU offload connector together need "
                                "vLLM's MultiConnector, which this stack does not render — remove kv_offload or the disaggregation")
    if spec.runner == "pooling":
        yield where, "a pooling (embedding) model has no decode phase to split"
    if spec.speculative is not None:
        yield ("speculative",), ("speculative decoding with disaggregated prefill is refused until verified on the pinned vLLM: the "
                                 "NIXL connector hands over the target model's KV blocks, and nothing here shows the draft's "
                                 "are — serve one of the two")
    tps = {}
    for role in PD_ROLES:
        r = getattr(pd, role)
        tps[role] = r.tensor_parallel_size or spec.tensor_parallel_size or 1
        if r.autoscaling is not None and r.autoscaling.min_replicas == 0:
            yield (*where, role, "autoscaling"), "min_replicas 0: a role scaled to zero strands every request routed to the other"
        if len(f"{spec.name}-{role}") > 63:
            yield ("name",), f"'{spec.name}-{role}' (the {role} workload's name) is longer than 63 characters — shorten the name"
    small, large = sorted(tps.values())
    if large % small:
        yield where, (f"tensor parallel sizes {tps['prefill']} (prefill) and {tps['decode']} (decode): the NIXL connector maps KV "
                      "heads between roles only when one size is a multiple of the other")


def kv_offload_is_usable(ctx: ModelContext) -> Iterator[Problem]:
    if ctx.spec.kv_offload is not None and ctx.spec.runner == "pooling":
        yield ("kv_offload",), "a pooling (embedding) model keeps no KV cache between requests — remove kv_offload"


def role_spec(spec: ModelSpec, role: str) -> ModelSpec:
    """One role of a disaggregated model: its own name, tensor parallel size and replicas."""
    pd = spec.disaggregated_prefill
    assert pd is not None
    r = getattr(pd, role)
    return spec.model_copy(update={"name": f"{spec.name}-{role}", "tensor_parallel_size": r.tensor_parallel_size or spec.tensor_parallel_size,
                                   "replicas": r.replicas if r.autoscaling is None else None, "autoscaling": r.autoscaling})


STOCK_VLLM_IMAGE = "docker.io/vllm/vllm-openai"


def bitsandbytes_needs_its_plugin(ctx: ModelContext) -> Iterator[Problem]:
    """From vLLM 0.32 bitsandbytes is the out-of-tree vllm-bnb-plugin (vllm@v0.32.0:docs/features/quantization/bnb.md;
    `bitsandbytes` left QuantizationMethods in vllm/model_executor/layers/quantization/__init__.py, as at 0.33 and
    0.34), which the stock image does not install: vLLM refuses the method at startup. An image of the stack's own
    may carry the plugin."""
    if ctx.spec.quantization != "bitsandbytes" or ctx.cfg.vllm.repository != STOCK_VLLM_IMAGE:
        return
    if parse_version(ctx.cfg.vllm.version) >= (0, 32):
        yield ("quantization",), (f"vLLM {ctx.cfg.vllm.version} has no bitsandbytes without the out-of-tree vllm-bnb-plugin, and "
                                  f"the stock image {STOCK_VLLM_IMAGE} does not install it: the server would refuse to start — use "
                                  "`quantization: fp8`, which also quantizes a 16-bit checkpoint as it loads, or set "
                                  "vllm-fleet:vllm.repository to an image with vllm-bnb-plugin")


# Speculative methods a release no longer has: gone from SpeculativeMethod at vllm@v0.33.0:vllm/config/speculative.py
# (present at v0.32.0; v0.34.0 refuses an unregistered name in SpeculativeConfig._validate_method).
REMOVED_SPECULATORS = {"medusa": (0, 33), "mlp_speculator": (0, 33)}


def speculative_method_exists(ctx: ModelContext) -> Iterator[Problem]:
    spec_cfg = ctx.spec.speculative
    if spec_cfg is None or spec_cfg.method not in REMOVED_SPECULATORS:
        return
    gone = REMOVED_SPECULATORS[spec_cfg.method]
    if parse_version(ctx.cfg.vllm.version)[:2] >= gone:
        yield ("speculative", "method"), (f"vLLM {ctx.cfg.vllm.version} has no {spec_cfg.method} speculator (removed in "
                                          f"{gone[0]}.{gone[1]}): the server would refuse its --speculative-config — use "
                                          "eagle3 or draft_model with a draft of the model's family, or ngram")


def tool_parser_exists(ctx: ModelContext) -> Iterator[Problem]:
    """vLLM refuses to start with auto tool choice and a parser it has not registered (validate_api_server_args,
    vllm@v0.34.0:vllm/entrypoints/common/cli_args.py); plugins are refused in extra_args, so only the built-ins count."""
    tools = ctx.spec.tool_calling
    known = tool_parsers(ctx.cfg.vllm.version) if tools is not None else None
    if tools is None or known is None or tools.parser in known:
        return
    close = difflib.get_close_matches(tools.parser, known, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else f"vLLM {ctx.cfg.vllm.version} has {', '.join(known)}"
    yield ("tool_calling", "parser"), (f"'{tools.parser}' is not a tool-call parser of vLLM {ctx.cfg.vllm.version}: the server "
                                       f"would refuse to start — {hint}")


def remote_code_needs_a_pinned_revision(ctx: ModelContext) -> Iterator[Problem]:
    rev = ctx.spec.revision or ""
    if ctx.spec.trust_remote_code and not (len(rev) == 40 and all(c in "0123456789abcdef" for c in rev)):
        yield ("trust_remote_code",), "trust_remote_code needs `revision` pinned to a 40-hex commit (remote code runs at load; CVE-2025-66448)"


def bitsandbytes_sets_its_own_load_format(ctx: ModelContext) -> Iterator[Problem]:
    if ctx.spec.quantization == "bitsandbytes" and any(a.startswith("--load-format") for a in ctx.spec.extra_args or []):
        yield ("extra_args",), "bitsandbytes sets --load-format itself — remove it from extra_args"


# The team-file field of a reserved flag, where its name does not say it.
TYPED_FIELD = {"--structured-outputs-config": "structured_outputs", "--speculative-config": "speculative", "--enable-lora": "lora",
               "--lora-modules": "lora.modules", "--max-lora-rank": "lora.max_rank", "--max-loras": "lora.max_loras",
               "--tool-call-parser": "tool_calling.parser", "--enable-auto-tool-choice": "tool_calling.auto_tool_choice",
               "--limit-mm-per-prompt": "multimodal.limit_per_prompt", "--allowed-media-domains": "multimodal.allowed_media_domains",
               # one server per replica here; more replicas, not data-parallel ranks on GPUs the pod does not request
               "--data-parallel-size": "replicas", "--data-parallel-size-local": "replicas"}
# Flags a team file may not pass in extra_args in any spelling, besides those with a typed field: they load code from
# a path or module (--tool-parser-plugin, --middleware...), or a whole config file that can set anything (--config).
CODE_OR_CONFIG_FLAGS = {
    "--config": "reads a config file that can set any flag, the reserved ones included — put the flags in extra_args",
    "--middleware": "imports and runs a Python module in the server",
    "--tool-parser-plugin": "imports and runs a Python file in the server — use a built-in `tool_calling.parser`",
    "--reasoning-parser-plugin": "imports and runs a Python file in the server",
    "--worker-cls": "replaces vLLM's GPU worker with an importable class",
    "--worker-extension-cls": "adds an importable class to vLLM's GPU worker",
    "--logits-processors": "imports logits processor classes into the server",
    "--allowed-local-media-path": "lets API clients make the server read files of its own file system",
}
SECRET_KEY = re.compile(r"(?i)(token|secret|password|passwd|api[_-]?key|credential|private[_-]?key)")


def _reserved_dests(version: str) -> dict[str, str]:
    """dest → canonical reserved flag, for the pinned version: the spellings a typed field or a Secret owns."""
    flags = table(version)
    out = {}
    for flag in sorted(RESERVED_FLAGS):
        opt = flags.lookup(flag)
        if opt is not None:
            out[opt.dest] = opt.flag
    return out


def _secret_keys(value: object) -> list[str]:
    """Keys of a JSON flag value that hold something secret-named with a literal value."""
    if isinstance(value, dict):
        return [str(k) for k, v in value.items() if SECRET_KEY.search(str(k)) and isinstance(v, str) and v] + \
            [k for v in value.values() for k in _secret_keys(v)]
    if isinstance(value, list):
        return [k for v in value for k in _secret_keys(v)]
    return []


def extra_args_are_safe(ctx: ModelContext) -> Iterator[Problem]:
    """extra_args are untrusted: no flag a typed field or a Secret owns and no setting of the world size, the listening
    socket, the memory budget or the code the server imports (fleet.vllm.reserved), in any spelling the pinned parser
    accepts (short aliases `-q`, `-tp`, `-n2`; negations; aliases such as `--device-memory-utilization`; `--a_b` for
    `--a-b`; `--flag=value`; unique prefixes such as `--tensor-parallel`; `-O0`; dotted `-cc.backend=x`; keys of JSON
    `--*-config` values), no flag that loads code or a config file, no literal credential anywhere."""
    flags = table(ctx.cfg.vllm.version)
    reserved = _reserved_dests(ctx.cfg.vllm.version)
    args = ctx.spec.extra_args or []
    for k, arg in enumerate(args):
        if CREDENTIAL.search(arg):
            yield ("extra_args", k), ("a credential in extra_args is refused (it would sit in the pod spec, the plan and every log of "
                                      "the command line) — store it with `pulumi config set --secret` and use `api_key`/`hf_token`")
            continue
        name = arg.partition("=")[0]
        if arg.startswith("-"):
            spelling = read(arg, flags, flags.allow_abbrev)
            if spelling is None:
                continue  # unknown flags: check_args reports them with the replacement
            opt = spelling.option
            if opt.dest in reserved:
                canonical = reserved[opt.dest]
                typed = TYPED_FIELD.get(canonical, canonical.lstrip("-").replace("-", "_"))
                spelled = f"'{name}'" + (f" (= {canonical})" if name != canonical else "")
                if typed in ("api_key", "hf_token"):
                    fix = f"use `{typed}: {{secret: <name>}}`"
                elif typed in ("host", "port", "shutdown_timeout", "distributed_executor_backend"):
                    yield ("extra_args", k), f"{spelled} is set by the stack — remove it from extra_args"
                    continue
                else:
                    fix = f"use the typed field `{typed}`"
                yield ("extra_args", k), f"{spelled} has a typed field — {fix} instead of extra_args"
                continue
            if opt.flag in CODE_OR_CONFIG_FLAGS:
                yield ("extra_args", k), f"'{name}' is not allowed from a team file: it {CODE_OR_CONFIG_FLAGS[opt.flag]}"
                continue
            setting = setting_of(opt.dest)
            if setting is not None:
                spelled = f"'{name}'" + (f" (= {opt.flag})" if name != opt.flag else "")
                yield ("extra_args", k), (f"{spelled} changes the server's {setting}, which the stack and the typed fields own "
                                          "(the pod's GPUs, port, memory fit and code) — remove it from extra_args")
                continue
            value = spelling.inline if spelling.inline is not None else (
                args[k + 1] if k + 1 < len(args) and not args[k + 1].startswith("-") else None)
            carried = json_settings(opt, value, spelling.keys)
            if carried:
                keys = ", ".join(f"`{key}` ({cls})" for key, cls in carried)
                yield ("extra_args", k), (f"'{name}' (= {opt.flag}) sets {keys} inside its JSON value — the stack and the typed "
                                          "fields own those; remove them from extra_args")
                continue
            if value is not None and value.lstrip().startswith(("{", "[")):
                try:
                    parsed = json.loads(value)
                except (ValueError, RecursionError):
                    parsed = None
                hidden = _secret_keys(parsed)
                if hidden:
                    yield ("extra_args", k), (f"'{name}' carries a literal value for {', '.join(sorted(set(hidden)))} — a credential "
                                              "never goes in extra_args; store it as a stack secret")


def adapters_come_from_a_prefetched_cache(ctx: ModelContext) -> Iterator[Problem]:
    lora = ctx.spec.lora
    if lora is None:
        return
    if lora.modules and ctx.cfg.model_cache.backend not in ("efs", "fsx-lustre"):
        yield ("lora",), (f"LoRA adapters are prefetched into the model cache, but stack {ctx.stack}'s cache ({ctx.cfg.model_cache.backend}) "
                          "is not filled by the stack — use an efs or fsx-lustre cache, or stage the adapters in the cache's "
                          "adapters directory yourself and load them at runtime (`runtime_updating`)")
    if lora.runtime_updating and ctx.cfg.model_cache.backend == "none":
        yield ("lora", "runtime_updating"), (f"runtime adapters load from the adapters directory on the model cache, and stack "
                                             f"{ctx.stack} has none — use an efs, fsx-lustre or s3 cache")
    if lora.runtime_updating and ctx.spec.api_key is None:
        yield ("lora", "runtime_updating"), ("runtime_updating lets whoever reaches the server load adapters — it needs `api_key`, which guards "
                          "/v1/load_lora_adapter like the rest of /v1")


def slo_requests_fit_the_context(ctx: ModelContext) -> Iterator[Problem]:
    """vLLM rejects a request longer than max_model_len: an SLO for such requests can never be met."""
    slo, limit = ctx.spec.slo, ctx.spec.max_model_len
    if slo is None or limit is None:
        return
    if slo.input_tokens + slo.output_tokens > limit:
        yield (("slo", "input_tokens"), f"{slo.input_tokens:,} + {slo.output_tokens:,} output tokens exceed max_model_len "
                                        f"{limit:,}: vLLM rejects such requests — raise max_model_len or shorten the requests")
        return
    inp, out = longest(slo.input_tokens, slo.input_tokens_p95, slo.output_tokens, slo.output_tokens_p95)
    if inp + out > limit:
        field = "input_tokens_p95" if slo.input_tokens_p95 else "output_tokens_p95"
        yield (("slo", field), f"the 95th-percentile request ({inp:,} in + {out:,} out) exceeds max_model_len {limit:,}: "
                               "vLLM rejects the longest requests — raise max_model_len or lower the p95")


RULES: tuple[Callable[[ModelContext], Iterator[Problem]], ...] = (
    secret_references_exist, data_sources_are_granted, autoscaling_has_a_backend, routing_has_a_gateway, disaggregation_is_safe, kv_offload_is_usable,
    remote_code_needs_a_pinned_revision, bitsandbytes_sets_its_own_load_format, bitsandbytes_needs_its_plugin, speculative_method_exists,
    tool_parser_exists, extra_args_are_safe,
    adapters_come_from_a_prefetched_cache, slo_requests_fit_the_context,
)


def placement(ctx: ModelContext) -> tuple[Placement | None, list[Problem]]:
    """Where the model runs: its pool, GPUs per replica and pod, nodes per replica, replica bounds."""
    pools = {p.name: p for p in ctx.cfg.gpu_pools}
    spec = ctx.spec
    pool = pools.get(spec.pool)
    if pool is None:
        close = difflib.get_close_matches(spec.pool, list(pools), n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'?" if close else f"pools of stack {ctx.stack}: {', '.join(pools)}"
        return None, [(("pool",), f"'{spec.pool}' is not a GPU pool of stack {ctx.stack} — {hint}")]
    inst = gpu_instance(pool.instance_types[0])
    if inst is None:  # reported by the stack rules
        return None, []
    problems: list[Problem] = []
    tp, pp = spec.tensor_parallel_size or 1, spec.pipeline_parallel_size or 1
    per_replica, node_gpus = tp * pp, inst.gpus
    if per_replica <= node_gpus:
        if node_gpus % per_replica:
            field_name, value = ("tensor_parallel_size", tp) if pp == 1 else ("pipeline_parallel_size", pp)
            problems.append(((field_name,), f"{value} — tensor × pipeline parallel size ({per_replica}) must divide the pool's "
                                            f"{node_gpus} GPUs ({inst.instance_type})"))
        nodes, per_pod = 1, per_replica
    else:
        if per_replica % node_gpus:
            problems.append((("tensor_parallel_size",), f"{tp} — a replica spanning nodes needs tensor × pipeline parallel size "
                                                        f"({per_replica}) to be a multiple of the pool's {node_gpus} GPUs per node"))
        nodes, per_pod = max(1, per_replica // node_gpus), node_gpus
    if spec.autoscaling is not None:
        lo, hi = spec.autoscaling.min_replicas, spec.autoscaling.max_replicas
    else:
        lo = hi = spec.replicas or 1
    if nodes > 1 and pool.efa and inst.efa and ctx.cfg.vllm.efa is None:
        problems.append((("pool",), f"a replica spans {nodes} nodes of EFA pool '{pool.name}', but the stock vLLM image has no "
                                    "aws-ofi-nccl plugin, so NCCL would never use EFA — set vllm-fleet:vllm.efa to an EFA-capable "
                                    "image (e.g. AWS's vLLM Deep Learning Container), or efa: false on the pool to run NCCL over TCP"))
    if hi * nodes > pool.max_size:
        problems.append(((("replicas",) if spec.autoscaling is None else ("autoscaling",)),
                         f"{hi} replica(s) × {nodes} node(s) exceed pool '{pool.name}' max_size {pool.max_size} — raise the "
                         "pool's max_size or lower replicas"))
    return Placement(pool, inst, per_replica, nodes, per_pod, lo, hi), problems


def flags_problems(ctx: ModelContext) -> list[Problem]:
    """The `vllm serve` arguments compile against the pinned version's flag table."""
    try:
        compile_args(ctx.spec, ctx.cfg.vllm.version, pd_role=ctx.pd_role)
    except FlagError as exc:
        return [(("extra_args",) if ctx.spec.extra_args else ("model",), str(exc))]
    except KeyError as exc:
        return [(("model",), str(exc.args[0]))]
    return []


def placed_settings(ctx: ModelContext, where: Placement) -> Settings:
    """The model's engine settings on one GPU of its pool, as the pinned vLLM release budgets them."""
    inst = where.instance
    return settings_for(ctx.spec, inst.gpu_usable_memory_gib, inst.gpus, inst.gpu_model, ctx.cfg.vllm.version)


def sizing(ctx: ModelContext, where: Placement, arch: Arch | None) -> tuple[Sizing | None, list[Problem]]:
    """The GPU-memory fit check; a model that does not fit is a problem naming the fixes."""
    if arch is None:
        return None, []
    inst = where.instance
    result = size(arch, placed_settings(ctx, where))
    if result.fits:
        return result, []
    field_name = "max_model_len" if ctx.spec.max_model_len is not None else "tensor_parallel_size"
    placed = f"{where.gpus_per_replica}× {inst.gpu_model} ({where.pool.name}: {inst.instance_type})"
    fixes = "; ".join(result.fixes) if result.fixes else "no change within the catalog fits"
    return result, [((field_name,), f"{ctx.spec.model} does not fit on {placed}: {result.reason} — fixes: {fixes}")]


def batch_limits_problems(ctx: ModelContext, where: Placement, arch: Arch | None) -> list[Problem]:
    """The scheduler limits vLLM accepts at startup (SchedulerConfig.verify_max_model_len, vllm@v0.34.0:
    vllm/config/scheduler.py, the same from 0.26): a token budget at least max_num_seqs (the budget vLLM defaults to
    on the pool's GPU where none is given), and without chunked prefill — switched off, or an encoder served for
    pooling, which vLLM runs without it (ModelConfig.is_chunked_prefill_supported) — a budget of at least
    max_model_len. Values from the profile count as the rendered flags do."""
    spec, inst = ctx.spec, where.instance
    profile = PROFILES[spec.profile or "balanced"]
    tokens = spec.max_num_batched_tokens or profile.get("max_num_batched_tokens")
    seqs = spec.max_num_seqs or profile.get("max_num_seqs")
    def origin(name: str, value: int | None) -> str:
        return f" (profile {spec.profile})" if value is not None and getattr(spec, name) is None else ""
    from_profile = [f"{name} {value:,}" for name, value in (("max_num_batched_tokens", tokens), ("max_num_seqs", seqs))
                    if value is not None and getattr(spec, name) is None]
    token_field = ("max_num_batched_tokens",) if spec.max_num_batched_tokens is not None else ("profile",)
    problems: list[Problem] = []
    problem = batch_limits_problem(placed_settings(ctx, where))
    if problem:
        where_ = f"{inst.gpu_model} ({where.pool.name}: {inst.instance_type})"
        field = ("max_num_seqs",) if spec.max_num_batched_tokens is None and spec.max_num_seqs is not None else token_field
        notes = f" with {' and '.join(from_profile)} from profile {spec.profile}" if from_profile else ""
        problems.append((field, f"on {where_}{notes}, {problem}"))
    chunked = spec.enable_chunked_prefill
    if chunked is None:
        chunked = not (spec.runner == "pooling" and arch is not None and arch.family == "encoder")
    max_len = spec.max_model_len or (arch.max_context if arch is not None else None)
    if not chunked and tokens is not None and max_len and tokens < max_len:
        why = "chunked prefill is off" if spec.enable_chunked_prefill is False else \
            f"vLLM serves {spec.model}, an encoder, without chunked prefill"
        unset = "leave max_num_batched_tokens unset" if spec.max_num_batched_tokens is not None else \
            "use profile balanced, which leaves the budget to vLLM"
        problems.append((token_field, f"max_num_batched_tokens {tokens:,}{origin('max_num_batched_tokens', tokens)} is below "
                                      f"max_model_len {max_len:,} and {why}: vLLM refuses to start (a prompt must fit one step) — "
                                      f"raise max_num_batched_tokens to {max_len:,}, lower max_model_len to {tokens:,}, or {unset}"))
    return problems


def dtype_runs_on_the_gpu(ctx: ModelContext, where: Placement) -> list[Problem]:
    """bfloat16 needs compute capability 8.0 (CudaPlatform.check_if_supports_dtype, vllm@v0.34.0:vllm/platforms/cuda.py,
    called as the worker starts); `auto` falls back to float16 there, so only an explicit bfloat16 is refused."""
    gpu = where.instance.gpu_model
    capability = GPU_CAPABILITY.get(gpu)
    if ctx.spec.dtype != "bfloat16" or capability is None or capability >= 80:
        return []
    return [(("dtype",), f"bfloat16 needs a GPU of compute capability 8.0 or newer and the {gpu} of pool "
                         f"'{where.pool.name}' is {capability / 10:.1f}: vLLM refuses to start — use dtype auto (float16 "
                         "there) or a pool of newer GPUs")]


def speculation_problems(ctx: ModelContext, where: Placement, arch: Arch | None) -> list[Problem]:
    """What vLLM refuses about speculative decoding at startup (the same at 0.32, 0.33 and 0.34): a draft model whose
    vocabulary is not the target's (SpeculativeConfig.verify_equal_vocab_size_if_draft_model,
    vllm@v0.34.0:vllm/config/speculative.py), and with LoRA a token budget below max_num_seqs × (speculative tokens + 1)
    (EngineArgs.create_engine_config, vllm@v0.34.0:vllm/engine/arg_utils.py)."""
    spec, spec_cfg = ctx.spec, ctx.spec.speculative
    if spec_cfg is None:
        return []
    problems: list[Problem] = []
    draft = model_catalog().get(spec_cfg.model) if spec_cfg.method == "draft_model" and spec_cfg.model else None
    if draft is not None and arch is not None and draft.vocab_size and arch.vocab_size and draft.vocab_size != arch.vocab_size:
        problems.append((("speculative", "model"), f"{spec_cfg.model} has a vocabulary of {draft.vocab_size:,} tokens and "
                                                   f"{spec.model} one of {arch.vocab_size:,}: vLLM refuses a draft model whose "
                                                   "vocabulary differs — use a draft of the target's family and tokenizer, or "
                                                   "method ngram"))
    if spec.lora is not None:
        inst = where.instance
        tokens, seqs = default_batched_tokens(placed_settings(ctx, where))
        need = seqs * (spec_cfg.num_speculative_tokens + 1)
        if tokens < need:
            problems.append((("speculative", "num_speculative_tokens"),
                             f"with LoRA, vLLM needs max_num_batched_tokens ({tokens:,} on {inst.gpu_model}) of at least "
                             f"max_num_seqs {seqs:,} × ({spec_cfg.num_speculative_tokens} speculative tokens + 1) = {need:,} "
                             f"and refuses to start — set max_num_batched_tokens to {need:,}, lower max_num_seqs to "
                             f"{tokens // (spec_cfg.num_speculative_tokens + 1):,}, or speculate fewer tokens"))
    return problems


# Quantizations that need a checkpoint quantized that way; fp8 and bitsandbytes also quantize a 16-bit checkpoint
# when it loads.
PREQUANTIZED = {"awq": "AWQ", "awq_marlin": "AWQ", "gptq": "GPTQ", "gptq_marlin": "GPTQ", "compressed-tensors": "compressed-tensors",
                "modelopt": "ModelOpt", "mxfp4": "MXFP4"}
CHECKPOINT_QUANT = {"fp8": "fp8", "mxfp4": "mxfp4"}


# Checkpoint quantizations vLLM refuses without --allow-deprecated-quantization (DEPRECATED_QUANTIZATION_METHODS of
# vllm@v0.34.0:vllm/model_executor/layers/quantization/__init__.py, checked in ModelConfig._verify_quantization; fbgemm_fp8
# is in it at 0.32 and 0.33 too).
DEPRECATED_QUANTIZATION = frozenset({"fbgemm_fp8"})
# vLLM's startup dtype rules, the same at 0.32, 0.33 and 0.34: model types that refuse float16
# (_FLOAT16_NOT_SUPPORTED_MODELS, vllm@v0.34.0:vllm/config/model.py) and the activation dtypes of each quantization
# (get_supported_act_dtypes of vllm@v0.34.0:vllm/model_executor/layers/quantization/{fp8,auto_awq,auto_gptq,mxfp4,
# modelopt,compressed_tensors/compressed_tensors}.py, checked in VllmConfig._get_quantization_config).
FLOAT16_REFUSED = frozenset({"gemma2", "gemma3", "gemma3_text", "glm4"})
DTYPES = {"half": "float16", "float16": "float16", "bfloat16": "bfloat16", "float": "float32", "float32": "float32"}
ACT_DTYPES: dict[str, tuple[str, ...]] = {
    "fp8": ("bfloat16", "float16"), "awq": ("bfloat16", "float16"), "gptq": ("bfloat16", "float16"),
    "awq_marlin": ("bfloat16", "float16"), "gptq_marlin": ("bfloat16", "float16"), "modelopt": ("bfloat16", "float16"),
    "mxfp4": ("bfloat16",), "compressed-tensors": ("bfloat16", "float16", "float32"),
}


def _checkpoint_quantization(spec: ModelSpec, arch: Arch) -> str | None:
    """How the checkpoint is quantized: its dtype in the catalog, or what its id says (…-AWQ, …-GPTQ-Int4, …-FP8)."""
    if arch.default_dtype in CHECKPOINT_QUANT:
        return CHECKPOINT_QUANT[arch.default_dtype]
    name = spec.model.lower()
    for marker, quant in (("awq", "awq"), ("gptq", "gptq"), ("fp8", "fp8"), ("mxfp4", "mxfp4")):
        if re.search(rf"(^|[-_/]){marker}($|[-_])", name):
            return quant
    return None


def architecture_problems(ctx: ModelContext, arch: Arch) -> list[Problem]:
    """What vLLM refuses at startup, caught here: a tensor-parallel size that does not divide the attention heads or
    split the KV heads (the pinned release's rules, fleet.capacity.memory.parallelism_problems), a
    context longer than the model's, a quantization the checkpoint does not have, an embedding model served to
    generate."""
    spec = ctx.spec
    problems: list[Problem] = []
    tp = spec.tensor_parallel_size or 1
    problems += [(("tensor_parallel_size",), f"{spec.model}: {p}") for p in parallelism_problems(arch, tp)]
    rope_override = any("rope" in a for a in spec.extra_args or [])
    if spec.max_model_len and arch.max_context and spec.max_model_len > arch.max_context and not rope_override:
        problems.append((("max_model_len",), f"{spec.max_model_len:,} is above {spec.model}'s context of {arch.max_context:,}: vLLM "
                                             "refuses it unless rope scaling extends the context (`--hf-overrides` with rope_scaling "
                                             f"in extra_args) — lower max_model_len to {arch.max_context:,} or less"))
    checkpoint = _checkpoint_quantization(spec, arch)
    wanted = spec.quantization.split("_")[0] if spec.quantization in ("awq", "awq_marlin", "gptq", "gptq_marlin", "mxfp4") else None
    if spec.quantization in PREQUANTIZED and (checkpoint is None or (wanted is not None and checkpoint in ("awq", "gptq", "mxfp4")
                                                                      and checkpoint != wanted)):
        problems.append((("quantization",), f"{spec.quantization} needs a checkpoint quantized with {PREQUANTIZED[spec.quantization]}, and "
                                            f"{spec.model} is {checkpoint or arch.default_dtype} — serve a {PREQUANTIZED[spec.quantization]}-quantized "
                                            "repository, or use fp8 or bitsandbytes (from vLLM 0.32 an image with vllm-bnb-plugin), which quantize a "
                                            "16-bit checkpoint as it loads"))
    elif spec.quantization in ("fp8", "bitsandbytes") and checkpoint not in (None, "fp8", spec.quantization):
        problems.append((("quantization",), f"{spec.model} is already {checkpoint}-quantized: vLLM reads its quantization from the "
                                            f"checkpoint — remove `quantization: {spec.quantization}`"))
    if arch.quant_method in DEPRECATED_QUANTIZATION and not any(a.split("=")[0] == "--allow-deprecated-quantization"
                                                                for a in spec.extra_args or []):
        problems.append((("model",), f"{spec.model} is quantized with {arch.quant_method}, which vLLM {ctx.cfg.vllm.version} "
                                     "deprecates and refuses to load unless told — add `--allow-deprecated-quantization` to "
                                     "extra_args, or serve a checkpoint quantized another way (e.g. compressed-tensors FP8)"))
    dtype = DTYPES.get(spec.dtype or "auto")
    if dtype == "float16" and arch.model_type in FLOAT16_REFUSED:
        problems.append((("dtype",), f"{spec.model} ({arch.model_type}) refuses float16 in vLLM (numerical instability) — use "
                                     "bfloat16, or leave dtype to the checkpoint"))
    quant = spec.quantization or checkpoint
    allowed = ACT_DTYPES.get(quant or "")
    if dtype is not None and allowed is not None and dtype not in allowed:
        problems.append((("dtype",), f"{quant} quantization runs its activations in {' or '.join(allowed)}, not {dtype}: vLLM "
                                     f"refuses it at startup — set dtype {allowed[0]}, or leave it to the checkpoint"))
    if arch.family == "encoder" and spec.runner != "pooling":
        problems.append((("runner",), f"{spec.model} is an embedding model: it has no generation head — set `runner: pooling`"))
    return problems


@dataclass(frozen=True)
class Checked:
    placement: Placement
    arch: Arch | None
    sizing: Sizing | None


def check_model(ctx: ModelContext) -> tuple[Checked | None, list[Problem]]:
    """Every rule, then (when they pass) the flags, the architecture and the fit check."""
    problems = [p for rule in RULES for p in rule(ctx)]
    where, placement_problems = placement(ctx)
    problems += placement_problems
    if problems or where is None:
        return None, problems
    problems = flags_problems(ctx)
    if problems:
        return None, problems
    arch, problem = resolve_arch(ctx.spec, ctx.team_file)
    if problem:
        return None, [(("config_json",), problem)]
    problems = architecture_problems(ctx, arch) if arch is not None else []
    problems += batch_limits_problems(ctx, where, arch) + speculation_problems(ctx, where, arch) + dtype_runs_on_the_gpu(ctx, where)
    if problems:
        return None, problems
    sized, problems = sizing(ctx, where, arch)
    problems += offload_fits(ctx, where)
    return (None, problems) if problems else (Checked(where, arch, sized), [])


def offload_fits(ctx: ModelContext, where: Placement) -> list[Problem]:
    """KV offload is pinned host memory inside the pod's share of its node, next to the server and /dev/shm."""
    offload = ctx.spec.kv_offload
    if offload is None:
        return []
    if where.nodes_per_replica > 1:
        return [(("kv_offload",), "KV offload on a replica that spans nodes is not rendered (each node's pod would need its "
                                  "own buffer and connector settings) — serve the model on one node or remove kv_offload")]
    room = offload_room_gib(where.instance, where.gpus_per_pod)
    if offload.cpu_gib <= room:
        return []
    memory = memory_share_gib(where.instance, where.gpus_per_pod)
    return [(("kv_offload", "cpu_gib"), f"{offload.cpu_gib:g} GiB does not fit: a pod with {where.gpus_per_pod} of the "
                                        f"{where.instance.gpus} GPUs of {where.instance.instance_type} gets {memory} GiB of host memory, "
                                        f"and the server and /dev/shm keep {memory - room} GiB of it — use at most {max(room, 0)} GiB, "
                                        "or a pool whose instances have more memory per GPU")]
