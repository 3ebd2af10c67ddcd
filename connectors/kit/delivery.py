"""How a reply that could not be delivered is retried, for every channel.

A connector's `send()` raises `DeliveryError` for the one message it could not
deliver; the supervisor (connectors/supervisor.py) decides what happens next with
`RetryPolicy`:

- `permanent`: retrying cannot help (the platform refused this message for good) —
  parked at once.
- `unavailable`: the channel cannot send anything now (not connected, the account
  offline, the platform or the shop's server away) — retried with a growing backoff
  for as long as it takes; this is not the reply's fault, so it never counts
  towards parking.
- anything else (the platform refused it, maybe for now) — retried with a growing
  backoff, and parked once it has failed `attempts` times.
- `retry_after`: the platform named when to try again (a 429); the retry waits at
  least that long.

Every single failure is logged; parking is logged once more, as an error.
"""
from __future__ import annotations

from dataclasses import dataclass


class DeliveryError(Exception):
    """One outbound message could not be delivered now; the connector itself is fine."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None,
                 unavailable: bool = False):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.unavailable = unavailable


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int  # failures of one reply (not counting `unavailable`) before it is parked
    initial: float  # s before the first retry; doubles with each try
    max: float  # s the backoff grows to at most

    def delay(self, tries: int, retry_after: float | None = None) -> float:
        """Seconds before try number `tries + 1` of a reply that failed `tries` times."""
        backoff = min(self.initial * 2 ** max(tries - 1, 0), self.max)
        return max(backoff, retry_after or 0.0)

    def exhausted(self, failures: int) -> bool:
        return failures >= self.attempts
