"""Cross-field rules of a stack config, one small function each. Each returns (field path, message) pairs;
the loader adds the file and the line."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from typing import Any

from fleet import clock
from fleet.aws_limits import LUSTRE_DEPLOYMENT_DEFAULT as LUSTRE_DEPLOYMENT
from fleet.aws_limits import LUSTRE_DOC, SCHEDULE_DOC, lustre_storage_problem, nearest_lustre_sizes
from fleet.catalog import InstanceType, cluster_autoscaler, gpu_instance_types
from fleet.node_capacity import block_drain_at, block_phase
from fleet.spec.stack import GpuPool, StackConfig
from fleet.versions import bundled_vllm_versions, parse_version
from fleet.vllm.flags import has_table, missing_table
from fleet.yamlsrc import Path

Problem = tuple[Path, str]
POOLS: Path = ("config", "vllm-fleet:gpu_pools")


def cluster_is_adopted(cfg: StackConfig) -> Iterator[Problem]:
    if cfg.cluster.create is not None:
        yield (("config", "vllm-fleet:cluster", "create"),
               "creating the cluster is not supported yet — create it separately and adopt it by `name`")


def pool_names_are_unique(cfg: StackConfig) -> Iterator[Problem]:
    first: dict[str, int] = {}
    for i, pool in enumerate(cfg.gpu_pools):
        if pool.name in first:
            yield ((*POOLS, i, "name"), f"'{pool.name}' is already the name of gpu_pools[{first[pool.name]}] — pool names must be unique")
        first.setdefault(pool.name, i)


def _catalog_types(pool: GpuPool) -> list[InstanceType]:
    catalog = gpu_instance_types()
    return [catalog[t] for t in pool.instance_types if t in catalog]


def pool_instance_types_are_known_and_allowed(cfg: StackConfig) -> Iterator[Problem]:
    catalog = gpu_instance_types()
    for i, pool in enumerate(cfg.gpu_pools):
        for j, itype in enumerate(pool.instance_types):
            path = (*POOLS, i, "instance_types", j)
            inst = catalog.get(itype)
            if inst is None:
                close = difflib.get_close_matches(itype, list(catalog), n=1, cutoff=0.7)
                hint = (f"did you mean '{close[0]}'?" if close else
                        "use a GPU instance type from fleet/catalog/gpus.yaml (g4dn, g5, g6, g6e, p4d, p4de, p5, p5e, p5en)")
                yield path, f"'{itype}' is not a GPU instance type in the catalog — {hint}"
                continue
            if itype not in cfg.allowed_instance_types:
                yield path, (f"'{itype}' is outside allowed_instance_types ({', '.join(cfg.allowed_instance_types)}) "
                             "— add it there or pick an allowed type")
            if pool.efa and not inst.efa:
                yield path, f"'{itype}' does not support EFA but the pool sets efa: true — drop efa or use an EFA-capable type"


def pools_have_one_gpu_shape(cfg: StackConfig) -> Iterator[Problem]:
    for i, pool in enumerate(cfg.gpu_pools):
        facts = _catalog_types(pool)
        if len({(f.gpus, f.gpu_memory_gib) for f in facts}) > 1:
            shapes = ", ".join(f"{f.instance_type}={f.gpus}x{f.gpu_memory_gib:g}GiB" for f in facts)
            yield ((*POOLS, i, "instance_types"),
                   f"instance types differ in GPU count or memory ({shapes}) — split them into separate pools so sizing is exact")
        if len({f.architecture for f in facts}) > 1:
            yield (*POOLS, i, "instance_types"), "instance types mix x86_64 and arm64 — one AMI type per pool; split the pool"


def no_spot_gpus_in_prod(cfg: StackConfig) -> Iterator[Problem]:
    for i, pool in enumerate(cfg.gpu_pools):
        if cfg.tier == "prod" and pool.capacity_type == "spot" and not cfg.policy.allow_spot_in_prod:
            yield (*POOLS, i, "capacity_type"), "spot GPU capacity in a prod stack — use on-demand or set policy.allow_spot_in_prod: true"


def allowed_instance_types_are_known(cfg: StackConfig) -> Iterator[Problem]:
    catalog = gpu_instance_types()
    for j, allowed in enumerate(cfg.allowed_instance_types):
        if allowed not in catalog:
            yield ("config", "vllm-fleet:allowed_instance_types", j), f"'{allowed}' is not a GPU instance type in the catalog"


def _allowed(repo: str, registries: list[str]) -> bool:
    return any(repo == r or repo.startswith(r.rstrip("/") + "/") for r in registries)


def vllm_images_are_allowed(cfg: StackConfig) -> Iterator[Problem]:
    images: list[Problem] = [(("config", "vllm-fleet:vllm", "repository"), cfg.vllm.repository)]
    if cfg.vllm.efa is not None:
        images.append((("config", "vllm-fleet:vllm", "efa", "repository"), cfg.vllm.efa.repository))
    for path, repo in images:
        if not _allowed(repo, cfg.allowed_registries):
            yield path, f"'{repo}' is not in allowed_registries ({', '.join(cfg.allowed_registries)})"


VERSION: Path = ("config", "vllm-fleet:vllm", "version")


def below_the_floor(cfg: StackConfig) -> bool:
    return parse_version(cfg.vllm.version) < parse_version(cfg.policy.vllm_version_floor)


def vllm_meets_the_security_floor(cfg: StackConfig) -> Iterator[Problem]:
    if below_the_floor(cfg):
        floor = cfg.policy.vllm_version_floor
        newest = bundled_vllm_versions()[-1]
        target = newest if parse_version(newest) >= parse_version(floor) else f"VERSION (a release ≥ {floor})"
        yield VERSION, f"{cfg.vllm.version} is below the security floor {floor} — upgrade the image: `vllm-fleet upgrade vllm {target}`"


def vllm_version_has_a_flag_table(cfg: StackConfig) -> Iterator[Problem]:
    """The version selects the flag table every model's arguments are compiled against (fleet/catalog/vllm)."""
    if not below_the_floor(cfg) and not has_table(cfg.vllm.version):
        yield VERSION, missing_table(cfg.vllm.version)


