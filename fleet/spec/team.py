"""`stacks/teams/<team>.yaml`: one team, its owners and the models it serves (what it may use is granted in
stacks/tenancy.yaml)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator

from fleet.capacity.lengths import check_lengths
from fleet.k8s_names import SecretKey, SecretObjectName, StackSecretName
from fleet.spec.base import Name, Owner, Strict
from fleet.spec.s3 import S3Uri, parse_s3_prefix

HfId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=96)]
# A 40-hex commit, or a branch or tag name as git allows it (no leading '-', no '..'): it becomes a `--revision` value.
Revision = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]([A-Za-z0-9_\-]|[./][A-Za-z0-9_\-]){0,99}$")]
# Values that become `vllm serve` arguments: never a flag in disguise (no leading '-'), no shell or `$(VAR)` syntax.
ServedName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,127}$")]
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
MediaDomain = Annotated[str, StringConstraints(pattern=rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")]
TemplatePath = Annotated[str, StringConstraints(pattern=r"^(/[A-Za-z0-9_\-][A-Za-z0-9_.\-]*)+$", max_length=255)]
# relative to the team file; the loader keeps it inside the repository
RelativeFile = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$", max_length=255)]
StackName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9\-]{0,39}$")]


def _service_name(name: str) -> str:
    if not name[:1].isalpha():
        raise ValueError(f"'{name}' starts with a digit, but the model's Service is named after it and Service names are DNS-1035 "
                         "labels, which start with a letter — e.g. 'qwen-3b' instead of '3b-qwen'")
    return name


ServiceName = Annotated[Name, AfterValidator(_service_name)]


Quantization = Literal["fp8", "awq", "awq_marlin", "gptq", "gptq_marlin", "bitsandbytes", "compressed-tensors", "mxfp4", "modelopt"]


class SecretRef(Strict):
    """A secret by reference: a Pulumi secret of the stack (`secret:`) or an existing Kubernetes Secret."""

    secret: StackSecretName | None = Field(None, description="Name under `vllm-fleet:secrets` in the "
            "stack file; the stack turns it into a Kubernetes Secret.")
    existing_secret: SecretObjectName | None = Field(None, description="A Kubernetes Secret "
            "that already exists in the team namespace.")
    key: SecretKey = Field("value", description="Key inside the Kubernetes Secret (mounted as a file of that name, so never a "
                                                "path): alphanumerics, '-', '_' and '.'. Default `value`.")

    @model_validator(mode="after")
    def _one(self) -> SecretRef:
        if (self.secret is None) == (self.existing_secret is None):
            raise ValueError("name exactly one of `secret` (a Pulumi secret of the stack) or `existing_secret`")
        return self


class Architecture(Strict):
    """Model architecture facts for sizing when the model is not in the catalog."""

    params_b: float = Field(gt=0, le=5000, description="Total parameters in billions.")
    layers: int = Field(ge=1, le=1000)
    kv_heads: int = Field(ge=1, le=1024, description="Key/value heads (GQA); equals attention heads without GQA.")
    attention_heads: int | None = Field(None, ge=1, le=1024, description="Query heads (`num_attention_heads`); the "
                                        "tensor-parallel size must divide them, as vLLM checks at start.")
    head_dim: int = Field(ge=1, le=1024)
    hidden_size: int | None = Field(None, ge=1)
    vocab_size: int | None = Field(None, ge=1)
    max_context: int | None = Field(None, ge=1, description="Maximum context the model supports.")
    active_params_b: float | None = Field(None, gt=0, description="Active parameters per token for MoE models.")


class Autoscale(Strict):
    min_replicas: int = Field(1, ge=0, le=1000, description="Lower bound. 0 only with the KEDA backend and `allow_scale_to_zero`.")
    max_replicas: int = Field(ge=1, le=1000, description="Upper bound; max × GPUs per replica must fit the team quota (policy E7).")
    target_queue_per_pod: float = Field(5, ge=0.1, le=10000, description="Target `vllm:num_requests_waiting` per pod (0.1 to 10,000; "
                                                                       "rendered as a Kubernetes quantity to the milli-unit). "
                                                                       "Unset on a model with an `slo`: derived from the performance "
                                                                       "model (the queue a replica holds at the highest rate that "
                                                                       "still meets the targets).")

    @model_validator(mode="after")
    def _bounds(self) -> Autoscale:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas {self.max_replicas} is below min_replicas {self.min_replicas}")
        return self




class LoraModule(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")] = Field(
        description="Adapter name clients send as `model`.")
    path: HfId | S3Uri = Field(description="Where the adapter comes from: a Hugging Face id (pin `revision`) or an `s3://bucket/prefix/` "
                                           "that stacks/tenancy.yaml grants the team (`data_sources`). "
                                           "The prefetch Job copies it into the model cache (`/models/adapters/<model>/<name>`), "
                                           "which vLLM loads it from.")
    revision: Revision | None = Field(None, description="Hugging Face revision of the adapter; a 40-hex commit pins it.")

    @field_validator("path", mode="before")
    @classmethod
    def _not_local(cls, value: object) -> object:
        if isinstance(value, str) and value.startswith("/"):
            raise ValueError(f"'{value}' is a local path nothing creates, so the server would crash-loop — declare the adapter "
                             "by Hugging Face id (with `revision`) or s3:// URI; the stack prefetches it into the model cache")
        if isinstance(value, str) and value.startswith("s3://"):
            parse_s3_prefix(value)   # one clear error for an S3 URI, not one per branch of the union
        return value

    @model_validator(mode="after")
    def _revision(self) -> LoraModule:
        if self.revision is not None and self.path.startswith("s3://"):
            raise ValueError("`revision` pins a Hugging Face adapter; an s3:// adapter is pinned by its prefix")
        return self


class Lora(Strict):
    modules: list[LoraModule] = Field(default_factory=list, description="Adapters loaded at startup (`--lora-modules`).")
    max_rank: Literal[8, 16, 32, 64, 128, 256, 320, 512] = Field(16, description="`--max-lora-rank`; must cover the largest adapter.")
    max_loras: int = Field(1, ge=1, le=64, description="Adapters resident at once (`--max-loras`).")
    runtime_updating: bool = Field(False, description="Let API clients load and unload adapters from the cache's adapters directory "
                                                      "(vLLM's /v1/load_lora_adapter, VLLM_ALLOW_RUNTIME_LORA_UPDATING). Needs `api_key`: "
                                                      "whoever holds it can make the server load any adapter it can read (docs/lora.md).")

    @model_validator(mode="after")
    def _some(self) -> Lora:
        if not self.modules and not self.runtime_updating:
            raise ValueError("lora needs `modules`, or `runtime_updating: true` to load adapters at runtime")
        names = [m.name for m in self.modules]
        if len(set(names)) != len(names):
            raise ValueError("adapter names must be unique")
        return self


class Speculative(Strict):
    method: Literal["draft_model", "eagle", "eagle3", "medusa", "mlp_speculator", "ngram", "mtp"] = Field(description="Rendered into `--speculative-config`. "
                                                                                                      "medusa and mlp_speculator only before vLLM 0.33.")
    model: HfId | None = Field(None, description="Draft model (not for `ngram`).")
    num_speculative_tokens: int = Field(ge=1, le=16)
    prompt_lookup_max: int | None = Field(None, ge=1, le=64, description="`ngram` only.")

    @model_validator(mode="after")
    def _model(self) -> Speculative:
        if self.method == "ngram" and self.model is not None:
            raise ValueError("ngram speculation uses no draft model — remove `model`")
        if self.method in ("draft_model", "eagle", "eagle3", "medusa", "mlp_speculator") and self.model is None:
            raise ValueError(f"method {self.method} needs a draft `model`")
        return self


class ToolCalling(Strict):
    parser: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]*$")] = Field(description="`--tool-call-parser`, e.g. hermes, llama3_json, "
            "mistral, openai: a parser the pinned vLLM has (fleet/catalog/vllm/tool-parsers.json).")
    auto_tool_choice: bool = Field(True, description="`--enable-auto-tool-choice`.")


class Multimodal(Strict):
    limit_per_prompt: dict[Literal["image", "video", "audio"], int] = Field(description="`--limit-mm-per-prompt`, e.g. {image: 4}. "
            "The fit check counts the vision encoder's startup pass over a batch of the largest images ({image: 0}: text only).")
    allowed_media_domains: list[MediaDomain] = Field(
        default_factory=list, description="`--allowed-media-domains`; empty lets the server fetch from anywhere (SSRF "
                                                                               "risk, policy F7).")


class StructuredOutputs(Strict):
    backend: Literal["auto", "xgrammar", "guidance", "outlines", "lm-format-enforcer"] = Field("auto", description="Rendered into "
            "`--structured-outputs-config`.")


class KvOffload(Strict):
    """KV-cache blocks evicted from GPU memory kept in the pod's host memory and reloaded on a prefix hit."""

    backend: Literal["native", "lmcache"] = Field("native", description="`native`: vLLM's own CPU offloading (`--kv-offloading-size`, "
            "`--kv-offloading-backend native`). `lmcache`: the LMCache connector in the server's process (`--kv-transfer-config` "
            "LMCacheConnectorV1, its CPU size from LMCACHE_MAX_LOCAL_CPU_SIZE); the connector does not support vLLM's hybrid "
            "KV-cache manager, so a sliding-window model's layers are all sized as full attention.")
    cpu_gib: float = Field(gt=0, le=2048, description="Host memory for offloaded KV blocks per replica pod (summed over its GPUs). "
                                                      "Must fit in the pod's memory next to the server (the fit check says how much is free).")


