"""Version strings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# One `vllm serve` option table per supported vLLM release (fleet/vllm/flags.py reads them).
FLAG_TABLE_DIR = Path(__file__).resolve().parent / "catalog" / "vllm"
# Directories of tables generated but not shipped (`vllm-fleet upgrade --dry-run`), searched after the bundled one.
_UNSHIPPED: list[Path] = []


def parse_version(text: str) -> tuple[int, ...]:
    """'0.33.0' → (0, 33, 0); a leading 'v' is accepted."""
    return tuple(int(p) for p in text.lstrip("v").split(".") if p.isdigit())


def bundled_vllm_versions() -> list[str]:
    """The vLLM releases with a bundled flag table (fleet/catalog/vllm/flags-<version>.json), oldest first."""
    versions = [p.name.removeprefix("flags-").removesuffix(".json") for p in FLAG_TABLE_DIR.glob("flags-*.json")]
    return sorted(versions, key=parse_version)


def flag_table_path(version: str) -> Path | None:
    """The flag table of vLLM `version`: the bundled one, else one generated for this run only; None without one."""
    for directory in (FLAG_TABLE_DIR, *_UNSHIPPED):
        path = directory / f"flags-{version}.json"
        if path.is_file():
            return path
    return None


@contextmanager
def unshipped_tables(directory: Path) -> Iterator[None]:
    """Within the block, the tables in `directory` count as available (a dry run checks the stacks against a table it
    does not ship)."""
    _UNSHIPPED.append(directory)
    try:
        yield
    finally:
        _UNSHIPPED.remove(directory)
