"""Generate the `vllm serve` option table and metric names of one vLLM release from vLLM itself.

    vllm-fleet upgrade vllm 0.34.0                      # generates the table when it is not bundled, then upgrades
    python scripts/vllm_flags.py generate 0.34.0        # the table alone → fleet/catalog/vllm/flags-0.34.0.json
    python scripts/vllm_flags.py dump                   # inside an environment where vllm imports

`generate` fetches the release's wheel first (`pip download --no-deps`: an unknown version or an unreachable index
fails here, in seconds), then creates a virtual environment in a temporary directory, installs torch (CPU) and the
pure-Python dependencies of fleet/catalog/vllm/parser-requirements.txt without resolving vLLM's GPU dependencies,
installs the wheel with `--no-deps`, runs `dump` there with VLLM_TARGET_DEVICE=cpu, and writes the table. The table
is data: tests and the compiler read it, nothing imports vLLM. pip is configured as usual (PIP_INDEX_URL,
pip.conf); `index_url` overrides the index.

This module imports only the standard library at the top: `dump` runs it inside the throwaway environment.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE.parent / "catalog" / "vllm"
REQUIREMENTS = OUT_DIR / "parser-requirements.txt"
TORCH = "torch==2.13.0"   # the CPU build is enough to import vLLM's argument parser
METRIC_RE = re.compile(r"""["'](vllm:[a-z0-9_]+)["']""")
VERSION_RE = re.compile(r"^\d+\.\d+(\.\d+)?$")


class GenerationError(Exception):
    """The table could not be generated; the message says why and what to do (nothing was written)."""


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value):
        return list(value)
    if isinstance(value, dict) and all(isinstance(v, (bool, int, float, str)) for v in value.values()):
        return {str(k): v for k, v in value.items()}
    return repr(value)


PARSER_MODULES = (  # where `make_arg_parser` lives, newest layout first
    "vllm.entrypoints.common.cli_args",     # 0.33, 0.34
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
        "generated_by": "fleet/vllm/table_gen.py",
        "parser_allow_abbrev": parser.allow_abbrev,
        "positional": [a.dest for a in parser._actions if not a.option_strings],
        "options": options,
        "metrics": sorted(metrics),
        "tool_parsers": _tool_parsers(),
    }


def _tool_parsers() -> list[str] | None:
    """The release's registered tool-call parsers (what validate_api_server_args accepts); None where the registry
    is not where 0.32-0.34 keep it."""
    try:
        from vllm.tool_parsers import ToolParserManager
    except ImportError:
        return None
    return sorted(ToolParserManager.list_registered())


# What pip prints when it cannot reach the index at all (no network, a wrong proxy or index URL), as opposed to an
# index that answers without the release.
UNREACHABLE = ("Failed to establish a new connection", "Network is unreachable", "Name or service not known",
               "Temporary failure in name resolution", "Connection refused", "ConnectTimeoutError", "Read timed out",
               "ProxyError", "SSLError", "Could not fetch URL", "No route to host")


