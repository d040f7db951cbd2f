"""vllm-fleet: `pulumi up --stack <stack>` builds the fleet described by stacks/Pulumi.<stack>.yaml + stacks/teams/."""

import pulumi

from components import Fleet
from fleet.errors import ConfigError
from fleet.spec.loader import load

try:
    spec = load(pulumi.get_stack())
except ConfigError as exc:
    raise pulumi.RunError(str(exc)) from None

fleet = Fleet("fleet", spec)
pulumi.export("teams", [t.name for t in spec.teams])
pulumi.export("models", {f"{m.team}/{m.name}": m.namespace for m in spec.models})
