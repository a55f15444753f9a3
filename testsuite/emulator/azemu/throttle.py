"""Throttling as ARM and Compute do it: token buckets.

ARM keeps one bucket per subscription and principal ("subscription actor") for each of
reads, writes and deletes, and a global bucket per subscription that is `globalFactor`
times larger. Compute (CRP) adds per-operation-group buckets, one per subscription
(<Group>SubscriptionMaximum) and, for most groups, one per resource (<Group>Resource).
"""

import math
import threading
import time

from . import errors
from .util import iso7

ARM_KINDS = {"reads": "read", "writes": "write", "deletes": "delete"}


class TokenBucket:
    def __init__(self, burst, refill):
        self.burst = float(burst)
        self.refill = float(refill)
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self.window_start = time.time()
        self.measured = 0

    def _top_up(self):
        t = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (t - self.stamp) * self.refill)
        self.stamp = t
        if self.tokens >= self.burst:
            # A full bucket starts a new measurement window for the 429 details.
            self.window_start = time.time()
            self.measured = 0

    def available(self):
        self._top_up()
        return self.tokens >= 1.0

    def take(self):
        self.tokens -= 1.0
        self.measured += 1

    def remaining(self):
        return max(0, int(math.floor(self.tokens)))

    def retry_after(self):
        """Whole seconds until one token is back (at least 1, as ARM never says 0)."""
        if self.refill <= 0:
            return 3600
        return max(1, int(math.ceil((1.0 - self.tokens) / self.refill)))


class ArmThrottle:
    def __init__(self, spec):
        self.spec = spec
        self.lock = threading.Lock()
        self.buckets = {}

    def _bucket(self, key, kind, factor):
        b = self.buckets.get(key)
        if b is None:
            s = self.spec[kind]
            b = self.buckets[key] = TokenBucket(s["burst"] * factor, s["refill"] * factor)
        return b

    def charge(self, sub, actor, kind):
        """Take one token of `kind` (reads/writes/deletes) for the actor. Returns the
        x-ms-ratelimit-remaining-subscription-* headers; raises the 429 when empty."""
        factor = float(self.spec.get("globalFactor", 15))
        with self.lock:
            mine = self._bucket((sub, actor, kind), kind, 1.0)
            shared = self._bucket((sub, "*", kind), kind, factor)
            for b in (mine, shared):
                if not b.available():
                    raise errors.subscription_throttled(ARM_KINDS[kind], f"{sub}:{actor}",
                                                        b.retry_after())
            mine.take()
            shared.take()
            return {f"x-ms-ratelimit-remaining-subscription-{kind}": str(mine.remaining()),
                    f"x-ms-ratelimit-remaining-subscription-global-{kind}": str(shared.remaining())}

    def reset(self):
        with self.lock:
            self.buckets.clear()


class ComputeThrottle:
    def __init__(self, spec):
        self.spec = spec
        self.lock = threading.Lock()
        self.buckets = {}

    def _bucket(self, key, spec):
        b = self.buckets.get(key)
        if b is None:
            b = self.buckets[key] = TokenBucket(spec["burst"], spec["refill"])
        return b

    def charge(self, sub, group, resource):
        """Take one token from the group's buckets. Returns the value of
        x-ms-ratelimit-remaining-resource; raises CRP's 429 when a bucket is empty."""
        spec = self.spec[group]
        pairs = [(f"{group}SubscriptionMaximum", self._bucket((sub, group), spec["subscription"]))]
        if "resource" in spec and resource:
            pairs.append((f"{group}Resource",
                          self._bucket((sub, group, resource.lower()), spec["resource"])))
        with self.lock:
            for name, b in pairs:
                if not b.available():
                    b.measured += 1  # rejected requests are measured too
                    wait = b.retry_after()
                    err = errors.compute_throttled(name, int(b.burst), b.measured,
                                                   iso7(b.window_start), iso7(time.time() + wait),
                                                   wait)
                    err.headers["x-ms-ratelimit-remaining-resource"] = f"Microsoft.Compute/{name};0"
                    raise err
            for _, b in pairs:
                b.take()
            return ",".join(f"Microsoft.Compute/{name};{b.remaining()}" for name, b in pairs)

    def reset(self):
        with self.lock:
            self.buckets.clear()
