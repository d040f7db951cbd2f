#!/usr/bin/env python3
"""Generate the `vllm serve` option table and metric names of one vLLM version from vLLM itself.

    python scripts/vllm_flags.py generate 0.33.0        # throwaway venv → fleet/catalog/vllm/flags-0.33.0.json
    python scripts/vllm_flags.py dump                   # inside an environment where vllm imports

`generate` creates a virtual environment in a temporary directory, installs torch (the CPU build on
this machine's disk) and the pure-Python dependencies listed in `--requirements` without resolving
vLLM's GPU dependencies, installs vLLM with `--no-deps`, runs `dump` there with VLLM_TARGET_DEVICE=cpu,
and writes the table. The table is data: tests and the compiler read it, nothing imports vLLM.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "fleet" / "catalog" / "vllm"
DEFAULT_REQUIREMENTS = ROOT.parent / "shared" / "vllm" / "parser-requirements.txt"
METRIC_RE = re.compile(r"""["'](vllm:[a-z0-9_]+)["']""")


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value):
        return list(value)
    if isinstance(value, dict) and all(isinstance(v, (bool, int, float, str)) for v in value.values()):
        return {str(k): v for k, v in value.items()}
    return repr(value)


PARSER_MODULES = (  # where `make_arg_parser` lives, newest layout first
    "vllm.entrypoints.common.cli_args",     # 0.33
    "vllm.entrypoints.launchers.cli_args",  # 0.32
    "vllm.entrypoints.openai.cli_args",     # up to 0.31
)
ARGPARSE_MODULES = ("vllm.utils.argparse_utils", "vllm.utils")


def _parser():
    import importlib

    def first(modules: tuple[str, ...], attr: str):
        for name in modules:
            try:
                return getattr(importlib.import_module(name), attr)
            except (ImportError, AttributeError):
                continue
        raise ImportError(f"{attr} not found in {', '.join(modules)}")

    make_arg_parser = first(PARSER_MODULES, "make_arg_parser")
    flexible = first(ARGPARSE_MODULES, "FlexibleArgumentParser")
    return make_arg_parser(flexible())


def dump() -> dict:
    import vllm

    parser = _parser()
    options = []
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        negative = sorted(getattr(action, "negative_option_strings", None) or
                          [o for o in action.option_strings if o.startswith("--no-")] if
                          isinstance(action, argparse.BooleanOptionalAction) else [])
        positive = [o for o in action.option_strings if o not in negative]
        long = [o for o in positive if o.startswith("--")]
        choices = None
        if action.choices is not None:
            choices = [str(c) for c in action.choices]
        takes_value = action.nargs != 0
        type_name = getattr(action.type, "__name__", None) if action.type is not None else None
        options.append({
            "flag": long[0] if long else positive[0],
            "aliases": [o for o in positive if o != (long[0] if long else positive[0])],
            "negations": negative,
            "dest": action.dest,
            "action": type(action).__name__,
            "type": type_name,
            "choices": choices,
            "nargs": action.nargs if action.nargs is None or isinstance(action.nargs, (int, str)) else str(action.nargs),
            "takes_value": takes_value,
            "default": _jsonable(action.default),
            "deprecated": bool(getattr(action, "deprecated", False)),
        })
    options.sort(key=lambda o: o["flag"])
    pkg = Path(vllm.__file__).parent
    metrics: set[str] = set()
    for sub in ("v1/metrics", "v1/spec_decode", "v1/engine"):
        for path in (pkg / sub).rglob("*.py") if (pkg / sub).exists() else []:
            metrics.update(METRIC_RE.findall(path.read_text(encoding="utf-8", errors="replace")))
    return {
        "vllm_version": vllm.__version__,
        "generated_by": "scripts/vllm_flags.py",
        "parser_allow_abbrev": parser.allow_abbrev,
        "positional": [a.dest for a in parser._actions if not a.option_strings],
        "options": options,
        "metrics": sorted(metrics),
    }


def generate(version: str, requirements: Path, keep: Path | None) -> Path:
    workdir = keep or Path(tempfile.mkdtemp(prefix=f"vllm-{version}-"))
    venv = workdir / "venv"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "torch==2.13.0", "yarl",
                        "-r", str(requirements)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", f"vllm=={version}"], check=True)
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu"}
    result = subprocess.run([str(py), __file__, "dump"], check=True, capture_output=True, text=True, env=env)
    table = json.loads(result.stdout)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"flags-{table['vllm_version']}.json"
    out.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("dump", help="print the table of the vLLM importable here as JSON")
    gen = sub.add_parser("generate", help="install VERSION in a throwaway venv and write its table")
    gen.add_argument("version")
    gen.add_argument("--requirements", type=Path, default=DEFAULT_REQUIREMENTS)
    gen.add_argument("--venv-dir", type=Path, default=None, help="reuse/keep the environment here")
    args = ap.parse_args()
    if args.cmd == "dump":
        import warnings

        warnings.simplefilter("ignore")
        json.dump(dump(), sys.stdout)
        return 0
    print(generate(args.version, args.requirements, args.venv_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
