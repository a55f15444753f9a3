"""Injected failures: the next N requests matching a method and a path regex fail as told.

Kinds (exactly one per fault):
  "status": N      answer N with {"error": {"code", "message"}} (Retry-After for 429/503)
  "action": "drop"   close the connection without answering
  "action": "delay"  wait "seconds" and then serve the request normally
"seconds" with a status or a drop waits that long first, as a slow failure does.
  "action": "asyncFail"  accept the request, then fail its long-running operation with
                     "code"/"message" (only requests that start an operation consume it)
"""

import re
import threading

ACTIONS = ("drop", "delay", "asyncFail")


class FaultError(ValueError):
    pass


class Fault:
    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise FaultError("a fault is a JSON object")
        self.spec = dict(spec)
        self.method = str(spec.get("method") or "*").upper()
        try:
            self.path = re.compile(str(spec.get("path") or ".*"))
        except re.error as e:
            raise FaultError(f"path: invalid regex: {e}") from None
        self.count = int(spec.get("count", 1))
        if self.count < 1:
            raise FaultError("count must be at least 1")
        self.action = spec.get("action")
        self.status = spec.get("status")
        if (self.action is None) == (self.status is None):
            raise FaultError("give exactly one of \"status\" or \"action\"")
        if self.action is not None and self.action not in ACTIONS:
            raise FaultError(f"action must be one of {', '.join(ACTIONS)}")
        if self.status is not None:
            self.status = int(self.status)
            if not 400 <= self.status <= 599:
                raise FaultError("status must be an HTTP error status (400-599)")
        self.seconds = float(spec.get("seconds", 0))
        if self.seconds < 0:
            raise FaultError("\"seconds\" cannot be negative")
        if self.action == "delay" and self.seconds <= 0:
            raise FaultError("a delay needs \"seconds\" > 0")
        if self.action == "asyncFail" and self.seconds:
            raise FaultError("an asyncFail fails when its operation is polled; "
                             "it takes no \"seconds\"")
        self.code = str(spec.get("code") or _default_code(self.status))
        self.message = str(spec.get("message") or "Injected failure.")
        self.retry_after = spec.get("retryAfter")

    def matches(self, method, path):
        return self.method in ("*", method.upper()) and self.path.search(path) is not None

    def describe(self):
        out = dict(self.spec)
        out["remaining"] = self.count
        return out


def _default_code(status):
    return {400: "BadRequest", 401: "AuthenticationFailed", 403: "AuthorizationFailed",
            404: "NotFound", 409: "Conflict", 429: "TooManyRequests",
            500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable",
            504: "GatewayTimeout"}.get(status, "InjectedFailure")


class FaultSet:
    def __init__(self):
        self.lock = threading.Lock()
        self.faults = []

    def add(self, spec):
        fault = Fault(spec)
        with self.lock:
            self.faults.append(fault)
        return fault

    def _take(self, method, path, want_async):
        with self.lock:
            for fault in self.faults:
                if (fault.action == "asyncFail") == want_async and fault.matches(method, path):
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def take(self, method, path):
        """The first synchronous fault (status/drop/delay) for this request, consumed once."""
        return self._take(method, path, want_async=False)

    def take_async(self, method, path):
        """The first asyncFail fault for a request that starts an operation."""
        return self._take(method, path, want_async=True)

    def list(self):
        with self.lock:
            return [f.describe() for f in self.faults]

    def clear(self):
        with self.lock:
            self.faults.clear()
