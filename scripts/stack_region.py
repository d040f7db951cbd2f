"""Print the AWS region of a stack (`aws:region` in stacks/Pulumi.<stack>.yaml): each stack deploys to its own
region, so the workflows read it from the stack instead of one repository-wide secret."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


def main(stack: str) -> int:
    path = Path(__file__).resolve().parent.parent / "stacks" / f"Pulumi.{stack}.yaml"
    try:
        region = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("config", {}).get("aws:region")
    except (OSError, yaml.YAMLError) as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(region, str) or not region:
        print(f"{path}: no aws:region", file=sys.stderr)
        return 2
    print(region)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]) if len(sys.argv) == 2 else 2)
