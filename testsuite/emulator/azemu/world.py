"""The emulated world: every service wired together, and the two HTTP apps (HTTPS for
ARM, AAD and the admin API; plain HTTP for IMDS)."""

import logging
import re
import time

from .admin import Admin
from .arm import FrontDoor
from .auth import TokenService
from .compute import Compute
from .faults import FaultSet
from .groups import Groups
from .host import HostManager
from .httpserv import DROP, json_response
from .network import Network
from .lifecycle import Lifecycle
from .ops import IN_PROGRESS, Scheduler
from .placement import Placement
from .state import Store
from .throttle import ArmThrottle, ComputeThrottle

log = logging.getLogger("azemu")

_AAD_RE = re.compile(r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/token/?$", re.IGNORECASE)


class World:
    def __init__(self, cfg):
        self.cfg = cfg
        self.store = Store(cfg.state_dir)
        self.faults = FaultSet()
        for spec in cfg.faults:
            self.faults.add(spec)
        self.tokens = TokenService(self)
        self.arm_throttle = ArmThrottle(cfg.arm_throttle)
        self.compute_throttle = ComputeThrottle(cfg.compute_throttle)
        self.scheduler = Scheduler(self._complete)
        self.hosts = None
        if cfg.boot:
            self.hosts = HostManager(cfg.boot, cfg.cluster_cidr, cfg.state_dir, cfg.timing)
        self.network = Network(self)
        self.placement = Placement(self)
        self.lifecycle = Lifecycle(self)
        self.compute = Compute(self)
        self.groups = Groups(self)
        self.front = FrontDoor(self)
        self.admin = Admin(self)
        self.dns = None  # azemu.dns.VnetDns with --dns-listen
        with self.store.lock:
            if not self.store.data["seeded"]:
                self.seed_capacity()
                self.store.data["seeded"] = True
                self.store.save()

    def seed_capacity(self):
        """Capacity counters from the scenario (caller holds the store lock)."""
        cap = self.store.data["capacity"]
        cap["availabilitySets"] = dict(self.cfg.capacity_sets)
        cap["regions"] = {f"{r['region'].replace(' ', '').lower()}|{r['vmSize'].lower()}":
                          r["remaining"] for r in self.cfg.capacity_regions}

    # --- life cycle ------------------------------------------------------------------

    def start(self):
        """Bring hosts in line with the state, then resume operations in progress."""
        if self.hosts is not None:
            self.hosts.prepare()
            self.lifecycle.reconcile_hosts()
        with self.store.lock:
            pending = [(op["id"], op["due"]) for op in self.store.data["ops"].values()
                       if op["status"] == IN_PROGRESS]
        for op_id, due in pending:
            self.scheduler.schedule(op_id, due)
        self.scheduler.start()

    def stop(self):
        self.scheduler.stop()
        if self.cfg.shutdown_vms:
            self.lifecycle.shutdown_all()
            if self.hosts is not None:
                self.hosts.release_mount()
        self.store.flush()

    def _complete(self, op_id):
        with self.store.lock:
            op = self.store.data["ops"].get(op_id)
            kind = op["kind"] if op else ""
        if kind.startswith("vm."):
            self.lifecycle.complete(op_id)
        elif kind.startswith("nic."):
            self.network.complete(op_id)

    # --- HTTP apps -------------------------------------------------------------------

    def _oauth_fault(self, request):
        """Faults for the token endpoints, answered in the OAuth error shape."""
        fault = self.faults.take(request.method, request.path)
        if fault is None:
            return None
        if fault.seconds > 0:
            time.sleep(fault.seconds)
        if fault.action == "drop":
            return DROP
        if fault.action == "delay":
            return None
        headers = {"Retry-After": str(fault.retry_after or 1)} if fault.status in (429, 503) else {}
        return json_response(fault.status,
                             {"error": fault.code, "error_description": fault.message}, headers)

    def https_app(self, request):
        if request.path.startswith("/_emulator/"):
            return self.admin(request)
        m = _AAD_RE.match(request.path)
        if m is None:
            return self.front(request)
        response = self._oauth_fault(request) or self.tokens.aad_token(request, m.group("tenant"))
        self.front.record_other(request, 0 if response is DROP else response.status, "aad")
        return response

    def imds_app(self, request):
        response = self._oauth_fault(request) or self.tokens.imds(request)
        self.front.record_other(request, 0 if response is DROP else response.status, "imds")
        return response
