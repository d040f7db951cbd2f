"""Version strings."""

from __future__ import annotations


def parse_version(text: str) -> tuple[int, ...]:
    """'0.33.0' → (0, 33, 0); a leading 'v' is accepted."""
    return tuple(int(p) for p in text.lstrip("v").split(".") if p.isdigit())
