"""vllm-fleet guardrails: a Pulumi policy pack. Rules live in importable modules (policies.rules.*);
`policies/__main__.py` only assembles the pack, because constructing a PolicyPack starts a server."""
