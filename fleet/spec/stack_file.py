"""Read `stacks/Pulumi.<stack>.yaml` the way the Pulumi CLI does, into the config the engine would hand the
program (fleet.spec.engine_config.EngineConfig).

What the CLI accepts is accepted: the top-level `config`, `encryptionsalt` (passphrase backends),
`secretsprovider`, `encryptedkey` and `environment` (ESC imports); keys without a namespace belong to the
project (`spare_gpus` is `vllm-fleet:spare_gpus`). Values become what the engine passes: scalars as strings,
maps and lists as JSON. Secrets (`secure:` values) are never decrypted: offline they are masked and listed as
secret keys; values an imported environment provides are unknown offline and said so.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import difflib
import json
import re
from pathlib import Path as FsPath
from typing import Any

from fleet.errors import ConfigIssue, format_path
from fleet.spec.engine_config import NAMESPACE, SECRETS_KEY, EngineConfig, empty_secret_fix
from fleet.spec.pydantic_errors import secret_fix
from fleet.yamlsrc import Located, Path, load_file

TOP_LEVEL = ("config", "encryptionsalt", "secretsprovider", "encryptedkey", "environment")
SECRET_MASK = "[secret]"


STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")


def stack_path(root: FsPath, stack: str) -> FsPath:
    return root / "stacks" / f"Pulumi.{stack}.yaml"


def known_stacks(root: FsPath) -> list[str]:
    return sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (root / "stacks").glob("Pulumi.*.yaml"))


def display_path(root: FsPath, path: FsPath) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _cli_string(value: Any) -> str:
    """A scalar as the engine hands it to the program."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def looks_like_ciphertext(text: str) -> bool:
    """Whether a `secure:` value has the shape a Pulumi secrets provider writes: `v1:<nonce>:<ciphertext>` (the
    passphrase and cloud KMS providers) or a base64 blob (Pulumi Cloud), never a word like "placeholder"."""
    if "placeholder" in text.lower() or "changeme" in text.lower():
        return False
    parts = text.split(":")
    blobs = parts[1:] if parts[0] == "v1" else parts
    try:
        return all(len(b) >= 8 and base64.b64decode(b, validate=True) for b in blobs) and len(blobs) in (1, 2)
    except (binascii.Error, ValueError):
        return False


def _secure(value: Any) -> str | None:
    return value["secure"] if isinstance(value, dict) and set(value) == {"secure"} and isinstance(value["secure"], str) else None


class _Reader:
    def __init__(self, src: Located, stack: str) -> None:
        self.src = src
        self.stack = stack
        self.issues: list[ConfigIssue] = []
        self.warnings: list[ConfigIssue] = []

    def issue(self, path: Path, message: str, warning: bool = False) -> None:
        (self.warnings if warning else self.issues).append(ConfigIssue(self.src.file, self.src.line_of(path), format_path(path), message))

    def masked(self, value: Any, path: Path) -> tuple[Any, bool]:
        """The value with every `secure:` leaf masked, and whether it held one."""
        ciphertext = _secure(value)
        if ciphertext is not None:
            if not ciphertext.strip():
                # Refused like a missing secret: the engine would hand the program an empty value (or fail to decrypt
                # nothing), and the server would start with an empty API key or token.
                self.issue(path, f"the secret is empty — {empty_secret_fix(self.stack, _config_key(path))}")
            elif not looks_like_ciphertext(ciphertext):
                self.issue(path, "this ciphertext looks like a placeholder: the engine cannot decrypt it — set the real value "
                                 f"with `pulumi config set --stack {self.stack} --secret --path '{_config_key(path)}' <value>` "
                                 "before the first deploy", warning=True)
            return SECRET_MASK, True
        if isinstance(value, dict):
            out, secret = {}, False
            for k, v in value.items():
                out[k], leaf_secret = self.masked(v, (*path, k))
                secret = secret or leaf_secret
            return out, secret
        if isinstance(value, list):
            items = [self.masked(v, (*path, i)) for i, v in enumerate(value)]
            return [v for v, _ in items], any(s for _, s in items)
        if isinstance(value, dt.date):  # YAML reads an unquoted timestamp as one; the engine passes the text
            return value.isoformat().replace("+00:00", "Z"), False
        return value, False


