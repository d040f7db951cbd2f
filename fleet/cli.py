"""`vllm-fleet`: plan, validate, size and schema (exit 0 clean, 1 mandatory finding / invalid manifest / a model
that does not fit, 2 config error)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from fleet.argtypes import positive_float, positive_int
from fleet.versions import bundled_vllm_versions

EXIT_OK, EXIT_FINDINGS, EXIT_CONFIG = 0, 1, 2
# `size` choices: what the fit check has bytes for (fleet/capacity/memory.py), kept here so that --help loads no catalog.
DTYPES = ("auto", "bfloat16", "float16", "half", "float", "float32")
QUANTIZATIONS = ("fp8", "modelopt", "modelopt_fp4", "compressed-tensors", "awq", "awq_marlin", "gptq", "gptq_marlin", "bitsandbytes", "mxfp4",
                 "gguf:Q8_0", "gguf:Q6_K", "gguf:Q5_K_M", "gguf:Q4_K_M")
KV_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2")
# The newest vLLM release whose flag table is bundled (fleet/catalog/vllm/flags-<version>.json).
NEWEST_VLLM = bundled_vllm_versions()[-1]


def fraction(text: str) -> float:
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text} must be in (0, 1]")
    return value


def vllm_version(text: str) -> str:
    parts = text.lstrip("v").split(".")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a vLLM release (like {NEWEST_VLLM})")
    return text.lstrip("v")


def sized_vllm_version(text: str) -> str:
    """A release `size` and `recommend` have a memory profile for: any up to the newest bundled one (older releases keep
    their measured profiles; a newer one is unknown until its table is generated)."""
    from fleet.versions import parse_version
    from fleet.vllm.flags import missing_table

    version = vllm_version(text)
    if parse_version(version) > parse_version(NEWEST_VLLM):
        raise argparse.ArgumentTypeError(missing_table(version))
    return version


def kubernetes_version(text: str) -> str:
    from fleet.offline.manifest_schema import supported_versions

    versions = supported_versions()
    if text not in versions:
        raise argparse.ArgumentTypeError(f"{text!r} is not a Kubernetes version with bundled schemas ({versions[0]}–{versions[-1]})")
    return text


def find_root(start: Path) -> Path:
    for d in (start, *start.parents):
        if (d / "Pulumi.yaml").exists() and (d / "stacks").is_dir():
            return d
    return start


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="vllm-fleet",
        description="Plan, validate and check vLLM fleets on Kubernetes without a cluster or the Pulumi CLI.",
        epilog="Exit codes: 0 clean, 1 a mandatory policy finding or an invalid manifest, 2 a config error.")
    ap.add_argument("--root", type=Path, default=None,
                    help="project directory (default: the nearest parent with Pulumi.yaml and stacks/)")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    plan = sub.add_parser("plan", help="run the program under Pulumi's mocks, apply the policies, validate every manifest",
                          description="Show what `pulumi up --stack S` would create: resources per team and kind, "
                                      "models, GPUs, $/hour and pool headroom, and policy findings. Writes one YAML file per Kubernetes "
                                      "object plus plan.json when --out is given. A Capacity Block's schedule is rendered for the time `pulumi up` runs: "
                                      "set VLLM_FLEET_NOW=<ISO 8601 time> to plan for another moment (docs/capacity.md).")
    plan.add_argument("--stack", required=True, help="stack name: stacks/Pulumi.<stack>.yaml")
    plan.add_argument("--out", type=Path, default=None, help="write manifests/ and plan.json into this directory")
    plan.add_argument("--format", choices=("table", "json", "markdown"), default="table", help="report format (default table)")
    plan.add_argument("--no-policies", action="store_true", help="skip the policy pack (schema validation still runs)")
    plan.add_argument("--base", metavar="REF", help="compare with the plan of git REF (a branch, tag or commit, resolved with "
                                                    "`git rev-parse --verify`, read with `git archive`; the working tree is not touched): "
                                                    "resources added/changed/removed, GPU, $/hour and finding deltas, guardrails weakened "
                                                    "or restored, and stateful resources an immutable change would replace (exit 1). "
                                                    "Formats: markdown (default with --base) or json")

    val = sub.add_parser("validate", help="check the stack and team files only (fast, no program run)")
    val.add_argument("--stack", required=True, help="stack name: stacks/Pulumi.<stack>.yaml")

    sz = sub.add_parser("size", help="GPU-memory fit check for one model (weights, KV cache, concurrency, verdict)",
                        description="Predict vLLM's per-GPU memory split and whether one max-model-len sequence fits. "
                                    "Give the model by catalog id, a config.json, or its architecture numbers.")
    src = sz.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="Hugging Face id from fleet/catalog/models.yaml")
    src.add_argument("--config-json", type=Path, help="a model's config.json")
    src.add_argument("--params-b", type=positive_float, help="parameters in billions (with --layers --kv-heads --head-dim)")
    sz.add_argument("--layers", type=positive_int)
    sz.add_argument("--kv-heads", type=positive_int)
    sz.add_argument("--head-dim", type=positive_int)
    sz.add_argument("--attention-heads", type=positive_int,
                    help="with --params-b: query heads, so that the tensor-parallel size is checked against them as vLLM does")
    sz.add_argument("--hidden-size", type=positive_int)
    sz.add_argument("--vocab-size", type=positive_int)
    sz.add_argument("--gpu", help="GPU model (H100, L40S, A100-40GB...) or instance type (p5.48xlarge) from the catalog: "
                                  "its memory and vLLM's batch defaults for it (A100: 2,048 tokens / 256 sequences)")
    sz.add_argument("--gpu-memory-gib", type=positive_float,
                    help="memory per GPU in GiB as torch reports it (with --gpu: instead of the catalog's figure)")
    sz.add_argument("--vllm-version", type=sized_vllm_version, default=None,
                    help="the vLLM release whose memory profile applies (sampler in the startup peak, non-torch memory, "
                         f"CUDA graphs); default: the newest bundled ({NEWEST_VLLM})")
    sz.add_argument("--enforce-eager", action="store_true", help="as vLLM's --enforce-eager: no CUDA graphs")
    sz.add_argument("--sampler", choices=("native", "flashinfer"), default=None,
                    help="the top-k/top-p sampler vLLM runs (VLLM_USE_FLASHINFER_SAMPLER=0/1); default: the release's. "
                         "It moves the startup peak only before 0.17, whose native sampler sorted the vocabulary")
    sz.add_argument("--tp", type=positive_int, default=1, help="tensor parallel size (default 1)")
    sz.add_argument("--pp", type=positive_int, default=1, help="pipeline parallel size (default 1)")
    sz.add_argument("--dp", type=positive_int, default=1, help="data parallel size: engines that each keep a KV cache (default 1)")
    sz.add_argument("--enable-expert-parallel", action="store_true",
                    help="as vLLM's flag: a MoE's routed experts are split over TP × DP GPUs instead of copied per DP rank")
    sz.add_argument("--max-model-len", type=positive_int, help="default: the model's context")
    sz.add_argument("--gpu-memory-utilization", type=fraction, default=0.9, help="in (0, 1] (default 0.9)")
    sz.add_argument("--dtype", default="auto", choices=DTYPES)
    sz.add_argument("--quantization", default=None, choices=QUANTIZATIONS)
    sz.add_argument("--kv-cache-dtype", default="auto", choices=KV_DTYPES)
    sz.add_argument("--max-num-batched-tokens", type=positive_int)
    sz.add_argument("--max-num-seqs", type=positive_int)
    sz.add_argument("--json", action="store_true", help="print JSON (weights_gib_per_gpu, kv_cache_gib, kv_cache_tokens, "
                                                       "max_concurrency, fits, reason, fixes, ...)")

    rec = sub.add_parser("recommend", help="every GPU shape of the catalog that can serve a model at a context and "
                                           "concurrency, cheapest first, and why the others cannot",
                         description="Size the model on every instance type × tensor-parallel size of the GPU catalog; "
                                     "for the shapes that fit, the replicas and whole nodes the concurrency needs, priced "
                                     "on demand in the region. Exit 1 when no shape fits.")
    rec.add_argument("--model", required=True, help="Hugging Face id from fleet/catalog/models.yaml")
    rec.add_argument("--max-model-len", type=positive_int, help="context length (memory mode: required)")
    rec.add_argument("--concurrency", type=positive_int, help="memory mode: sequences of max-model-len served at once")
    rec.add_argument("--region", default="us-east-1", help="AWS region of the prices (default us-east-1)")
    rec.add_argument("--vllm-version", type=sized_vllm_version, default=None, help=f"default: the newest bundled ({NEWEST_VLLM})")
    rec.add_argument("--quantization", default=None, choices=QUANTIZATIONS)
    rec.add_argument("--kv-cache-dtype", default="auto", choices=KV_DTYPES)
    rec.add_argument("--json", action="store_true", help="print JSON: {options: [{instance_type, gpu, tp, pp, replicas, "
                                                        "kv_cache_tokens, max_concurrency, usd_per_hour, fits, reason}]}")

    from fleet.capacity.predict import add_parser as add_predict
    from fleet.capacity.slo_cli import add_slo_arguments

    add_slo_arguments(rec)

    add_predict(sub, sized_vllm_version, NEWEST_VLLM)
    from fleet.capacity.benchmark_cli import add_parser as add_benchmark

    add_benchmark(sub)

    chk = sub.add_parser("check", help="run the guardrail policies and schema validation on Kubernetes YAML files",
                         description="Check arbitrary Kubernetes manifests (multi-document YAML, e.g. `helm template` "
                                     "output) against the policy pack at its catalogue levels and the upstream schemas.")
    chk.add_argument("files", nargs="+", type=Path, metavar="FILE")
    chk.add_argument("--format", choices=("table", "json"), default="table")
    chk.add_argument("--kubernetes-version", type=kubernetes_version, default="1.33", help="schema version for validation (default 1.33)")

    gd = sub.add_parser("guard", help="fail when `pulumi preview --json` would delete or replace a protected or stateful "
                                      "resource (file system, bucket, PV, PVC, StorageClass, namespace with a claim)")
    gd.add_argument("preview", type=Path, metavar="PREVIEW.json")

    pc = sub.add_parser("policy-config", help="write the policy pack config of a stack (levels, exemptions, settings) "
                                              "for `pulumi preview --policy-pack-config`")
    pc.add_argument("--stack", required=True)

    co = sub.add_parser("codeowners", help="regenerate .github/CODEOWNERS from the owners of the team files")
    co.add_argument("--check", action="store_true", help="exit 1 when the committed file is stale instead of writing")

    pr = sub.add_parser("prices", help="refresh fleet/catalog/prices.yaml from the AWS Price List API and the EC2 spot "
                                       "price history")
    prs = pr.add_subparsers(dest="prices_command", required=True)
    ref = prs.add_parser("refresh", help="dated, sourced on-demand (pricing:GetProducts or a bulk offer file) and spot "
                                         "(ec2:DescribeSpotPriceHistory, lowest across the region's zones) rows for the "
                                         "catalog's GPU types; other rows stay. Reads AWS through the standard credential "
                                         "chain, or recorded responses with --from-file")
    ref.add_argument("--regions", nargs="+", metavar="REGION",
                     help="only these regions (default: every commercial region botocore lists)")
    ref.add_argument("--from-file", nargs="+", type=Path, default=[], metavar="FILE",
                     help="recorded GetProducts or DescribeSpotPriceHistory responses (JSON) or AmazonEC2 offer files "
                          "instead of asking AWS")
    ref.add_argument("--dry-run", action="store_true", help="print the rows instead of writing them")
    up = sub.add_parser("upgrade", help="move the stacks to another release of a pinned image (vLLM), with a report of what "
                                        "changes per model",
                        description="vllm: generate the release's flag table from its own parser when it is not bundled "
                                    "(pip downloads the wheel and installs it --no-deps in a throwaway environment; "
                                    "PIP_INDEX_URL or --index-url pick the index) and ship it in fleet/catalog/vllm/; check every "
                                    "model of every stack against it; print per model the flags it passes that were removed or "
                                    "renamed, the defaults that changed, the metrics its alerts, dashboards, autoscaler and "
                                    "endpoint picker read that the release no longer exports, and its sizing; then set the "
                                    "version in each stack file whose models all pass, keeping comments and layout (a pinned "
                                    "digest becomes the placeholder: resolve the new image's before deploying). "
                                    "Exit 0 when every stack passes, 1 when a model fails (that stack is not written), "
                                    "2 when the release cannot be fetched or a stack cannot be read (nothing written).")
    up.add_argument("image", choices=("vllm", "ami-al2023", "ami-bottlerocket"), metavar="IMAGE",
                    help="vllm, or ami-al2023 / ami-bottlerocket: pin every pool of that AMI family to the EKS AMI release "
                         "VERSION (ami_version), checked like vllm")
    up.add_argument("version", metavar="VERSION", help="the release: 0.34.0 (vllm), 1.33.13-20260714 (ami-al2023), "
                                                       "1.46.0-<commit> (ami-bottlerocket)")
    up.add_argument("--stack", action="append", default=None, help="a stack to upgrade (repeatable; default: every stack)")
    up.add_argument("--dry-run", action="store_true", help="print the report; write neither the table nor any stack file")
    up.add_argument("--index-url", default=None, help="package index to fetch vLLM from (default: pip's, e.g. PIP_INDEX_URL)")

    pn = sub.add_parser("pin", help="resolve every image tag the stacks render to the digest its registry serves and write "
                                     "it into the stack files (the step before the first deploy)",
                        description="Resolve each image the stacks render (vLLM and its EFA image, the GPU system's, the "
                                    "gateway's) through the OCI distribution API — anonymous tokens for public registries, "
                                    "Amazon ECR through the standard AWS credential chain — show the changes and write the "
                                    "digests into stacks/Pulumi.<stack>.yaml, comments and layout kept. Nothing is written "
                                    "unless every image resolves.",
                        epilog="Exit codes: 0 pinned (or nothing to change), 1 an image could not be resolved (nothing "
                               "written), 2 a config error.")
    pn.add_argument("--stack", action="append", default=None, metavar="S",
                    help="stack to pin: stacks/Pulumi.<S>.yaml (repeatable; default: every stack)")
    pn.add_argument("--dry-run", action="store_true", help="show the changes, write nothing")
    pn.add_argument("--registry-mirror", action="append", default=[], metavar="REGISTRY=URL",
                    help="resolve REGISTRY's images (as the stack names it: docker.io, nvcr.io, ...) through URL, a "
                         "pull-through cache or mirror, e.g. docker.io=https://mirror.example.com or "
                         "nvcr.io=https://harbor.example.com/nvcr-proxy (a path is put before each repository); the stack "
                         "keeps the images' own names (repeatable)")
    pn.add_argument("--timeout", type=positive_float, default=20.0,
                    help="seconds each registry request may take (default 20; the whole run gets at most 300)")

    sch = sub.add_parser("schema", help="regenerate stacks/schema/*.json and docs/configuration.md from the models")
    sch.add_argument("--check", action="store_true", help="exit 1 when the committed files are stale instead of writing")
    return ap


def _config_error(exc: Exception) -> int:
    print(str(exc), file=sys.stderr)
    return EXIT_CONFIG


def cmd_plan(args: argparse.Namespace, root: Path) -> int:
    from rich.console import Console

    from fleet.errors import ConfigError
    from fleet.offline.plan import make_plan, write_outputs
    from fleet.offline.report import markdown, print_table

    if args.base:
        from fleet.offline.diff import run as diff

        return diff(root, args.stack, args.base, "json" if args.format == "json" else "markdown")
    try:
        plan = make_plan(args.stack, root, policies=not args.no_policies)
    except ConfigError as exc:
        return _config_error(exc)
    doc = plan.document()
    if args.out is not None:
        try:
            write_outputs(plan, args.out, doc.to_json())
        except OSError as exc:
            print(f"--out {args.out}: cannot write the manifests there ({exc.strerror or exc}) — give a directory", file=sys.stderr)
            return EXIT_CONFIG
    if args.format == "json":
        print(json.dumps(doc.to_json(), indent=2, sort_keys=True))
    elif args.format == "markdown":
        print(markdown(doc), end="")
    else:
        print_table(doc, Console(highlight=False, width=160))
    return plan.exit_code


def cmd_validate(args: argparse.Namespace, root: Path) -> int:
    from fleet.errors import ConfigError
    from fleet.render.names import name_collisions
    from fleet.spec.load import load

    try:
        spec = load(args.stack, root)
        collisions = name_collisions(spec)  # what would make `plan` fail is a config error here too
        if collisions:
            raise ConfigError(collisions)
    except ConfigError as exc:
        return _config_error(exc)
    for note in spec.notes:
        print(f"warning: {note}", file=sys.stderr)
    print(f"stack {spec.stack}: {len(spec.teams)} teams, {len(spec.models)} models — config valid")
    return EXIT_OK


def cmd_size(args: argparse.Namespace, root: Path) -> int:
    from fleet.capacity.memory import (
        Arch,
        Settings,
        arch_from_config_json,
        batch_limits_problem,
        engine_profile_for,
        gpu_count_problem,
        model_catalog,
        size,
        tensor_parallel_fixes,
    )
    from fleet.catalog import gpu_instance_types

    if args.model:
        arch = model_catalog().get(args.model)
        if arch is None:
            print(f"--model {args.model}: not in fleet/catalog/models.yaml — use --config-json or --params-b with the "
                  "architecture numbers", file=sys.stderr)
            return EXIT_CONFIG
    elif args.config_json:
        try:
            arch = arch_from_config_json(args.config_json, str(args.config_json))
        except ValueError as exc:
            print(f"--config-json: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    else:
        missing = [f"--{n.replace('_', '-')}" for n in ("layers", "kv_heads", "head_dim") if getattr(args, n) is None]
        if missing:
            print(f"--params-b needs {', '.join(missing)}", file=sys.stderr)
            return EXIT_CONFIG
        try:
            arch = Arch(id=f"{args.params_b}B", params_b=args.params_b, layers=args.layers, kv_heads=args.kv_heads,
                        head_dim=args.head_dim, hidden_size=args.hidden_size, vocab_size=args.vocab_size,
                        attention_heads=args.attention_heads)
        except ValueError as exc:
            print(f"size: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    if not args.gpu and not args.gpu_memory_gib:
        print("size: give --gpu (a catalog GPU or instance type), --gpu-memory-gib, or both", file=sys.stderr)
        return EXIT_CONFIG
    gpus_per_node, gpu_model, where = 8, None, None
    if args.gpu:
        catalog = gpu_instance_types()
        # a GPU model: its largest instance (the most GPUs one server of that model can have)
        inst = catalog.get(args.gpu) or max((i for i in catalog.values() if i.gpu_model.lower() == args.gpu.lower()),
                                            key=lambda i: i.gpus, default=None)
        if inst is None:
            models = sorted({i.gpu_model for i in catalog.values()})
            print(f"--gpu {args.gpu}: not a GPU model ({', '.join(models)}) or instance type of the catalog", file=sys.stderr)
            return EXIT_CONFIG
        memory, gpus_per_node, gpu_model = args.gpu_memory_gib or inst.gpu_usable_memory_gib, inst.gpus, inst.gpu_model
        where = inst.instance_type if args.gpu == inst.instance_type else f"the largest {inst.gpu_model} instance ({inst.instance_type})"
    else:
        memory = args.gpu_memory_gib
    try:
        settings = Settings(
            gpu_memory_gib=memory, gpus_per_node=gpus_per_node, tensor_parallel_size=args.tp, pipeline_parallel_size=args.pp,
            max_model_len=args.max_model_len, gpu_memory_utilization=args.gpu_memory_utilization, dtype=args.dtype,
            quantization=args.quantization, kv_cache_dtype=args.kv_cache_dtype,
            max_num_batched_tokens=args.max_num_batched_tokens, max_num_seqs=args.max_num_seqs, gpu_model=gpu_model,
            enforce_eager=args.enforce_eager, data_parallel_size=args.dp, expert_parallel=args.enable_expert_parallel,
            engine_profile=engine_profile_for(args.vllm_version or NEWEST_VLLM),
            flashinfer_sampler=None if args.sampler is None else args.sampler == "flashinfer")
        limits = batch_limits_problem(settings)
        if limits:
            raise ValueError(f"--max-num-batched-tokens / --max-num-seqs: {limits}")
        result = size(arch, settings)
    except ValueError as exc:
        print(f"size: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    too_many = gpu_count_problem(args.tp, args.pp, gpus_per_node, where) if where is not None else None
    if too_many is not None:  # one server on one instance: vLLM refuses more ranks than the node has GPUs
        reason = too_many if result.fits else f"{too_many}; {result.reason}"
        result.fits, result.reason, result.fixes = False, reason, tensor_parallel_fixes(arch, settings)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        d = result.as_dict()
        for key in ("model", "gpu_memory_gib", "budget_gib", "weights_gib_per_gpu", "activation_gib", "non_torch_gib",
                    "cuda_graph_gib", "kv_cache_gib", "kv_bytes_per_token", "kv_cache_tokens", "max_model_len",
                    "max_concurrency", "fits", "reason"):
            print(f"{key:>20}: {d[key]}")
        for fix in result.fixes:
            print(f"{'fix':>20}: {fix}")
    return EXIT_OK if result.fits else EXIT_FINDINGS


def cmd_recommend(args: argparse.Namespace, root: Path) -> int:
    from fleet.capacity.memory import engine_profile_for, model_catalog
    from fleet.capacity.recommend import recommend

    arch = model_catalog().get(args.model)
    if arch is None:
        print(f"--model {args.model}: not in fleet/catalog/models.yaml", file=sys.stderr)
        return EXIT_CONFIG
    if args.request_rate is not None:
        from fleet.capacity.slo_cli import run_slo

        return run_slo(args, arch)
    if args.concurrency is None or args.max_model_len is None:
        print("recommend: give --max-model-len and --concurrency (memory), or --request-rate with --input-tokens, "
              "--output-tokens and latency targets (SLO)", file=sys.stderr)
        return EXIT_CONFIG
    try:
        options = recommend(arch, args.max_model_len, args.concurrency, args.region,
                            engine_profile=engine_profile_for(args.vllm_version or NEWEST_VLLM),
                            quantization=args.quantization, kv_cache_dtype=args.kv_cache_dtype)
    except ValueError as exc:
        print(f"recommend: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.json:
        print(json.dumps({"options": [o.as_dict() for o in options]}, indent=2))
    else:
        print(f"{args.model}: {args.concurrency} sequences of {args.max_model_len:,} tokens in {args.region}")
        print(f"{'instance type':<16} {'GPU':<10} {'TP':>2} {'PP':>2} {'replicas':>8} {'nodes':>5} {'KV tokens':>11} {'$/hour':>9}  reason")
        for o in options:
            cost = f"{o.usd_per_hour:,.2f}" if o.usd_per_hour is not None else "unpriced"
            print(f"{o.instance_type:<16} {o.gpu:<10} {o.tp:>2} {o.pp:>2} {o.replicas or '-':>8} {o.nodes or '-':>5} "
                  f"{o.kv_cache_tokens:>11,} {cost:>9}  {'' if o.fits else 'does not fit: '}{o.reason}")
    return EXIT_OK if any(o.fits for o in options) else EXIT_FINDINGS


def cmd_check(args: argparse.Namespace, root: Path) -> int:
    from fleet.offline.manifest_check import check_files

    return check_files(args.files, args.format, args.kubernetes_version)


def cmd_guard(args: argparse.Namespace, root: Path) -> int:
    from fleet.offline.guard import main as guard

    return guard(args.preview)


def cmd_policy_config(args: argparse.Namespace, root: Path) -> int:
    from fleet.errors import ConfigError
    from fleet.offline.policy_pack import policy_config, policy_levels
    from fleet.spec.load import load

    try:
        spec = load(args.stack, root)
    except ConfigError as exc:
        return _config_error(exc)
    levels, config = policy_levels(spec), policy_config(spec)
    doc = {name: {"enforcementLevel": levels[name], **config[name]} for name in sorted(levels)}
    print(json.dumps(doc, indent=2, sort_keys=True))
    return EXIT_OK


def cmd_codeowners(args: argparse.Namespace, root: Path) -> int:
    from fleet.errors import ConfigError
    from fleet.offline import codeowners

    try:
        text, target = codeowners.render(root), codeowners.path(root)
    except ConfigError as exc:
        if not exc.issues:
            print('stacks/owners.yaml: expected `platform: ["@org/team", ...]`', file=sys.stderr)
            return EXIT_CONFIG
        return _config_error(exc)
    if args.check:
        if not target.exists() or target.read_text() != text:
            print(f"stale: {target.relative_to(root)} — run `vllm-fleet codeowners`", file=sys.stderr)
            return 1
        return EXIT_OK
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(f"wrote {target.relative_to(root)}")
    return EXIT_OK


def cmd_upgrade(args: argparse.Namespace, root: Path) -> int:
    from fleet.upgrade import UpgradeError, ami_lines, lines, upgrade_ami, upgrade_vllm

    try:
        if args.image != "vllm":
            ami = upgrade_ami(root, args.image.removeprefix("ami-"), args.version, args.stack, dry_run=args.dry_run)
            for line in ami_lines(ami):
                print(line)
            return EXIT_OK if ami.passes else EXIT_FINDINGS
        try:
            version = vllm_version(args.version)
        except argparse.ArgumentTypeError as exc:
            raise UpgradeError(f"vllm-fleet upgrade vllm: {exc} — nothing was written") from None
        result = upgrade_vllm(root, version, args.stack, dry_run=args.dry_run, index_url=args.index_url)
    except UpgradeError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    for line in lines(result, root):
        print(line)
    return EXIT_OK if result.passes else EXIT_FINDINGS


def cmd_pin(args: argparse.Namespace, root: Path) -> int:
    from fleet.errors import ConfigError
    from fleet.pin import PinError, pin
    from fleet.registry import Mirror, Resolver
    from fleet.spec.load import load
    from fleet.spec.stack_file import known_stacks

    try:
        mirrors = {m.registry: m for m in map(Mirror.parse, args.registry_mirror)}
    except ValueError as exc:
        return _config_error(exc)
    stacks = list(dict.fromkeys(args.stack or known_stacks(root)))
    if not stacks:
        print(f"pin: no stacks/Pulumi.<stack>.yaml under {root}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        specs = [load(stack, root) for stack in stacks]
    except ConfigError as exc:
        return _config_error(exc)
    resolver = Resolver(mirrors, timeout=args.timeout)
    try:
        return pin(specs, resolver, args.dry_run)
    except (PinError, ValueError) as exc:
        return _config_error(exc)
    finally:
        resolver.close()


def cmd_schema(args: argparse.Namespace, root: Path) -> int:
    from fleet.offline import config_docs as schema

    if args.check:
        stale = schema.stale_files(root)
        for p in stale:
            print(f"stale: {p.relative_to(root)} — run `vllm-fleet schema`", file=sys.stderr)
        return 1 if stale else 0
    for p in schema.write(root):
        print(f"wrote {p.relative_to(root)}")
    return EXIT_OK


def cmd_benchmark(args: argparse.Namespace, root: Path) -> int:
    from fleet.capacity.benchmark_cli import run

    return run(args, root)


def cmd_predict(args: argparse.Namespace, root: Path) -> int:
    from fleet.capacity.predict import run

    return run(args)


def cmd_prices(args: argparse.Namespace, root: Path) -> int:
    from fleet.catalog import CATALOG_DIR
    from fleet.prices import PriceInputError, refresh

    try:
        return refresh(args.regions, args.from_file, args.dry_run, CATALOG_DIR / "prices.yaml")
    except PriceInputError as exc:
        return _config_error(exc)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = (args.root or find_root(Path.cwd())).resolve()
    handlers = {"plan": cmd_plan, "validate": cmd_validate, "size": cmd_size, "recommend": cmd_recommend, "predict": cmd_predict, "benchmark": cmd_benchmark,
                "check": cmd_check,
                "policy-config": cmd_policy_config, "guard": cmd_guard, "codeowners": cmd_codeowners,
                "schema": cmd_schema, "prices": cmd_prices, "upgrade": cmd_upgrade,
                "pin": cmd_pin}
    try:
        return handlers[args.command](args, root)
    except RecursionError:
        print(f"vllm-fleet {args.command}: an input nests too deeply to read — flatten it", file=sys.stderr)
        return EXIT_CONFIG
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as a Unix filter does, and keep Python from complaining
        # about the closed stream on exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
