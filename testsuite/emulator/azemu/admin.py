"""The admin API under /_emulator/ (HTTPS, no authentication): how tests look inside the
world and bend it. Answers are compact JSON; errors are {"error": "text"}."""

import copy
import re

from . import catalog
from .config import ConfigError, set_timing
from .faults import FaultError
from .host import HostError
from .httpserv import json_response


class AdminError(Exception):
    def __init__(self, status, text):
        super().__init__(text)
        self.status = status


def _int_or_none(value, what):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise AdminError(400, f"{what} must be an integer or null")
    return value


class Admin:
    def __init__(self, world):
        self.world = world
        self.routes = [
            ("GET", r"/_emulator/vms", self.vms),
            ("GET", r"/_emulator/nics", self.nics),
            ("GET", r"/_emulator/disks", self.disks),
            ("POST", r"/_emulator/vms/(?P<name>[^/]+)/rdma", self.rdma),
            ("GET", r"/_emulator/log", self.log),
            ("GET", r"/_emulator/dns", self.dns_queries),
            ("GET", r"/_emulator/faults", self.list_faults),
            ("POST", r"/_emulator/faults", self.add_faults),
            ("DELETE", r"/_emulator/faults", self.clear_faults),
            ("POST", r"/_emulator/capacity", self.capacity),
            ("GET", r"/_emulator/capacity", self.get_capacity),
            ("POST", r"/_emulator/quota", self.quota),
            ("POST", r"/_emulator/tokens/expire", self.expire_tokens),
            ("GET", r"/_emulator/timing", self.get_timing),
            ("POST", r"/_emulator/timing", self.timing),
            ("POST", r"/_emulator/reset", self.reset),
        ]

    def __call__(self, request):
        path = request.path.rstrip("/")
        for method, pattern, handler in self.routes:
            m = re.fullmatch(pattern, path)
            if m and method == request.method:
                try:
                    return json_response(200, handler(request, **m.groupdict()))
                except AdminError as e:
                    return json_response(e.status, {"error": str(e)})
                except (ConfigError, FaultError, ValueError) as e:
                    return json_response(400, {"error": str(e)})
        return json_response(404, {"error": f"no admin endpoint {request.method} {request.path}"})

    @staticmethod
    def _body(request):
        if not request.body:
            return {}
        try:
            return request.json()
        except ValueError as e:
            raise AdminError(400, f"invalid JSON: {e}") from None

    # --- looking inside --------------------------------------------------------------

    def vms(self, request):
        data = self.world.store.data
        with self.world.store.lock:
            out = []
            for vm in sorted(data["vms"].values(), key=lambda v: v["name"].lower()):
                size = catalog.lookup(vm["vmSize"])
                avset = data["availabilitySets"].get(vm.get("avsetKey") or "")
                host = vm.get("host")
                out.append({
                    "name": vm["name"], "resourceGroup": vm["rg"],
                    "id": self.world.compute.vm_id(vm),
                    "location": vm["location"], "powerState": vm["powerState"],
                    "provisioningState": vm["provisioningState"], "vmSize": vm["vmSize"],
                    "image": vm["image"], "availabilitySet": avset["name"] if avset else None,
                    "fabric": vm["fabric"],
                    "privateIp": self.world.network.primary_ip(vm["nicKeys"]),
                    "rdmaIp": vm["rdmaIp"] if size.rdma else None,
                    "rdmaIf": size.rdma_interface, "rdmaUp": vm.get("rdmaUp", True),
                    "netns": host["netns"] if host else None, "tags": vm["tags"],
                })
            return out

    def dns_queries(self, request):
        """The queries the VNet DNS (--dns-listen) answered, oldest first."""
        dns = self.world.dns
        if dns is None:
            raise AdminError(404, "no VNet DNS: start the emulator with --dns-listen")
        return dns.recorded()

    def nics(self, request):
        data = self.world.store.data
        with self.world.store.lock:
            out = []
            for nic in sorted(data["nics"].values(), key=lambda n: n["name"].lower()):
                vm = data["vms"].get(nic.get("vm") or "")
                ipcs = nic.get("ipConfigurations") or []
                out.append({"name": nic["name"], "resourceGroup": nic["rg"],
                            "virtualMachine": vm["name"] if vm else None,
                            "privateIp": ipcs[0]["privateIPAddress"] if ipcs else None})
            return out

    def disks(self, request):
        """OS disks: each VM's (attached) and those deleted VMs left (unattached)."""
        data = self.world.store.data
        with self.world.store.lock:
            out = [{"name": vm["osDiskName"], "resourceGroup": vm["rg"],
                    "virtualMachine": vm["name"], "image": vm["image"], "diskState": "Attached"}
                   for vm in data["vms"].values()]
            out += [{"name": d["name"], "resourceGroup": d["rg"], "virtualMachine": None,
                     "image": d["image"], "diskState": "Unattached"}
                    for d in data["disks"].values()]
            return sorted(out, key=lambda d: d["name"].lower())

    def log(self, request):
        q = request.query
        try:
            since = int(q.get("since", "0"))
        except ValueError:
            raise AdminError(400, "since must be an integer") from None
        return self.world.front.entries(since, include_all=q.get("all") in ("1", "true"))

    def list_faults(self, request):
        return self.world.faults.list()

    # Answers are copies: they are serialised after the store lock is released.

    def get_capacity(self, request):
        with self.world.store.lock:
            return copy.deepcopy(self.world.store.data["capacity"])

    def get_timing(self, request):
        return dict(self.world.cfg.timing)

    # --- bending it ------------------------------------------------------------------

    def rdma(self, request, name):
        body = self._body(request)
        if not isinstance(body.get("up"), bool):
            raise AdminError(400, "body must be {\"up\": true|false}")
        if self.world.hosts is None:
            raise AdminError(409, "VMs do not boot as hosts in this emulator (no --netns-prefix)")
        try:
            self.world.lifecycle.set_rdma(name, body["up"])
        except KeyError:
            raise AdminError(404, f"no VM named {name}") from None
        except HostError as e:
            raise AdminError(409, str(e)) from None
        return {"name": name, "rdmaUp": body["up"]}

    def add_faults(self, request):
        body = self._body(request)
        specs = body if isinstance(body, list) else [body]
        added = [self.world.faults.add(spec).describe() for spec in specs]
        return added if isinstance(body, list) else added[0]

    def clear_faults(self, request):
        self.world.faults.clear()
        return {"cleared": True}

    def capacity(self, request):
        body = self._body(request)
        remaining = _int_or_none(body.get("remaining"), "remaining")
        with self.world.store.lock:
            cap = self.world.store.data["capacity"]
            if "availabilitySet" in body:
                table, key = cap["availabilitySets"], str(body["availabilitySet"]).lower()
            elif "region" in body and "vmSize" in body:
                size = catalog.lookup(body["vmSize"])
                if size is None:
                    raise AdminError(400, f"unknown vmSize {body['vmSize']!r}")
                region = str(body["region"]).replace(" ", "").lower()
                table, key = cap["regions"], f"{region}|{size.name.lower()}"
            else:
                raise AdminError(400, "give {\"availabilitySet\", \"remaining\"} or "
                                      "{\"region\", \"vmSize\", \"remaining\"}")
            if remaining is None:
                table.pop(key, None)
            else:
                table[key] = remaining
            self.world.store.save()
            return copy.deepcopy(cap)

    def quota(self, request):
        body = self._body(request)
        family = body.get("family")
        families = sorted({s.family for s in catalog.SIZES.values()} | {"cores"})
        if family not in families:
            raise AdminError(400, f"unknown family {family!r}; known: {', '.join(families)}")
        limit = _int_or_none(body.get("limit"), "limit")
        region = str(body.get("region") or "*").replace(" ", "").lower()
        with self.world.store.lock:
            quota = self.world.store.data["quota"]
            if limit is None:
                quota.pop(f"{region}|{family}", None)
            else:
                quota[f"{region}|{family}"] = limit
            self.world.store.save()
            return dict(quota)

    def expire_tokens(self, request):
        self.world.tokens.expire_all()
        return {"expired": True}

    def timing(self, request):
        body = self._body(request)
        if not isinstance(body, dict):
            raise AdminError(400, "body must be an object of timings")
        set_timing(self.world.cfg.timing, body)
        return dict(self.world.cfg.timing)

    def reset(self, request):
        """Forget faults, capacity and quota overrides (back to the scenario), and refill
        the throttle buckets."""
        # Scenario faults fire once per emulator start; a reset does not re-arm them.
        self.world.faults.clear()
        with self.world.store.lock:
            self.world.seed_capacity()
            self.world.store.data["quota"].clear()
            self.world.store.save()
        self.world.arm_throttle.reset()
        self.world.compute_throttle.reset()
        return {"reset": True}
