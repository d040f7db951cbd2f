"""vllm-fleet: `pulumi up --stack <stack>` builds the fleet of that stack's config and stacks/teams/*.yaml."""

import pulumi

from components.program import build
from fleet.errors import ConfigError

try:
    build()
except ConfigError as exc:
    raise pulumi.RunError(str(exc)) from None
