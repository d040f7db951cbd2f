#!/usr/bin/env python3
"""Generate the flag tables of the pinned components from their releases (fleet/catalog/components/flags/).

    python scripts/component_flags.py go [--mirrors DIR] [NAME ...]   # Go binaries: flag definitions read from the source at the tag
    python scripts/component_flags.py hf 2.0.0                        # the `hf download` options of huggingface_hub's own parser

`go` reads each release's source from a bare git snapshot of its repository (DIR/<owner>+<repo>/repo, as `fetch`
brings them; `git clone --bare` works too) with `git show TAG:PATH` and extracts every flag the files define: Go's
`flag` package (`flag.Int("name", default, usage)`, `fs.BoolVar(&v, "name", default, usage)`), pflag (`IntVarP`, the
same shapes) and urfave/cli (`&cli.StringFlag{Name: ..., Value: ..., EnvVars: ...}`). A default that names a constant
or an options struct field is resolved from the same files. `hf` installs the huggingface_hub wheel into a temporary
directory and dumps the click parameters of its `download` command. The tables are data: nothing at test time needs
a network, a mirror or the wheel.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "fleet" / "catalog" / "components" / "flags"


@dataclass(frozen=True)
class Release:
    name: str                           # <component>-<version>: the table's file name
    parser: str                         # go-flag | pflag | urfave-cli: how the binary parses its command line
    sources: tuple[tuple[str, str, str], ...]   # (owner/repo, tag, path) of every file that defines flags or defaults


CR = "kubernetes-sigs/controller-runtime"
GIE = "kubernetes-sigs/gateway-api-inference-extension"
LLMD = "llm-d/llm-d-inference-scheduler"
ZAP = "pkg/log/zap/zap.go"          # controller-runtime's zap options, bound into the binaries' flag sets

RELEASES = [
    Release("epp-v1.0.1", "go-flag", ((GIE, "v1.0.1", "cmd/epp/runner/runner.go"), (GIE, "v1.0.1", "pkg/epp/server/runserver.go"),
                                      (CR, "v0.21.0", ZAP))),
    Release("epp-v1.3.1", "pflag", ((GIE, "v1.3.1", "pkg/epp/server/options.go"), (CR, "v0.22.4", ZAP))),
    Release("bbr-v1.0.1", "go-flag", ((GIE, "v1.0.1", "cmd/bbr/main.go"), (CR, "v0.21.0", ZAP))),
    Release("bbr-v1.3.1", "go-flag", ((GIE, "v1.3.1", "cmd/bbr/runner/runner.go"), (CR, "v0.22.4", ZAP))),
    # llm-d's scheduler is GIE's runner with llm-d's plugins: v0.3.0 builds on GIE v1.0.0, v0.5.1 on v1.3.1 (go.mod)
    Release("llm-d-inference-scheduler-v0.3.0", "go-flag", ((GIE, "v1.0.0", "cmd/epp/runner/runner.go"),
                                                          (GIE, "v1.0.0", "pkg/epp/server/runserver.go"), (CR, "v0.22.0", ZAP))),
    Release("llm-d-inference-scheduler-v0.5.1", "pflag", ((GIE, "v1.3.1", "pkg/epp/server/options.go"), (CR, "v0.22.5", ZAP))),
    Release("llm-d-routing-sidecar-v0.3.0", "go-flag", (("llm-d/llm-d-routing-sidecar", "v0.3.0", "cmd/llm-d-routing-sidecar/main.go"),
                                                       (CR, "v0.22.0", ZAP))),
    Release("llm-d-routing-sidecar-v0.5.1", "go-flag", ((LLMD, "v0.5.1", "cmd/pd-sidecar/main.go"), (CR, "v0.22.5", ZAP))),
    Release("k8s-device-plugin-v0.17.4", "urfave-cli", (("NVIDIA/k8s-device-plugin", "v0.17.4", "cmd/nvidia-device-plugin/main.go"),)),
    Release("dcgm-exporter-4.4.1-4.6.0", "urfave-cli", (("NVIDIA/dcgm-exporter", "4.4.1-4.6.0", "pkg/cmd/app.go"),)),
    Release("cluster-autoscaler-v1.33.6", "go-flag", (("kubernetes/autoscaler", "cluster-autoscaler-1.33.6",
                                                        "cluster-autoscaler/config/flags/flags.go"),)),
]

GO_TYPES = {"Bool": "bool", "Int": "int", "Int64": "int", "Uint": "int", "Uint64": "int", "Float64": "float", "String": "string",
            "Duration": "duration", "IntSlice": "int-list", "StringSlice": "string-list", "StringArray": "string-list", "": "value"}
STD_CALL = re.compile(r"\bflag\.(Bool|Int|Int64|Uint|Uint64|Float64|String|Duration|StringSlice)\(")
VAR_CALL = re.compile(r"\b\w+\.(Bool|Int|Int64|Uint|Uint64|Float64|String|Duration|IntSlice|StringSlice|StringArray|)Var(P?)\(")
HELPER_CALL = re.compile(r"\bmultiStringFlag\(")     # cluster-autoscaler's repeated string flags
CLI_FLAG = re.compile(r"&cli\.(\w+)Flag\{")


def git_show(mirrors: Path, repo: str, tag: str, path: str) -> str:
    git_dir = mirrors / repo.replace("/", "+") / "repo"
    return subprocess.run(["git", "-C", str(git_dir), "show", "--end-of-options", f"{tag}:{path}"], check=True, capture_output=True, text=True).stdout


def call_args(text: str, start: int, close: str = ")") -> list[str]:
    """The top-level comma-separated arguments of the call whose opening bracket ends at `start`."""
    depth, args, cur, i = 0, [], [], start
    pairs = {"(": ")", "{": "}", "[": "]"}
    while i < len(text):
        ch = text[i]
        if ch in "\"`'":
            end = text.index(ch, i + 1) if ch == "`" else _string_end(text, i)
            cur.append(text[i:end + 1])
            i = end + 1
            continue
        if ch in pairs:
            depth += 1
        elif ch in pairs.values():
            if depth == 0 and ch == close:
                args.append("".join(cur).strip())
                return [a for a in args if a]
            depth -= 1
        elif ch == "," and depth == 0:
            args.append("".join(cur).strip())
            cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    raise ValueError("unbalanced call")


def _string_end(text: str, i: int) -> int:
    j = i + 1
    while text[j] != text[i]:
        j += 2 if text[j] == "\\" else 1
    return j


def go_string(expr: str) -> str | None:
    """The value of a Go string literal, or of a concatenation of them."""
    parts = [p.strip() for p in re.split(r"\+\s*(?=[\"`])", expr)]
    if all(re.fullmatch(r'"(?:[^"\\]|\\.)*"|`[^`]*`', p) for p in parts):
        return "".join(json.loads(p) if p.startswith('"') else p[1:-1] for p in parts)
    return None


def resolve(expr: str, texts: list[str]) -> object:
    """A default as data: literals as values; constants and options fields looked up in the sources; else the Go text."""
    expr = expr.strip()
    s = go_string(expr)
    if s is not None:
        return s
    if expr in ("true", "false"):
        return expr == "true"
    if re.fullmatch(r"-?\d+", expr):
        return int(expr)
    if re.fullmatch(r"-?\d+\.\d*", expr):
        return float(expr)
    name = expr.split(".")[-1]
    if re.fullmatch(r"(?:\w+\.)?[A-Za-z_]\w*", expr) and name not in ("DEFAULT",):
        for text in texts:
            m = re.search(rf"^\s*{re.escape(name)}\s*(?:=|:)\s*(.+?),?\s*(?://.*)?$", text, re.M)
            if m and m.group(1).strip() != expr:
                return resolve(m.group(1).strip().rstrip(","), texts)
    return {"go": expr}


def go_flags(mirrors: Path, release: Release) -> list[dict]:
    texts = [git_show(mirrors, repo, tag, path) for repo, tag, path in release.sources]
    out: dict[str, dict] = {}
    for (repo, tag, path), text in zip(release.sources, texts, strict=True):
        source = f"{repo}@{tag}:{path}"
        for m in STD_CALL.finditer(text):
            args = call_args(text, m.end())
            name = go_string(args[0])
            if name is not None:
                out.setdefault(name, {"name": name, "type": GO_TYPES[m.group(1)], "default": resolve(args[1], texts), "source": source})
        for m in VAR_CALL.finditer(text):
            args = call_args(text, m.end())
            if len(args) < 3:
                continue
            name = go_string(args[1])
            if name is None:
                continue
            rest = args[2:]
            if m.group(2):          # ...VarP(&v, "name", "shorthand", default, usage)
                rest = rest[1:]
            kind = m.group(1)
            default = resolve(rest[0], texts) if kind and len(rest) >= 2 else None
            out.setdefault(name, {"name": name, "type": GO_TYPES[kind], "default": default, "source": source})
        for m in HELPER_CALL.finditer(text):
            args = call_args(text, m.end())
            name = go_string(args[0]) if args else None
            if name is not None:
                out.setdefault(name, {"name": name, "type": "string-list", "default": None, "source": source})
        for m in CLI_FLAG.finditer(text):
            body = text[m.end():text.index("\n\t\t},", m.end())]
            fields = dict(re.findall(r"^\s*(\w+):\s*(.+?),\s*$", body, re.M))
            cli_name = str(resolve(fields["Name"], texts))
            aliases = re.findall(r'"([^"]+)"', fields.get("Aliases", ""))
            envs = re.findall(r'"([^"]+)"', fields.get("EnvVars", ""))
            kind = {"String": "string", "Bool": "bool", "Int": "int", "StringSlice": "string-list", "Duration": "duration"}.get(m.group(1), "value")
            default = resolve(fields["Value"], texts) if "Value" in fields else (False if kind == "bool" else None)
            out.setdefault(cli_name, {"name": cli_name, "type": kind, "default": default, "aliases": aliases, "env": envs, "source": source})
    return sorted(out.values(), key=lambda f: f["name"])


def write(name: str, table: dict) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def cmd_go(args: argparse.Namespace) -> int:
    for release in RELEASES:
        if args.names and release.name not in args.names:
            continue
        flags = go_flags(Path(args.mirrors), release)
        path = write(release.name, {"generated_by": "scripts/component_flags.py go", "parser": release.parser,
                                    "sources": [f"{r}@{t}:{p}" for r, t, p in release.sources], "flags": flags})
        print(f"{path.relative_to(ROOT)}: {len(flags)} flags")
    return 0


HF_DUMP = """
import json, sys
import huggingface_hub
from huggingface_hub.cli.hf import app
cmd = app.commands["download"]
cmd = cmd.materialize() if hasattr(cmd, "materialize") else cmd   # 2.x registers commands lazily (LazyHfCommand)
opts = []
for p in cmd.params:
    if p.param_type_name != "option":
        continue
    opts.append({"name": max(p.opts, key=len).lstrip("-"), "aliases": sorted(o for o in p.opts + p.secondary_opts),
                 "type": "bool" if p.is_flag else ("string-list" if p.multiple else p.type.name),
                 "default": p.default if isinstance(p.default, (str, int, float, bool, type(None))) else repr(p.default),
                 "env": [p.envvar] if isinstance(p.envvar, str) else list(p.envvar or [])})
