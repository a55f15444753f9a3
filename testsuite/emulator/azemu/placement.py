"""Placement rules: fabrics, capacity and core quota. Every method expects the caller to
hold the store lock.

  * A fabric is a hardware cluster with its own RDMA segment. An availability set is
    pinned to one fabric by its first allocation; every VM of the set is allocated there.
    When no VM of the set is allocated any more the pin is dropped, and the next
    allocation pins the set to a new fabric. A VM without a set gets a fabric of its own.
  * A pinned set takes only sizes of its cluster's series.
  * Capacity: at most `capacity_per_set` allocated VMs per set, plus optional "remaining"
    counters per set name and per region+size that allocation takes from and
    deallocation gives back.
  * Quota: cores of allocated VMs per subscription, region and family (and in total);
    deallocated VMs do not count.
"""

from . import catalog, errors


class Placement:
    def __init__(self, world):
        self.world = world
        self.cfg = world.cfg
        self.data = world.store.data

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

    def check_quota(self, sub, location, size, exclude=None):
        """Deallocated VMs do not count; the VM being (re)allocated is excluded."""
        for family, text in ((size.family, f"{size.family} Cores"),
                             ("cores", "Total Regional Cores")):
            limit = self._quota_limit(location, family)
            usage = self._usage(sub, location, family, exclude)
            if usage + size.vcpus > limit:
                raise errors.quota_exceeded(text, location, limit, usage, size.vcpus, sub,
                                            size.family if family != "cores" else None)

    def set_of(self, vm):
        return self.data["availabilitySets"].get(vm.get("avsetKey") or "")

    def _allocated_members(self, avset_key, exclude=None):
        return [k for k, v in self.data["vms"].items()
                if v.get("avsetKey") == avset_key and v["allocated"] and k != exclude]

    def allocate(self, key, vm, size):
        """Place the VM on a fabric. Raises ArmError for synchronous refusals (quota,
        size not in the set's cluster); returns an error dict when the allocation itself
        fails (reported by the operation), None on success."""
        avset = self.set_of(vm)
        if avset is not None and avset.get("fabric") is not None \
                and avset["series"] != size.series:
            raise errors.size_not_in_set_cluster(size.name, catalog.same_series(avset["series"]))
        self.check_quota(vm["sub"], vm["location"], size, exclude=key)

        cap = self.data["capacity"]
        set_name = avset["name"].lower() if avset else None
        region_key = f"{vm['location']}|{size.name.lower()}"
        if avset is not None:
            members = self._allocated_members(vm["avsetKey"], exclude=key)
            full = len(members) >= self.cfg.capacity_per_set
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

    def release(self, key, vm):
        if not vm["allocated"]:
            return
        cap = self.data["capacity"]
        taken = vm.get("capacityTaken") or {}
        if taken.get("set") in cap["availabilitySets"]:
            cap["availabilitySets"][taken["set"]] += 1
        if taken.get("region") in cap["regions"]:
            cap["regions"][taken["region"]] += 1
        vm.update({"allocated": False, "fabric": None, "capacityTaken": {}})
        avset = self.set_of(vm)
        if avset is not None and not self._allocated_members(vm["avsetKey"], exclude=key):
            # The last VM left the cluster: the set may land elsewhere next time.
            avset["fabric"] = avset["series"] = None
