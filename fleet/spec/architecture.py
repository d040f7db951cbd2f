"""A model's architecture for sizing (inline, from a config.json, or from the catalog) and its sizing settings."""

from __future__ import annotations

from pathlib import Path as FsPath

from fleet.capacity.memory import Arch, Settings, arch_from_config_json, engine_profile_for, model_catalog
from fleet.spec.team import ModelSpec
from fleet.vllm.compiler import PROFILES


def resolve_arch(spec: ModelSpec, team_file: FsPath) -> tuple[Arch | None, str | None]:
    """(architecture or None when unknown, problem reading it)."""
    if spec.architecture is not None:
        a = spec.architecture
        return Arch(id=spec.model, params_b=a.params_b, layers=a.layers, kv_heads=a.kv_heads, head_dim=a.head_dim,
                    hidden_size=a.hidden_size, vocab_size=a.vocab_size, max_context=a.max_context,
                    active_params_b=a.active_params_b, family="moe" if a.active_params_b else "dense",
                    attention_heads=a.attention_heads), None
    if spec.config_json is not None:
        path = team_file.parent / spec.config_json
        try:
            # team files live in <repository>/stacks/teams/: the config.json must lie inside the repository
            return arch_from_config_json(path, spec.model, inside=team_file.resolve().parent.parent.parent), None
        except (OSError, ValueError, KeyError) as exc:
            return None, f"cannot read {spec.config_json}: {exc} — point at a Hugging Face config.json or give `architecture:`"
    return model_catalog().get(spec.model), None


def settings_for(spec: ModelSpec, gpu_memory_gib: float, gpus_per_node: int, gpu_model: str | None = None,
                 vllm_version: str | None = None) -> Settings:
    """The fit check's settings for a model on a card, as the stack's pinned vLLM release budgets memory."""
    profile = PROFILES[spec.profile or "balanced"]
    return Settings(
        gpu_memory_gib=gpu_memory_gib, gpus_per_node=gpus_per_node,
        tensor_parallel_size=spec.tensor_parallel_size or 1, pipeline_parallel_size=spec.pipeline_parallel_size or 1,
        max_model_len=spec.max_model_len, gpu_memory_utilization=spec.gpu_memory_utilization or 0.9,
        dtype=spec.dtype or "auto", quantization=spec.quantization, kv_cache_dtype=spec.kv_cache_dtype or "auto",
        max_num_batched_tokens=spec.max_num_batched_tokens or profile.get("max_num_batched_tokens"),
        max_num_seqs=spec.max_num_seqs or profile.get("max_num_seqs"), enforce_eager=bool(spec.enforce_eager),
        gpu_model=gpu_model, engine_profile=engine_profile_for(vllm_version),
        mm_items_per_prompt=spec.multimodal.limit_per_prompt.get("image") if spec.multimodal is not None else None,
        # LMCache's connector does not support vLLM's hybrid KV-cache manager: with it, sliding layers are sized full
        hybrid_kv=not (spec.kv_offload is not None and spec.kv_offload.backend == "lmcache"),
        async_scheduling=spec.runner != "pooling" and (spec.speculative is None or spec.speculative.method in ASYNC_SPECULATORS))


# Speculators with which vLLM keeps asynchronous scheduling on (EAGLE-style and MTP; vLLM 0.26 config/vllm.py).
ASYNC_SPECULATORS = ("eagle", "eagle3", "mtp")