def prod_pins_images_and_caches_models(cfg: StackConfig) -> Iterator[Problem]:
    """What dev may cut short and prod may not: images by tag alone, every pod downloading its weights itself."""
    if cfg.tier != "prod":
        return
    if cfg.vllm.allow_tag_only:
        yield (("config", "vllm-fleet:vllm", "allow_tag_only"), "a prod stack pins its images by digest — remove allow_tag_only "
                                                                "and run `vllm-fleet pin --stack <stack>`, which writes `digest`")
    if cfg.model_cache.backend == "none":
        yield (("config", "vllm-fleet:model_cache", "backend"), "a prod stack needs a model cache: without one every pod downloads "
                                                                "its weights from the Hub at each start (slow, rate-limited, and the "
                                                                "serving pods need internet egress) — use efs, fsx-lustre or s3")


def _missing(cfg: StackConfig, reason: str | None, owner: str | None) -> list[str]:
    """What a weakened guardrail lacks: a reason outside dev, and in prod an owner too (as an exemption)."""
    return [k for k, v, needed in (("a reason", reason, cfg.tier != "dev"), ("an owner", owner, cfg.tier == "prod")) if needed and v is None]


def weakened_guardrails_say_why_and_who(cfg: StackConfig) -> Iterator[Problem]:
    """Lowering the whole pack, lowering or disabling a rule, exempting an object: each is reviewed like the others — a
    reason outside dev (disabling a rule: everywhere), and in prod the owner who answers for it. The plan and its PR diff
    (`plan --base`) list every one of them."""
    policy = ("config", "vllm-fleet:policy")
    pack = cfg.policy.enforcement
    if pack is not None and pack.level != "mandatory" and cfg.tier != "dev":
        missing = _missing(cfg, pack.reason, pack.owner)
        if missing:
            yield ((*policy, "enforcement"),
                   f"the whole policy pack is set to {pack.level} in {cfg.tier} stack without {' and '.join(missing)} — write "
                   f"`enforcement: {{level: {pack.level}, reason: <why, 10+ characters>, owner: '@org/team'}}`, or remove it; "
                   "lowering every guardrail at once is reviewed like an exemption")
    for rule_id, override in cfg.policy.overrides.items():
        if override.level == "mandatory":
            continue
        missing = _missing(cfg, override.reason, override.owner)
        if override.level == "disabled" and override.reason is None and "a reason" not in missing:
            missing.insert(0, "a reason")
        if missing:
            yield ((*policy, "overrides", rule_id),
                   f"{rule_id} is set to {override.level} without {' and '.join(missing)} — write `{rule_id}: {{level: {override.level}, "
                   "reason: <why, 10+ characters>" + (", owner: '@org/team'" if cfg.tier == "prod" else "") + "}`; a weakened "
                   "guardrail is reviewed like an exemption")
    if cfg.tier == "prod":
        for i, exemption in enumerate(cfg.policy.exemptions):
            if exemption.owner is None:
                yield ((*policy, "exemptions", i, "owner"),
                       f"the exemption of {exemption.resource} from {exemption.rule} has no owner — add `owner: '@org/team'` (who "
                       "answers for it; a prod stack records one for every weakened guardrail)")


