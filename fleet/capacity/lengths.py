"""Request lengths that vary: the log-normal with a given mean and 95th percentile. Pure functions, no imports of
the project, so the team-file schema can check a p95 without loading the performance model."""

from __future__ import annotations

import math

Z95 = 1.6448536269514722   # the standard normal's 95th percentile
MAX_P95_OVER_MEAN = math.exp(Z95 * Z95 / 2)   # ~3.87: the widest log-normal whose p95 and mean are both given


def lognormal_sigma(mean: float, p95: float) -> float:
    """The log-normal's shape with this mean and 95th percentile: ln(p95 / mean) = Z95·s − s²/2, the root below Z95
    (the other one puts the mean above the bulk). p95 = mean is a fixed length (0)."""
    if p95 < mean:
        raise ValueError(f"a 95th percentile ({p95:g}) below the mean ({mean:g}) — give p95 ≥ mean")
    if p95 > MAX_P95_OVER_MEAN * mean:
        raise ValueError(f"a 95th percentile ({p95:g}) over {MAX_P95_OVER_MEAN:.2f}× the mean ({mean:g}) fits no log-normal "
                         "length distribution — raise the mean toward the bulk of the requests or lower the p95")
    return Z95 - math.sqrt(Z95 * Z95 - 2 * math.log(p95 / mean))


class LengthError(ValueError):
    """A length percentile no log-normal has; `field` names it as a team file's slo does (input_tokens_p95, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_lengths(input_tokens: int, input_p95: int | None, output_tokens: int, output_p95: int | None) -> None:
    """Raise LengthError for the first given 95th percentile that no log-normal with its mean has."""
    for field, mean, p95 in (("input_tokens_p95", input_tokens, input_p95), ("output_tokens_p95", output_tokens, output_p95)):
        if p95 is not None:
            try:
                lognormal_sigma(mean, p95)
            except ValueError as exc:
                raise LengthError(field, str(exc)) from None


def longest(input_tokens: int, input_p95: int | None, output_tokens: int, output_p95: int | None) -> tuple[int, int]:
    """The 95th-percentile request's prompt and output tokens (the mean where no p95 is given): what must fit
    max_model_len."""
    return input_p95 or input_tokens, output_p95 or output_tokens
