#!/usr/bin/env python3
"""Record the built-in tool-call parsers of vLLM releases from their source (fleet/catalog/vllm/tool-parsers.json).

    python scripts/vllm_tool_parsers.py 0.32.0 0.33.0 0.34.0     # downloads each release's sdist from PyPI

vLLM refuses to start with `--enable-auto-tool-choice` and a `--tool-call-parser` it has not registered
(validate_api_server_args, vllm@v0.34.0:vllm/entrypoints/common/cli_args.py). The built-in names are the keys of
`_TOOL_PARSERS_TO_REGISTER` in vllm/tool_parsers/__init__.py, read here with `ast` (nothing of vLLM is imported).
Run it for every release `vllm-fleet upgrade vllm` adds: a test requires an entry for each bundled flag table.
"""

from __future__ import annotations

import ast
import io
import json
import sys
import tarfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleet.versions import parse_version

OUT = Path(__file__).resolve().parent.parent / "fleet" / "catalog" / "vllm" / "tool-parsers.json"
MEMBER = "vllm/tool_parsers/__init__.py"


def sdist_url(version: str) -> str:
    req = urllib.request.Request("https://pypi.org/simple/vllm/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        files = json.load(resp)["files"]
    name = f"vllm-{version}.tar.gz"
    for f in files:
        if f["filename"] == name:
            return str(f["url"])
    raise SystemExit(f"{name} is not on PyPI")


def parsers_in(source: str) -> list[str]:
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_TOOL_PARSERS_TO_REGISTER" for t in node.targets):
            if not isinstance(node.value, ast.Dict):
                break
            return sorted(k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str))
    raise SystemExit(f"{MEMBER}: no _TOOL_PARSERS_TO_REGISTER dict — the registry moved; read the release and update this script")


def release_parsers(version: str) -> list[str]:
    with urllib.request.urlopen(sdist_url(version), timeout=300) as resp:
        data = resp.read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = tar.extractfile(f"vllm-{version}/{MEMBER}")
        if member is None:
            raise SystemExit(f"vllm-{version}: no {MEMBER}")
        return parsers_in(member.read().decode())


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    doc = json.loads(OUT.read_text()) if OUT.exists() else {"versions": {}}
    for version in argv:
        doc["versions"][version] = release_parsers(version)
        print(f"vLLM {version}: {len(doc['versions'][version])} tool-call parsers")
    doc["source"] = ("keys of _TOOL_PARSERS_TO_REGISTER in vllm@v<version>:vllm/tool_parsers/__init__.py, read from the "
                     "release's sdist by scripts/vllm_tool_parsers.py")
    doc["versions"] = dict(sorted(doc["versions"].items(), key=lambda kv: parse_version(kv[0])))
    OUT.write_text(json.dumps({"source": doc["source"], "versions": doc["versions"]}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