class PdRole(Strict):
    tensor_parallel_size: int | None = Field(None, ge=1, le=8, description="`--tensor-parallel-size` of this role. Default: the model's.")
    replicas: int | None = Field(None, ge=1, le=1000, description="Fixed replicas of this role. Conflicts with `autoscaling`. Default 1.")
    autoscaling: Autoscale | None = Field(None, description="Autoscaling of this role on its own signal (prefill: queue; decode: queue "
                                                            "and KV-cache use). Conflicts with `replicas`.")

    @model_validator(mode="after")
    def _one(self) -> PdRole:
        if self.replicas is not None and self.autoscaling is not None:
            raise ValueError("set either `replicas` or `autoscaling`, not both")
        return self


class Disaggregation(Strict):
    """Prefill and decode in separate workloads: prefill pods compute the prompt's KV cache, decode pods pull it over NIXL
    and generate. Needs `routing: gateway` (the P/D-aware endpoint picker pairs them); docs/gateway.md."""

    prefill: PdRole = Field(default_factory=PdRole)  # type: ignore[arg-type]
    decode: PdRole = Field(default_factory=PdRole)  # type: ignore[arg-type]

    @model_validator(mode="before")
    @classmethod
    def _not_a_switch(cls, data: object) -> object:
        if isinstance(data, bool):
            raise ValueError("disaggregated_prefill is an object now: `{prefill: {replicas, tensor_parallel_size}, decode: {...}}` "
                             "(separate prefill and decode workloads with the NIXL connector, docs/gateway.md)")
        return data


