"""Which GPU shapes can serve a model at a context length and concurrency, and what each costs.

Every instance type of the GPU catalog × every tensor-parallel size that fits in one node, and two-stage pipelines
across whole EFA nodes, is sized with the fit check; a size vLLM refuses for the model's attention or KV heads
(fleet.capacity.memory.parallelism_problems) is listed as not fitting, with the reason. A shape that fits
serves `max_concurrency` sequences of `max_model_len` tokens per replica (its KV cache, capped by max_num_seqs);
the replicas needed for the asked concurrency are packed onto whole nodes and priced on demand in the region.
Options that fit come first, cheapest first; the others say why they fail. Pure functions: no Pulumi.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import partial

from fleet.capacity.memory import Arch, Settings, default_batched_tokens, parallelism_problems, size
from fleet.catalog import gpu_instance_types, prices

TENSOR_PARALLEL_SIZES = (1, 2, 4, 8)


@dataclass(frozen=True)
class Option:
    instance_type: str
    gpu: str
    tp: int
    pp: int
    replicas: int | None          # to serve the asked concurrency (None when the shape does not fit)
    nodes: int | None
    kv_cache_tokens: int          # per replica
    max_concurrency: float        # sequences of max_model_len per replica
    usd_per_hour: float | None    # the nodes, on demand in the region (None: not priced there)
    fits: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["max_concurrency"] = round(self.max_concurrency, 2)
        if self.usd_per_hour is not None:
            out["usd_per_hour"] = round(self.usd_per_hour, 2)
        return out


def recommend(arch: Arch, max_model_len: int, concurrency: int, region: str, *, engine_profile: str,
              quantization: str | None = None, kv_cache_dtype: str = "auto") -> list[Option]:
    options: list[Option] = []
    shapes = [(inst, tp, pp) for inst in gpu_instance_types().values() for tp in TENSOR_PARALLEL_SIZES for pp in (1, 2)
              # pipeline parallelism only across whole EFA nodes (a LeaderWorkerSet of `pp` nodes)
              if tp <= inst.gpus and (pp == 1 or (tp == inst.gpus and inst.efa))]
    for inst, tp, pp in shapes:
        shape = partial(Option, instance_type=inst.instance_type, gpu=inst.gpu_model, tp=tp, pp=pp)
        refused = parallelism_problems(arch, tp)
        if refused:  # vLLM refuses the shape at start: offered only as rejected, with the reason
            options.append(shape(replicas=None, nodes=None, kv_cache_tokens=0, max_concurrency=0.0,
                                  usd_per_hour=None, fits=False, reason="; ".join(refused)))
            continue
        settings = Settings(gpu_memory_gib=inst.gpu_usable_memory_gib, gpus_per_node=inst.gpus, tensor_parallel_size=tp,
                            pipeline_parallel_size=pp, max_model_len=max_model_len, gpu_model=inst.gpu_model, engine_profile=engine_profile,
                            quantization=quantization, kv_cache_dtype=kv_cache_dtype)
        sized = size(arch, settings, explain=False)
        if not sized.fits:
            options.append(shape(replicas=None, nodes=None, kv_cache_tokens=sized.kv_cache_tokens,
                                  max_concurrency=sized.max_concurrency, usd_per_hour=None, fits=False, reason=sized.reason))
            continue
        seqs = default_batched_tokens(settings)[1]
        per_replica = min(sized.max_concurrency, seqs) if sized.kv_cache_tokens else float(seqs)
        replicas = max(1, math.ceil(concurrency / per_replica))
        nodes = replicas * pp if pp > 1 else math.ceil(replicas / (inst.gpus // tp))
        price = prices().get((inst.instance_type, region))
        cost = nodes * price.on_demand if price is not None else None
        reason = (f"{replicas} replica(s) of {tp * pp} GPU(s) on {nodes} node(s): {per_replica:,.1f} sequences of "
                  f"{max_model_len:,} tokens each" + ("" if price is not None else f"; no price in {region}"))
        options.append(shape(replicas=replicas, nodes=nodes, kv_cache_tokens=sized.kv_cache_tokens,
                              max_concurrency=sized.max_concurrency, usd_per_hour=cost, fits=True, reason=reason))
    return sorted(options, key=lambda o: (not o.fits, o.usd_per_hour is None, o.usd_per_hour or 0.0, o.tp, o.instance_type))
