"""Pulumi names of the rendered Kubernetes objects, and the collisions `validate` must catch before `plan` does.

A name joins kind, namespace and object name with '-': team `search` with model `bge-m3` and team `search-bge` with
model `m3` both give `deployment-team-search-bge-m3`. The engine refuses a duplicate URN; `validate` renders every
object (the renderers are pure) and reports the collision with both models' places, so validate and plan agree."""

from __future__ import annotations

from fleet.errors import ConfigIssue
from fleet.render import Manifest
from fleet.render.tenancy import team_manifests
from fleet.render.workload import model_manifests
from fleet.spec.resolved import FleetSpec


def resource_name(manifest: Manifest) -> str:
    """Pulumi name: kind, namespace and name, unique in the stack and stable across runs."""
    md = manifest["metadata"]
    ns = md.get("namespace")
    return f"{manifest['kind'].lower()}-{ns + '-' if ns else ''}{md['name']}"


def secret_resource_name(namespace: str, secret: str) -> str:
    return f"secret-{namespace}-{secret}"


def name_collisions(spec: FleetSpec) -> list[ConfigIssue]:
    owners: dict[str, tuple[str, str]] = {}    # Pulumi name → (what, where)
    issues: dict[tuple[str, str], ConfigIssue] = {}   # one issue per pair of colliding owners, naming the first name

    def claim(name: str, what: str, file: str, line: int, path: str) -> None:
        if name in owners and owners[name][0] != what and (what, owners[name][0]) not in issues:
            first, where = owners[name]
            issues[(what, first)] = ConfigIssue(file, line, path, f"{what} and {first} ({where}) both render `{name}` (and more), "
                                                                  "which the engine refuses as a duplicate — rename one of them")
        owners.setdefault(name, (what, f"{file}:{line}"))

    for team in spec.teams:
        for m in team_manifests(spec.config, team):
            claim(resource_name(m), f"team {team.name}", team.source, 1, "name")
        secrets = {ref.secret for model in team.models for ref in (model.spec.api_key, model.spec.hf_token)
                   if ref is not None and ref.secret is not None}
        for secret in sorted(secrets):
            claim(secret_resource_name(team.namespace, secret), f"team {team.name}", team.source, 1, "name")
        for model in team.models:
            for m in model_manifests(spec.config, model):
                claim(resource_name(m), f"team {team.name}'s model {model.name}", model.source, model.line, model.path)
    return list(issues.values())
