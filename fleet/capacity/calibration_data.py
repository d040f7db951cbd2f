"""The performance model's fitted constants per GPU model (fleet/catalog/perf_calibration.yaml), loaded once."""

from __future__ import annotations

from functools import lru_cache

from fleet.capacity.perf import StepConstants
from fleet.catalog import CATALOG_DIR
from fleet.yamlsrc import safe_load

PERF_CALIBRATION = CATALOG_DIR / "perf_calibration.yaml"


@lru_cache(maxsize=1)
def _document() -> dict:
    """fleet/catalog/perf_calibration.yaml, read once: `fits` per board and `held_out_sigma`."""
    if not PERF_CALIBRATION.exists():
        return {}
    with open(PERF_CALIBRATION, encoding="utf-8") as fh:
        return safe_load(fh) or {}


@lru_cache(maxsize=1)
def fitted_constants() -> dict[str, StepConstants]:
    fits = _document().get("fits") or {}
    return {gpu: StepConstants(**{**values, "source": values.get("source", "")}) for gpu, values in fits.items()}


@lru_cache(maxsize=1)
def held_out_sigma() -> dict[str, float]:
    """The model's error on held-out runs per target metric (scripts/perf_fit.py writes it beside the constants)."""
    return {k: float(v) for k, v in (_document().get("held_out_sigma") or {}).items()}


def calibrated(gpu_model: str) -> tuple[StepConstants, str]:
    """The fitted constants for a board, or those of the nearest measured board, and which board they come from."""
    table = fitted_constants()
    if gpu_model in table:
        return table[gpu_model], gpu_model
    for fallback in ("H100", "H200"):
        if fallback in table:
            return table[fallback], fallback
    return StepConstants(), "none"
