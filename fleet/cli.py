"""`vllm-fleet`: plan, validate and schema (exit 0 clean, 1 mandatory finding or invalid manifest, 2 config error)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK, EXIT_FINDINGS, EXIT_CONFIG = 0, 1, 2


def find_root(start: Path) -> Path:
    for d in (start, *start.parents):
        if (d / "Pulumi.yaml").exists() and (d / "stacks").is_dir():
            return d
    return start


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="vllm-fleet",
        description="Plan, validate and check vLLM fleets on Kubernetes without a cluster or the Pulumi CLI.",
        epilog="Exit codes: 0 clean, 1 a mandatory policy finding or an invalid manifest, 2 a config error.")
    ap.add_argument("--root", type=Path, default=None,
                    help="project directory (default: the nearest parent with Pulumi.yaml and stacks/)")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    plan = sub.add_parser("plan", help="run the program under Pulumi's mocks, apply the policies, validate every manifest",
                          description="Show what `pulumi up --stack S` would create: resources per team and kind, "
                                      "models, GPU totals and policy findings. Writes one YAML file per Kubernetes "
                                      "object plus plan.json when --out is given.")
    plan.add_argument("--stack", required=True, help="stack name: stacks/Pulumi.<stack>.yaml")
    plan.add_argument("--out", type=Path, default=None, help="write manifests/ and plan.json into this directory")
    plan.add_argument("--format", choices=("table", "json", "markdown"), default="table", help="report format (default table)")
    plan.add_argument("--no-policies", action="store_true", help="skip the policy pack (schema validation still runs)")

    val = sub.add_parser("validate", help="check the stack and team files only (fast, no program run)")
    val.add_argument("--stack", required=True, help="stack name: stacks/Pulumi.<stack>.yaml")

    sch = sub.add_parser("schema", help="regenerate stacks/schema/*.json and docs/configuration.md from the models")
    sch.add_argument("--check", action="store_true", help="exit 1 when the committed files are stale instead of writing")
    return ap


def _config_error(exc: Exception) -> int:
    print(str(exc), file=sys.stderr)
    return EXIT_CONFIG


def cmd_plan(args: argparse.Namespace, root: Path) -> int:
    from rich.console import Console

    from fleet.errors import ConfigError
    from fleet.plan import make_plan, write_outputs
    from fleet.report import document, markdown, print_table

    try:
        plan = make_plan(args.stack, root, policies=not args.no_policies)
    except ConfigError as exc:
        return _config_error(exc)
    doc = document(plan)
    if args.out is not None:
        write_outputs(plan, args.out, doc)
    if args.format == "json":
        print(json.dumps(doc, indent=2, sort_keys=True))
    elif args.format == "markdown":
        print(markdown(doc), end="")
    else:
        print_table(doc, Console(highlight=False, width=160))
    return plan.exit_code


def cmd_validate(args: argparse.Namespace, root: Path) -> int:
    from fleet.errors import ConfigError
    from fleet.spec.loader import load

    try:
        spec = load(args.stack, root)
    except ConfigError as exc:
        return _config_error(exc)
    print(f"stack {spec.stack}: {len(spec.teams)} teams, {len(spec.models)} models — config valid")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace, root: Path) -> int:
    from fleet import schema

    if args.check:
        stale = schema.stale_files(root)
        for p in stale:
            print(f"stale: {p.relative_to(root)} — run `vllm-fleet schema`", file=sys.stderr)
        return 1 if stale else 0
    for p in schema.write(root):
        print(f"wrote {p.relative_to(root)}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = (args.root or find_root(Path.cwd())).resolve()
    handlers = {"plan": cmd_plan, "validate": cmd_validate, "schema": cmd_schema}
    return handlers[args.command](args, root)


if __name__ == "__main__":
    sys.exit(main())
