"""What happens to a VM when its operation completes, and its host: booting and tearing
down network-namespace hosts, reconciling them at start-up, --shutdown-vms.

Locking: the store lock is never held while a host is built or torn down; a per-VM host
lock serialises boot and teardown of one VM, and is always taken before the store lock.
"""

import base64
import logging
import threading
import time

from . import catalog, errors, ops
from .host import HostError
from .util import now

log = logging.getLogger("azemu.lifecycle")


class Lifecycle:
    def __init__(self, world):
        self.world = world
        self.data = world.store.data
        self._host_locks = {}
        self._host_locks_guard = threading.Lock()

    def _host_lock(self, vm_key):
        with self._host_locks_guard:
            return self._host_locks.setdefault(vm_key, threading.Lock())

    def active_op(self, vm):
        return self.data["ops"].get(vm.get("activeOp") or "")

    def preempt(self, vm):
        op = self.active_op(vm)
        if op is not None and op["status"] == ops.IN_PROGRESS:
            ops.finish(op, ops.CANCELED, {"code": "OperationPreempted",
                                          "message": errors.OPERATION_PREEMPTED})
        vm["activeOp"] = None

    def complete(self, op_id):
        with self.world.store.lock:
            op = self.data["ops"].get(op_id)
            if op is None or op["status"] != ops.IN_PROGRESS:
                return
            kind = op["kind"]
        {"vm.create": self._finish_up, "vm.start": self._finish_up,
         "vm.restart": self._finish_up, "vm.update": self._finish_update,
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
        log.info("%s of %s: %s%s", op["kind"], vm["name"], status,
                 f" ({error['code']})" if error else "")
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
            self.world.placement.release(key, vm)
        self._settle(op, vm, ops.FAILED, error)

    def _finish_up(self, op_id):
        """create, start and restart: boot the host (a restart tears it down first), then
        the VM is running."""
        with self.world.store.lock:
            cur = self._current(op_id)
            if cur is None:
                return
            op, key, vm = cur
            if op["failWith"]:
                self._fail_up(op, key, vm, op["failWith"])
                return
            restart = op["kind"] == "vm.restart"
            need_boot = self.world.hosts is not None and \
                (restart or (vm["host"] is None and vm["powerState"] != "running"))
        if need_boot:
            with self._host_lock(key):
                if restart:
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
                return  # preempted while booting; the preempting operation tears down
            op, key, vm = cur
            vm["provisioningState"], vm["powerState"] = "Succeeded", "running"
            vm["lastError"] = None
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

    def _teardown_current(self, op_id):
        """Tear down the host of the operation's VM; False if the operation is no longer
        the VM's current one (preempted: the newer operation does the work)."""
        with self.world.store.lock:
            cur = self._current(op_id)
        if cur is None:
            return False
        with self._host_lock(cur[1]):
            self._teardown(cur[1])
        return True

    def _finish_down(self, op_id):
        """deallocate (releasing the allocation) and powerOff (keeping it)."""
        if not self._teardown_current(op_id):
            return
        with self.world.store.lock:
            cur = self._current(op_id)
            if cur is None:
                return
            op, key, vm = cur
            if op["kind"] == "vm.deallocate":
                vm["powerState"] = "deallocated"
                self.world.placement.release(key, vm)
            else:
                vm["powerState"] = "stopped"
            vm["provisioningState"] = "Succeeded"
            vm["rdmaUp"] = True
            self._settle(op, vm, ops.SUCCEEDED)

    def _finish_delete(self, op_id):
        if not self._teardown_current(op_id):
            return
        with self.world.store.lock:
            cur = self._current(op_id)
            if cur is None:
                return
            op, key, vm = cur
            self._forget(key, vm)
            ops.finish(op, ops.SUCCEEDED)
            log.info("vm.delete of %s: Succeeded", vm["name"])
            self.world.store.save()

    def _forget(self, key, vm):
        """Remove a deleted VM: its allocation, NIC attachments (deleting the NICs marked
        deleteOption Delete) and RDMA address."""
        self.world.placement.release(key, vm)
        for nic_key, ref in zip(vm["nicKeys"], vm["nicRefs"]):
            self.world.network.detach(nic_key, delete=ref.get("deleteOption") == "Delete")
        self.world.network.release_rdma_ip(vm.get("rdmaIp"))
        os_disk = ((vm.get("spec") or {}).get("storageProfile") or {}).get("osDisk") or {}
        if str(os_disk.get("deleteOption", "Detach")).lower() != "delete":
            # As on Azure, the disk outlives its VM (and bills) unless told otherwise.
            name = vm.get("osDiskName")
            self.data["disks"][f"{key}/{name}"] = {
                "sub": vm["sub"], "rg": vm["rg"], "name": name, "image": vm["image"]}
        del self.data["vms"][key]

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
        started = time.monotonic()
        try:
            rc = hosts.boot(host, info)
        except HostError as e:
            log.error("booting %s failed: %s", info["name"], e)
            with self.world.store.lock:
                if key in self.data["vms"]:
                    self.data["vms"][key]["host"] = None
                    self.world.store.save()
            return {"code": "InternalOperationError",
                    "message": f"The VM host could not be started: {e}"}
        log.info("%s booted as %s in %.1fs (boot hook exit %s)", info["name"], host["netns"],
                 time.monotonic() - started, rc)
        return None

    def _teardown(self, key):
        with self.world.store.lock:
            vm = self.data["vms"].get(key)
            host = vm.get("host") if vm else None
        if host is None or self.world.hosts is None:
            return
        self.world.hosts.teardown(host)
        log.info("host %s torn down", host["netns"])
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
                active = self.active_op(vm)
                if active is not None and active["kind"] == "vm.delete" \
                        and active["status"] == ops.IN_PROGRESS:
                    ops.finish(active, ops.SUCCEEDED)  # the host is gone: finish the delete
                    self._forget(key, vm)
                    continue
                self.preempt(vm)
                if vm["powerState"] != "deallocated" or vm["allocated"]:
                    vm["powerState"] = "deallocated"
                    if vm["provisioningState"] != "Failed":
                        vm["provisioningState"] = "Succeeded"
                    self.world.placement.release(key, vm)
            self.world.store.save()

    def set_rdma(self, name, up):
        """Admin: take a VM's RDMA link down or up."""
        with self.world.store.lock:
            matches = [(k, v) for k, v in self.data["vms"].items()
                       if v["name"].lower() == name.lower()]
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