json.dump({"version": huggingface_hub.__version__, "options": sorted(opts, key=lambda o: o["name"])}, sys.stdout)
"""


def cmd_hf(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", tmp, "--", f"huggingface_hub=={args.version}"], check=True)
        dump = subprocess.run([sys.executable, "-c", HF_DUMP], check=True, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": tmp}).stdout
    data = json.loads(dump)
    source = f"huggingface/huggingface_hub@v{data['version']}:src/huggingface_hub/cli/download.py"
    flags = [{**o, "source": source} for o in data["options"]]
    path = write(f"hf-cli-{data['version']}", {"generated_by": f"scripts/component_flags.py hf {args.version} (the wheel's click parser)",
                                                 "parser": "click", "command": "hf download", "sources": [source], "flags": flags})
    print(f"{path.relative_to(ROOT)}: {len(flags)} options")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    go = sub.add_parser("go", help="Go releases, from their source at the tag")
    go.add_argument("--mirrors", default=os.environ.get("COMPONENT_MIRRORS", "/work/.mirror"),
                    help="directory of bare repositories named <owner>+<repo>/repo")
    go.add_argument("names", nargs="*", help="only these tables (e.g. epp-v1.3.1)")
    hf = sub.add_parser("hf", help="the Hugging Face CLI, from the wheel's parser")
    hf.add_argument("version")
    args = ap.parse_args()
    return cmd_go(args) if args.cmd == "go" else cmd_hf(args)


if __name__ == "__main__":
    sys.exit(main())
