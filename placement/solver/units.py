"""The model's integer units: costs in micro-dollars, times in microseconds.

Latencies are rounded up and limits down, so a plan the model accepts never breaks the SLO in
the float checker (`placement.evaluate`)."""

from __future__ import annotations

import math

MICRO = 1_000_000  # micro-dollars per dollar
US_PER_MS = 1000  # microseconds per millisecond


def usd(x: float) -> int:
    """Dollars as integer micro-dollars."""
    return int(round(x * MICRO))


def us_up(ms: float) -> int:
    """A duration as integer microseconds, rounded up."""
    return int(math.ceil(ms * US_PER_MS - 1e-6))


def us_floor(ms: float) -> int:
    """A time limit as integer microseconds, rounded down."""
    return int(math.floor(ms * US_PER_MS + 1e-6))


def ppm(share: float) -> int:
    """A share as integer parts per million."""
    return int(round(share * 1_000_000))