ENGINE_FIELDS = (
    "dtype", "tensor_parallel_size", "pipeline_parallel_size", "gpu_memory_utilization", "max_model_len",
    "max_num_seqs", "max_num_batched_tokens", "quantization", "kv_cache_dtype", "enable_prefix_caching",
    "enable_chunked_prefill", "enforce_eager", "trust_remote_code", "served_model_name", "chat_template",
)


class Slo(Strict):
    """The traffic a model must carry and the latencies it promises; the plan checks the replicas at max against it
    with the calibrated performance model (docs/performance.md)."""
    request_rate: float = Field(gt=0, le=1_000_000, description="Peak requests per second over all replicas.")
    input_tokens: int = Field(ge=1, le=10_000_000, description="Prompt tokens per request (mean).")
    output_tokens: int = Field(ge=1, le=10_000_000, description="Output tokens per request (mean).")
    input_tokens_p95: int | None = Field(None, ge=1, le=10_000_000, description="95th percentile of the prompt tokens: the "
                                         "lengths vary, log-normal with the mean (at most 3.87× it). Default: every prompt the mean.")
    output_tokens_p95: int | None = Field(None, ge=1, le=10_000_000, description="95th percentile of the output tokens, likewise.")
    ttft_p50_ms: float | None = Field(None, gt=0, description="Target median time to first token, ms.")
    ttft_p95_ms: float | None = Field(None, gt=0, description="Target 95th percentile time to first token, ms.")
    itl_p50_ms: float | None = Field(None, gt=0, description="Target median inter-token latency, ms.")
    itl_p95_ms: float | None = Field(None, gt=0, description="Target 95th percentile inter-token latency, ms.")
    tpot_p50_ms: float | None = Field(None, gt=0, description="Target median time per output token, ms.")

    @model_validator(mode="after")
    def _targets(self) -> Slo:
        names = ("ttft_p50_ms", "ttft_p95_ms", "itl_p50_ms", "itl_p95_ms", "tpot_p50_ms")
        if all(getattr(self, n) is None for n in names):
            raise ValueError("an slo needs at least one target: ttft_p50_ms, ttft_p95_ms, itl_p50_ms, itl_p95_ms or tpot_p50_ms")
        check_lengths(self.input_tokens, self.input_tokens_p95, self.output_tokens, self.output_tokens_p95)
        for low, high in (("ttft_p50_ms", "ttft_p95_ms"), ("itl_p50_ms", "itl_p95_ms")):
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and b < a:
                raise ValueError(f"{high} {b:g} is below {low} {a:g}: a 95th percentile is never below the median — raise {high}")
        return self


