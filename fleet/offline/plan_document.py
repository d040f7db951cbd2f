"""The plan as a document: what `plan --format json` prints and `--out` writes as plan.json, and what
`plan --base` reads back from the other checkout. One versioned schema; fields added by later versions have
defaults, so a plan written by an earlier version still reads."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PLAN_SCHEMA_VERSION = 2


class Entry(BaseModel):
    # A plan written by another version may carry fields this one does not know: they are not ours to refuse.
    model_config = ConfigDict(extra="ignore")


class ResourceEntry(Entry):
    urn: str
    type: str
    name: str
    team: str | None = None
    kind: str
    namespace: str | None = None
    protect: bool = False
    retain_on_delete: bool = False
    custom_timeouts: dict[str, int] = Field(default_factory=dict)   # create/update/delete in seconds, where set
    secret_paths: list[str] = Field(default_factory=list)
    inputs: dict[str, Any] = Field(default_factory=dict)


class FindingEntry(Entry):
    rule_id: str
    level: str
    urn: str
    resource: str
    message: str
    remediation: str = ""


class SchemaProblemEntry(Entry):
    urn: str
    kind: str
    name: str
    path: str
    message: str


class TeamEntry(Entry):
    team: str
    gpu_quota: int = 0
    models: int = 0
    gpus_min: int = 0
    gpus_max: int = 0
    nodes_min: int = 0
    nodes_max: int = 0
    usd_per_hour_min: float | None = 0.0          # None: none of the team's models is priced (never a $0.00)
    usd_per_hour_max: float | None = 0.0
    unpriced_models: list[str] = Field(default_factory=list)
    quota_left_at_max: int = 0


class ModelEntry(Entry):
    team: str
    model: str
    hf_id: str
    pool: str
    instance_type: str
    gpu: str
    tensor_parallel_size: int
    pipeline_parallel_size: int
    gpus_per_replica: int
    nodes_per_replica: int
    min_replicas: int
    max_replicas: int
    workload: str
    routing: str = "service"                      # gateway (InferencePool + endpoint picker) | service
    pd_role: str | None = None                    # prefill | decode for the two workloads of a disaggregated model
    kv_offload_gib: float | None = None           # host memory for offloaded KV blocks per replica pod
    kv_offload_tokens: int | None = None          # tokens that memory holds (beside the GPU's kv_cache_tokens)
    sizing: dict[str, Any] | None = None
    deploy_time: dict[str, Any] | None = None     # fleet.deploy_time.DeployTime: estimates and timeouts, seconds
    slo: dict[str, Any] | None = None             # the team file's targets and the predicted curve at max replicas


class WeakenedEntry(Entry):
    """A guardrail the stack weakens, with what it records for review: the whole pack lowered (scope `pack`), a rule
    lowered or disabled (`rule`), one object exempted from a rule (`exemption`)."""

    scope: str
    rule: str = ""
    resource: str = ""
    level: str = ""
    reason: str | None = None
    owner: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.scope, self.rule, self.resource)


class PoolEntry(Entry):
    pool: str
    capacity_type: str
    gpu_capacity: int
    gpus_at_max: int
    headroom: int
    gpus_at_up: int = 0      # GPUs the pool can have while `pulumi up` waits for the pods (docs/capacity.md)
    gpus_at_min: int = 0     # GPUs its models need at min replicas


class Summary(Entry):
    resources: int
    kubernetes_objects: int
    teams: int
    models: int
    gpus_min: int
    gpus_max: int
    gpu_quota: int
    usd_per_hour_min: float | None                # None: no model of the stack is priced; else the priced models' sum
    usd_per_hour_max: float | None
    unpriced_models: int = 0                      # models without a rate (the sums above leave them out)
    mandatory_findings: int
    advisory_findings: int
    invalid_manifests: int
    exit_code: int


class PlanDocument(Entry):
    schema_version: int = 1
    stack: str
    region: str
    cluster: str
    tier: str
    enforcement: str
    vllm_version: str
    kubernetes_version: str
    resources: list[ResourceEntry]
    findings: list[FindingEntry]
    schema_problems: list[SchemaProblemEntry] = Field(default_factory=list)
    unknown_at_preview: dict[str, list[str]] = Field(default_factory=dict)
    teams: list[TeamEntry] = Field(default_factory=list)
    models: list[ModelEntry] = Field(default_factory=list)
    pools: list[PoolEntry] = Field(default_factory=list)
    spare_gpus: int = 0
    cost_warnings: list[str] = Field(default_factory=list)
    config_notes: list[str] = Field(default_factory=list)
    weakened_guardrails: list[WeakenedEntry] = Field(default_factory=list)
    summary: Summary

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
