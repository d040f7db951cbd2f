"""Markdown for PR comments, built from strings a team or a stack file wrote (reasons, messages, resource names,
field values): every such string goes through `text` (inline text, a table cell included) or `code` (a code span),
never into the comment as written — a `|` would split a table cell, a newline end the table, `<details>` or `<img>`
inject HTML, a backtick end a code span, `@org/team` ping a team."""

from __future__ import annotations

import re

# CommonMark lets any ASCII punctuation be escaped with a backslash; these are the ones that start markup inline.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def text(value: object) -> str:
    """`value` as literal inline text, safe in a table cell: one line, markup escaped, mentions defused."""
    flat = _CONTROL.sub("", _LINE_BREAKS.sub(" ", str(value)))
    return _SPECIAL.sub(r"\\\1", flat).replace("@", "@\u200b")


def code(value: object) -> str:
    """`value` as a code span, fenced with more backticks than it holds (CommonMark); `|` escaped for tables."""
    flat = _CONTROL.sub("", _LINE_BREAKS.sub(" ", str(value)))
    longest = max((len(m) for m in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat.strip() else ""
    return f"{fence}{pad}{flat.replace('|', chr(92) + '|')}{pad}{fence}"
