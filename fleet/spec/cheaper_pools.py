"""Advisory notes: a model whose context and concurrency another pool of the stack serves for less.

For each model with a known architecture, every other on-demand pool of the stack is tried with the model's own
settings (same TP×PP on one node of that pool): where it fits the same max_model_len with room for as many concurrent
sequences as the replica serves today (its KV cache, capped by max_num_seqs) and its GPUs cost less per replica in the
stack's region, the note names it. Pools
stay explicit in team files: this never moves a model.
"""

from __future__ import annotations

from fleet.capacity.memory import default_batched_tokens, size
from fleet.catalog import gpu_instance, prices
from fleet.spec.architecture import settings_for
from fleet.spec.resolved import ResolvedModel, ResolvedTeam
from fleet.spec.stack import StackConfig


def _replica_usd(model_gpus: int, instance_type: str, gpus_per_node: int, region: str) -> float | None:
    price = prices().get((instance_type, region))
    return price.on_demand * model_gpus / gpus_per_node if price is not None else None


def cheaper_pool_notes(cfg: StackConfig, teams: list[ResolvedTeam]) -> list[str]:
    notes: list[str] = []
    region = cfg.region
    for team in teams:
        for model in team.models:
            note = _cheaper(cfg, model, region)
            if note:
                where = model.path.removesuffix(".name")
                notes.append(f"{model.source}:{model.line} {where}.pool: {note} (advisory; pools stay as the team chose)")
    return notes


def _cheaper(cfg: StackConfig, model: ResolvedModel, region: str) -> str | None:
    if model.arch is None or model.sizing is None or model.pool.capacity_type != "on-demand" or model.nodes_per_replica > 1:
        return None
    current = _replica_usd(model.gpus_per_replica, model.instance.instance_type, model.instance.gpus, region)
    if current is None:
        return None
    best: tuple[float, str] | None = None
    for pool in cfg.gpu_pools:
        inst = gpu_instance(pool.instance_types[0])
        if pool.name == model.pool.name or pool.capacity_type != "on-demand" or inst is None or inst.gpus < model.gpus_per_replica:
            continue
        settings = settings_for(model.spec, inst.gpu_usable_memory_gib, inst.gpus, inst.gpu_model, cfg.vllm.version)
        sized = size(model.arch, settings, explain=False)
        cost = _replica_usd(model.gpus_per_replica, inst.instance_type, inst.gpus, region)
        if not sized.fits or cost is None or cost >= current or (best is not None and cost >= best[0]):
            continue
        seqs = default_batched_tokens(settings)[1]
        needed = min(model.sizing.max_concurrency, seqs)
        if model.sizing.kv_bytes_per_token and sized.max_concurrency < needed:
            continue
        serves = (f"fits the same {sized.max_model_len:,}-token context with room for {min(sized.max_concurrency, seqs):,.0f} "
                  f"concurrent sequences per replica ({needed:,.0f} needed)" if model.sizing.kv_bytes_per_token else
                  "fits it (an embedding model keeps no KV cache)")
        best = (cost, f"pool {pool.name} ({inst.gpu_model}, {inst.instance_type}) {serves} for ${cost:,.2f}/h per replica "
                      f"instead of ${current:,.2f}/h on {model.pool.name}")
    return best[1] if best else None