class ModelFields(Strict):
    """Every field a model may set, all optional: the shape of a `stacks:` override."""

    enabled: bool | None = Field(None, description="Serve the model in this stack. Default true.")
    model: HfId | None = Field(None, description="Hugging Face model id, e.g. meta-llama/Llama-3.1-8B-Instruct.")
    revision: Revision | None = Field(None, description="Model revision; a 40-hex commit pins it (policy F9, required with trust_remote_code).")
    architecture: Architecture | None = Field(None, description="Inline architecture for sizing. Conflicts with `config_json`.")
    config_json: RelativeFile | None = Field(None, description="Path (relative to the team file, inside the repository) to the model's "
                                                                "config.json for sizing (its vision tower, rotary scaling and a quantized "
                                                                "checkpoint's quantization_config included). Conflicts with `architecture`.")
    pool: Name | None = Field(None, description="GPU pool name from the stack file.")
    replicas: int | None = Field(None, ge=1, le=1000, description="Fixed replicas. Conflicts with `autoscaling`. Default 1.")
    autoscaling: Autoscale | None = Field(None, description="Autoscaling bounds and target. Conflicts with `replicas`; needs an autoscaling backend in the "
                                                            "stack.")
    profile: Literal["balanced", "throughput", "latency"] | None = Field(None, description="Tuning profile from the deployment sheet; explicit engine "
                                                                                           "fields win. Default balanced.")
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] | None = Field(None, description="`--dtype`. Default auto.")
    tensor_parallel_size: int | None = Field(None, ge=1, le=64, description="`--tensor-parallel-size`. Must divide the pool's GPUs per node, or be a "
                                                                            "multiple of it for multi-node replicas. Default 1.")
    pipeline_parallel_size: int | None = Field(None, ge=1, le=64, description="`--pipeline-parallel-size`. Default 1.")
    gpu_memory_utilization: float | None = Field(None, gt=0.1, le=0.98, description="`--gpu-memory-utilization`. Default 0.9.")
    max_model_len: int | None = Field(None, ge=16, le=10_000_000, description="`--max-model-len`. Default: the model's context.")
    max_num_seqs: int | None = Field(None, ge=1, le=65536, description="`--max-num-seqs`. Default from the profile.")
    max_num_batched_tokens: int | None = Field(None, ge=16, le=10_000_000, description="`--max-num-batched-tokens`. Default from the profile. "
                                                  "At least max_num_seqs, and max_model_len without chunked prefill: vLLM refuses less.")
    quantization: Quantization | None = Field(None, description="`--quantization`; bitsandbytes also sets `--load-format bitsandbytes` and, "
                                                           "from vLLM 0.32, needs an image with vllm-bnb-plugin (not the stock one).")
    kv_cache_dtype: Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2"] | None = Field(None, description="`--kv-cache-dtype`. Default auto.")
    enable_prefix_caching: bool | None = Field(None, description="Prefix caching; on by default in vLLM, set false to render `--no-enable-prefix-caching`.")
    enable_chunked_prefill: bool | None = Field(None, description="Chunked prefill; on by default in vLLM.")
    enforce_eager: bool | None = Field(None, description="`--enforce-eager` (disables CUDA graphs; debugging only).")
    trust_remote_code: bool | None = Field(None, description="`--trust-remote-code`; needs a 40-hex `revision` (policy F1).")
    served_model_name: list[ServedName] | None = Field(None, min_length=1, description="`--served-model-name`. Default: the model id.")
    chat_template: TemplatePath | None = Field(None, description="`--chat-template`: an absolute path in the image or on the cache volume.")
    api_key: SecretRef | None = Field(None, description="API key for `/v1/*` (VLLM_API_KEY from a Secret). A literal string is refused.")
    hf_token: SecretRef | None = Field(None, description="Hugging Face token for gated models, mounted as a file (HF_TOKEN_PATH). A literal string is refused.")
    lora: Lora | None = None
    speculative: Speculative | None = None
    structured_outputs: StructuredOutputs | None = None
    slo: Slo | None = Field(None, description="Peak traffic and latency targets; the plan flags replicas at max that cannot meet "
                                             "them (rule S1) and names the replicas that would (docs/performance.md).")
    tool_calling: ToolCalling | None = None
    multimodal: Multimodal | None = None
    runner: Literal["generate", "pooling"] | None = Field(None, description="`--runner`; `pooling` for embedding models. Default generate.")
    convert: Literal["embed", "classify", "reward"] | None = Field(None, description="`--convert` a causal LM into a pooling model. Only with runner pooling.")
    routing: Literal["gateway", "service"] | None = Field(None, description="`gateway`: an InferencePool with a prefix-cache and "
            "load-aware endpoint picker behind the stack's inference Gateway; `service`: the model's Service (round-robin). Default: "
            "gateway for generative models when the stack's gateway kind is inference, otherwise service.")
    priority: int | None = Field(None, ge=-100, le=100, description="InferenceObjective priority of the model's requests (routing "
                                                                    "gateway): under saturation lower priorities are shed first. Default: none rendered.")
    kv_offload: KvOffload | None = Field(None, description="KV-cache offload to host memory (typed; checked against the pinned flag table).")
    disaggregated_prefill: Disaggregation | None = Field(None, description="Separate prefill and decode workloads with the NIXL connector, "
            "each sized and autoscaled on its own; needs routing gateway.")
    extra_args: list[Annotated[str, StringConstraints(min_length=1)]] | None = Field(None, description="Extra `vllm serve` arguments, checked against the "
            "flag table of the pinned version; flags that have a typed field here, and settings of the world size, "
            "the listening socket, the memory budget or the code the server imports, are refused in every spelling the "
            "pinned parser accepts (aliases, abbreviations, `-O`, dotted and JSON `--*-config` keys; docs/guardrails.md).")


