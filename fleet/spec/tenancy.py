"""`stacks/tenancy.yaml`: what each team may use — its GPU quota per stack, the group given edit rights in its
namespace, the secrets it may reference, the S3 prefixes its pods may read. The platform team owns the file
(.github/CODEOWNERS), so a team's own file, which the team approves, cannot raise its quota, widen its RBAC, reach
another team's secrets or grant its pods read access to a bucket."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints, ValidationError

from fleet.errors import ConfigIssue
from fleet.spec.base import Name, Strict
from fleet.spec.pydantic_errors import translate
from fleet.spec.s3 import S3Uri
from fleet.spec.stack import SecretName
from fleet.spec.team import StackName
from fleet.yamlsrc import Located, load_file

TENANCY_FILE = FsPath("stacks") / "tenancy.yaml"
# Groups Kubernetes and EKS give cluster-wide powers (system:masters is cluster-admin): never a team's.
RESERVED_GROUP_PREFIXES = ("system:", "eks:", "kubeadm:")


def _not_reserved(group: str) -> str:
    if group.lower().startswith(RESERVED_GROUP_PREFIXES):
        raise ValueError(f"'{group}' is a Kubernetes or EKS system group (system:*, eks:*, kubeadm:*), which carries "
                         "cluster-wide rights — name the team's own identity-provider group")
    return group


RbacGroup = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9:._@/\-]{0,127}$"), AfterValidator(_not_reserved)]


class TeamGrant(Strict):
    gpu_quota: dict[StackName, Annotated[int, Field(ge=0, le=100000)]] = Field(
        description="GPU quota per stack (`requests.nvidia.com/gpu`). The team is deployed only in the stacks listed here.")
    rbac_group: RbacGroup | None = Field(None, description="Kubernetes group given edit rights in the team namespace (not a "
                                                           "system:*, eks:* or kubeadm:* group). Default `vllm-fleet:<team>`.")
    secrets: list[SecretName] = Field(default_factory=list, description="Secrets of `vllm-fleet:secrets` the team's models may "
                                                                        "reference (`api_key`, `hf_token`); any other is refused.")
    data_sources: list[S3Uri] = Field(default_factory=list, description="S3 prefixes (`s3://bucket/prefix/`) the team's pods may "
                                                                       "read, e.g. LoRA adapters; an adapter anywhere else is refused, "
                                                                       "and the IAM role that copies one reads only its own prefix.")


class Tenancy(Strict):
    """`stacks/tenancy.yaml`, owned by the platform team."""

    teams: dict[Name, TeamGrant] = Field(default_factory=dict, description="Per team (the name of its file under stacks/teams/).")


@dataclass(frozen=True)
class Grants:
    tenancy: Tenancy
    source: Located = field(default_factory=lambda: Located(str(TENANCY_FILE), None))

    def of(self, team: str) -> TeamGrant | None:
        return self.tenancy.teams.get(team)

    def line(self, team: str, *path: str | int) -> int:
        return self.source.line_of(("teams", team, *path))


def load_tenancy(root: FsPath) -> tuple[Grants | None, list[ConfigIssue]]:
    path = root / TENANCY_FILE
    display = str(TENANCY_FILE)
    if not path.exists():
        return None, [ConfigIssue(display, 0, "", "missing: the platform team grants each team its GPU quota, RBAC group and "
                                                  "secrets here (see docs/configuration.md)")]
    src, issues = load_file(str(path), display, inside=root)
    if issues:
        return None, issues
    if not isinstance(src.data, dict):
        return None, [ConfigIssue(display, 1, "", "expected a mapping with a `teams:` key")]
    try:
        return Grants(Tenancy.model_validate(src.data), src), []
    except ValidationError as exc:
        return None, translate(exc, Tenancy, src, "")
