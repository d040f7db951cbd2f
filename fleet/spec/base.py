"""Shared pydantic base and field types."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints

from fleet.k8s_names import DNS1123_LABEL_FMT, dns1123_label, rule, schema

# Team, model and pool names become namespace and object names with suffixes (`team-`, `-prefetch`, `-metrics`) and
# label values, so they are DNS-1123 labels kept well under the 63-character limit.
NAME_MAX = 40
Name = Annotated[str, rule(dns1123_label, "a name (it becomes namespace and object names and label values: a DNS-1123 label)",
                           "e.g. 'search' or 'qwen-3b'", NAME_MAX), schema(DNS1123_LABEL_FMT, NAME_MAX)]

# A CODEOWNERS owner (GitHub, "About code owners"): `@user` (a GitHub login: letters and digits, single hyphens
# between them), `@org/team` (a team slug) or an e-mail address. Nothing else may reach the generated file:
# whitespace or a newline in an owner would start another rule, `#` a comment.
GITHUB_LOGIN = r"[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}"
OWNER_PATTERN = (rf"^(?:@{GITHUB_LOGIN}(?:/[A-Za-z0-9][A-Za-z0-9_\-]{{0,99}})?|"
                 r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)+)$")
Owner = Annotated[str, StringConstraints(pattern=OWNER_PATTERN, max_length=320)]

_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")


def _cli_int(value: Any) -> Any:
    """`pulumi config set ns:key 8` stores the string "8" (top-level values are always strings; under `--path`
    only integers and true/false are typed): a string of digits is the number, anything else stays as written
    and fails the strict check ("eight" is still refused)."""
    return int(value) if isinstance(value, str) and _INTEGER.match(value) else value


def _cli_bool(value: Any) -> Any:
    return {"true": True, "false": False}.get(value.strip(), value) if isinstance(value, str) else value


# Numbers and switches in the stack config, as the Pulumi CLI writes them (see _cli_int).
CliInt = Annotated[int, BeforeValidator(_cli_int)]
CliBool = Annotated[bool, BeforeValidator(_cli_bool)]


class Strict(BaseModel):
    """Every config model: unknown keys are an error, never silently ignored; no type coercion beyond what the
    Pulumi CLI writes for stack config (CliInt, CliBool)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False, strict=True,
                              use_attribute_docstrings=True)
