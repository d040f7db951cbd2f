"""GPU-memory fit check for vLLM (V1 engine), per GPU. Pure functions; no Pulumi, no vLLM import.

Per GPU, as vLLM's worker computes it at startup:
    budget    = usable GPU memory × gpu_memory_utilization
    kv_cache  = budget − weights/(TP·PP) − peak activation (the larger of a max_num_batched_tokens forward pass
                and sampling max_num_seqs dummy requests, whose bytes per logit depend on the release)
                − non-torch memory (CUDA context, NCCL)
    blocks    = kv_cache / (group_size · page), a page being one layer's 16 tokens of K and V
                (2 · max(1, kv_heads/TP) · head_dim · bytes(kv dtype) per token and layer)
and the server refuses to start when one `max_model_len` request needs more blocks than that (KvPool). CUDA graphs
are captured afterwards, outside the budget: they must fit in the memory the budget leaves. What differs between
vLLM releases is an EngineProfile (PROFILES).
MLA models store one latent vector per layer (kv_lora_rank + rope dims) that tensor parallelism does
not split; sliding-window layers hold a request's last `sliding_window` tokens plus the tokens in flight; encoder
(embedding) models keep no KV cache.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from fleet.catalog import CATALOG_DIR, InstanceType, gpu_instance_types
from fleet.versions import parse_version
from fleet.yamlsrc import CONFIG_MAX_BYTES, InputError, read_input, safe_load

BLOCK = 16
GIB = 2**30
DTYPE_BYTES = {"auto": 2.0, "bfloat16": 2.0, "float16": 2.0, "half": 2.0, "float": 4.0, "float32": 4.0}
# Bytes per parameter of the quantized linear layers (embeddings and lm_head stay in 16-bit);
# the small extra covers scales and zero points.
QUANT_BYTES = {"fp8": 1.02, "modelopt": 1.02, "compressed-tensors": 1.02, "awq": 0.53, "awq_marlin": 0.53,
               "gptq": 0.53, "gptq_marlin": 0.53, "bitsandbytes": 0.55,
               # MXFP4 is 4.25 bits; vLLM's MoE kernels pad gpt-oss's 2880-wide expert dims to 3072 (× 1.067),
               # which the loaded weights of gpt-oss-20b/120b on H100 show (13.47 and 64.38 GiB).
               "mxfp4": 0.565,
               # GGUF checkpoints (vLLM's `--quantization gguf`, the model as `repo:TYPE`): llama.cpp's bits per weight
               # over the whole file, embeddings and output included (Q8_0 8.5, Q6_K 6.56, Q5_K_M ~5.7, Q4_K_M ~4.85).
               "gguf:Q8_0": 1.0625, "gguf:Q6_K": 0.8203, "gguf:Q5_K_M": 0.7125, "gguf:Q4_K_M": 0.606,
               # NVFP4 (ModelOpt): 4-bit values and an FP8 scale per 16
               "modelopt_fp4": 0.5625}
# The lowest CUDA compute capability vLLM 0.26 runs each method on (its QuantizationConfig.get_min_capability):
# below it the server refuses to start. Above it, MXFP4 and FP8 run as weight-only Marlin kernels on cards
# without native FP4/FP8 (Ampere), so the weights keep their quantized size.
MIN_CAPABILITY = {"mxfp4": 80, "modelopt": 89, "modelopt_fp4": 75, "fp8": 75, "awq": 75, "awq_marlin": 75, "bitsandbytes": 70,
                  "compressed-tensors": 70}
# Compute capability of the catalog's GPU models (NVIDIA's CUDA GPU list).
GPU_CAPABILITY = {"T4": 75, "T4G": 75, "A10G": 86, "L4": 89, "L40S": 89, "A100-40GB": 80, "A100-80GB": 80, "H100": 90,
                  "H200": 90}
# Methods that quantize every tensor, embeddings and lm_head too.
WHOLE_FILE_QUANTIZATIONS = frozenset({"gguf:Q8_0", "gguf:Q6_K", "gguf:Q5_K_M", "gguf:Q4_K_M"})
KV_BYTES = {"auto": None, "fp8": 1.0, "fp8_e4m3": 1.0, "fp8_e5m2": 1.0}
LARGE_GPU_GIB = 70                # vLLM's defaults for the OpenAI server differ above this (arg_utils)
HUGE_GPU_GIB = 160                # ... and again above this (B200 class)


@dataclass(frozen=True)
class EngineProfile:
    """How a vLLM release budgets memory at startup (Settings.engine_profile names one)."""
    name: str
    # The profiling run's sampling step, bytes per (dummy request × vocabulary entry) in the peak it measures;
    # 0 where the sampler is warmed up only after the KV cache is sized.
    sampler_bytes_per_logit: float
    non_torch_gib: float          # CUDA context and allocator slack at one GPU per replica ...
    non_torch_tp_gib: float       # ... and with NCCL buffers (TP or PP above 1)
    captures_graphs: bool         # CUDA graphs for decode batch sizes (none with enforce_eager)
    # CUDA graph memory per captured batch size: a fixed part plus a part per layer of the stage (piecewise graphs
    # split at every attention layer).
    graph_gib_per_size: float = 0.0053
    graph_gib_per_size_and_layer: float = 0.000197
    # Fused MoE peak per token beyond the routed experts' buffers, in hidden-size units.
    moe_hidden_factor: float = 10.0
    # The startup profile runs a multimodal model's vision encoder over a batch of its largest images (V1's first
    # model runner); 0.26's runner does not (its encoder dummy run is a TODO), so that pass runs unbudgeted at serving.
    profiles_encoder: bool = True
    # V1's hybrid KV-cache manager: sliding-window layers get their own block tables (V0 sized every layer as full).
    hybrid_kv: bool = True
    # Scheduler steps in flight at one pipeline stage with asynchronous scheduling (on by default from 0.26: the
    # scheduler runs a step ahead): a sliding-window layer keeps its window plus that many steps' tokens.
    async_batches: int = 1
    # How the startup log counts KV tokens: blocks / groups × 16 before 0.26; from 0.26 `Maximum concurrency` ×
    # max_model_len (the same for one group when max_model_len is a multiple of 16; more for sliding windows).
    tokens_from_concurrency: bool = False
    # Where the encoder's pass is not profiled: memory a started server holds beyond the budget's weights and KV cache
    # and the CUDA graphs, less the profile's activation and non-torch share of the budget (see serving_room_gib): a
    # fixed part (the CUDA context, the runner's buffers) and a part per request slot and vocabulary entry (the
    # sampler's state). Blocks the allocator only keeps cached are not in it: a new allocation reuses them.
    serving_reserve_gib: float = 0.0
    serving_reserve_bytes_per_logit: float = 0.0
    # Fused MoE keeps its experts' workspace once allocated (0.26's WorkspaceManager): held by the started server.
    moe_workspace_held: bool = False
    # The sampling step with FlashInfer's sampler instead (VLLM_USE_FLASHINFER_SAMPLER=1, or a release whose default
    # it is); None: the same either way.
    flashinfer_sampler_bytes_per_logit: float | None = None


PROFILES = {
    # V0 kept only the fp32 logits; V0 logs show 0.25–0.35 GiB non-torch at one GPU.
    "v0": EngineProfile("v0", 4.0, 0.3, 0.6, captures_graphs=False, hybrid_kv=False),
    # V1 up to 0.16: the profile samples its dummy requests with top-k and top-p, and the native sampler sorts the
    # vocabulary — 38.5 B per logit fitted to the activation peaks vLLM 0.11 printed on H100 (Llama-3.1-8B,
    # Llama-3.3-70B, Qwen3-0.6B/32B, gpt-oss; 4.76–7.38 GiB, within 3 %); non-torch 0.13–0.14 GiB at TP 1 and
    # 0.54–0.55 at TP 2 in the same logs. FlashInfer's sampler (the default of 0.11.0 where FlashInfer was installed,
    # opt-in from 0.11.1 to 0.19) takes 14.5: on an H200 the sort-based step took 36.0 B per logit above the 16-bit
    # logits and FlashInfer's 12.0 (scripts/h200_sampler_peak.py, 128k–262k vocabularies, 256–1,024 requests).
    "v1-native-sampler": EngineProfile("v1-native-sampler", 38.5, 0.14, 0.55, captures_graphs=True,
                                       flashinfer_sampler_bytes_per_logit=14.5),
    # V1 from 0.17 to 0.25: the native top-k/top-p is a Triton kernel working in place (a buffer of one vocabulary
    # row per multiprocessor), so the step keeps fp32 logits, probabilities and noise as FlashInfer's does — 14.5 either
    # way (the 12 B of those three tensors on the same 16-bit-logit and slack terms as above; counted, not logged).
    "v1-triton-sampler": EngineProfile("v1-triton-sampler", 14.5, 0.14, 0.55, captures_graphs=True),
    # V1 from 0.26, measured on an H200 (calibration.yaml, `h200-*`): the forward pass is the peak — 32 to 1,024
    # dummy requests over 128k–256k vocabularies move it by at most 0.06 GiB, and 256 requests at 2,048 batched
    # tokens peaked at 0.24 GiB, so the profile's sampling step stays under 7.8 B per logit. The one run where it is
    # the peak — Gemma 3 (262k vocabulary), 1,024 requests at 4,096 batched tokens: 0.64 GiB — gives 2.5 B per logit
    # (16-bit logits and a little).
    # Either sampler: 0.26 samples with FlashInfer by default (VLLM_USE_FLASHINFER_SAMPLER unset, FlashInfer in vLLM's
    # image), natively when it is off or missing. Neither moves these numbers, measured in pairs (`-fi` records): the
    # V2 model runner (dense models) profiles its sampler without top-k/top-p, and the V1 runner (MoE) warms up both;
    # activation peaks and KV caches were equal, and what a started server leaves within 0.13 GiB. FlashInfer being
    # installed does change the device's free memory — on Hopper vLLM's kernel warm-up autotunes its kernels with a
    # forward pass after the KV cache is allocated, and the allocator keeps those blocks (1.2–4.2 GiB cached) — but a
    # new allocation reuses them, so the room below counts them.
    # Non-torch is 0.22 GiB at TP 1 and 0.07 at TP 2 (two H200s of one host: 0.06–0.11 over five runs, dense and
    # MoE), and CUDA graphs are captured after the KV cache is sized, outside gpu_memory_utilization's budget.
    # A vision model's encoder is not in its profile (Gemma 3 4B with up to 64 images: 1.19 GiB peak, below its
    # text-only 1.41), so the encoder's pass must fit in the room the running server leaves: free memory plus the
    # allocator's cached blocks. Started servers held 0.91–1.38 GiB beyond budget and graphs besides what the profile
    # freed (Llama-3.1-8B and Gemma 3 4B at 256 and 1,024 max_num_seqs, either sampler): 0.87 GiB and 4.1 B per dummy
    # request × vocabulary entry (the sampler's state per request), within 0.1 GiB of each; MoE adds its workspace.
    # Gemma 3 4B's pass over 62 images (6.53 GiB) then fitted at 0.93 (room 8.56–8.69 GiB) and ran out of memory at
    # 0.95 (h200-gemma3-4b-*-serve).
    "v0.26": EngineProfile("v0.26", 2.5, 0.22, 0.07, captures_graphs=True, profiles_encoder=False, async_batches=2,
                           tokens_from_concurrency=True, serving_reserve_gib=0.87, serving_reserve_bytes_per_logit=4.1,
                           moe_workspace_held=True),
}
LATEST_PROFILE = "v0.26"


def engine_profile_for(version: str | None, engine: str = "v1") -> str:
    """The profile of a vLLM release ('0.33.0'); None: the latest measured."""
    if engine == "v0":
        return "v0"
    if not version:
        return LATEST_PROFILE
    parts = parse_version(str(version))
    if len(parts) < 2:
        raise ValueError(f"vLLM version {version!r} is not a version (like 0.33.0)")
    if parts[:2] >= (0, 26):
        return "v0.26"
    return "v1-triton-sampler" if parts[:2] >= (0, 17) else "v1-native-sampler"


# The graph constants of the profiles are fitted to the H200 runs of Llama-3.1-8B (51 and 19 sizes: 0.59 and
# 0.22 GiB) and Qwen2.5-7B (0.55 GiB); the Gemma, Qwen2.5-0.5B and Qwen3-30B-A3B runs are held out, and
# bench/sizing_accuracy refits every constant without each source in turn (fleet.capacity.memory_calibration.leave_one_source_out).
MAX_CAPTURE_SIZE = 512


def cuda_graph_sizes(max_num_seqs: int) -> list[int]:
    """The batch sizes vLLM captures: 1, 2, 4, then every 8 to 256 and every 16 to 512, up to twice max_num_seqs
    (capped at 512), as vLLM 0.26 logs `cudagraph_capture_sizes`."""
    largest = min(2 * max_num_seqs, MAX_CAPTURE_SIZE)
    sizes = [1, 2, 4, *range(8, 257, 8), *range(272, 513, 16)]
    return [n for n in sizes if n <= largest]


@dataclass(frozen=True)
class Arch:
    id: str
    params_b: float
    layers: int
    kv_heads: int
    head_dim: int
    hidden_size: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None
    tied_embeddings: bool = False
    max_context: int | None = None
    family: str = "dense"
    model_type: str | None = None              # config.json's model_type (vLLM keys dtype rules on it); None: unknown
    quant_method: str | None = None            # a quantized checkpoint's quantization_config.quant_method, where vLLM
                                               # treats it apart from default_dtype (fbgemm_fp8 is deprecated)
    active_params_b: float | None = None
    default_dtype: str = "bfloat16"
    attention_heads: int | None = None
    sliding_window: int | None = None
    sliding_window_layers: int = 0
    kv_lora_rank: int | None = None
    unquantized_params_b: float | None = None   # what a quantized checkpoint keeps 16-bit (default: embeddings)
    qk_rope_head_dim: int | None = None
    moe_intermediate_size: int | None = None    # MoE: each expert's intermediate size ...
    experts_per_token: int | None = None        # ... and how many experts each token is routed to
    experts: int | None = None                  # routed experts per MoE layer
    # Vision encoder of a multimodal model (images): LM tokens an image becomes, patches the encoder sees for the
    # largest image, and the encoder's width.
    mm_tokens_per_item: int | None = None
    vision_patches_per_item: int | None = None
    vision_hidden_size: int | None = None
    vision_intermediate_size: int | None = None
    vision_params_b: float = 0.0                # the vision tower and projector (in params_b; not loaded text-only)
    # Positions of the rotary caches vLLM keeps in the model's dtype (default: max_context): linear and YaRN scaling
    # multiply them, and Gemma 3 keeps a second one for its local layers — 1,179,648 positions × 256 is 0.56 GiB.
    rope_cache_positions: int | None = None
    quant_bytes: float | None = None            # bytes per quantized parameter, from the checkpoint's quantization_config
    source: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.params_b, bool) or not isinstance(self.params_b, (int, float)) or not math.isfinite(self.params_b) \
                or self.params_b <= 0:
            raise ValueError(f"parameters (billions) must be a positive number, got {self.params_b!r}")
        for name in ("layers", "kv_heads", "head_dim", "hidden_size", "intermediate_size", "vocab_size", "max_context",
                     "moe_intermediate_size", "experts_per_token", "experts", "mm_tokens_per_item", "vision_patches_per_item",
                     "vision_hidden_size", "vision_intermediate_size"):
            value = getattr(self, name)
            if value is None and name not in ("layers", "kv_heads", "head_dim"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name.replace('_', ' ')} must be a positive whole number, got {value!r}")
        if not 0 <= self.vision_params_b < self.params_b:
            raise ValueError(f"vision parameters (billions) must be below the model's {self.params_b}, got {self.vision_params_b!r}")

    @property
    def rope_cache_gib(self) -> float:
        positions = self.rope_cache_positions if self.rope_cache_positions is not None else self.max_context or 0
        rotary = self.qk_rope_head_dim if self.family == "mla" and self.qk_rope_head_dim else self.head_dim
        return positions * rotary * 2 / GIB

    @property
    def embedding_params_b(self) -> float:
        if not self.hidden_size or not self.vocab_size:
            return 0.0
        return self.hidden_size * self.vocab_size * (1 if self.tied_embeddings else 2) / 1e9


@lru_cache(maxsize=1)
def model_catalog() -> dict[str, Arch]:
    with open(CATALOG_DIR / "models.yaml", encoding="utf-8") as fh:
        rows = safe_load(fh)["models"]
    fields = set(Arch.__dataclass_fields__)
    return {r["id"]: Arch(**{k: v for k, v in r.items() if k in fields}) for r in rows}


def arch_from_config_json(path: str | Path, model_id: str = "config.json", inside: Path | None = None) -> Arch:
    """Read the sizing facts from a Hugging Face config.json (text config of multimodal models). ValueError names
    what is missing or wrong."""
    try:
        cfg = json.loads(read_input(path, max_bytes=CONFIG_MAX_BYTES, inside=inside))
    except InputError as exc:
        raise ValueError(str(exc)) from None
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("text_config", cfg), dict):
        raise ValueError(f"{path}: expected a JSON object (a model's config.json)")
    try:
        arch = _arch_from_config(cfg, path, model_id)
    except KeyError as exc:
        raise ValueError(f"{path}: {exc.args[0]} is missing — is it a model's config.json?") from None
    except (TypeError, ZeroDivisionError, OverflowError, ValueError):
        raise ValueError(f"{path}: num_attention_heads, hidden_size, num_hidden_layers and num_key_value_heads must be "
                         "positive whole numbers") from None
    qcfg = cfg.get("quantization_config", cfg.get("text_config", {}).get("quantization_config"))
    if qcfg is None:
        return arch
    try:
        return with_checkpoint_quantization(arch, qcfg)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except (TypeError, AttributeError):
        raise ValueError(f"{path}: quantization_config is not shaped as its method writes it (config_groups, ignore "
                         "lists, bits)") from None


def _arch_from_config(cfg: dict[str, Any], path: str | Path, model_id: str) -> Arch:
    text = cfg.get("text_config", cfg)
    for key in ("num_attention_heads", "hidden_size", "num_hidden_layers"):
        value = text[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(key)
    heads = text["num_attention_heads"]
    hidden = text["hidden_size"]
    layers = text["num_hidden_layers"]
    vocab = text.get("vocab_size")
    inter = text.get("intermediate_size")
    head_dim = text.get("head_dim") or hidden // heads
    kv = text.get("num_key_value_heads", heads)
    tied = bool(text.get("tie_word_embeddings", cfg.get("tie_word_embeddings", False)))
    # Parameter count estimate for dense decoders: attention + MLP per layer + embeddings.
    attn = hidden * head_dim * (heads + 2 * kv) + heads * head_dim * hidden
    mlp = 3 * hidden * (inter or 4 * hidden)
    params = (layers * (attn + mlp) + (vocab or 0) * hidden * (1 if tied else 2)) / 1e9
    family = "mla" if text.get("kv_lora_rank") else "moe" if text.get("moe_intermediate_size") else "dense"
    vision = _vision_from_config(cfg, hidden)
    return Arch(id=model_id, params_b=round(params + vision.get("vision_params_b", 0.0), 3), layers=layers, kv_heads=kv,
                head_dim=head_dim, hidden_size=hidden, intermediate_size=inter, vocab_size=vocab, tied_embeddings=tied,
                max_context=text.get("max_position_embeddings"), family=family, attention_heads=heads,
                kv_lora_rank=text.get("kv_lora_rank"), qk_rope_head_dim=text.get("qk_rope_head_dim"),
                moe_intermediate_size=text.get("moe_intermediate_size"),
                experts_per_token=text.get("num_experts_per_tok") or text.get("experts_per_token"),
                default_dtype=str(text.get("torch_dtype") or cfg.get("torch_dtype") or "bfloat16"), source=str(path),
                model_type=cfg.get("model_type") if isinstance(cfg.get("model_type"), str) else None,
                rope_cache_positions=_rope_positions(text), **vision)


def _rope_positions(text: dict[str, Any]) -> int | None:
    """Positions of vLLM's rotary caches: linear scaling computes max_position × factor, YaRN original × factor; a
    separate rope for local layers (Gemma 3's rope_local_base_freq) adds one more of max_position."""
    max_pos = text.get("max_position_embeddings")
    if not isinstance(max_pos, int) or max_pos <= 0:
        return None
    raw = text.get("rope_scaling")
    scaling: dict[str, Any] = raw if isinstance(raw, dict) else {}
    kind, factor = scaling.get("rope_type", scaling.get("type")), scaling.get("factor")
    positions = max_pos
    if isinstance(factor, (int, float)) and factor > 1 and kind == "linear":
        positions = int(max_pos * factor)
    elif isinstance(factor, (int, float)) and factor > 1 and kind in ("yarn", "deepseek_yarn"):
        positions = int((scaling.get("original_max_position_embeddings") or max_pos) * factor)
    return positions + (max_pos if text.get("rope_local_base_freq") else 0)


# The `quant_method` of a checkpoint's quantization_config the fit check sizes, and the key of its list of layers kept
# 16-bit with how vLLM 0.26 matches it: compressed-tensors `ignore` ("re:" a regex from the start, else the name),
# fp8 `ignored_layers`/`modules_to_not_convert` and mxfp4 (module names, `*` wildcards), ModelOpt `exclude_modules`
# (wildcards), AWQ `modules_to_not_convert` (any part of the name). GPTQ and bitsandbytes keep embeddings only.
CHECKPOINT_IGNORE = {"compressed-tensors": ("ignore",), "fp8": ("ignored_layers", "modules_to_not_convert"),
                     "mxfp4": ("modules_to_not_convert",), "modelopt": ("exclude_modules", "ignore"),
                     "awq": ("modules_to_not_convert",), "gptq": (), "bitsandbytes": ()}


def with_checkpoint_quantization(arch: Arch, qcfg: Any) -> Arch:
    """`arch` as a quantized checkpoint stores it, from the quantization_config of its config.json: the method, the
    bytes of its quantized layers (bits of its weights), and the parameters its recipe keeps 16-bit (embeddings and
    lm_head always; attention, routers, a vision tower, single layers where its ignore list names them). A method the
    fit check cannot size is refused (ValueError), never sized as 16-bit."""
    if not isinstance(qcfg, dict):
        raise ValueError("quantization_config must be an object")
    method = qcfg.get("quant_method")
    if method == "modelopt" and str(qcfg.get("quant_algo", "FP8")).upper() in ("NVFP4", "FP4"):
        method = "modelopt_fp4"
    keys = CHECKPOINT_IGNORE.get("modelopt" if method == "modelopt_fp4" else str(method))
    if keys is None:
        raise ValueError(f"quantization_config.quant_method {method!r} is not a method the fit check can size "
                         f"({', '.join([*CHECKPOINT_IGNORE, 'modelopt_fp4'])}): it would be sized wrong, so it is refused")
    per_param = QUANT_BYTES[str(method)]
    bits = _checkpoint_bits(method, qcfg)
    if bits:
        per_param = {8: 1.02, 4: 0.5625 if _is_fp4(qcfg) else 0.53}.get(bits, bits / 8 + 0.03)
    ignore = [str(x) for key in keys for x in (qcfg.get(key) or [])]
    kept = sum(params for name, params in _linear_modules(arch) if any(_ignored(name, target, method) for target in ignore))
    return replace(arch, default_dtype=str(method), quant_bytes=per_param,
                   unquantized_params_b=min(arch.embedding_params_b + kept / 1e9, arch.params_b))


def _checkpoint_bits(method: Any, qcfg: dict[str, Any]) -> int | None:
    if method == "compressed-tensors":
        groups = qcfg.get("config_groups") or {}
        found = [g.get("weights", {}).get("num_bits") for g in groups.values() if isinstance(g, dict) and g.get("weights")]
        found = [b for b in found if isinstance(b, int) and b > 0]
        return max(found) if found else None     # mixed groups: the widest, never under-sized
    if method in ("gptq", "awq"):
        return qcfg.get("bits") if isinstance(qcfg.get("bits"), int) and qcfg["bits"] > 0 else None
    if method == "bitsandbytes":
        return 8 if qcfg.get("load_in_8bit") else 4
    return None


def _is_fp4(qcfg: dict[str, Any]) -> bool:
    groups = qcfg.get("config_groups") or {}
    return any(isinstance(g, dict) and (g.get("weights") or {}).get("type") == "float" for g in groups.values())


def _ignored(name: str, target: str, method: Any) -> bool:
    """Whether an ignore-list entry names the linear layer `name` or a module above it. Multimodal checkpoints name
    the text model `model.language_model.…` or `language_model.model.…`: the entry may use either."""
    names = {name, name.replace("model.", "model.language_model.", 1), name.replace("model.", "language_model.model.", 1)}
    if name.startswith("vision_tower."):
        names = {name, "model." + name}
    if target.startswith("re:"):
        try:
            return any(re.match(target[3:], n) for n in names)
        except re.error:
            raise ValueError(f"quantization_config ignore entry {target!r} is not a regular expression") from None
    if method == "awq":
        return any(target in n for n in names)
    parents = {".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 2)}
    return any(fnmatch.fnmatchcase(n, target) for n in parents)


def _linear_modules(arch: Arch) -> list[tuple[str, float]]:
    """The linear layers an ignore list can name, with their parameters (a MoE's experts as one per projection,
    counting all experts; MLA attention is not itemized)."""
    hidden = arch.hidden_size or 0
    heads = arch.attention_heads or (hidden // arch.head_dim if arch.head_dim else 0)
    out: list[tuple[str, float]] = [("lm_head", 0.0)]           # already 16-bit (embedding_params_b)
    for i in range(arch.layers):
        layer = f"model.layers.{i}"
        if arch.family != "mla":
            q, kv = hidden * heads * arch.head_dim, hidden * arch.kv_heads * arch.head_dim
            out += [(f"{layer}.self_attn.q_proj", q), (f"{layer}.self_attn.k_proj", kv), (f"{layer}.self_attn.v_proj", kv),
                    (f"{layer}.self_attn.o_proj", q)]
        if arch.experts and arch.moe_intermediate_size:
            per_expert = hidden * arch.moe_intermediate_size * arch.experts
            out += [(f"{layer}.mlp.gate", hidden * arch.experts)]
            out += [(f"{layer}.mlp.experts.0.{proj}", per_expert) for proj in ("gate_proj", "up_proj", "down_proj")]
        elif arch.intermediate_size:
            out += [(f"{layer}.mlp.{proj}", hidden * arch.intermediate_size) for proj in ("gate_proj", "up_proj", "down_proj")]
    if arch.vision_params_b:
        out.append(("vision_tower.vision_model", arch.vision_params_b * 1e9))
    return out


def _vision_from_config(cfg: dict[str, Any], text_hidden: int) -> dict[str, Any]:
    """A fixed-resolution vision tower (SigLIP-style: image_size, patch_size), the tokens an image becomes, and the
    tower's parameters (its layers' attention and MLP, position embeddings, the projector to the text model)."""
    vision, tokens = cfg.get("vision_config"), cfg.get("mm_tokens_per_image")
    if not isinstance(vision, dict) or not isinstance(tokens, int) or tokens <= 0:
        return {}
    size, patch, width, inter = (vision.get(k) for k in ("image_size", "patch_size", "hidden_size", "intermediate_size"))
    if not (isinstance(size, int) and isinstance(patch, int) and isinstance(width, int) and min(size, patch, width) > 0):
        return {}
    patches = (size // patch) ** 2
    out: dict[str, Any] = {"mm_tokens_per_item": tokens, "vision_patches_per_item": patches, "vision_hidden_size": width}
    if isinstance(inter, int) and inter > 0:
        out["vision_intermediate_size"] = inter
    layers = vision.get("num_hidden_layers")
    if isinstance(layers, int) and layers > 0:
        per_layer = 4 * width * width + 2 * width * (inter if isinstance(inter, int) and inter > 0 else 4 * width)
        out["vision_params_b"] = round((layers * per_layer + patches * width + width * text_hidden) / 1e9, 3)
    return out


@dataclass(frozen=True)
class Settings:
    gpu_memory_gib: float
    gpus_per_node: int = 8
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    dtype: str = "auto"
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    enforce_eager: bool = False
    data_parallel_size: int = 1           # engines of one deployment, each with its own KV cache
    expert_parallel: bool = False         # --enable-expert-parallel: routed experts split over TP × DP ranks
    gpu_model: str | None = None          # vLLM picks smaller batch defaults on A100 whatever its memory
    mm_items_per_prompt: int | None = None  # images per prompt (`--limit-mm-per-prompt`); None: vLLM's default, no limit
    # The hybrid KV-cache manager: off when a KV connector without its support (LMCache's) is configured.
    hybrid_kv: bool = True
    # Asynchronous scheduling: vLLM turns it off for pooling models and for draft-model, n-gram, Medusa and MLP
    # speculators.
    async_scheduling: bool = True
    engine_profile: str = LATEST_PROFILE  # a key of PROFILES (engine_profile_for(version))
    # FlashInfer's sampler on (VLLM_USE_FLASHINFER_SAMPLER=1) or off; None: the release's default. It moves the
    # startup peak only where the profile says so (releases before 0.17).
    flashinfer_sampler: bool | None = None
    profile_override: EngineProfile | None = None   # constants refitted by the calibration (instead of PROFILES')

    @property
    def profile(self) -> EngineProfile:
        return self.profile_override or PROFILES[self.engine_profile]

    def __post_init__(self) -> None:
        """Nonsense is refused, never sized: a ValueError that names the setting and what it accepts."""
        def positive(name: str, value: float | None, *, optional: bool = False, whole: bool = True) -> None:
            if value is None and optional:
                return
            if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0 or (whole and value != int(value)):
                raise ValueError(f"{name} must be a positive {'whole ' if whole else ''}number, got {value!r}")

        positive("gpu memory (GiB)", self.gpu_memory_gib, whole=False)
        positive("gpus per node", self.gpus_per_node)
        positive("tensor parallel size", self.tensor_parallel_size)
        positive("pipeline parallel size", self.pipeline_parallel_size)
        positive("data parallel size", self.data_parallel_size)
        positive("max model len", self.max_model_len, optional=True)
        positive("max num batched tokens", self.max_num_batched_tokens, optional=True)
        positive("max num seqs", self.max_num_seqs, optional=True)
        u = self.gpu_memory_utilization
        if isinstance(u, bool) or not isinstance(u, (int, float)) or not math.isfinite(u) or not 0 < u <= 1:
            raise ValueError(f"gpu memory utilization must be in (0, 1], got {u!r}")
        if self.dtype not in DTYPE_BYTES:
            raise ValueError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPE_BYTES)}")
        if self.quantization is not None and self.quantization not in QUANT_BYTES:
            raise ValueError(f"quantization {self.quantization!r} is not one the fit check knows ({', '.join(QUANT_BYTES)})")
        if self.kv_cache_dtype not in KV_BYTES:
            raise ValueError(f"kv cache dtype {self.kv_cache_dtype!r} is not one of {', '.join(KV_BYTES)}")
        if self.engine_profile not in PROFILES:
            raise ValueError(f"engine profile {self.engine_profile!r} is not one of {', '.join(PROFILES)}")


@dataclass
class Sizing:
    model: str
    gpu_memory_gib: float
    budget_gib: float
    weights_gib_per_gpu: float
    activation_gib: float
    non_torch_gib: float
    cuda_graph_gib: float
    kv_cache_gib: float
    kv_bytes_per_token: int
    kv_cache_tokens: int
    max_model_len: int
    max_concurrency: float
    fits: bool
    reason: str
    fixes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, float):
                out[k] = round(v, 3)
        return out


def weight_bytes_per_param(arch: Arch, s: Settings) -> float:
    """Bytes per parameter of the quantized layers: the checkpoint's own recipe (quant_bytes) when it is the method
    served, the method's typical size otherwise, the dtype's unquantized."""
    method = s.quantization or (arch.default_dtype if s.dtype == "auto" and arch.default_dtype in QUANT_BYTES else None)
    if method is None:
        return DTYPE_BYTES.get(s.dtype if s.dtype != "auto" else arch.default_dtype, 2.0)
    if method == arch.default_dtype and arch.quant_bytes:
        return arch.quant_bytes
    return QUANT_BYTES[method]


def expert_fraction(arch: Arch) -> float:
    """The share of a MoE's parameters in its routed experts, from the catalog's totals: active = shared +
    k/E × experts, so experts = (total − active) / (1 − k/E)."""
    if not (arch.experts and arch.experts_per_token and arch.active_params_b) or arch.experts <= arch.experts_per_token:
        return 0.0
    routed = (arch.params_b - arch.active_params_b) / (1 - arch.experts_per_token / arch.experts)
    return min(max(routed / arch.params_b, 0.0), 1.0)


# What vLLM checks of the tensor-parallel size before it loads anything (the same in both bundled releases, 0.32.0 and
# 0.33.0): ModelConfig.verify_with_parallel_config refuses a size that does not divide the attention heads
# (vllm-project/vllm@v0.33.0:vllm/config/model.py, "Total number of attention heads (…) must be divisible by tensor
# parallel size"), and QKVParallelLinear splits the KV heads evenly over the ranks, or replicates each over a whole
# number of ranks when there are fewer KV heads than ranks (vllm/model_executor/layers/linear.py: divide(total_kv, tp)
# or divide(tp, total_kv), which asserts divisibility). MLA models (kv_lora_rank) keep a latent KV cache that is not
# split by heads: only the attention heads count.
TENSOR_PARALLEL_CANDIDATES = tuple(range(1, 65))


def _tp_divides_heads(arch: Arch, tp: int) -> bool:
    return not arch.attention_heads or arch.attention_heads % tp == 0


def _tp_splits_kv_heads(arch: Arch, tp: int) -> bool:
    if arch.kv_lora_rank is not None or not arch.kv_heads:
        return True
    return tp % arch.kv_heads == 0 if tp >= arch.kv_heads else arch.kv_heads % tp == 0


def valid_tensor_parallel_sizes(arch: Arch) -> list[int]:
    """The tensor-parallel sizes up to 64 vLLM accepts for the model's heads."""
    return [tp for tp in TENSOR_PARALLEL_CANDIDATES if _tp_divides_heads(arch, tp) and _tp_splits_kv_heads(arch, tp)]


def parallelism_problems(arch: Arch, tp: int) -> list[str]:
    """Why vLLM refuses this tensor-parallel size for the model at start (empty when it accepts it)."""
    out = []
    use = f"use {', '.join(map(str, valid_tensor_parallel_sizes(arch)))}"
    if not _tp_divides_heads(arch, tp):
        out.append(f"tensor parallel size {tp} does not divide the {arch.attention_heads} attention heads: vLLM refuses it at "
                   f"start — {use}")
    if not _tp_splits_kv_heads(arch, tp):
        out.append(f"tensor parallel size {tp} and the {arch.kv_heads} KV heads: vLLM splits the KV heads evenly over the GPUs, "
                   f"or copies each to a whole number of them, so one must divide the other; it refuses {tp} at start — {use}")
    return out


def gpu_count_problem(tp: int, pp: int, gpus: int, where: str) -> str | None:
    """vLLM refuses a world size (TP × PP) larger than the GPUs of its node unless it runs across nodes (Ray or
    --nnodes): vllm-project/vllm@v0.33.0:vllm/config/parallel.py ParallelConfig.__post_init__ ("World size (…) is
    larger than the number of available GPUs (…) in this node")."""
    if tp * pp <= gpus:
        return None
    return (f"tensor × pipeline parallel size {tp} × {pp} = {tp * pp} is more than the {gpus} GPUs of {where}: vLLM refuses a "
            "world size larger than its node's GPUs at start — lower tensor_parallel_size, or serve it as a multi-node replica "
            "from a team file (whole nodes)")


def weights_gib_per_gpu(arch: Arch, s: Settings) -> float:
    """Quantization applies to the linear layers; embeddings and lm_head stay 16-bit (and whatever else the
    catalog says a natively quantized checkpoint keeps 16-bit, like gpt-oss's attention). Data parallel ranks each
    hold a copy, except the routed experts under expert parallelism, which are split over TP × DP."""
    whole = _weights_gib(arch, s)
    shards = s.tensor_parallel_size * s.pipeline_parallel_size
    rope = arch.rope_cache_gib            # every GPU keeps the whole rotary cache
    if not s.expert_parallel or s.data_parallel_size == 1:
        return whole / shards + rope
    experts = expert_fraction(arch)
    return whole * ((1 - experts) / shards + experts / (shards * s.data_parallel_size)) + rope


def _weights_gib(arch: Arch, s: Settings) -> float:
    """All GPUs' weights. vLLM does not build a multimodal model's vision tower when no images are allowed
    (`--limit-mm-per-prompt {image: 0}`: Gemma 3 4B loaded 7.82 GiB, 8.61 with it)."""
    per_param = weight_bytes_per_param(arch, s)
    params = arch.params_b - (arch.vision_params_b if s.mm_items_per_prompt == 0 else 0.0)
    if s.quantization in WHOLE_FILE_QUANTIZATIONS:
        return params * 1e9 * per_param / GIB
    embed = arch.unquantized_params_b if arch.unquantized_params_b is not None and per_param < 2 else (
        min(arch.embedding_params_b, params * 0.5))
    total = (params - embed) * 1e9 * per_param + embed * 1e9 * (2.0 if per_param < 2 else per_param)
    return total / GIB


def kv_bytes_per_token(arch: Arch, s: Settings) -> int:
    """KV bytes a token costs on one GPU in every layer of one pipeline stage (KV heads split by TP)."""
    return math.ceil(arch.layers / s.pipeline_parallel_size) * _kv_bytes_per_layer_token(arch, s)


def _kv_bytes_per_layer_token(arch: Arch, s: Settings) -> int:
    if arch.family == "encoder":
        return 0
    dtype_bytes = KV_BYTES.get(s.kv_cache_dtype) or DTYPE_BYTES.get(s.dtype if s.dtype != "auto" else arch.default_dtype, 2.0)
    if arch.default_dtype in QUANT_BYTES and KV_BYTES.get(s.kv_cache_dtype) is None:
        dtype_bytes = 2.0  # quantized checkpoints still keep a 16-bit KV cache unless asked
    if arch.family == "mla" and arch.kv_lora_rank:
        return int((arch.kv_lora_rank + (arch.qk_rope_head_dim or 0)) * dtype_bytes)
    heads = max(1, math.ceil(arch.kv_heads / s.tensor_parallel_size))
    return int(2 * heads * arch.head_dim * dtype_bytes)


@dataclass(frozen=True)
class KvPool:
    """One GPU's KV cache as vLLM's V1 KV-cache manager lays it out (vllm/v1/core/kv_cache_utils.py). Layers of one
    attention type form groups of `group_size` layers (a hybrid model's types padded to equal groups: Gemma 3's 29
    sliding and 5 full layers are 6 + 1 groups of 5); a block id is one 16-token page in each of `group_size` tensors,
    and each group gives a request its own blocks: a full-attention group one per 16 tokens of max_model_len, a
    sliding-window group `sliding_tokens` (the last `sliding_window - 1` computed tokens and every scheduled step's
    batch), never more than max_model_len, and one block of slack."""
    group_size: int
    full_groups: int
    sliding_groups: int
    page_bytes: int          # one layer's block
    sliding_tokens: int = 0

    def blocks(self, kv_bytes: float) -> int:
        return max(int(kv_bytes // (self.group_size * self.page_bytes)), 0)

    def blocks_per_request(self, max_len: int) -> int:
        window = -(-min(self.sliding_tokens, max_len) // BLOCK) + 1 if self.sliding_groups else 0
        return self.full_groups * -(-max_len // BLOCK) + self.sliding_groups * window

    def request_bytes(self, max_len: int) -> int:
        """The KV cache one max_model_len request needs (vLLM refuses to start below it)."""
        return self.group_size * self.page_bytes * self.blocks_per_request(max_len)


def kv_pool(arch: Arch, s: Settings) -> KvPool | None:
    """The KV layout of one pipeline stage; None for models without a KV cache."""
    per_layer = _kv_bytes_per_layer_token(arch, s)
    if not per_layer:
        return None
    layers = math.ceil(arch.layers / s.pipeline_parallel_size)
    sliding = min(layers, math.ceil(arch.sliding_window_layers / s.pipeline_parallel_size)) if arch.sliding_window else 0
    if not (s.profile.hybrid_kv and s.hybrid_kv) and sliding < layers:
        sliding = 0                     # without the hybrid manager sliding layers are sized as full attention
    full = layers - sliding
    if not sliding:
        return KvPool(layers, 1, 0, BLOCK * per_layer)
    pp = s.pipeline_parallel_size
    steps = pp if pp > 1 else s.profile.async_batches if s.async_scheduling else 1
    held = (arch.sliding_window or 0) - 1 + default_batched_tokens(s)[0] * steps
    if not full:
        return KvPool(layers, 0, 1, BLOCK * per_layer, held)
    group = min(full, sliding)
    if max(full, sliding) < 1.5 * group:
        group = max(full, sliding)
    return KvPool(group, -(-full // group), -(-sliding // group), BLOCK * per_layer, held)


def kv_capacity(arch: Arch, s: Settings, kv_bytes: float, max_len: int) -> tuple[int, float]:
    """(KV tokens as vLLM's startup log reports them, maximum concurrency of max_len requests: blocks / blocks one
    request needs) in `kv_bytes` of KV cache."""
    pool = kv_pool(arch, s)
    if pool is None or max_len <= 0:
        return 0, 0.0
    blocks = pool.blocks(kv_bytes)
    concurrency = blocks / pool.blocks_per_request(max_len)
    if s.profile.tokens_from_concurrency:
        return int(concurrency * max_len), concurrency
    return blocks // (pool.full_groups + pool.sliding_groups) * BLOCK, concurrency


def default_batched_tokens(s: Settings) -> tuple[int, int]:
    """The token budget and max_num_seqs vLLM runs with: the OpenAI server's defaults (EngineArgs.get_batch_defaults:
    16384/1024 from 160 GiB, 8192/1024 from 70 GiB except on A100, whose throughput drops with large batches,
    2048/256 below) where a setting is not given; a default budget is capped at max_num_seqs × max_model_len and a
    default max_num_seqs at the budget (EngineArgs._set_default_max_num_seqs_and_batched_tokens_args, the same from
    vllm@v0.26.0 to vllm@v0.34.0:vllm/engine/arg_utils.py)."""
    if s.gpu_memory_gib >= HUGE_GPU_GIB:
        tokens, seqs = 16384, 1024
    elif s.gpu_memory_gib >= LARGE_GPU_GIB and "a100" not in (s.gpu_model or "").lower():
        tokens, seqs = 8192, 1024
    else:
        tokens, seqs = 2048, 256
    seqs = s.max_num_seqs or seqs
    if s.max_num_batched_tokens is None and s.max_model_len:
        tokens = min(seqs * s.max_model_len, tokens)
    tokens = s.max_num_batched_tokens or tokens
    if s.max_num_seqs is None:
        seqs = min(seqs, tokens)
    return tokens, seqs


def batch_limits_problem(s: Settings) -> str | None:
    """vLLM refuses to start when its token budget is below max_num_seqs (SchedulerConfig.verify_max_model_len,
    vllm@v0.34.0:vllm/config/scheduler.py; the same check from 0.26): a max_num_seqs above the budget, given or the
    GPU's default. None when the engine starts."""
    tokens, seqs = default_batched_tokens(s)
    if tokens >= seqs:
        return None
    budget = (f"max_num_batched_tokens {tokens:,}" if s.max_num_batched_tokens is not None else
              f"the default max_num_batched_tokens on this GPU ({tokens:,})")
    return (f"{budget} is below max_num_seqs {seqs:,}: vLLM refuses to start (\"max_num_batched_tokens must be greater "
            f"than or equal to max_num_seqs\") — set max_num_batched_tokens to at least {seqs:,} or lower max_num_seqs to "
            f"{tokens:,} or less")


def activation_gib(arch: Arch, s: Settings) -> float:
    """Peak activation of the profiling run, the larger of its two steps: one batch of
    max_num_batched_tokens through a layer (attention projections and the MLP's gate/up/down
    intermediates, split by TP; for MoE the fused-MoE buffers of the routed experts), then sampling
    max_num_seqs dummy requests over the full vocabulary, at the release profile's bytes per logit (the logits
    are gathered on every rank, so TP does not split them; pooling models skip it). A multimodal model first runs its
    vision encoder over a batch of the largest images (encoder_gib), and keeps their outputs through the forward pass."""
    tokens, seqs = default_batched_tokens(s)
    hidden = arch.hidden_size or 4096
    inter = arch.intermediate_size or 4 * hidden
    tp = s.tensor_parallel_size
    if arch.family == "moe" and arch.moe_intermediate_size and arch.experts_per_token:
        # Fused MoE: gate/up output, activation and per-expert down output for every routed copy of a token, plus
        # router logits and the summed output: 10 × hidden fitted to the Qwen3-30B-A3B runs on H200 (1.68–1.70 GiB).
        k, moe = arch.experts_per_token, arch.moe_intermediate_size
        per_token = 2 * (k * (3 * moe / tp + hidden) + s.profile.moe_hidden_factor * hidden)
    else:
        per_token = 2 * (3 * inter / tp + 4 * hidden)           # 16-bit activations
    per_logit = s.profile.sampler_bytes_per_logit
    if s.flashinfer_sampler and s.profile.flashinfer_sampler_bytes_per_logit is not None:
        per_logit = s.profile.flashinfer_sampler_bytes_per_logit
    sampler = 0.0 if arch.family == "encoder" else seqs * (arch.vocab_size or 32000) * per_logit
    if not s.profile.profiles_encoder:
        return max(tokens * per_token, sampler) / GIB
    items = profiled_images(arch, s)
    forward = tokens * per_token + items * (arch.mm_tokens_per_item or 0) * hidden * 2    # + the encoder outputs kept
    return max(forward / GIB, sampler / GIB, encoder_gib(arch, s))


def serving_reserve_gib(arch: Arch, s: Settings) -> float:
    """What a started server holds outside its budget besides the CUDA graphs: the profile's two constants (the runner's
    buffers, the sampler's state per request and vocabulary entry) and a fused-MoE layer's workspace."""
    seqs = default_batched_tokens(s)[1]
    return s.profile.serving_reserve_gib + seqs * (arch.vocab_size or 32000) * s.profile.serving_reserve_bytes_per_logit / GIB \
        + moe_workspace_gib(arch, s)


def moe_workspace_gib(arch: Arch, s: Settings) -> float:
    """The fused-MoE workspace a started 0.26 server keeps (Triton experts, vLLM's choice for 16-bit MoE on Hopper): for
    a step's every token and routed expert, the larger of the activation's output and the hidden size plus the larger
    of the gate/up output and the hidden size, 16-bit. Qwen3-30B-A3B at 16,384 tokens: 1.0 GiB (measured: the started
    server held 0.9 GiB more than a dense model's reserve)."""
    if not (s.profile.moe_workspace_held and arch.family == "moe" and arch.moe_intermediate_size and arch.experts_per_token):
        return 0.0
    tokens = default_batched_tokens(s)[0]
    hidden, gate_up = arch.hidden_size or 4096, 2 * arch.moe_intermediate_size // s.tensor_parallel_size
    return tokens * arch.experts_per_token * (max(gate_up // 2, hidden) + max(gate_up, hidden)) * 2 / GIB


def serving_room_gib(arch: Arch, s: Settings, activation: float, non_torch: float, graphs: float) -> float:
    """Memory a step can newly take once the server runs — the device's free memory and the blocks torch's allocator
    keeps cached, which a new allocation reuses: what the budget and the CUDA graphs leave of the card, plus the
    budget's share for activations and non-torch memory (the KV cache was sized without it), less what the running
    server holds besides (serving_reserve_gib). Where the encoder is not profiled, its pass has to fit in it."""
    budget = s.gpu_memory_gib * s.gpu_memory_utilization
    return s.gpu_memory_gib - budget - graphs + activation + non_torch - serving_reserve_gib(arch, s)


def profiled_images(arch: Arch, s: Settings) -> int:
    """How many of the largest images one scheduler step can put through the vision encoder (vLLM's
    `MultiModalBudget`, which the first V1 runner's startup profile encodes): the encoder budget is
    max_num_batched_tokens (at least one image's tokens), capped by what max_num_seqs prompts of at most
    `mm_items_per_prompt` images (and max_model_len) could hold. 0 for text-only."""
    per_item = arch.mm_tokens_per_item
    if not per_item or not arch.vision_patches_per_item or s.mm_items_per_prompt == 0:
        return 0
    tokens, seqs = default_batched_tokens(s)
    max_len = s.max_model_len or arch.max_context or per_item
    per_prompt = max(1, min(s.mm_items_per_prompt or max_len, max_len // per_item))
    return max(1, min(max(tokens, per_item) // per_item, seqs * per_prompt))


def encoder_gib(arch: Arch, s: Settings) -> float:
    """Peak of the vision encoder's pass over a full step of images: every patch through one encoder layer (16-bit:
    the MLP's two intermediates split by TP, attention and residuals at 4 × width; the attention itself runs in fused
    kernels). Measured serving Gemma 3 4B on H200 (vLLM 0.26): 6.53 GiB over a step of 62 images (this says 6.45 for
    64) and 1.58 over 16 (1.61)."""
    items = profiled_images(arch, s)
    if not items:
        return 0.0
    width = arch.vision_hidden_size or 1024
    inter = arch.vision_intermediate_size or 4 * width
    per_patch = 2 * (2 * inter / s.tensor_parallel_size + 4 * width)
    return items * (arch.vision_patches_per_item or 0) * per_patch / GIB





def cuda_graph_gib(arch: Arch, s: Settings) -> float:
    """Memory of the CUDA graphs vLLM captures for decode (0 with enforce_eager or on V0)."""
    if s.enforce_eager or not s.profile.captures_graphs:
        return 0.0
    layers = math.ceil(arch.layers / s.pipeline_parallel_size)
    sizes = cuda_graph_sizes(default_batched_tokens(s)[1])
    return len(sizes) * (s.profile.graph_gib_per_size + s.profile.graph_gib_per_size_and_layer * layers)


# From the start of the process to a ready engine, weights already on the GPU (the H200 runs, `startup_s`):
# eager 26–45 s; with torch.compile and CUDA graphs 69–98 s for dense models and 118–131 s for the MoE.
ENGINE_START_EAGER_SECONDS = 35
ENGINE_START_GRAPHS_SECONDS = {"dense": 80, "moe": 125}


def engine_start_seconds(arch: Arch | None, enforce_eager: bool = False) -> int:
    """Seconds from `vllm serve` starting to serving, without reading the weights: imports, profile, KV cache,
    torch.compile and CUDA graph capture (measured on H200 with vLLM 0.26; a cold compile cache)."""
    if enforce_eager:
        return ENGINE_START_EAGER_SECONDS
    if arch is None:                      # unknown: the longer estimate
        return max(ENGINE_START_GRAPHS_SECONDS.values())
    return ENGINE_START_GRAPHS_SECONDS["moe" if arch.family == "moe" or arch.experts else "dense"]


def non_torch_gib(s: Settings) -> float:
    profile = s.profile
    return profile.non_torch_gib if s.tensor_parallel_size * s.pipeline_parallel_size == 1 else profile.non_torch_tp_gib


def size(arch: Arch, s: Settings, *, explain: bool = True) -> Sizing:
    """The fit check; with `explain`, a failing verdict lists verified fixes."""
    budget = s.gpu_memory_gib * s.gpu_memory_utilization
    weights = weights_gib_per_gpu(arch, s)
    act = activation_gib(arch, s)
    non_torch = non_torch_gib(s)
    # Captured after the KV cache is sized: outside the budget, but it must fit in what the budget leaves free.
    graphs = cuda_graph_gib(arch, s)
    kv_gib = budget - weights - act - non_torch
    per_token = kv_bytes_per_token(arch, s)
    max_len = s.max_model_len or arch.max_context or 4096
    pool = kv_pool(arch, s)
    tokens, concurrency = kv_capacity(arch, s, kv_gib * GIB, max_len)
    needed = pool.request_bytes(max_len) / GIB if pool else 0.0
    method = s.quantization or (arch.default_dtype if arch.default_dtype in MIN_CAPABILITY else None)
    capability = GPU_CAPABILITY.get(s.gpu_model or "")
    refused = parallelism_problems(arch, s.tensor_parallel_size)
    if refused:
        fits, reason = False, "; ".join(refused)
    elif method in MIN_CAPABILITY and capability is not None and capability < MIN_CAPABILITY[method]:
        fits, reason = False, (f"{method} needs a GPU of compute capability {MIN_CAPABILITY[method] / 10:.1f} or newer and the "
                               f"{s.gpu_model} is {capability / 10:.1f}: vLLM refuses to start")
    elif weights > budget:
        fits, reason = False, (f"weights need {weights:.1f} GiB per GPU but the budget is {budget:.1f} GiB "
                               f"({s.gpu_memory_utilization:g} × {s.gpu_memory_gib:g} GiB)")
    elif per_token and kv_gib < needed:
        images = profiled_images(arch, s)
        peak = (f", the vision encoder's profiling pass over {images} images" if images and encoder_gib(arch, s) >= act else "")
        fits, reason = False, (f"one {max_len:,}-token sequence needs {needed:.2f} GiB of KV cache per GPU but only "
                               f"{max(kv_gib, 0):.2f} GiB remain after weights ({weights:.1f} GiB), activations "
                               f"({act:.1f} GiB{peak}) and runtime overhead ({non_torch:.1f} GiB)")
    elif budget + graphs > s.gpu_memory_gib:
        fits, reason = False, (f"the CUDA graphs ({graphs:.2f} GiB) are captured after the KV cache fills the budget "
                               f"({budget:.1f} GiB) and do not fit in the {s.gpu_memory_gib - budget:.2f} GiB left of "
                               f"{s.gpu_memory_gib:g} GiB — lower gpu_memory_utilization or set enforce_eager")
    elif not s.profile.profiles_encoder and 0 < encoder_gib(arch, s) > serving_room_gib(arch, s, act, non_torch, graphs):
        fits, reason = False, (f"the vision encoder's pass over {profiled_images(arch, s)} images needs "
                               f"{encoder_gib(arch, s):.2f} GiB, which this vLLM release leaves out of its budget, and the "
                               f"running server leaves {max(serving_room_gib(arch, s, act, non_torch, graphs), 0):.2f} GiB of "
                               f"{s.gpu_memory_gib:g} GiB: the first batch of images would run out of memory — lower "
                               "gpu_memory_utilization or max_num_batched_tokens, or limit images per prompt")
    else:
        fits, reason = True, (f"{tokens:,} KV tokens per replica: {concurrency:.1f} concurrent sequences of "
                              f"{max_len:,} tokens" if per_token else "encoder model: no KV cache")
    result = Sizing(model=arch.id, gpu_memory_gib=s.gpu_memory_gib, budget_gib=budget, weights_gib_per_gpu=weights,
                    activation_gib=act, non_torch_gib=non_torch, cuda_graph_gib=graphs, kv_cache_gib=max(kv_gib, 0.0),
                    kv_bytes_per_token=per_token, kv_cache_tokens=tokens, max_model_len=max_len,
                    max_concurrency=concurrency, fits=fits, reason=reason)
    if not fits and explain:
        result.fixes = fixes(arch, s)
    return result


def fixes(arch: Arch, s: Settings) -> list[str]:
    """Concrete changes that make it fit, each verified by re-running the check."""
    out: list[str] = []
    tp = s.tensor_parallel_size
    if parallelism_problems(arch, tp):  # nothing else fits at a size vLLM refuses
        return tensor_parallel_fixes(arch, s)
    for bigger in (2 * tp, 4 * tp, 8 * tp):
        if bigger * s.pipeline_parallel_size <= s.gpus_per_node and size(arch, replace(s, tensor_parallel_size=bigger), explain=False).fits:
            out.append(f"raise tensor_parallel_size to {bigger}")
            break
    probe = size(arch, replace(s, max_model_len=BLOCK), explain=False)
    if probe.kv_cache_tokens >= BLOCK and probe.weights_gib_per_gpu <= probe.budget_gib:
        longest = _longest_fitting_len(arch, s)
        if longest:
            out.append(f"lower max_model_len to {longest:,} or less")
    if s.kv_cache_dtype == "auto" and arch.default_dtype not in ("fp8",) and size(arch, replace(s, kv_cache_dtype="fp8"), explain=False).fits:
        out.append("set kv_cache_dtype: fp8 (halves the KV cache)")
    if s.quantization is None and size(arch, replace(s, quantization="fp8"), explain=False).fits:
        out.append("serve an FP8-quantized checkpoint or set quantization: fp8 (halves the weights)")
    # The startup profile samples max_num_seqs dummy requests over the whole vocabulary, and a started server keeps
    # the sampler's state for as many: fewer, less memory.
    seqs = default_batched_tokens(s)[1]
    why = ("the startup profile samples that many requests over the vocabulary" if s.profile.profiles_encoder
           else "the running server keeps the sampler's state per request over the vocabulary")
    for fewer in (n for n in (512, 256, 128, 64) if n < seqs):
        if size(arch, replace(s, max_num_seqs=fewer), explain=False).fits:
            out.append(f"lower max_num_seqs to {fewer} ({why})")
            break
    # A vision model's startup profile encodes max_num_batched_tokens worth of its largest images: fewer tokens, fewer.
    tokens = default_batched_tokens(s)[0]
    if profiled_images(arch, s) > 1 and encoder_gib(arch, s) >= activation_gib(arch, replace(s, mm_items_per_prompt=0)):
        for fewer in (n for n in (8192, 4096, 2048) if n < tokens):
            if size(arch, replace(s, max_num_batched_tokens=fewer), explain=False).fits:
                out.append(f"lower max_num_batched_tokens to {fewer} (a step encodes up to that many tokens of images)")
                break
    current = s.gpu_memory_gib
    for inst in sorted(_gpu_shapes(), key=lambda i: (i.gpu_usable_memory_gib, i.gpus)):
        if inst.gpu_usable_memory_gib <= current or inst.gpus < tp * s.pipeline_parallel_size:
            continue
        if size(arch, replace(s, gpu_memory_gib=inst.gpu_usable_memory_gib, gpus_per_node=inst.gpus,
                               gpu_model=inst.gpu_model), explain=False).fits:
            out.append(f"use a larger GPU: {inst.gpu_model} ({inst.instance_type}, {inst.gpu_memory_gib:g} GB per GPU)")
            break
    if s.gpu_memory_utilization < 0.95 and size(arch, replace(s, gpu_memory_utilization=0.95), explain=False).fits:
        out.append("raise gpu_memory_utilization to 0.95")
    # what runs outside the budget (CUDA graphs, an unprofiled encoder pass) needs a lower one
    for lower in (u for u in (0.9, 0.85, 0.8) if u < s.gpu_memory_utilization):
        if size(arch, replace(s, gpu_memory_utilization=lower), explain=False).fits:
            out.append(f"lower gpu_memory_utilization to {lower:g} (leaves room for what runs outside the budget)")
            break
    return out


def tensor_parallel_fixes(arch: Arch, s: Settings) -> list[str]:
    """The tensor-parallel sizes vLLM accepts for the model that fit on the node (TP × PP within its GPUs)."""
    sizes = [n for n in valid_tensor_parallel_sizes(arch) if n * s.pipeline_parallel_size <= s.gpus_per_node
             and size(arch, replace(s, tensor_parallel_size=n), explain=False).fits]
    return [f"set tensor_parallel_size to {' or '.join(map(str, sizes))}"] if sizes else []


def _longest_fitting_len(arch: Arch, s: Settings) -> int:
    lo, hi = BLOCK, s.max_model_len or arch.max_context or 4096
    if not size(arch, replace(s, max_model_len=lo), explain=False).fits:
        return 0
    while hi - lo > BLOCK:
        mid = (lo + hi) // 2 // BLOCK * BLOCK
        if size(arch, replace(s, max_model_len=mid), explain=False).fits:
            lo = mid
        else:
            hi = mid
    return lo // 1024 * 1024 if lo >= 2048 else lo


@lru_cache(maxsize=1)
def _gpu_shapes() -> tuple[InstanceType, ...]:
    """One instance type per (GPU model, GPUs per node): the distinct shapes a fix can suggest."""
    seen: dict[tuple[str, int], InstanceType] = {}
    for inst in gpu_instance_types().values():
        seen.setdefault((inst.gpu_model, inst.gpus), inst)
    return tuple(seen.values())
