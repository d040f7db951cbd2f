"""`recommend --plot FILE.png`: predicted latency against request rate for the best candidates, the SLO drawn."""

from __future__ import annotations

from pathlib import Path

from fleet.capacity.memory import Arch
from fleet.capacity.predict import engine
from fleet.capacity.simulate import Load, typical
from fleet.capacity.slo import SloOption, Targets
from fleet.catalog import gpu_instance_types

FRACTIONS = (0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5)   # of the target's peak rate


def curves(arch: Arch, targets: Targets, options: list[SloOption], *, max_model_len: int | None = None,
           quantization: str | None = None) -> dict[str, list[tuple[float, float, float]]]:
    """Per candidate (label): (total request rate, TTFT p95 ms, ITL p50 ms) at rates around the target's peak, the
    candidate's replicas sharing the load."""
    out: dict[str, list[tuple[float, float, float]]] = {}
    max_len = max_model_len or max(targets.input_tokens + targets.output_tokens, 4096)
    for o in options:
        inst = gpu_instance_types()[o.instance_type]
        eng, _ = engine(arch, inst, tp=o.tp, max_model_len=max_len, quantization=quantization)
        if eng is None or not o.replicas:
            continue
        points = []
        for f in FRACTIONS:
            rate = targets.request_rate * f
            m = typical(eng, Load(targets.input_tokens, targets.output_tokens, request_rate=rate / o.replicas,
                                  num_prompts=200, seed=3))
            points.append((rate, m["ttft_p95_ms"], m["itl_p50_ms"]))
        out[f"{o.instance_type} TP{o.tp} ×{o.replicas}"] = points
    return out


def plot_candidates(arch: Arch, targets: Targets, options: list[SloOption], path: str | Path, **kw) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = curves(arch, targets, options, **kw)
    fig, (ax_ttft, ax_itl) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, pts in data.items():
        rates = [p[0] for p in pts]
        ax_ttft.plot(rates, [p[1] for p in pts], marker="o", label=label)
        ax_itl.plot(rates, [p[2] for p in pts], marker="o", label=label)
    limits = targets.limits()
    for ax, key, title in ((ax_ttft, "ttft_p95_ms", "TTFT p95 (ms)"), (ax_itl, "itl_p50_ms", "ITL p50 (ms)")):
        if key in limits:
            ax.axhline(limits[key], color="red", linestyle="--", label=f"SLO {limits[key]:g} ms")
        ax.axvline(targets.request_rate, color="grey", linestyle=":", label=f"peak {targets.request_rate:g} req/s")
        ax.set_xlabel("requests per second (all replicas)")
        ax.set_ylabel(title)
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    ax_itl.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{arch.id}: {targets.input_tokens} in / {targets.output_tokens} out (predicted, vllm-fleet)")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
