"""What a container runs, read from its command line however it is written: the exec form, `sh -c` / `bash -lc`
scripts of several commands, `python -m vllm.entrypoints.openai.api_server`, `vllm serve`, or an image whose entrypoint
is the server and only `args` are given. Flag values are read the way vLLM's parser reads them (`--a_b` is `--a-b`,
`32k` is 32,000); a value the shell or Kubernetes fills in at run time (`$(TP)`, `${TP}`) is unknown, never an error."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from fleet.vllm.flags import normal_flag

SHELL = re.compile(r"^(?:.*/)?(?:ba|da|z|k|a)?sh$")
PYTHON = re.compile(r"^(?:.*/)?python[\d.]*$")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
WRAPPERS = frozenset({"exec", "env", "nohup", "time", "stdbuf", "tini", "dumb-init", "--", "command", "uv", "run"})
SERVER_MODULES = {"vllm.entrypoints.openai.api_server": (), "vllm.entrypoints.cli.main": ("serve",)}
RUNTIME_VALUE = re.compile(r"\$\(|\$\{|^\$[A-Za-z_]")
HUMAN_INT = re.compile(r"^(\d+(?:\.\d+)?)([kmgtKMGT]?)$")


def _words(container: Mapping[str, Any]) -> list[str]:
    return [str(w) for w in [*(container.get("command") or []), *(container.get("args") or [])]]


def shell_script(words: list[str]) -> str | None:
    """The script of `sh -c SCRIPT` (also `bash -lc`, `/bin/sh -ec`, `bash -l -c`), or None."""
    if not words or not SHELL.match(words[0]):
        return None
    for i, w in enumerate(words[1:], start=1):
        if not w.startswith("-"):
            return None
        if "c" in w[1:] and not w.startswith("--"):
            return words[i + 1] if i + 1 < len(words) else ""
    return None


def simple_commands(script: str) -> list[list[str]]:
    """A shell script split into its simple commands at unquoted `;`, `&&`, `||`, `|`, `&` and newlines (line
    continuations joined; `$(…)` kept whole), each split into words as the shell would."""
    script = script.replace("\\\n", " ")
    parts: list[str] = []
    buf: list[str] = []
    quote: str | None = None
    depth = i = 0
    while i < len(script):
        ch = script[i]
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = None
            elif ch == "\\" and quote == '"' and i + 1 < len(script):
                buf.append(script[i + 1])
                i += 1
        elif ch in "'\"":
            quote = ch
            buf.append(ch)
        elif ch == "\\" and i + 1 < len(script):
            buf.append(script[i:i + 2])
            i += 1
        elif script.startswith("$(", i):
            depth += 1
            buf.append("$(")
            i += 1
        elif ch == ")" and depth:
            depth -= 1
            buf.append(ch)
        elif depth == 0 and ch in ";&|\n":
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    parts.append("".join(buf))
    out = []
    for part in parts:
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        if words:
            out.append(words)
    return out


def command_lines(container: Mapping[str, Any]) -> list[list[str]]:
    """The simple commands the container runs: its exec form, or each command of its shell script."""
    return [list(line) for line in _command_lines(tuple(_words(container)))]


def start_cold() -> None:
    """Forget the parsed command lines: each preview the pack answers starts as a fresh process would."""
    _command_lines.cache_clear()


@lru_cache(maxsize=4096)
def _command_lines(words: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    # Many rules ask about the same container, and a fleet's pods share their command lines: parse each once.
    script = shell_script(list(words))
    return (words,) if script is None else tuple(tuple(line) for line in simple_commands(script))


def all_words(container: Mapping[str, Any]) -> list[str]:
    return [w for line in command_lines(container) for w in line]


def _without_wrappers(words: list[str]) -> list[str]:
    i = 0
    while i < len(words) and (words[i] in WRAPPERS or ASSIGNMENT.match(words[i])):
        i += 1
    return words[i:]


def server_args(container: Mapping[str, Any]) -> list[str] | None:
    """The arguments of vLLM's OpenAI server (after `vllm serve`, or after the api_server module), or None when the
    container does not run it."""
    for line in command_lines(container):
        words = _without_wrappers(line)
        for i, w in enumerate(words):
            base = w.rsplit("/", 1)[-1]
            if base == "vllm" and words[i + 1:i + 2] == ["serve"]:
                return words[i + 2:]
            if PYTHON.match(w) and words[i + 1:i + 2] == ["-m"] and i + 2 < len(words):
                sub = SERVER_MODULES.get(words[i + 2])
                if sub is not None and tuple(words[i + 3:i + 3 + len(sub)]) == sub:
                    return words[i + 3 + len(sub):]
    image = str(container.get("image", "")).partition("@")[0]
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    if "vllm-openai" in repository.rsplit("/", 1)[-1] and not container.get("command"):
        return [str(a) for a in container.get("args") or []]  # the image's entrypoint is `vllm serve`
    return None


def flag_value(args: list[str], *flags: str) -> str | None:
    """The value of the last of `flags` given (the one argparse keeps), `""` for a flag without one, None if absent."""
    wanted = {normal_flag(f) for f in flags}
    found = None
    for i, a in enumerate(args):
        name, eq, value = a.partition("=")
        if normal_flag(name) in wanted:
            found = value if eq else (args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("-") else "")
    return found


def has_flag(args: list[str], *flags: str) -> bool:
    wanted = {normal_flag(f) for f in flags}
    return any(normal_flag(a.partition("=")[0]) in wanted for a in args)


def model_of(args: list[str]) -> str | None:
    if args and not args[0].startswith("-"):
        return args[0]
    return flag_value(args, "--model")


def runtime_value(text: str) -> bool:
    """A value the shell or Kubernetes substitutes when the container starts (`$(TP)`, `${TP}`, `$TP`)."""
    return bool(RUNTIME_VALUE.search(text))


def int_value(text: str | None) -> int | None:
    """An integer flag value as vLLM reads it (`32k` = 32,000, `32K` = 32,768), or None when it is absent, filled in
    at run time or not a number."""
    if text is None or runtime_value(text):
        return None
    m = HUMAN_INT.match(text.strip())
    if m is None:
        return None
    number, suffix = float(m.group(1)), m.group(2)
    scale = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[suffix]
    return int(number * scale)


def float_value(text: str | None) -> float | None:
    if text is None or runtime_value(text):
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None
