"""Microsoft.Compute: virtual machines, availability sets, proximity placement groups,
resource SKUs and the operation-status resources, with Azure's placement rules.

Placement model
  * A fabric is a hardware cluster with its own RDMA segment. An availability set is
    pinned to one fabric by its first allocation; every VM of the set is allocated there.
    When no VM of the set is allocated any more the pin is dropped, and the next
    allocation pins the set to a new fabric. A VM without a set gets a fabric of its own.
  * Allocation (and the quota check) happens when the request is accepted, so concurrent
    requests are decided in arrival order; a capacity failure is reported by the
    operation (AllocationFailed), a quota failure synchronously (409).
  * Capacity: at most `capacity_per_set` allocated VMs per set, plus optional "remaining"
    counters per set name and per region+size that allocation takes from and
    deallocation gives back.

VM life cycle (provisioningState / PowerState):
  create  Creating/starting -> Succeeded/running (or Failed/deallocated)
  start   Updating/starting -> Succeeded/running
  deallocate Updating/deallocating -> Succeeded/deallocated (host torn down, fabric released)
  powerOff   Updating/stopping -> Succeeded/stopped (host torn down, still allocated)
  delete  Deleting -> gone
A delete, deallocate or powerOff preempts a create/start/restart in progress, whose
operation then ends Canceled with OperationPreempted; a request for the operation that is
already running is answered with that operation.
"""

import base64
import binascii
import copy
import logging
import re
import threading

from . import catalog, errors, ops
from .host import HostError
from .httpserv import Response, json_response
from .util import guid, iso7, now, parse_resource_id, resource_key

log = logging.getLogger("azemu.compute")

VM_TYPE = "Microsoft.Compute/virtualMachines"
AVSET_TYPE = "Microsoft.Compute/availabilitySets"
PPG_TYPE = "Microsoft.Compute/proximityPlacementGroups"

# Operation kinds whose request a later deallocate/powerOff/delete preempts.
PREEMPTIBLE = {"vm.create", "vm.start", "vm.restart", "vm.update"}
ACTION_NAMES = {"vm.create": "create", "vm.update": "update", "vm.start": "start",
                "vm.restart": "restart", "vm.deallocate": "deallocate",
                "vm.powerOff": "powerOff", "vm.delete": "delete"}
POWER_DISPLAY = {"running": "VM running", "deallocated": "VM deallocated",
                 "stopped": "VM stopped", "starting": "VM starting",
                 "deallocating": "VM deallocating", "stopping": "VM stopping"}
PROVISIONING_DISPLAY = {"Creating": "Creating", "Updating": "Updating", "Deleting": "Deleting",
                        "Succeeded": "Provisioning succeeded", "Failed": "Provisioning failed"}


def _upper_id(sub, rg, rtype, name):
    """CRP returns references to availability sets and their VMs with the resource group
    and name upper-cased; clients must compare ids case-insensitively."""
    return f"/subscriptions/{sub}/resourceGroups/{rg.upper()}/providers/{rtype}/{name.upper()}"


def _image_text(ref):
    """The image as the boot hook sees it: the id, or publisher:offer:sku:version."""
    if not isinstance(ref, dict):
        return ""
    for key in ("id", "sharedGalleryImageId", "communityGalleryImageId"):
        if ref.get(key):
            return ref[key]
    return ":".join(str(ref.get(k, "")) for k in ("publisher", "offer", "sku", "version"))