def _pip(py: Path | str, args: list[str], index_url: str | None) -> subprocess.CompletedProcess[str]:
    """`pip ARGS`; pip's own settings go in its environment (PIP_INDEX_URL, PIP_DISABLE_PIP_VERSION_CHECK), so the
    caller's `--` ends every option and the operands follow it."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **({"PIP_INDEX_URL": index_url} if index_url is not None else {})}
    return subprocess.run([str(py), "-m", "pip", *args], capture_output=True, text=True, check=False, env=env)


def _last_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip().startswith("ERROR:")]
    return (lines[-1] if lines else (output.strip().splitlines() or ["(no output)"])[-1]).removeprefix("ERROR: ")


def _index(index_url: str | None) -> str:
    return index_url or os.environ.get("PIP_INDEX_URL") or "PyPI (pip's configured index)"


def _download_failure(version: str, result: subprocess.CompletedProcess[str], index_url: str | None) -> GenerationError:
    output = result.stdout + result.stderr
    where = _index(index_url)
    found = re.search(r"\(from versions: ([^)]*)\)", output)
    releases = [v.strip() for v in found.group(1).split(",") if VERSION_RE.match(v.strip())] if found else []
    if not releases and any(sign in output for sign in UNREACHABLE):
        return GenerationError(f"cannot reach the package index {where} to fetch vllm=={version} — connect this machine to "
                               "PyPI, or point PIP_INDEX_URL at a mirror that has the release, then run the command again")
    if found or "No matching distribution" in output:
        known = f" (its newest: {', '.join(releases[-3:])})" if releases else ""
        return GenerationError(f"vLLM {version} is not on the package index {where}{known} — check the version "
                               "(https://pypi.org/project/vllm/#history)")
    return GenerationError(f"pip could not fetch vllm=={version} from {where}: {_last_error(output)}")


def generate(version: str, out_dir: Path = OUT_DIR, requirements: Path = REQUIREMENTS, keep: Path | None = None,
             index_url: str | None = None) -> Path:
    """Write `out_dir/flags-<version>.json` from vLLM `version`'s own parser and return its path. Raises GenerationError
    (nothing written) when the release cannot be fetched or its parser read."""
    if not VERSION_RE.match(version):
        raise GenerationError(f"'{version}' is not a vLLM release (like 0.34.0)")
    if not requirements.is_file():
        raise GenerationError(f"{requirements}: missing — the parser's dependencies are listed there (restore it from git)")
    # absolute, so that no path handed to venv or pip can read as an option
    workdir = (keep or Path(tempfile.mkdtemp(prefix=f"vllm-{version}-"))).resolve()
    try:
        return _generate(version, workdir, out_dir, requirements, index_url)
    finally:
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _generate(version: str, workdir: Path, out_dir: Path, requirements: Path, index_url: str | None) -> Path:
    wheels = workdir / "wheels"
    wheel = sorted(wheels.glob(f"vllm-{version}-*.whl")) if wheels.is_dir() else []
    if not wheel:
        # -vv: pip says why an index failed ("Could not fetch URL …: connection error") only when this verbose.
        got = _pip(sys.executable, ["download", "-vv", "--no-deps", "--only-binary", ":all:", "-d", str(wheels), "--", f"vllm=={version}"],
                   index_url)
        wheel = sorted(wheels.glob(f"vllm-{version}-*.whl")) if wheels.is_dir() else []
        if got.returncode != 0 or not wheel:
            raise _download_failure(version, got, index_url)
    venv = workdir / "venv"
    py = venv / "bin" / "python"
    if not (venv / "vllm-installed").exists():
        made = subprocess.run([sys.executable, "-m", "venv", "--", str(venv)], capture_output=True, text=True, check=False)
        if made.returncode != 0:
            raise GenerationError(f"cannot create a virtual environment in {venv}: {_last_error(made.stdout + made.stderr)}")
        deps = _pip(py, ["install", "-q", "--no-deps", "-r", str(requirements), "--", TORCH, "yarl"], index_url)
        if deps.returncode != 0:
            output = deps.stdout + deps.stderr
            why = "the package index is unreachable" if any(s in output for s in UNREACHABLE) else _last_error(output)
            raise GenerationError(f"installing the parser's dependencies ({requirements.name}) failed: {why} — connect to PyPI "
                                  "or a mirror (PIP_INDEX_URL) and run the command again")
        inst = _pip(py, ["install", "-q", "--no-deps", "--", str(wheel[0])], None)
        if inst.returncode != 0:
            raise GenerationError(f"installing {wheel[0].name} failed: {_last_error(inst.stdout + inst.stderr)}")
        (venv / "vllm-installed").touch()
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu"}
    # -I: the dump must import the environment's vllm, not this package's directory.
    result = subprocess.run([str(py), "-I", str(Path(__file__).resolve()), "dump"], capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise GenerationError(f"vLLM {version}'s parser could not be read: {_last_error(result.stderr)} — if its module moved, "
                              "add the new one to PARSER_MODULES in fleet/vllm/table_gen.py (or a missing dependency to "
                              f"{requirements.name})")
    try:
        table = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise GenerationError(f"vLLM {version}'s parser dump is not JSON: {result.stdout[:200]!r}") from None
    if table.get("vllm_version") != version:
        raise GenerationError(f"the environment imported vLLM {table.get('vllm_version')}, not {version} — remove {workdir} and retry")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"flags-{version}.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("dump", help="print the table of the vLLM importable here as JSON")
    gen = sub.add_parser("generate", help="install VERSION in a throwaway venv and write its table")
    gen.add_argument("version")
    gen.add_argument("--requirements", type=Path, default=REQUIREMENTS)
    gen.add_argument("--venv-dir", type=Path, default=None, help="reuse/keep the environment here")
    gen.add_argument("--index-url", default=None, help="package index to fetch vLLM and its parser's dependencies from")
    args = ap.parse_args()
    if args.cmd == "dump":
        import warnings

        warnings.simplefilter("ignore")
        json.dump(dump(), sys.stdout)
        return 0
    try:
        print(generate(args.version, OUT_DIR, args.requirements, args.venv_dir, args.index_url))
    except GenerationError as exc:
        print(f"generate {args.version}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
