"""The time the program and the policy pack take as "now": what AWS will compare a scheduled action's start time with
when `pulumi up` applies it. `VLLM_FLEET_NOW` (ISO 8601 with a zone) sets it for `plan`, to preview a later `up` or to
keep a test's outcome independent of the day it runs; unset, it is the machine's clock."""

from __future__ import annotations

import datetime as dt
import os

from fleet.errors import ConfigError, ConfigIssue

ENV = "VLLM_FLEET_NOW"


def now() -> dt.datetime:
    value = os.environ.get(ENV)
    if not value:
        return dt.datetime.now(dt.UTC)
    try:
        at = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ConfigError([ConfigIssue(ENV, 0, "", f"{value!r} is not an ISO 8601 time with a zone — write it like "
                                                       "2026-12-07T12:00:00Z, or unset it")])
    return at.astimezone(dt.UTC)
