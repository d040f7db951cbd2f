"""Shared pydantic base and field types."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

# Team and model names become namespace and object names with suffixes (`-prefetch`, `-metrics`), so
# they are kept well under the 63-character DNS label limit.
Name = Annotated[str, StringConstraints(pattern=DNS_LABEL, min_length=1, max_length=40)]


class Strict(BaseModel):
    """Every config model: unknown keys are an error, never silently ignored; no type coercion (`"8"` is not 8)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False, strict=True,
                              use_attribute_docstrings=True)