URL_CREDENTIALS = re.compile(r"(^|://)[^/\s:@]+:[^/\s@]+@(?!sha256:|sha512:)")


def _strings(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, (*path, str(k)))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))


def no_credentials_in_urls(cfg: StackConfig) -> Iterator[Problem]:
    for path, text in _strings(cfg.model_dump(by_alias=True, exclude={"secrets"}), ("config",)):
        if URL_CREDENTIALS.search(text):
            yield path, ("holds a user name and password (`user:password@`); they would sit in the stack file, the plan and every "
                         "pod spec — use a credential helper, IRSA or a secret instead (the value is not shown)")


def al2023_amis_match_the_kubernetes_version(cfg: StackConfig) -> Iterator[Problem]:
    for i, pool in enumerate(cfg.gpu_pools):
        if pool.ami_family == "al2023" and pool.ami_version is not None:
            minor = ".".join(pool.ami_version.split(".")[:2])
            if minor != cfg.kubernetes_version:
                yield ((*POOLS, i, "ami_version"), f"AL2023 release {pool.ami_version} is built for Kubernetes {minor}, the stack runs "
                                                   f"{cfg.kubernetes_version} — pick a {cfg.kubernetes_version} release: `vllm-fleet "
                                                   f"upgrade ami-al2023 {cfg.kubernetes_version}.<patch>-<date>`")


def unpinned_amis(cfg: StackConfig) -> Iterator[Problem]:
    """Warnings: a prod pool without `ami_version` boots whatever EKS calls latest, and a Karpenter pool drifts every
    node to each new release."""
    if cfg.tier != "prod":
        return
    for i, pool in enumerate(cfg.gpu_pools):
        if pool.ami_version is None:
            what = "Karpenter replaces every node of it on each new AMI release" if pool.provisioner == "karpenter" else \
                "new nodes boot whichever AMI release is the latest when the group is created or updated"
            yield ((*POOLS, i), f"prod pool '{pool.name}' does not pin its AMI: {what} — set ami_version (`vllm-fleet upgrade "
                                f"ami-{pool.ami_family} VERSION --stack <stack>`)")


CACHE: Path = ("config", "vllm-fleet:model_cache")


def lustre_cache_fits_the_fsx_api(cfg: StackConfig) -> Iterator[Problem]:
    cache = cfg.model_cache
    if cache.backend != "fsx-lustre":
        return
    if lustre_storage_problem(LUSTRE_DEPLOYMENT, cache.size_gib) is not None:
        below, above = nearest_lustre_sizes(LUSTRE_DEPLOYMENT, cache.size_gib)
        yield ((*CACHE, "size_gib"), f"{cache.size_gib} — FSx for Lustre {LUSTRE_DEPLOYMENT} takes 1200, 2400 or a multiple of 2400 "
                                     f"GiB ({LUSTRE_DOC}); use {below} or {above}")
    problem = lustre_storage_problem(LUSTRE_DEPLOYMENT, 1200, cache.throughput_mibps)
    if problem is not None:
        yield (*CACHE, "throughput_mibps"), f"{cache.throughput_mibps} — {problem} ({LUSTRE_DOC})"


