"""Version strings."""

from __future__ import annotations

from pathlib import Path

# One `vllm serve` option table per supported vLLM release (fleet/vllm/flags.py reads them).
FLAG_TABLE_DIR = Path(__file__).resolve().parent / "catalog" / "vllm"


def parse_version(text: str) -> tuple[int, ...]:
    """'0.33.0' → (0, 33, 0); a leading 'v' is accepted."""
    return tuple(int(p) for p in text.lstrip("v").split(".") if p.isdigit())


def bundled_vllm_versions() -> list[str]:
    """The vLLM releases with a bundled flag table (fleet/catalog/vllm/flags-<version>.json), oldest first."""
    versions = [p.name.removeprefix("flags-").removesuffix(".json") for p in FLAG_TABLE_DIR.glob("flags-*.json")]
    return sorted(versions, key=parse_version)
