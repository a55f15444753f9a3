"""Microsoft.Compute virtual machines: the requests (create, read, update, power
operations, delete, list) and their operation-status resource.

Allocation (placement.py) happens when a create or start is accepted, so concurrent
requests are decided in arrival order; a capacity failure is reported by the operation
(AllocationFailed), a quota failure synchronously (409). What happens when an operation
completes, and to the VM's host, is lifecycle.py.

VM life cycle (provisioningState / PowerState):
  create     Creating/starting -> Succeeded/running (or Failed/deallocated)
  start      Updating/starting -> Succeeded/running
  deallocate Updating/deallocating -> Succeeded/deallocated (host torn down, fabric released)
  powerOff   Updating/stopping -> Succeeded/stopped (host torn down, still allocated)
  delete     Deleting -> gone
A delete, deallocate or powerOff preempts a create/start/restart in progress, whose
operation then ends Canceled with OperationPreempted; a request for the operation that is
already running is answered with that operation.
"""

import base64
import binascii
import copy

from . import catalog, errors, ops
from .httpserv import Response, json_response
from .util import AVSET_TYPE, VM_TYPE, arm_id, guid, iso7, now, parse_resource_id, \
    resource_key, upper_id

POWER_DISPLAY = {"running": "VM running", "deallocated": "VM deallocated",
                 "stopped": "VM stopped", "starting": "VM starting",
                 "deallocating": "VM deallocating", "stopping": "VM stopping"}
PROVISIONING_DISPLAY = {"Creating": "Creating", "Updating": "Updating", "Deleting": "Deleting",
                        "Succeeded": "Provisioning succeeded", "Failed": "Provisioning failed"}


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
        self.placement = world.placement
        self.life = world.lifecycle

    @staticmethod
    def vm_id(vm):
        return arm_id(VM_TYPE, vm)

    def _vm(self, ctx):
        p = ctx.params
        vm = self.data["vms"].get(resource_key(p["sub"], p["rg"], p["name"]))
        if vm is None:
            raise errors.resource_not_found(VM_TYPE, p["name"], p["rg"])
        return vm

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
        view = {"computerName": vm["computerName"], "hyperVGeneration": "V2"}
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
            props["availabilitySet"] = {"id": upper_id(vm["sub"], vm["rg"], AVSET_TYPE, name)}
        hw = dict(props.get("hardwareProfile") or {})
        hw["vmSize"] = vm["vmSize"]
        props["hardwareProfile"] = hw
        storage = props.setdefault("storageProfile", {})
        image = storage.get("imageReference")
        if isinstance(image, dict) and str(image.get("version", "")).lower() == "latest":
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
        out = {"name": vm["name"], "id": self.vm_id(vm), "type": VM_TYPE,
               "location": vm["location"]}
        if vm["tags"]:
            out["tags"] = vm["tags"]
        if vm.get("zones"):
            out["zones"] = vm["zones"]
        out["properties"] = props
        out["etag"] = f'"{vm["etag"]}"'
        return out

    def _vm_response(self, ctx, status, vm, op):
        headers = {}
        if op is not None:
            headers["Azure-AsyncOperation"] = ops.async_url(ctx.base, op)
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
        failure = self.placement.allocate(key, vm, size)  # may raise (quota): nothing stored yet
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
        active = self.life.active_op(vm)
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
            self.placement.check_quota(vm["sub"], vm["location"], size, exclude=key)

        retry_create = vm["provisioningState"] == "Failed" and not vm["allocated"] \
            and vm.get("failedKind") == "vm.create" and active is None
        failure = None
        if retry_create:
            # Re-sending the PUT of a VM whose creation failed retries the allocation
            # (which may refuse synchronously, before anything changed).
            failure = self.placement.allocate(key, vm, size)

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
                props["availabilitySet"] = {"id": arm_id(AVSET_TYPE, avset)}
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
        active = self.life.active_op(vm)
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
            failure = self.placement.allocate(key, vm, catalog.lookup(vm["vmSize"]))
        vm["provisioningState"], vm["powerState"] = "Updating", "starting"
        vm["lastError"] = None
        return self._start_op(ctx, key, vm, "vm.start", self.cfg.timing["start"], failure, prior)

    def _restart(self, ctx, key, vm):
        active = self.life.active_op(vm)
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
        active = self.life.active_op(vm)
        if active is not None:
            if active["kind"] == "vm.deallocate":
                return active
            if active["kind"] == "vm.delete":
                raise errors.vm_marked_for_deletion("deallocate", vm["name"])
            self.life.preempt(vm)
        if not vm["allocated"] and vm["host"] is None:
            # Already deallocated (or never allocated): nothing to do, but still an operation.
            vm["powerState"] = "deallocated"
            return self._start_op(ctx, key, vm, "vm.deallocate", 0, None)
        vm["provisioningState"], vm["powerState"] = "Updating", "deallocating"
        return self._start_op(ctx, key, vm, "vm.deallocate", self.cfg.timing["deallocate"], None)

    def _power_off(self, ctx, key, vm):
        active = self.life.active_op(vm)
        if active is not None:
            if active["kind"] == "vm.powerOff":
                return active
            if active["kind"] == "vm.delete":
                raise errors.vm_marked_for_deletion("powerOff", vm["name"])
            if active["kind"] == "vm.deallocate":
                raise errors.vm_deallocated("powerOff", vm["name"])
            self.life.preempt(vm)
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
            active = self.life.active_op(vm)
            if active is not None and active["kind"] == "vm.delete":
                return self._accepted(ctx, active)
            self.life.preempt(vm)
            vm["provisioningState"] = "Deleting"
            vm["stateTime"] = now()
            op = self._start_op(ctx, key, vm, "vm.delete", self.cfg.timing["delete"], None)
            self.world.store.save()
            return self._accepted(ctx, op)

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
