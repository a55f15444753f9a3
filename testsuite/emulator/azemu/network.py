"""Microsoft.Network: network interfaces, the cluster address pool and the RDMA pool.

Every NIC takes its address from the one cluster subnet (--cluster-cidr), whatever subnet
id it names: the emulator does not model virtual networks. Addresses start at .4, as
Azure reserves the first four and the last address of a subnet.
"""

import ipaddress
import os

from . import errors, ops
from .httpserv import Response, json_response
from .util import NIC_TYPE, guid, resource_key
RDMA_NETWORK = ipaddress.IPv4Network("172.16.0.0/16")


def _first_free(network, used):
    """Lowest free address from .4 to the last-but-one, or None when the subnet is full."""
    base = int(network.network_address)
    for value in range(base + 4, int(network.broadcast_address)):
        text = str(ipaddress.IPv4Address(value))
        if text not in used:
            return text
    return None


def nic_id(nic):
    return (f"/subscriptions/{nic['sub']}/resourceGroups/{nic['rg']}/providers/"
            f"Microsoft.Network/networkInterfaces/{nic['name']}")


class Network:
    def __init__(self, world):
        self.world = world
        self.cfg = world.cfg
        self.data = world.store.data

    # --- pools (caller holds the store lock) -----------------------------------------

    def allocate_rdma_ip(self, owner):
        ip = _first_free(RDMA_NETWORK, self.data["rdmaIps"])
        if ip is None:
            raise errors.ArmError(500, "InternalServerError",
                                  "The RDMA address space is exhausted.")
        self.data["rdmaIps"][ip] = owner
        return ip

    def release_rdma_ip(self, ip):
        if ip:
            self.data["rdmaIps"].pop(ip, None)

    def primary_ip(self, nic_keys):
        """The cluster address of a VM: the first IP configuration of its primary NIC."""
        for key in nic_keys:
            nic = self.data["nics"].get(key)
            if nic and nic["ipConfigurations"]:
                return nic["ipConfigurations"][0]["privateIPAddress"]
        return None

    def primary_mac(self, nic_keys):
        """The primary NIC's MAC in the colon form `ip` takes."""
        nic = self.data["nics"].get(nic_keys[0]) if nic_keys else None
        if nic is None or not nic.get("macAddress"):
            return "02:" + ":".join(f"{b:02x}" for b in os.urandom(5))
        return nic["macAddress"].replace("-", ":").lower()

    def attach(self, nic_key, vm_key):
        nic = self.data["nics"][nic_key]
        nic["vm"] = vm_key
        if not nic.get("macAddress"):
            nic["macAddress"] = "00-0D-3A-" + "-".join(f"{b:02X}" for b in os.urandom(3))

    def detach(self, nic_key, delete):
        nic = self.data["nics"].get(nic_key)
        if nic is None:
            return
        nic["vm"] = None
        if delete:
            self._remove(nic_key)

    def _remove(self, key):
        nic = self.data["nics"].pop(key)
        for ipc in nic["ipConfigurations"]:
            if self.data["clusterIps"].get(ipc["privateIPAddress"]) == key:
                del self.data["clusterIps"][ipc["privateIPAddress"]]

    # --- rendering -------------------------------------------------------------------

    def render(self, nic):
        rid = nic_id(nic)
        etag = f'W/"{nic["etag"]}"'
        ipcs = []
        for i, ipc in enumerate(nic["ipConfigurations"]):
            props = dict(ipc["extra"])
            props.update({
                "provisioningState": nic["provisioningState"],
                "privateIPAddress": ipc["privateIPAddress"],
                "privateIPAllocationMethod": ipc["privateIPAllocationMethod"],
                "primary": i == 0,
                "privateIPAddressVersion": "IPv4",
            })
            if ipc["subnet"] is not None:
                props["subnet"] = ipc["subnet"]
            ipcs.append({"name": ipc["name"], "id": f"{rid}/ipConfigurations/{ipc['name']}",
                         "etag": etag,
                         "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
                         "properties": props})
        props = dict(nic["spec"])
        props.update({
            "provisioningState": nic["provisioningState"],
            "resourceGuid": nic["resourceGuid"],
            "ipConfigurations": ipcs,
            "dnsSettings": {"dnsServers": [], "appliedDnsServers": [],
                            "internalDomainNameSuffix": nic["dnsSuffix"]},
            "enableAcceleratedNetworking": bool(nic["spec"].get("enableAcceleratedNetworking")),
            "vnetEncryptionSupported": False,
            "enableIPForwarding": bool(nic["spec"].get("enableIPForwarding")),
            "disableTcpStateTracking": False,
            "hostedWorkloads": [],
            "tapConfigurations": [],
            "nicType": "Standard",
            "allowPort25Out": True,
            "auxiliaryMode": "None",
            "auxiliarySku": "None",
        })
        if nic.get("vm"):
            vm = self.data["vms"].get(nic["vm"])
            if vm:
                props["macAddress"] = nic["macAddress"]
                props["primary"] = True
                props["virtualMachine"] = {"id": self.world.compute.vm_id(vm)}
        out = {"name": nic["name"], "id": rid, "etag": etag, "type": NIC_TYPE,
               "location": nic["location"]}
        if nic["tags"]:
            out["tags"] = nic["tags"]
        out["properties"] = props
        out["kind"] = "Regular"
        return out

    # --- handlers --------------------------------------------------------------------

    def get(self, ctx):
        p = ctx.params
        with self.world.store.lock:
            nic = self.data["nics"].get(resource_key(p["sub"], p["rg"], p["name"]))
            if nic is None:
                raise errors.resource_not_found(NIC_TYPE, p["name"], p["rg"])
            return json_response(200, self.render(nic), pretty=True)

    def list(self, ctx):
        p = ctx.params
        with self.world.store.lock:
            nics = [n for n in self.data["nics"].values()
                    if n["sub"].lower() == p["sub"].lower()
                    and ("rg" not in p or n["rg"].lower() == p["rg"].lower())]
            return ctx.page(nics, self.render)

    def put(self, ctx):
        p = ctx.params
        body = ctx.body_json()
        location = ctx.location_of(body, NIC_TYPE)
        props = body.get("properties") or {}
        configs = props.get("ipConfigurations") or []
        key = resource_key(p["sub"], p["rg"], p["name"])
        rid = (f"/subscriptions/{p['sub']}/resourceGroups/{p['rg']}/providers/"
               f"Microsoft.Network/networkInterfaces/{p['name']}")
        if not configs:
            raise errors.nic_needs_ip_configuration(rid)
        with self.world.store.lock:
            existing = self.data["nics"].get(key)
            if existing is not None:
                if existing["location"] != location:
                    raise errors.invalid_resource_location(p["name"], p["rg"],
                                                           existing["location"], location)
                if existing["provisioningState"] == "Deleting":
                    raise errors.ArmError(409, "Conflict",
                                          f"Network interface {rid} is being deleted.")
            ipcs = self._ip_configurations(rid, key, configs, existing)
            spec = {k: v for k, v in props.items()
                    if k not in ("ipConfigurations", "provisioningState", "resourceGuid",
                                 "virtualMachine", "macAddress", "primary")}
            if existing is None:
                nic = {"sub": p["sub"], "rg": p["rg"], "name": p["name"], "location": location,
                       "resourceGuid": guid(), "vm": None, "macAddress": None,
                       "dnsSuffix": guid().replace("-", "")[:26] + ".bx.internal.cloudapp.net",
                       "activeOp": None}
                self.data["nics"][key] = nic
            else:
                nic = existing
                for old in nic["ipConfigurations"]:
                    if old["privateIPAddress"] not in {i["privateIPAddress"] for i in ipcs}:
                        self.data["clusterIps"].pop(old["privateIPAddress"], None)
            for ipc in ipcs:
                self.data["clusterIps"][ipc["privateIPAddress"]] = key
            duration = self.cfg.timing["nic"]
            nic.update({"tags": body.get("tags") or {}, "spec": spec, "ipConfigurations": ipcs,
                        "etag": guid(),
                        "provisioningState": "Updating" if duration > 0 else "Succeeded"})
            op = self._start_op(ctx, nic, key, "nic.put", duration)
            self.world.store.save()
            return json_response(200 if existing else 201, self.render(nic), pretty=True,
                                 headers={"Azure-AsyncOperation": ops.async_url(ctx.base, op)})

    def _ip_configurations(self, rid, key, configs, existing):
        """Validate the requested IP configurations and give each an address."""
        cidr = self.cfg.cluster_cidr
        old = {c["name"].lower(): c for c in (existing or {}).get("ipConfigurations", [])}
        taken = dict(self.data["clusterIps"])
        out = []
        for cfg in configs:
            name = cfg.get("name") or "ipconfig1"
            cprops = cfg.get("properties") or {}
            method = (cprops.get("privateIPAllocationMethod") or "Dynamic").capitalize()
            ipc_id = f"{rid}/ipConfigurations/{name}"
            wanted = cprops.get("privateIPAddress") if method == "Static" else None
            previous = old.get(name.lower())
            if wanted:
                try:
                    addr = ipaddress.IPv4Address(wanted)
                except ValueError:
                    raise errors.ArmError(400, "InvalidRequestFormat",
                                          f"Cannot parse the request: '{wanted}' is not an IPv4 "
                                          "address.") from None
                if addr not in cidr or int(addr) - int(cidr.network_address) < 4 \
                        or addr == cidr.broadcast_address:
                    raise errors.ip_not_in_subnet(ipc_id, wanted, str(cidr))
                owner = taken.get(wanted)
                if owner is not None and owner != key:
                    raise errors.ip_in_use(ipc_id, wanted, nic_id(self.data["nics"][owner]))
                ip = wanted
            elif previous is not None:
                ip = previous["privateIPAddress"]  # a dynamic address is kept across updates
            else:
                ip = _first_free(cidr, taken)
                if ip is None:
                    raise errors.subnet_full(str(cidr))
            taken[ip] = key
            extra = {k: v for k, v in cprops.items()
                     if k not in ("privateIPAddress", "privateIPAllocationMethod", "subnet",
                                  "primary", "provisioningState", "privateIPAddressVersion")}
            out.append({"name": name, "privateIPAddress": ip, "privateIPAllocationMethod": method,
                        "subnet": cprops.get("subnet"), "extra": extra})
        return out

    def _start_op(self, ctx, nic, key, kind, duration):
        op = ops.new_op(self.world, "network", nic["sub"], nic["location"], kind, key, duration,
                        ctx.api_version)
        fault = self.world.faults.take_async(ctx.request.method, ctx.request.path)
        if fault:
            op["failWith"] = {"code": fault.code, "message": fault.message}
        nic["activeOp"] = op["id"]
        return op

    def delete(self, ctx):
        p = ctx.params
        key = resource_key(p["sub"], p["rg"], p["name"])
        with self.world.store.lock:
            nic = self.data["nics"].get(key)
            if nic is None:
                return Response(204)
            if nic.get("vm"):
                vm = self.data["vms"].get(nic["vm"])
                if vm is not None:
                    raise errors.nic_in_use(nic_id(nic), self.world.compute.vm_id(vm))
            active = self.data["ops"].get(nic.get("activeOp") or "")
            if nic["provisioningState"] == "Deleting" and active:
                op = active
            else:
                nic["provisioningState"] = "Deleting"
                op = self._start_op(ctx, nic, key, "nic.delete", self.cfg.timing["nic"])
                self.world.store.save()
            return Response(202, headers={"Azure-AsyncOperation": ops.async_url(ctx.base, op),
                                          "Location": ops.location_url(ctx.base, op),
                                          "Retry-After": "10"})

    def complete(self, op_id):
        """Scheduler callback for nic.put and nic.delete."""
        with self.world.store.lock:
            op = self.data["ops"].get(op_id)
            if op is None or op["status"] != ops.IN_PROGRESS:
                return
            nic = self.data["nics"].get(op["target"])
            if nic is None:
                ops.finish(op, ops.SUCCEEDED)
            elif op["failWith"]:
                nic["provisioningState"] = "Failed"
                ops.finish(op, ops.FAILED, op["failWith"])
            elif op["kind"] == "nic.delete":
                self._remove(op["target"])
                ops.finish(op, ops.SUCCEEDED)
            else:
                nic["provisioningState"] = "Succeeded"
                ops.finish(op, ops.SUCCEEDED)
            if nic is not None and nic.get("activeOp") == op_id:
                nic["activeOp"] = None
            self.world.store.save()

    # --- operation status ------------------------------------------------------------

    def operation(self, ctx):
        op = ctx.find_op("network")
        return json_response(200, ops.status_body(op), pretty=True)

    def operation_result(self, ctx):
        op = ctx.find_op("network")
        if op["status"] == ops.IN_PROGRESS:
            return Response(202, headers={"Location": ops.location_url(ctx.base, op),
                                          "Retry-After": "10"})
        if op["status"] == ops.SUCCEEDED:
            return Response(204)
        err = op["error"] or {"code": "Canceled", "message": "The operation was canceled."}
        return json_response(400, {"error": {"code": err["code"], "message": err["message"],
                                             "details": []}}, pretty=True)