class Compute:
    def __init__(self, world):
        self.world = world
        self.cfg = world.cfg
        self.data = world.store.data
        self._host_locks = {}
        self._host_locks_guard = threading.Lock()

    # --- ids and lookups -------------------------------------------------------------

    @staticmethod
    def vm_id(vm):
        return (f"/subscriptions/{vm['sub']}/resourceGroups/{vm['rg']}/providers/"
                f"{VM_TYPE}/{vm['name']}")

    @staticmethod
    def avset_id(s):
        return f"/subscriptions/{s['sub']}/resourceGroups/{s['rg']}/providers/{AVSET_TYPE}/{s['name']}"

    @staticmethod
    def ppg_id(g):
        return f"/subscriptions/{g['sub']}/resourceGroups/{g['rg']}/providers/{PPG_TYPE}/{g['name']}"

    def _vm(self, ctx):
        p = ctx.params
        vm = self.data["vms"].get(resource_key(p["sub"], p["rg"], p["name"]))
        if vm is None:
            raise errors.resource_not_found(VM_TYPE, p["name"], p["rg"])
        return vm

    def _host_lock(self, vm_key):
        with self._host_locks_guard:
            return self._host_locks.setdefault(vm_key, threading.Lock())

    def _op(self, vm):
        return self.data["ops"].get(vm.get("activeOp") or "")

    # --- quota and capacity (caller holds the store lock) ----------------------------

    def _quota_limit(self, location, family):
        q = self.data["quota"]
        for key in (f"{location}|{family}", f"*|{family}"):
            if key in q:
                return q[key]
        if family == "cores":
            return self.cfg.quota_total_regional
        return self.cfg.quota_families.get(family, self.cfg.quota_default)

    def _usage(self, sub, location, family, exclude=None):
        total = 0
        for key, vm in self.data["vms"].items():
            if key == exclude or not vm["allocated"]:
                continue
            if vm["sub"].lower() != sub.lower() or vm["location"] != location:
                continue
            size = catalog.lookup(vm["vmSize"])
            if family == "cores" or size.family == family:
                total += size.vcpus
        return total

    def _check_quota(self, sub, location, size, exclude=None):
        """Deallocated VMs do not count; the VM being (re)allocated is excluded."""
        for family, text in ((size.family, f"{size.family} Cores"), ("cores", "Total Regional Cores")):
            limit = self._quota_limit(location, family)
            usage = self._usage(sub, location, family, exclude)
            if usage + size.vcpus > limit:
                raise errors.quota_exceeded(text, location, limit, usage, size.vcpus, sub,
                                            size.family if family != "cores" else None)

    def _set_of(self, vm):
        return self.data["availabilitySets"].get(vm.get("avsetKey") or "")

    def _allocated_members(self, avset_key, exclude=None):
        return [k for k, v in self.data["vms"].items()
                if v.get("avsetKey") == avset_key and v["allocated"] and k != exclude]

    def _allocate(self, key, vm, size):
        """Place the VM on a fabric. Raises ArmError for synchronous refusals (quota,
        size not in the set's cluster); returns an error dict when the allocation itself
        fails (reported by the operation), None on success."""
        avset = self._set_of(vm)
        if avset is not None and avset.get("fabric") is not None \
                and avset["series"] != size.series:
            raise errors.size_not_in_set_cluster(size.name, catalog.same_series(avset["series"]))
        self._check_quota(vm["sub"], vm["location"], size, exclude=key)

        cap = self.data["capacity"]
        set_name = avset["name"].lower() if avset else None
        region_key = f"{vm['location']}|{size.name.lower()}"
        if avset is not None:
            full = len(self._allocated_members(vm["avsetKey"], exclude=key)) >= self.cfg.capacity_per_set
            if full or cap["availabilitySets"].get(set_name, 1) <= 0:
                return {"code": "AllocationFailed", "message": errors.ALLOCATION_FAILED_SET}
        if cap["regions"].get(region_key, 1) <= 0:
            return {"code": "AllocationFailed", "message": errors.ALLOCATION_FAILED_REGION}

        taken = {}
        if set_name in cap["availabilitySets"]:
            cap["availabilitySets"][set_name] -= 1
            taken["set"] = set_name
        if region_key in cap["regions"]:
            cap["regions"][region_key] -= 1
            taken["region"] = region_key
        if avset is not None and avset.get("fabric") is not None:
            fabric = avset["fabric"]
        else:
            fabric = self.world.store.next_counter("fabric")
        if avset is not None:
            avset["fabric"], avset["series"] = fabric, size.series
        vm.update({"allocated": True, "fabric": fabric, "series": size.series,
                   "capacityTaken": taken})
        if size.rdma and not vm.get("rdmaIp"):
            vm["rdmaIp"] = self.world.network.allocate_rdma_ip(key)
        return None

    def _release(self, key, vm):
        if not vm["allocated"]:
            return
        cap = self.data["capacity"]
        taken = vm.get("capacityTaken") or {}
        if taken.get("set") in cap["availabilitySets"]:
            cap["availabilitySets"][taken["set"]] += 1
        if taken.get("region") in cap["regions"]:
            cap["regions"][taken["region"]] += 1
        vm.update({"allocated": False, "fabric": None, "capacityTaken": {}})
        avset = self._set_of(vm)
        if avset is not None and not self._allocated_members(vm["avsetKey"], exclude=key):
            # The last VM left the cluster: the set may land elsewhere next time.
            avset["fabric"] = avset["series"] = None

    # --- rendering -------------------------------------------------------------------

    def _statuses(self, vm):
        state = vm["provisioningState"]
        if state == "Failed" and vm.get("lastError"):
            prov = {"code": f"ProvisioningState/failed/{vm['lastError']['code']}", "level": "Error",
                    "displayStatus": "Provisioning failed", "message": vm["lastError"]["message"],
                    "time": iso7(vm["stateTime"])}
        else:
            prov = {"code": f"ProvisioningState/{state.lower()}", "level": "Info",
                    "displayStatus": PROVISIONING_DISPLAY[state], "time": iso7(vm["stateTime"])}
        power = vm["powerState"]
        return [prov, {"code": f"PowerState/{power}", "level": "Info",
                       "displayStatus": POWER_DISPLAY[power]}]

    def instance_view(self, vm):
        view = {"computerName": vm["computerName"], "osName": "ubuntu", "osVersion": "22.04",
                "hyperVGeneration": "V2"}
        if vm.get("avsetKey"):
            view["platformUpdateDomain"] = vm["updateDomain"]
            view["platformFaultDomain"] = vm["faultDomain"]
        if vm["powerState"] == "running":
            view["vmAgent"] = {"vmAgentVersion": "2.12.0.2", "statuses": [{
                "code": "ProvisioningState/succeeded", "level": "Info",
                "displayStatus": "Ready", "message": "Guest Agent is running",
                "time": iso7(vm["stateTime"])}], "extensionHandlers": []}
        view["statuses"] = self._statuses(vm)
        return view

    def render_vm(self, vm, expand=None):
        props = copy.deepcopy(vm["spec"])
        user_data = props.pop("userData", None)
        props["vmId"] = vm["vmId"]
        if vm.get("avsetKey"):
            avset = self.data["availabilitySets"].get(vm["avsetKey"])
            name = avset["name"] if avset else vm["avsetKey"].rsplit("/", 1)[1]
            props["availabilitySet"] = {"id": _upper_id(vm["sub"], vm["rg"], AVSET_TYPE, name)}
        hw = dict(props.get("hardwareProfile") or {})
        hw["vmSize"] = vm["vmSize"]
        props["hardwareProfile"] = hw
        storage = props.setdefault("storageProfile", {})
        image = storage.get("imageReference")
        if isinstance(image, dict) and image.get("version", "").lower() == "latest":
            image["exactVersion"] = "1.0.20250101"
        os_disk = storage.setdefault("osDisk", {})
        os_disk.setdefault("osType", "Linux")
        os_disk.setdefault("name", vm["osDiskName"])
        os_disk.setdefault("createOption", "FromImage")
        os_disk.setdefault("caching", "ReadWrite")
        managed = os_disk.setdefault("managedDisk", {})
        managed.setdefault("storageAccountType", "Premium_LRS")
        managed["id"] = (f"/subscriptions/{vm['sub']}/resourceGroups/{vm['rg'].upper()}/providers/"
                         f"Microsoft.Compute/disks/{os_disk['name']}")
        os_disk.setdefault("deleteOption", "Detach")
        os_disk.setdefault("diskSizeGB", 30)
        storage.setdefault("dataDisks", [])
        if "osProfile" in props:
            osp = props["osProfile"]
            osp.setdefault("computerName", vm["computerName"])
            osp.setdefault("secrets", [])
            osp.setdefault("allowExtensionOperations", True)
            osp.setdefault("requireGuestProvisionSignal", True)
        props["networkProfile"] = {"networkInterfaces": [
            {"id": n["id"], "properties": {k: v for k, v in n.items() if k != "id"}}
            for n in vm["nicRefs"]]}
        props["provisioningState"] = vm["provisioningState"]
        props["timeCreated"] = iso7(vm["timeCreated"])
        if expand == "instanceview":
            props["instanceView"] = self.instance_view(vm)
        elif expand == "userdata" and user_data is not None:
            props["userData"] = user_data
        out = {"name": vm["name"], "id": self.vm_id(vm), "type": VM_TYPE, "location": vm["location"]}
        if vm["tags"]:
            out["tags"] = vm["tags"]
        if vm.get("zones"):
            out["zones"] = vm["zones"]
        out["properties"] = props
        out["etag"] = f'"{vm["etag"]}"'
        return out

    def _vm_response(self, ctx, status, vm, op, location=False):
        headers = {}
        if op is not None:
            headers["Azure-AsyncOperation"] = ops.async_url(ctx.base, op)
            if location:
                headers["Location"] = ops.location_url(ctx.base, op)
        if status == 201:
            headers["azure-asyncnotification"] = "Enabled"
        return json_response(status, self.render_vm(vm), headers=headers, pretty=True)

    # --- VM reads --------------------------------------------------------------------

    def get_vm(self, ctx):
        expand = (ctx.request.query.get("$expand") or "").lower() or None
        if expand not in (None, "instanceview", "userdata"):
            raise errors.invalid_parameter(
                f"The value '{ctx.request.query['$expand']}' of parameter '$expand' is not valid. "
                "The valid values are 'instanceView,userData'.", target="$expand")
        with self.world.store.lock:
            return json_response(200, self.render_vm(self._vm(ctx), expand), pretty=True)

    def get_instance_view(self, ctx):
        with self.world.store.lock:
            return json_response(200, self.instance_view(self._vm(ctx)), pretty=True)

    def list_vms(self, ctx):
        p = ctx.params
        q = ctx.request.query
        status_only = q.get("statusonly", "").lower() == "true"
        if "rg" in p and q.get("$expand") and not q.get("$filter"):
            raise errors.invalid_parameter(
                "The parameter '$expand' is only supported together with a valid '$filter'.",
                target="$expand")
        with self.world.store.lock:
            vms = [v for v in self.data["vms"].values()
                   if v["sub"].lower() == p["sub"].lower()
                   and ("rg" not in p or v["rg"].lower() == p["rg"].lower())]
            expand = "instanceview" if status_only else None
            return ctx.page(vms, lambda vm: self.render_vm(vm, expand))

    # --- VM create and update --------------------------------------------------------

    def put_vm(self, ctx):
        p = ctx.params
        body = ctx.body_json()
        location = ctx.location_of(body, VM_TYPE)
        props = body.get("properties") or {}
        if not isinstance(props, dict):
            raise errors.invalid_request_content("properties must be an object")
        size_name = (props.get("hardwareProfile") or {}).get("vmSize")
        if not size_name:
            raise errors.required_parameter("hardwareProfile.vmSize")
        size = catalog.lookup(size_name)
        if size is None:
            raise errors.vm_size_not_available(size_name, catalog.NAMES)
        key = resource_key(p["sub"], p["rg"], p["name"])
        custom_data = self._custom_data(props)
        with self.world.store.lock:
            existing = self.data["vms"].get(key)
            if existing is not None:
                return self._update_vm(ctx, key, existing, body, props, location, size, custom_data)
            return self._create_vm(ctx, key, body, props, location, size, custom_data)

    @staticmethod
    def _custom_data(props):
        text = (props.get("osProfile") or {}).get("customData")
        if text is None:
            return None
        if not isinstance(text, str) or len(text) > 87380:
            raise errors.custom_data_invalid()
        try:
            base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise errors.custom_data_invalid() from None
        return text

    def _nic_refs(self, vm_key, vm_rid, location, props):
        refs = (props.get("networkProfile") or {}).get("networkInterfaces")
        if not refs:
            raise errors.required_parameter("networkProfile")
        out = []
        for ref in refs:
            rid = (ref or {}).get("id")
            parsed = parse_resource_id(rid, "Microsoft.Network/networkInterfaces")
            if parsed is None:
                raise errors.invalid_parameter(f"The value '{rid}' of parameter "
                                               "'networkInterfaces.id' is invalid.",
                                               target="networkProfile.networkInterfaces.id")
            nic_key = resource_key(*parsed)
            nic = self.data["nics"].get(nic_key)
            if nic is None or nic["location"] != location or nic["provisioningState"] == "Deleting":
                raise errors.invalid_reference(rid, vm_rid)
            if nic.get("vm") and nic["vm"] != vm_key and nic["vm"] in self.data["vms"]:
                raise errors.nic_attached_elsewhere(rid, self.vm_id(self.data["vms"][nic["vm"]]))
            entry = {"id": rid}
            entry.update((ref.get("properties") or {}))
            out.append((nic_key, entry))
        return out

    def _create_vm(self, ctx, key, body, props, location, size, custom_data):
        p = ctx.params
        vm_rid = (f"/subscriptions/{p['sub']}/resourceGroups/{p['rg']}/providers/"
                  f"{VM_TYPE}/{p['name']}")
        storage = props.get("storageProfile") or {}
        if not storage.get("imageReference") and \
                (storage.get("osDisk") or {}).get("createOption", "").lower() != "attach":
            raise errors.required_parameter("storageProfile.imageReference")
        nics = self._nic_refs(key, vm_rid, location, props)
        avset_key = None
        set_ref = (props.get("availabilitySet") or {}).get("id")
        if set_ref:
            parsed = parse_resource_id(set_ref, AVSET_TYPE)
            avset = self.data["availabilitySets"].get(resource_key(*parsed)) if parsed else None
            if avset is None:
                raise errors.availability_set_not_found(set_ref)
            if avset["rg"].lower() != p["rg"].lower() or avset["sub"].lower() != p["sub"].lower():
                raise errors.availability_set_other_group(set_ref, vm_rid)
            if avset["location"] != location:
                raise errors.availability_set_other_location(set_ref, avset["location"], location)
            avset_key = resource_key(*parsed)

        t = now()
        os_profile = dict(props.get("osProfile") or {})
        for secret in ("adminPassword", "customData"):
            os_profile.pop(secret, None)
        spec = {k: v for k, v in props.items()
                if k not in ("availabilitySet", "networkProfile", "provisioningState",
                             "instanceView", "vmId", "timeCreated")}
        if "osProfile" in props:
            spec["osProfile"] = os_profile
        vm = {
            "sub": p["sub"], "rg": p["rg"], "name": p["name"], "location": location,
            "tags": body.get("tags") or {}, "zones": body.get("zones"),
            "spec": spec, "customData": custom_data, "vmSize": size.name,
            "image": _image_text(storage.get("imageReference")),
            "computerName": os_profile.get("computerName") or p["name"],
            "nicKeys": [k for k, _ in nics], "nicRefs": [e for _, e in nics],
            "avsetKey": avset_key, "vmId": guid(), "timeCreated": t, "stateTime": t, "etag": 1,
            "osDiskName": f"{p['name']}_OsDisk_1_{guid().replace('-', '')}",
            "provisioningState": "Creating", "powerState": "starting",
            "allocated": False, "fabric": None, "series": None, "capacityTaken": {},
            "rdmaIp": None, "rdmaUp": True, "host": None, "activeOp": None, "lastError": None,
        }
        failure = self._allocate(key, vm, size)  # may raise (quota): nothing stored yet
        if avset_key:
            avset = self.data["availabilitySets"][avset_key]
            index = avset["joined"]
            avset["joined"] += 1
            vm["faultDomain"] = index % avset["faultDomains"]
            vm["updateDomain"] = index % avset["updateDomains"]
        self.data["vms"][key] = vm
        for nic_key in vm["nicKeys"]:
            self.world.network.attach(nic_key, key)
        op = self._start_op(ctx, key, vm, "vm.create", self.cfg.timing["create"], failure)
        self.world.store.save()
        return self._vm_response(ctx, 201, vm, op)

    def _update_vm(self, ctx, key, vm, body, props, location, size, custom_data):
        """PUT on an existing VM: 200. Only some properties may change."""
        p = ctx.params
        active = self._op(vm)
        if active and active["kind"] == "vm.delete":
            raise errors.vm_marked_for_deletion("update", p["name"])
        if location != vm["location"]:
            raise errors.invalid_resource_location(p["name"], p["rg"], vm["location"], location)
        set_ref = (props.get("availabilitySet") or {}).get("id")
        parsed = parse_resource_id(set_ref, AVSET_TYPE) if set_ref else None
        wanted_set = resource_key(*parsed) if parsed else None
        if wanted_set != vm.get("avsetKey"):
            raise errors.property_change_not_allowed("availabilitySet.id")
        if custom_data is not None and custom_data != vm["customData"]:
            raise errors.property_change_not_allowed("customData")
        image = (props.get("storageProfile") or {}).get("imageReference")
        if image and _image_text(image) != vm["image"]:
            raise errors.property_change_not_allowed("imageReference")
        old_size = catalog.lookup(vm["vmSize"])
        if size.name != old_size.name and vm["allocated"]:
            if size.series != vm["series"]:
                raise errors.resize_not_in_cluster(size.name)
            self._check_quota(vm["sub"], vm["location"], size, exclude=key)

        retry_create = vm["provisioningState"] == "Failed" and not vm["allocated"] \
            and vm.get("failedKind") == "vm.create" and active is None
        failure = None
        if retry_create:
            # Re-sending the PUT of a VM whose creation failed retries the allocation
            # (which may refuse synchronously, before anything changed).
            failure = self._allocate(key, vm, size)

        vm["tags"] = body.get("tags") if body.get("tags") is not None else vm["tags"]
        vm["vmSize"] = size.name
        spec = vm["spec"]
        for k, v in props.items():
            if k in ("hardwareProfile", "diagnosticsProfile", "billingProfile", "securityProfile",
                     "userData", "priority", "evictionPolicy", "licenseType",
                     "scheduledEventsProfile", "extensionsTimeBudget"):
                spec[k] = v
        vm["etag"] += 1

        if retry_create:
            op = self._start_op(ctx, key, vm, "vm.create", self.cfg.timing["create"], failure)
            vm["provisioningState"], vm["powerState"] = "Creating", "starting"
        elif active is not None:
            op = active  # a create or power operation is running: the PUT joins it
        else:
            op = self._start_op(ctx, key, vm, "vm.update", self.cfg.timing["update"], None)
            vm["provisioningState"] = "Updating"
        vm["stateTime"] = now()
        self.world.store.save()
        return self._vm_response(ctx, 200, vm, op)

    def patch_vm(self, ctx):
        """PATCH: tags and a few properties, merged into the current model."""
        body = ctx.body_json()
        with self.world.store.lock:
            vm = self._vm(ctx)
            merged = self.render_vm(vm)
            if "tags" in body:
                merged["tags"] = body["tags"]
            for k, v in (body.get("properties") or {}).items():
                merged["properties"][k] = v
            merged["properties"].pop("osProfile", None)
            props = merged["properties"]
            size = catalog.lookup((props.get("hardwareProfile") or {}).get("vmSize"))
            if size is None:
                raise errors.vm_size_not_available(props["hardwareProfile"].get("vmSize"),
                                                   catalog.NAMES)
            if vm.get("avsetKey"):
                avset = self.data["availabilitySets"][vm["avsetKey"]]
                props["availabilitySet"] = {"id": self.avset_id(avset)}
            return self._update_vm(ctx, resource_key(vm["sub"], vm["rg"], vm["name"]), vm,
                                   merged, props, vm["location"], size, None)

    # --- VM power operations ---------------------------------------------------------

    def _start_op(self, ctx, key, vm, kind, duration, failure, prior_power=None):
        op = ops.new_op(self.world, "compute", vm["sub"], vm["location"], kind, key, duration,
                        ctx.api_version)
        op["priorPower"] = prior_power
        fault = self.world.faults.take_async(ctx.request.method, ctx.request.path)
        if failure is None and fault is not None:
            failure = {"code": fault.code, "message": fault.message}
        op["failWith"] = failure
        vm["activeOp"] = op["id"]
        return op

    def _preempt(self, vm):
        op = self._op(vm)
        if op is not None and op["status"] == ops.IN_PROGRESS:
            ops.finish(op, ops.CANCELED, {"code": "OperationPreempted",
                                          "message": errors.OPERATION_PREEMPTED})
        vm["activeOp"] = None

    def _accepted(self, ctx, op):
        return Response(202, headers={"Azure-AsyncOperation": ops.async_url(ctx.base, op),
                                      "Location": ops.location_url(ctx.base, op)})

    def action(self, ctx):
        verb = ctx.params["action"]
        handler = {"start": self._start, "deallocate": self._deallocate,
                   "poweroff": self._power_off, "restart": self._restart}.get(verb.lower())
        if handler is None:
            raise errors.invalid_resource_type(
                "Microsoft.Compute", f"virtualMachines/{verb}", ctx.api_version)
        with self.world.store.lock:
            vm = self._vm(ctx)
            key = resource_key(vm["sub"], vm["rg"], vm["name"])
            op = handler(ctx, key, vm)
            vm["stateTime"] = now()
            self.world.store.save()
            return self._accepted(ctx, op)

    def _start(self, ctx, key, vm):
        active = self._op(vm)
        if active is not None:
            if active["kind"] in ("vm.start", "vm.create", "vm.restart"):
                return active
            if active["kind"] == "vm.delete":
                raise errors.vm_marked_for_deletion("start", vm["name"])
            raise errors.operation_in_progress("start", vm["name"])
        if vm["powerState"] == "running":
            return self._start_op(ctx, key, vm, "vm.start", 0, None)
        failure = None
        prior = vm["powerState"] if vm["allocated"] else "deallocated"
        if not vm["allocated"]:
            failure = self._allocate(key, vm, catalog.lookup(vm["vmSize"]))
        vm["provisioningState"], vm["powerState"] = "Updating", "starting"
        vm["lastError"] = None
        return self._start_op(ctx, key, vm, "vm.start", self.cfg.timing["start"], failure, prior)

    def _restart(self, ctx, key, vm):
        active = self._op(vm)
        if active is not None:
            if active["kind"] == "vm.restart":
                return active
            if active["kind"] == "vm.delete":
                raise errors.vm_marked_for_deletion("restart", vm["name"])
            raise errors.operation_in_progress("restart", vm["name"])
        if vm["powerState"] != "running":
            raise errors.vm_deallocated("restart", vm["name"]) if not vm["allocated"] else \
                errors.ArmError(409, "OperationNotAllowed",
                                "The operation requires the VM to be running (or set to run).")
        vm["provisioningState"], vm["powerState"] = "Updating", "starting"
        return self._start_op(ctx, key, vm, "vm.restart", self.cfg.timing["start"], None, "stopped")

    def _deallocate(self, ctx, key, vm):
        active = self._op(vm)
        if active is not None:
            if active["kind"] == "vm.deallocate":
                return active
            if active["kind"] == "vm.delete":
                raise errors.vm_marked_for_deletion("deallocate", vm["name"])
            self._preempt(vm)
        if not vm["allocated"] and vm["host"] is None:
            # Already deallocated (or never allocated): nothing to do, but still an operation.
            vm["powerState"] = "deallocated"
            return self._start_op(ctx, key, vm, "vm.deallocate", 0, None)
        vm["provisioningState"], vm["powerState"] = "Updating", "deallocating"
        return self._start_op(ctx, key, vm, "vm.deallocate", self.cfg.timing["deallocate"], None)

    def _power_off(self, ctx, key, vm):
        active = self._op(vm)
        if active is not None:
            if active["kind"] == "vm.powerOff":
                return active
            if active["kind"] == "vm.delete":
                raise errors.vm_marked_for_deletion("powerOff", vm["name"])
            if active["kind"] == "vm.deallocate":
                raise errors.vm_deallocated("powerOff", vm["name"])
            self._preempt(vm)
        if not vm["allocated"]:
            raise errors.vm_deallocated("powerOff", vm["name"])
        if vm["powerState"] == "stopped":
            return self._start_op(ctx, key, vm, "vm.powerOff", 0, None)
        vm["provisioningState"], vm["powerState"] = "Updating", "stopping"
        return self._start_op(ctx, key, vm, "vm.powerOff", self.cfg.timing["powerOff"], None)

    def delete_vm(self, ctx):
        force = ctx.request.query.get("forcedeletion", "").lower()
        if force not in ("", "true", "false"):
            raise errors.invalid_parameter(f"The value '{force}' of parameter 'forceDeletion' "
                                           "is not a valid boolean.", target="forceDeletion")
        with self.world.store.lock:
            p = ctx.params
            key = resource_key(p["sub"], p["rg"], p["name"])
            vm = self.data["vms"].get(key)
            if vm is None:
                return Response(204)
            active = self._op(vm)
            if active is not None and active["kind"] == "vm.delete":
                return self._accepted(ctx, active)
            self._preempt(vm)
            vm["provisioningState"] = "Deleting"
            vm["stateTime"] = now()
            op = self._start_op(ctx, key, vm, "vm.delete", self.cfg.timing["delete"], None)
            self.world.store.save()
            return self._accepted(ctx, op)

    # --- operation completion (scheduler threads) ------------------------------------

    def complete(self, op_id):
        with self.world.store.lock:
            op = self.data["ops"].get(op_id)
            if op is None or op["status"] != ops.IN_PROGRESS:
                return
            kind = op["kind"]
        {"vm.create": self._finish_up, "vm.start": self._finish_up,
         "vm.restart": self._finish_restart, "vm.update": self._finish_update,
         "vm.deallocate": self._finish_down, "vm.powerOff": self._finish_down,
         "vm.delete": self._finish_delete}[kind](op_id)

    def _current(self, op_id):
        """(op, key, vm) if the operation is still the VM's running one, else None."""
        op = self.data["ops"].get(op_id)
        if op is None or op["status"] != ops.IN_PROGRESS:
            return None
        vm = self.data["vms"].get(op["target"])
        if vm is None or vm.get("activeOp") != op_id:
            return None
        return op, op["target"], vm

    def _settle(self, op, vm, status, error=None):
        ops.finish(op, status, error)
        vm["activeOp"] = None
        vm["stateTime"] = now()
        self.world.store.save()

    def _fail_up(self, op, key, vm, error):
        """A create/start/restart that failed: provisioning Failed, and the VM back where it
        was (a failed create or a start from deallocated holds no allocation)."""
        vm["provisioningState"] = "Failed"
        vm["lastError"] = error
        vm["failedKind"] = op["kind"]
        vm["powerState"] = op.get("priorPower") or "deallocated"
        if vm["powerState"] == "deallocated":
            self._release(key, vm)
        self._settle(op, vm, ops.FAILED, error)

    def _finish_up(self, op_id):
        with self.world.store.lock:
            cur = self._current(op_id)
            if cur is None:
                return
            op, key, vm = cur
            if op["failWith"]:
                self._fail_up(op, key, vm, op["failWith"])
                return
            need_boot = self.world.hosts is not None and vm["host"] is None \
                and vm["powerState"] != "running"
        if need_boot:
            with self._host_lock(key):
                error = self._boot(key, op_id)
            if error:
                with self.world.store.lock:
                    cur = self._current(op_id)
                    if cur is not None:
                        self._fail_up(cur[0], cur[1], cur[2], error)
                return
        with self.world.store.lock:
            cur = self._current(op_id)
            if cur is None:
                return  # preempted while booting; the preempting operation tears down
            op, key, vm = cur
            vm["provisioningState"], vm["powerState"] = "Succeeded", "running"
            vm["lastError"] = None
            self._settle(op, vm, ops.SUCCEEDED)

    def _finish_restart(self, op_id):
        with self.world.store.lock:
            cur = self._current(op_id)
            if cur is None:
                return
            op, key, vm = cur
            if op["failWith"]:
                self._fail_up(op, key, vm, op["failWith"])
                return
        if self.world.hosts is not None:
            with self._host_lock(key):
                self._teardown(key)
                error = self._boot(key, op_id)
            if error:
                with self.world.store.lock:
                    cur = self._current(op_id)
                    if cur is not None:
                        self._fail_up(cur[0], cur[1], cur[2], error)
                return
        with self.world.store.lock:
            cur = self._current(op_id)
            if cur is None:
                return
            op, key, vm = cur
            vm["provisioningState"], vm["powerState"] = "Succeeded", "running"
            self._settle(op, vm, ops.SUCCEEDED)

    def _finish_update(self, op_id):
        with self.world.store.lock:
            cur = self._current(op_id)
            if cur is None:
                return
            op, key, vm = cur
            if op["failWith"]:
                vm["provisioningState"] = "Failed"
                vm["lastError"] = op["failWith"]
                self._settle(op, vm, ops.FAILED, op["failWith"])
                return
            vm["provisioningState"] = "Succeeded"
            self._settle(op, vm, ops.SUCCEEDED)

    def _finish_down(self, op_id):
        with self.world.store.lock:
            cur = self._current(op_id)
            if cur is None:
                return
            key = cur[1]
        with self._host_lock(key):
            self._teardown(key)
        with self.world.store.lock:
            cur = self._current(op_id)
            if cur is None:
                return
            op, key, vm = cur
            if op["kind"] == "vm.deallocate":
                vm["powerState"] = "deallocated"
                self._release(key, vm)
            else:
                vm["powerState"] = "stopped"
            vm["provisioningState"] = "Succeeded"
            vm["rdmaUp"] = True
            self._settle(op, vm, ops.SUCCEEDED)

    def _finish_delete(self, op_id):
        with self.world.store.lock:
            cur = self._current(op_id)
            if cur is None:
                return
            key = cur[1]
        with self._host_lock(key):
            self._teardown(key)
        with self.world.store.lock:
            cur = self._current(op_id)
            if cur is None:
                return
            op, key, vm = cur
            self._forget(key, vm)
            ops.finish(op, ops.SUCCEEDED)
            self.world.store.save()

    def _forget(self, key, vm):
        """Remove a deleted VM: its allocation, NIC attachments (deleting the NICs marked
        deleteOption Delete) and RDMA address."""
        self._release(key, vm)
        for nic_key, ref in zip(vm["nicKeys"], vm["nicRefs"]):
            self.world.network.detach(nic_key, delete=ref.get("deleteOption") == "Delete")
        self.world.network.release_rdma_ip(vm.get("rdmaIp"))
        del self.data["vms"][key]

    # --- hosts (caller holds the VM's host lock, not the store lock) -----------------

    def _boot(self, key, op_id=None):
        """Boot the VM's host; with `op_id`, only while that operation is still the VM's
        current one (it may have been preempted meanwhile). Returns an error dict or None."""
        hosts = self.world.hosts
        with self.world.store.lock:
            vm = self.data["vms"].get(key)
            if vm is None or (op_id is not None and self._current(op_id) is None):
                return None
            size = catalog.lookup(vm["vmSize"])
            index = self.world.store.next_counter("host")
            host = hosts.record(vm["name"], index, size.rdma_interface, vm["fabric"])
            vm["host"] = host  # recorded first, so a crash mid-boot is cleaned up later
            info = {"name": vm["name"], "size": vm["vmSize"], "image": vm["image"],
                    "privateIp": self.world.network.primary_ip(vm["nicKeys"]),
                    "mac": self.world.network.primary_mac(vm["nicKeys"]),
                    "rdmaIp": vm["rdmaIp"] if size.rdma else None,
                    "customData": base64.b64decode(vm["customData"]) if vm["customData"] else b""}
            self.world.store.save()
        try:
            hosts.boot(host, info)
        except HostError as e:
            log.error("booting %s failed: %s", info["name"], e)
            with self.world.store.lock:
                if key in self.data["vms"]:
                    self.data["vms"][key]["host"] = None
                    self.world.store.save()
            return {"code": "InternalOperationError",
                    "message": f"The VM host could not be started: {e}"}
        return None

    def _teardown(self, key):
        with self.world.store.lock:
            vm = self.data["vms"].get(key)
            host = vm.get("host") if vm else None
        if host is None or self.world.hosts is None:
            return
        self.world.hosts.teardown(host)
        with self.world.store.lock:
            if key in self.data["vms"]:
                self.data["vms"][key]["host"] = None
                self.world.store.save()

    def reconcile_hosts(self):
        """At start-up: re-create hosts of running VMs that are gone, remove hosts of VMs
        that are not running any more."""
        if self.world.hosts is None:
            return
        with self.world.store.lock:
            items = [(k, v.get("host"), v["powerState"]) for k, v in self.data["vms"].items()]
        for key, host, power in items:
            with self._host_lock(key):
                if power == "running":
                    if host is not None and self.world.hosts.exists(host):
                        continue
                    if host is not None:
                        self._teardown(key)
                    log.info("re-creating the host of %s", key)
                    error = self._boot(key)
                    if error:
                        log.error("%s: %s", key, error["message"])
                elif host is not None and power != "starting":
                    self._teardown(key)

    def shutdown_all(self):
        """--shutdown-vms: tear every host down and record the VMs deallocated."""
        with self.world.store.lock:
            keys = list(self.data["vms"])
        threads = []
        for key in keys:
            def down(k=key):
                with self._host_lock(k):
                    self._teardown(k)
            t = threading.Thread(target=down)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        with self.world.store.lock:
            for key, vm in list(self.data["vms"].items()):
                active = self._op(vm)
                if active is not None and active["kind"] == "vm.delete" \
                        and active["status"] == ops.IN_PROGRESS:
                    ops.finish(active, ops.SUCCEEDED)  # the host is gone: finish the delete
                    self._forget(key, vm)
                    continue
                self._preempt(vm)
                if vm["powerState"] != "deallocated" or vm["allocated"]:
                    vm["powerState"] = "deallocated"
                    if vm["provisioningState"] != "Failed":
                        vm["provisioningState"] = "Succeeded"
                    self._release(key, vm)
            self.world.store.save()

    def set_rdma(self, name, up):
        """Admin: take a VM's RDMA link down or up."""
        with self.world.store.lock:
            matches = [(k, v) for k, v in self.data["vms"].items() if v["name"].lower() == name.lower()]
        if not matches:
            raise KeyError(name)
        key, vm = matches[0]
        with self._host_lock(key):
            with self.world.store.lock:
                host = self.data["vms"][key].get("host")
            if host is None:
                raise HostError(f"VM {name} has no running host")
            self.world.hosts.set_rdma(host, up)
            with self.world.store.lock:
                self.data["vms"][key]["rdmaUp"] = bool(up)
                self.world.store.save()

    # --- availability sets -----------------------------------------------------------

    def render_avset(self, s):
        members = sorted((v for v in self.data["vms"].values()
                          if v.get("avsetKey") == resource_key(s["sub"], s["rg"], s["name"])),
                         key=lambda v: v["name"].lower())
        props = dict(s["spec"])
        props.update({"platformUpdateDomainCount": s["updateDomains"],
                      "platformFaultDomainCount": s["faultDomains"],
                      "virtualMachines": [{"id": _upper_id(v["sub"], v["rg"], VM_TYPE, v["name"])}
                                          for v in members]})
        out = {"name": s["name"], "id": self.avset_id(s), "type": AVSET_TYPE,
               "location": s["location"]}
        if s["tags"]:
            out["tags"] = s["tags"]
        out["properties"] = props
        out["sku"] = {"name": s["sku"]}
        return out

    def put_avset(self, ctx):
        p = ctx.params
        body = ctx.body_json()
        location = ctx.location_of(body, AVSET_TYPE)
        props = body.get("properties") or {}
        sku = (body.get("sku") or {}).get("name")
        if sku is not None and str(sku).lower() not in ("aligned", "classic"):
            raise errors.invalid_parameter(f"The value '{sku}' of parameter 'sku.name' is invalid.",
                                           target="sku.name")
        fds = int(props.get("platformFaultDomainCount", 2))
        uds = int(props.get("platformUpdateDomainCount", 5))
        if not 1 <= fds <= 3:
            raise errors.fault_domain_range(fds, 1, 3)
        if not 1 <= uds <= 20:
            raise errors.update_domain_range(uds, 1, 20)
        key = resource_key(p["sub"], p["rg"], p["name"])
        spec = {k: v for k, v in props.items()
                if k in ("proximityPlacementGroup", "scheduledEventsPolicy")}
        with self.world.store.lock:
            s = self.data["availabilitySets"].get(key)
            # Without a sku a new set is Classic; an existing one keeps its own.
            sku = str(sku).capitalize() if sku else (s["sku"] if s else "Classic")
            if s is not None:
                if s["location"] != location:
                    raise errors.invalid_resource_location(p["name"], p["rg"], s["location"], location)
                if s["sku"] == "Aligned" and sku == "Classic":
                    raise errors.sku_change_not_allowed()
                if fds != s["faultDomains"]:
                    raise errors.property_change_not_allowed("platformFaultDomainCount")
                s.update({"tags": body.get("tags") or {}, "sku": sku, "updateDomains": uds,
                          "spec": spec})
            else:
                s = {"sub": p["sub"], "rg": p["rg"], "name": p["name"], "location": location,
                     "tags": body.get("tags") or {}, "sku": sku, "faultDomains": fds,
                     "updateDomains": uds, "spec": spec, "fabric": None, "series": None,
                     "joined": 0}
                self.data["availabilitySets"][key] = s
            self.world.store.save()
            # Synchronous: 200 on create and update, no async headers.
            return json_response(200, self.render_avset(s), pretty=True)

    def get_avset(self, ctx):
        p = ctx.params
        with self.world.store.lock:
            s = self.data["availabilitySets"].get(resource_key(p["sub"], p["rg"], p["name"]))
            if s is None:
                raise errors.resource_not_found(AVSET_TYPE, p["name"], p["rg"])
            return json_response(200, self.render_avset(s), pretty=True)

    def list_avsets(self, ctx):
        p = ctx.params
        with self.world.store.lock:
            sets = [s for s in self.data["availabilitySets"].values()
                    if s["sub"].lower() == p["sub"].lower()
                    and ("rg" not in p or s["rg"].lower() == p["rg"].lower())]
            return ctx.page(sets, self.render_avset)

    def delete_avset(self, ctx):
        p = ctx.params
        key = resource_key(p["sub"], p["rg"], p["name"])
        with self.world.store.lock:
            s = self.data["availabilitySets"].get(key)
            if s is None:
                return Response(204)
            if any(v.get("avsetKey") == key for v in self.data["vms"].values()):
                raise errors.availability_set_in_use(s["name"])
            del self.data["availabilitySets"][key]
            self.world.store.save()
            return Response(200)

    # --- proximity placement groups --------------------------------------------------

    def _ppg_members(self, g):
        gid = self.ppg_id(g).lower()

        def refers(spec):
            return ((spec.get("proximityPlacementGroup") or {}).get("id") or "").lower() == gid
        vms = [v for v in self.data["vms"].values() if refers(v["spec"])]
        sets = [s for s in self.data["availabilitySets"].values() if refers(s["spec"])]
        return vms, sets

    def render_ppg(self, g, colocation=False):
        vms, sets = self._ppg_members(g)
        props = dict(g["spec"])
        props["proximityPlacementGroupType"] = g["ppgType"]
        props["virtualMachines"] = [{"id": self.vm_id(v)} for v in vms]
        props["virtualMachineScaleSets"] = []
        props["availabilitySets"] = [{"id": self.avset_id(s)} for s in sets]
        if colocation:
            props["colocationStatus"] = {
                "code": "ColocationStatus/Aligned", "level": "Info", "displayStatus": "Aligned",
                "message": "All resources in the proximity placement group are aligned."}
        out = {"name": g["name"], "id": self.ppg_id(g), "type": PPG_TYPE, "location": g["location"]}
        if g["tags"]:
            out["tags"] = g["tags"]
        if g.get("zones"):
            out["zones"] = g["zones"]
        out["properties"] = props
        return out

    def put_ppg(self, ctx):
        p = ctx.params
        body = ctx.body_json()
        location = ctx.location_of(body, PPG_TYPE)
        props = body.get("properties") or {}
        key = resource_key(p["sub"], p["rg"], p["name"])
        with self.world.store.lock:
            g = self.data["ppgs"].get(key)
            created = g is None
            if g is not None and g["location"] != location:
                raise errors.invalid_resource_location(p["name"], p["rg"], g["location"], location)
            if created:
                g = {"sub": p["sub"], "rg": p["rg"], "name": p["name"], "location": location}
                self.data["ppgs"][key] = g
            g.update({"tags": body.get("tags") or {}, "zones": body.get("zones"),
                      "ppgType": props.get("proximityPlacementGroupType") or "Standard",
                      "spec": {k: v for k, v in props.items() if k == "intent"}})
            self.world.store.save()
            return json_response(201 if created else 200, self.render_ppg(g), pretty=True)

    def get_ppg(self, ctx):
        p = ctx.params
        colocation = ctx.request.query.get("includecolocationstatus", "").lower() == "true"
        with self.world.store.lock:
            g = self.data["ppgs"].get(resource_key(p["sub"], p["rg"], p["name"]))
            if g is None:
                raise errors.resource_not_found(PPG_TYPE, p["name"], p["rg"])
            return json_response(200, self.render_ppg(g, colocation), pretty=True)

    def list_ppgs(self, ctx):
        p = ctx.params
        with self.world.store.lock:
            groups = [g for g in self.data["ppgs"].values()
                      if g["sub"].lower() == p["sub"].lower()
                      and ("rg" not in p or g["rg"].lower() == p["rg"].lower())]
            return ctx.page(groups, self.render_ppg)

    def delete_ppg(self, ctx):
        p = ctx.params
        key = resource_key(p["sub"], p["rg"], p["name"])
        with self.world.store.lock:
            g = self.data["ppgs"].get(key)
            if g is None:
                return Response(204)
            vms, sets = self._ppg_members(g)
            if vms or sets:
                raise errors.ppg_in_use(g["name"])
            del self.data["ppgs"][key]
            self.world.store.save()
            return Response(200)

    # --- resource SKUs ---------------------------------------------------------------

    _FILTER = re.compile(r"^\s*location\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)

    def list_skus(self, ctx):
        flt = ctx.request.query.get("$filter")
        locations = self.cfg.locations
        if flt:
            m = self._FILTER.match(flt)
            if not m:
                raise errors.invalid_parameter(
                    f"The filter '{flt}' is not supported. Only \"location eq '<location>'\" is "
                    "supported.", target="$filter")
            wanted = m.group(1).replace(" ", "").lower()
            locations = [loc for loc in locations if loc == wanted]
        value = [catalog.sku_record(size, loc) for loc in locations for size in catalog.SIZES.values()]
        return json_response(200, {"value": value}, pretty=True)

    # --- operation status ------------------------------------------------------------

    def operation(self, ctx):
        op = ctx.find_op("compute")
        if ctx.request.query.get("monitor", "").lower() == "true":
            # The Location URL: 202 while running, then 200 with an empty body.
            if op["status"] == ops.IN_PROGRESS:
                return Response(202, headers={"Location": ops.location_url(ctx.base, op)})
            if op["status"] == ops.SUCCEEDED:
                return Response(200)
            err = op["error"]
            return json_response(409, {"error": {"code": err["code"], "message": err["message"]}},
                                 pretty=True)
        return json_response(200, ops.status_body(op), pretty=True)
