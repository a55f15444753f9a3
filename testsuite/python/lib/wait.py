"""Waiting for a condition instead of sleeping."""

import time


class WaitTimeout(AssertionError):
    """A wait_for() condition did not become true in time."""


class GiveUp(RuntimeError):
    """Raised by a wait_for() condition that can never become true (a daemon died)."""


def wait_for(condition, timeout, what, interval=0.2):
    """Call condition() until it returns something true; return that value.

    Raises WaitTimeout naming `what` (and the last value or exception seen) when
    `timeout` seconds pass first. Exceptions from condition() count as "not yet",
    so a daemon that is still starting may refuse a connection; GiveUp ends the
    wait at once.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = condition()
            if value:
                return value
            last = value
        except GiveUp:
            raise
        except Exception as exc:  # noqa: BLE001 - reported if the wait fails
            last = exc
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what}"
                              f" (last: {last!r})")
        time.sleep(interval)