def _config_key(path: Path) -> str:
    key = str(path[1])
    return key + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[2:])


def read_stack_file(root: FsPath, stack: str) -> tuple[EngineConfig | None, list[ConfigIssue], list[ConfigIssue]]:
    """(engine config, errors, warnings) of `stacks/Pulumi.<stack>.yaml`."""
    if not STACK_NAME.fullmatch(stack):
        return None, [ConfigIssue(f"stacks/Pulumi.{stack[:40]!r}.yaml", 0, "", "not a stack name — use letters, digits, '-', '_' "
                                  "and '.', as `pulumi stack init` does")], []
    path = stack_path(root, stack)
    display = display_path(root, path)
    if not path.exists():
        known = known_stacks(root)
        close = difflib.get_close_matches(stack, known, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'?" if close else f"known stacks: {', '.join(known) or 'none'}"
        return None, [ConfigIssue(display, 0, "", f"no such stack '{stack}' — {hint}")], []
    src, issues = load_file(str(path), display, inside=root)
    if issues:
        return None, issues, []
    if not isinstance(src.data, dict):
        return None, [ConfigIssue(display, 1, "", "expected a mapping with a `config:` key")], []
    reader = _Reader(src, stack)
    for key in src.data:
        if key not in TOP_LEVEL:
            close = difflib.get_close_matches(str(key), TOP_LEVEL, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else f"a stack file holds {', '.join(TOP_LEVEL)}"
            reader.issue((key,), f"unknown key '{key}' — {hint}")
    for key in ("encryptionsalt", "secretsprovider", "encryptedkey"):
        if key in src.data and not isinstance(src.data[key], str):
            reader.issue((key,), f"{key} must be a string (the Pulumi CLI writes it)")
    environments = _environments(src, reader)
    config = src.data.get("config") or {}
    if not isinstance(config, dict):
        reader.issue(("config",), "expected a mapping of config keys")
        config = {}
    values: dict[str, str] = {}
    secret_keys: set[str] = set()
    for raw_key, value in config.items():
        key = raw_key if ":" in raw_key else f"{NAMESPACE}:{raw_key}"
        if key != raw_key:  # errors are reported under the namespaced key, at the line of the bare one
            for p, line in list(src.lines.items()):
                if p[:2] == ("config", raw_key):
                    src.lines.setdefault(("config", key, *p[2:]), line)
        if key in values:
            reader.issue(("config", raw_key), f"'{raw_key}' and its namespaced form both set {key} — keep one")
        masked, secret = reader.masked(value, ("config", key))
        if key == SECRETS_KEY and isinstance(value, dict):
            for name, entry in value.items():
                if _secure(entry) is None:  # the value itself is never shown
                    reader.issue(("config", key, name), secret_fix(stack, str(name)))
        if secret:
            secret_keys.add(key)
        values[key] = json.dumps(masked) if isinstance(masked, (dict, list)) else _cli_string(masked)
    engine = EngineConfig(values=values, secret_keys=frozenset(secret_keys), source=src, environments=environments,
                          from_stack_file=True)
    return engine, reader.issues, reader.warnings


def _environments(src: Located, reader: _Reader) -> tuple[str, ...]:
    env = src.data.get("environment")
    if env is None:
        return ()
    imports = env.get("imports") if isinstance(env, dict) else env
    if not isinstance(imports, list) or not all(isinstance(e, str) and re.match(r"^[\w.\-/@]+$", e) for e in imports):
        reader.issue(("environment",), "expected a list of ESC environment names, e.g. [vllm-fleet/prod]")
        return ()
    return tuple(imports)
