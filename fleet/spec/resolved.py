"""A stack after loading: every team's models with per-stack overrides applied and derived values filled."""

from __future__ import annotations

from dataclasses import dataclass

from fleet.capacity.memory import Arch, Sizing
from fleet.catalog import InstanceType
from fleet.spec.stack import GpuPool, StackConfig
from fleet.spec.team import ModelSpec


@dataclass(frozen=True)
class ResolvedModel:
    """A model of one team in one stack, overrides applied and derived values filled."""

    team: str
    namespace: str
    source: str
    spec: ModelSpec
    pool: GpuPool
    instance: InstanceType
    gpus_per_replica: int
    nodes_per_replica: int
    gpus_per_pod: int
    min_replicas: int
    max_replicas: int
    sizing: Sizing | None = None      # None when the architecture is unknown (not in the catalog, none given)
    arch: Arch | None = None
    line: int = 0                     # where the model is declared in `source`, and its field path, for errors
    path: str = ""
    routing: str = "service"          # gateway: InferencePool + endpoint picker; service: the model's Service
    pd_role: str | None = None        # prefill | decode: one role of a model with disaggregated prefill (name `<group>-<role>`)
    group: str = ""                   # the model's name in the team file (a P/D model's two roles share it)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pool_name(self) -> str:
        """The InferencePool (and endpoint picker) the model's pods belong to: one per model, both roles of a P/D model."""
        return self.group or self.spec.name

    @property
    def served_names(self) -> list[str]:
        """What clients send as `model`: the served names (default the model id) and the LoRA adapters."""
        names = list(self.spec.served_model_name or [self.spec.model])
        if self.spec.lora is not None:
            names += [m.name for m in self.spec.lora.modules]
        return names

    @property
    def multi_node(self) -> bool:
        return self.nodes_per_replica > 1

    @property
    def autoscaled(self) -> bool:
        return self.spec.autoscaling is not None


@dataclass(frozen=True)
class ResolvedTeam:
    name: str
    namespace: str
    source: str
    owners: tuple[str, ...]
    rbac_group: str
    gpu_quota: int
    models: tuple[ResolvedModel, ...]


@dataclass(frozen=True)
class FleetSpec:
    stack: str
    root: str
    source: str
    config: StackConfig
    teams: tuple[ResolvedTeam, ...]
    notes: tuple[str, ...] = ()       # what the loader could not know offline (values an ESC environment provides)

    @property
    def models(self) -> list[ResolvedModel]:
        return [m for t in self.teams for m in t.models]
