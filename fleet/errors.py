"""Config errors that always name the file, the line, the field path and the fix."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-:.@/]+")
# Credentials by their well-known shapes: Hugging Face, OpenAI-style and GitHub tokens, AWS access keys, JWTs, PEM keys,
# `user:password@` in URLs. Never printed back, whatever field they were typed into.
CREDENTIAL = re.compile(
    r"(?<![A-Za-z0-9_])(?:hf_[A-Za-z0-9]{8,}|sk-[A-Za-z0-9_\-]{8,}|gh[pousr]_[A-Za-z0-9]{16,}|(?:AKIA|ASIA)[A-Z0-9]{16})|"
    r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*|-----BEGIN [A-Z ]*PRIVATE KEY-----|"
    r"(?:(?<=://)|(?<=['\"\s])|^)[^/\s:@'\"]+:[^/\s@'\"]+(?=@(?!sha256:|sha512:))")


def redact(text: str) -> str:
    """`text` with anything shaped like a credential replaced by `<redacted>`."""
    return CREDENTIAL.sub("<redacted>", text)


def printable(text: str) -> str:
    """`text` with control and other invisible characters (a newline typed into a key, a right-to-left override)
    escaped, so that every issue stays one line that shows what was typed."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


@dataclass(frozen=True, order=True)
class ConfigIssue:
    file: str
    line: int
    path: str
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", printable(redact(self.message)))
        object.__setattr__(self, "path", printable(redact(self.path)))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


@dataclass
class ConfigError(Exception):
    """All config problems of one run, reported together."""

    issues: list[ConfigIssue] = field(default_factory=list)

    def __str__(self) -> str:
        n = len(self.issues)
        head = f"{n} config error{'s' if n != 1 else ''}:"
        return "\n".join([head, *(f"  {i}" for i in sorted(self.issues))])


def format_path(loc: tuple[str | int, ...]) -> str:
    """('models', 0, 'tensor_parallel_size') -> 'models[0].tensor_parallel_size'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(str(part)):
            out += ("." if out else "") + str(part)
        else:  # a key with spaces or brackets would make the path ambiguous
            out += f"[{str(part)!r}]"
    return out
