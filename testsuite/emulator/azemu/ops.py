"""Long-running operations (LRO): their records, status bodies, polling URLs, and the
scheduler that completes each one when its duration has passed.

An operation lives in the persistent state, so one that is in progress when the emulator
stops completes after it restarts (at once if its time has already come).
"""

import heapq
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from .util import guid, iso7, now

log = logging.getLogger("azemu.ops")

IN_PROGRESS = "InProgress"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
CANCELED = "Canceled"
# Finished operations are forgotten after an hour, and beyond the newest few thousand, so
# the state file (rewritten on every change) stays small during long benchmarks.
RETENTION = 3600
MAX_FINISHED = 2000


def new_op(world, provider, sub, location, kind, target, duration, api_version):
    """Record a new operation (caller holds the store lock) and schedule its completion."""
    t = now()
    data = world.store.data
    finished = sorted((v["endTime"], k) for k, v in data["ops"].items()
                      if v["status"] != IN_PROGRESS)
    excess = len(finished) - MAX_FINISHED
    for i, (end, key) in enumerate(finished):
        if i < excess or end + RETENTION < t:
            del data["ops"][key]
    op = {"id": guid(), "p": guid(), "provider": provider, "sub": sub, "location": location,
          "kind": kind, "target": target, "status": IN_PROGRESS, "startTime": t,
          "endTime": None, "due": t + duration, "error": None, "failWith": None,
          "apiVersion": api_version}
    data["ops"][op["id"]] = op
    world.scheduler.schedule(op["id"], op["due"])
    return op


def finish(op, status, error=None):
    op["status"] = status
    op["endTime"] = now()
    op["error"] = error


def status_body(op):
    """The body of the Azure-AsyncOperation URL."""
    if op["provider"] == "network":
        body = {"status": op["status"]}
        if op["error"]:
            body["error"] = {"code": op["error"]["code"], "message": op["error"]["message"],
                             "details": []}
        return body
    body = {"startTime": iso7(op["startTime"])}
    if op["endTime"] is not None:
        body["endTime"] = iso7(op["endTime"])
    body["status"] = op["status"]
    if op["error"]:
        body["error"] = {"code": op["error"]["code"], "message": op["error"]["message"]}
    body["name"] = op["id"]
    return body


def async_url(base, op):
    if op["provider"] == "network":
        return (f"{base}/subscriptions/{op['sub']}/providers/Microsoft.Network/locations/"
                f"{op['location']}/operations/{op['id']}?api-version={op['apiVersion']}")
    return (f"{base}/subscriptions/{op['sub']}/providers/Microsoft.Compute/locations/"
            f"{op['location']}/operations/{op['id']}?p={op['p']}&api-version={op['apiVersion']}")


def location_url(base, op):
    if op["provider"] == "network":
        return (f"{base}/subscriptions/{op['sub']}/providers/Microsoft.Network/locations/"
                f"{op['location']}/operationResults/{op['id']}?api-version={op['apiVersion']}")
    return async_url(base, op) + "&monitor=true"


class Scheduler:
    """Runs `runner(op_id)` on a worker thread once the operation is due.

    Workers may block for a long time (booting a VM host runs its boot hook), so the
    timer thread only hands work out and never runs it itself.
    """

    def __init__(self, runner, workers=64):
        self.runner = runner
        self.heap = []
        self.cond = threading.Condition()
        self.stopping = False
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="op")
        self.thread = threading.Thread(target=self._loop, name="op-timer", daemon=True)

    def start(self):
        self.thread.start()

    def schedule(self, op_id, due):
        with self.cond:
            heapq.heappush(self.heap, (due, op_id))
            self.cond.notify()

    def _loop(self):
        with self.cond:
            while not self.stopping:
                if not self.heap:
                    self.cond.wait()
                    continue
                due, op_id = self.heap[0]
                wait = due - time.time()
                if wait > 0:
                    self.cond.wait(wait)
                    continue
                heapq.heappop(self.heap)
                self.pool.submit(self._run, op_id)

    def _run(self, op_id):
        try:
            self.runner(op_id)
        except Exception:
            log.exception("completing operation %s failed", op_id)

    def stop(self):
        """Stop handing out work and wait for operations already running."""
        with self.cond:
            self.stopping = True
            self.cond.notify()
        if self.thread.is_alive():
            self.thread.join()
        self.pool.shutdown(wait=True, cancel_futures=True)
