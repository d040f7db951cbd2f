"""Kubernetes resource quantities ("16Gi", "500m", "2", or a bare YAML number) as numbers (bytes or cores)."""

from __future__ import annotations

import math
from typing import Any

SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
            "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "m": 1e-3}


def parse_quantity(text: str) -> float:
    text = text.strip()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * SUFFIXES[suffix]
    return float(text)


def quantity(value: Any) -> float | None:
    """A quantity however the manifest wrote it (`nvidia.com/gpu: 2` is 2, as is "2"; protobuf hands policies 2.0),
    or None when it is not one (a typo, NaN, a negative number, a value filled in at run time)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        try:
            number = parse_quantity(str(value))
        except ValueError:
            return None
    return number if math.isfinite(number) and number >= 0 else None


def whole(value: Any, default: int) -> int:
    """A count field (replicas, seconds, sizes) as an int; `default` when it is absent or not a number."""
    number = quantity(value)
    return int(number) if number is not None else default
