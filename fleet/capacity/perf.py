"""How long one vLLM scheduler step takes: a roofline with fitted efficiencies and overheads. Pure functions.

A step runs every scheduled token through the model once: the decoding requests' one token each and the prefill
chunks' prompt tokens. Per GPU (tensor parallel shares split the work):

    compute  = 2 · active linear parameters · tokens + 4 · layers · query width · Σ attended context per token
               + 2 · hidden · vocabulary · sampled tokens                               (FLOPs / TP)
               of which a MoE's routed experts (2 · active expert parameters · tokens) run at their own efficiency:
               vLLM's fused MoE kernel reaches far less of the peak than a dense GEMM (without a tuned config for
               the board it says "Using default MoE config. Performance might be sub-optimal!")
    memory   = weight bytes (a MoE's routed experts only as far as this step's tokens touch them)
               + KV bytes read (each decoding request its context, each chunk its context and itself)
    GPU time = max(dense compute / (peak FLOP/s · e_compute) + expert compute / (peak FLOP/s · e_expert),
                   weights / (bandwidth · e_weights) + KV / (bandwidth · e_kv))
    launches = layers · (0 for a decode-only step up to the largest captured CUDA graph: one FULL graph replay;
                         piecewise_layer for a step with prompt tokens up to it: PIECEWISE graphs with each layer's
                         attention launched between them; eager_layer for a step with more tokens than the largest
                         graph: every kernel launched from Python) · (moe_launch_factor for a MoE's layers)
    step     = fixed + per layer · layers + per token-layer · tokens · layers + max(GPU time, launches)
               + TP all-reduces (2 per layer: message / link bandwidth + a latency each)

Launching runs ahead of the GPU, so the CPU's time hides under the GPU's until it is the longer of the two: a small
model's prompt steps are set by the host, not the GPU (vLLM 0.26 logs `cudagraph_mode FULL_AND_PIECEWISE` and
`max_cudagraph_capture_size 512` — min(2 · max_num_seqs, 512) — in every measured run; with enforce_eager every
step is eager).

The peaks come from the board's datasheet (fleet/catalog/gpus.yaml `gpu_models`); the efficiencies and overheads are
fitted on measured step grids (fleet/capacity/calibrate.py, fleet/catalog/perf_calibration.yaml) per GPU model, and a
board without runs of its own borrows the constants of a measured one (the prediction says which).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from fleet.capacity.memory import (
    Arch,
    Settings,
    cuda_graph_sizes,
    default_batched_tokens,
    expert_fraction,
    kv_bytes_per_token,
    weights_gib_per_gpu,
)
from fleet.catalog import CATALOG_DIR
from fleet.yamlsrc import safe_load

GIB = 2**30


@dataclass(frozen=True)
class GpuModel:
    gpu_model: str
    bf16_tflops: float
    fp8_tflops: float
    memory_gbps: float
    nvlink_gbps: float
    pcie_gbps: float
    source: str
    as_of: str


@lru_cache(maxsize=1)
def gpu_models() -> dict[str, GpuModel]:
    with open(CATALOG_DIR / "gpus.yaml", encoding="utf-8") as fh:
        rows = safe_load(fh)["gpu_models"]
    return {row["gpu_model"]: GpuModel(**row) for row in rows}


@dataclass(frozen=True)
class StepConstants:
    """What the fit adds to the datasheet: the share of each peak the kernels reach, and the time a step costs
    beyond its FLOPs and bytes (scheduling, kernel launches under CUDA graphs, sampling, the server's output)."""
    e_compute: float = 0.55
    e_weights: float = 0.80
    e_kv: float = 0.55
    e_expert: float = 0.0                 # routed experts' share of the compute peak; 0: as e_compute (fitted on MoE runs only)
    fixed_s: float = 1.5e-3
    per_layer_s: float = 2.0e-5
    per_token_layer_s: float = 2.0e-8
    # the host's time to launch one layer of a step outside a FULL CUDA graph (hidden under the GPU's time)
    piecewise_layer_s: float = 2.0e-4     # a step with prompt tokens, within the largest graph
    eager_layer_s: float = 1.0e-3         # a step with more tokens than the largest graph
    moe_launch_factor: float = 0.0        # a MoE layer's launches against a dense one's; 0: the same (fitted on MoE runs only)
    allreduce_latency_s: float = 1.0e-5   # per all-reduce; not fitted until multi-GPU runs exist
    http_s: float = 4.0e-3                # request in, first token out: what the API server adds to TTFT
    # The API server's own process (tokenizing prompts, detokenizing and streaming tokens): serial work per request,
    # per prompt token and per streamed token, fitted on the benchmark points of the runs that are not held out.
    frontend_request_s: float = 0.0
    frontend_input_token_s: float = 0.0
    frontend_output_token_s: float = 0.0
    source: str = "defaults (no fit)"


@dataclass(frozen=True)
class ModelCost:
    """The per-step cost coefficients of one model served with one set of settings on one board."""
    layers: int
    dense_weight_bytes: float        # per GPU, read every step
    expert_weight_bytes: float       # per GPU: routed experts, read as far as touched
    experts: int
    experts_per_token: int
    linear_flops_per_token: float    # per GPU, routed experts included
    expert_flops_per_token: float    # per GPU: the routed experts' part of linear_flops_per_token
    attn_flops_per_ctx_token: float  # per GPU: 4 · layers · heads · head_dim / TP
    lm_head_flops: float             # per GPU, per sampled token
    kv_bytes_per_token: float        # per GPU, all layers
    hidden: int
    tp: int
    peak_flops: float
    bandwidth: float
    link_bandwidth: float
    graph_max_tokens: int = 512      # the largest CUDA graph vLLM captures; 0 with enforce_eager (every step eager)
    constants: StepConstants = field(default_factory=StepConstants)

    def launch_seconds(self, tokens: int, prefill_tokens: int) -> float:
        """The host's time to launch a step's kernels outside a FULL CUDA graph (0 for a captured decode step)."""
        c = self.constants
        if tokens > self.graph_max_tokens:
            per_layer = c.eager_layer_s
        elif prefill_tokens:
            per_layer = c.piecewise_layer_s
        else:
            return 0.0
        return per_layer * self.layers * ((c.moe_launch_factor or 1.0) if self.experts else 1.0)

    def step_seconds(self, decode: int, decode_ctx: float, prefill_tokens: int = 0, prefill_attn: float = 0.0,
                     prefill_kv: float = 0.0, sampled: int | None = None) -> float:
        """One step: `decode` requests decoding over `decode_ctx` context tokens in all; prefill chunks of
        `prefill_tokens` tokens in all, whose attention covers `prefill_attn` (Σ chunk · (earlier context +
        chunk/2)) and whose KV reads `prefill_kv` tokens; `sampled` tokens get logits (default: the decoders)."""
        c = self.constants
        tokens = decode + prefill_tokens
        if tokens <= 0:
            return 0.0
        sampled = decode if sampled is None else sampled
        expert_flops = self.expert_flops_per_token * tokens
        flops = (self.linear_flops_per_token * tokens + self.attn_flops_per_ctx_token * (decode_ctx + prefill_attn)
                 + self.lm_head_flops * sampled) - expert_flops
        if self.experts and self.experts_per_token:
            touched = 1.0 - (1.0 - self.experts_per_token / self.experts) ** tokens
        else:
            touched = 0.0
        weights = self.dense_weight_bytes + self.expert_weight_bytes * touched
        kv = self.kv_bytes_per_token * (decode_ctx + prefill_kv)
        t_compute = flops / (self.peak_flops * c.e_compute) + expert_flops / (self.peak_flops * (c.e_expert or c.e_compute))
        t_memory = weights / (self.bandwidth * c.e_weights) + kv / (self.bandwidth * c.e_kv)
        t = (c.fixed_s + c.per_layer_s * self.layers + c.per_token_layer_s * tokens * self.layers
             + max(t_compute, t_memory, self.launch_seconds(tokens, prefill_tokens)))
        if self.tp > 1:
            message = tokens * self.hidden * 2.0 * 2 * (self.tp - 1) / self.tp
            t += 2 * self.layers * (c.allreduce_latency_s + message / self.link_bandwidth)
        return t


def model_cost(arch: Arch, s: Settings, gpu: GpuModel, constants: StepConstants | None = None) -> ModelCost:
    tp = s.tensor_parallel_size
    weight_bytes = weights_gib_per_gpu(arch, s) * GIB
    experts = expert_fraction(arch)
    active_b = arch.active_params_b or arch.params_b
    linear_b = max(active_b - arch.embedding_params_b, active_b * 0.1)
    # active routed-expert parameters: k/E of the experts' share of all parameters
    expert_b = arch.params_b * experts * (arch.experts_per_token or 0) / arch.experts if arch.experts else 0.0
    heads = arch.attention_heads or arch.kv_heads
    quantized_fp8 = s.quantization in ("fp8", "modelopt", "compressed-tensors") and gpu.fp8_tflops > 0
    peak = (gpu.fp8_tflops if quantized_fp8 else gpu.bf16_tflops) * 1e12
    link = (gpu.nvlink_gbps or gpu.pcie_gbps) * 1e9
    batched_tokens, seqs = default_batched_tokens(s)
    graphs = [] if s.enforce_eager else cuda_graph_sizes(seqs)
    return ModelCost(
        layers=arch.layers,
        dense_weight_bytes=weight_bytes * (1 - experts),
        expert_weight_bytes=weight_bytes * experts,
        experts=arch.experts or 0,
        experts_per_token=arch.experts_per_token or 0,
        linear_flops_per_token=2 * linear_b * 1e9 / tp,
        expert_flops_per_token=2 * min(expert_b, linear_b) * 1e9 / tp,
        attn_flops_per_ctx_token=4 * arch.layers * heads * arch.head_dim / tp,
        lm_head_flops=2 * (arch.hidden_size or 0) * (arch.vocab_size or 0) / tp,
        kv_bytes_per_token=kv_bytes_per_token(arch, s),
        hidden=arch.hidden_size or heads * arch.head_dim,
        tp=tp,
        peak_flops=peak,
        bandwidth=gpu.memory_gbps * 1e9,
        link_bandwidth=link,
        graph_max_tokens=min(max(graphs), batched_tokens) if graphs else 0,
        constants=constants or StepConstants(),
    )