NODE_AUTOSCALER: Path = ("config", "vllm-fleet:node_autoscaler")


def _tag(image: str) -> str:
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else ""


def node_autoscaler_fits_the_pools_and_cluster(cfg: StackConfig) -> Iterator[Problem]:
    """Cluster Autoscaler's release follows the cluster's minor; Karpenter pools need Karpenter, and only Karpenter."""
    settings, pools = cfg.node_autoscaler, list(cfg.gpu_pools)
    kind = settings.resolved_kind(pools)
    for i, pool in enumerate(pools):
        if pool.provisioner == "karpenter" and kind != "karpenter":
            why = ("the Cluster Autoscaler and Karpenter would both answer the same pending pods" if kind == "cluster-autoscaler"
                   else "with kind none nothing provisions its nodes")
            yield ((*POOLS, i, "provisioner"), f"karpenter — a Karpenter pool needs node_autoscaler.kind: karpenter ({why}); set it "
                                               "(the Karpenter controller is installed separately) or make the pool `managed`")
    if kind != "cluster-autoscaler":
        return
    releases: dict[str, str] = cluster_autoscaler()["releases"]
    wanted = releases.get(cfg.kubernetes_version)
    if wanted is None:
        yield (("config", "vllm-fleet:kubernetes_version"),
               f"{cfg.kubernetes_version} — no Cluster Autoscaler release of this minor is in fleet/catalog/cluster_autoscaler.yaml "
               f"(it has {', '.join(releases)}): add the release, or set node_autoscaler.kind: none and size each pool's desired_size")
        return
    if settings.image is not None and _tag(settings.image) != wanted:
        yield ((*NODE_AUTOSCALER, "image"), f"tag {_tag(settings.image) or '(none)'} — the Cluster Autoscaler must be the release of the "
                                            f"cluster's Kubernetes {cfg.kubernetes_version}: use tag {wanted}")


def capacity_blocks_have_not_ended(cfg: StackConfig) -> Iterator[Problem]:
    """A block past its drain time can take no scheduled action (AWS refuses a start time in the past) and holds no nodes."""
    now = clock.now()
    for i, pool in enumerate(cfg.gpu_pools):
        if pool.capacity_type == "capacity-block" and block_phase(pool, now) == "over":
            drain = block_drain_at(pool).strftime("%Y-%m-%dT%H:%M:%SZ")
            yield ((*POOLS, i, "capacity_block_ends_at"),
                   f"the Capacity Block {pool.capacity_reservation_id} drained at {drain} (45 minutes before it ends): EC2 Auto "
                   f"Scaling refuses scheduled actions in the past ({SCHEDULE_DOC}) and the reservation holds no instances — "
                   "set the next block's capacity_reservation_id, capacity_block_starts_at and capacity_block_ends_at, or remove "
                   "the pool")


RULES: tuple[Callable[[StackConfig], Iterator[Problem]], ...] = (
    cluster_is_adopted, pool_names_are_unique, pool_instance_types_are_known_and_allowed, pools_have_one_gpu_shape,
    no_spot_gpus_in_prod, allowed_instance_types_are_known, vllm_images_are_allowed, vllm_meets_the_security_floor,
    vllm_version_has_a_flag_table, al2023_amis_match_the_kubernetes_version, prod_pins_images_and_caches_models,
    weakened_guardrails_say_why_and_who, no_credentials_in_urls, lustre_cache_fits_the_fsx_api,
    node_autoscaler_fits_the_pools_and_cluster, capacity_blocks_have_not_ended,
)


def stack_problems(cfg: StackConfig) -> list[Problem]:
    return [p for rule in RULES for p in rule(cfg)]