class ModelSpec(ModelFields):
    """One served model."""

    name: ServiceName = Field(description="Model service name: a DNS-1035 label (lower case, starts with a letter), because the "
                                          "model's Service is named after it; objects are named `<name>` in the team namespace.")
    model: HfId = Field(description="Hugging Face model id, e.g. meta-llama/Llama-3.1-8B-Instruct.")  # type: ignore[assignment]
    pool: Name = Field(description="GPU pool name from the stack file.")  # type: ignore[assignment]
    stacks: dict[StackName, ModelFields] = Field(default_factory=dict, description="Per-stack overrides of any field above, e.g. `prod: {replicas: 3}`.")

    @model_validator(mode="after")
    def _conflicts(self) -> ModelSpec:
        problems = []
        if self.replicas is not None and self.autoscaling is not None:
            problems.append("set either `replicas` or `autoscaling`, not both")
        if self.architecture is not None and self.config_json is not None:
            problems.append("set either `architecture` or `config_json`, not both")
        if self.convert is not None and self.runner != "pooling":
            problems.append("`convert` needs `runner: pooling`")
        if self.runner == "pooling" and (self.speculative or self.tool_calling or self.lora):
            problems.append("a pooling (embedding) model takes no speculative, tool_calling or lora settings")
        if problems:
            raise ValueError("; ".join(problems))
        return self



class Team(Strict):
    """`stacks/teams/<team>.yaml`. What the team may use (GPU quota, RBAC group, secrets) is granted in the
    platform-owned `stacks/tenancy.yaml`."""

    name: Name = Field(description="Team name; the namespace is `team-<name>`. Must match the file name.")
    owners: list[Owner] = Field(min_length=1, description="GitHub users (`@user`), teams (`@org/team`) or e-mail addresses "
            "who own this file (CODEOWNERS).")
    models: list[ModelSpec] = Field(default_factory=list)
