"""Entry point for `pulumi preview --policy-pack policies`: only assembles the pack (constructing a
PolicyPack starts the analyzer server and blocks). Per-stack levels and settings come from
`--policy-pack-config`, written by `vllm-fleet policy-config --stack S`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policies.rules import RULES

PolicyPack(
    name="vllm-fleet-guardrails",
    enforcement_level=EnforcementLevel.ADVISORY,
    policies=[r.policy for r in RULES],
)
