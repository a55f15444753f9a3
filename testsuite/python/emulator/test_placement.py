"""Availability sets, proximity placement groups, and Azure's placement rules: fabric
pinning, capacity (AllocationFailed) and core quota (OperationNotAllowed)."""

from conftest import SUB

QUOTA_MESSAGE = (
    "Operation could not be completed as it results in exceeding approved standardHBrsv3Family "
    "Cores quota. Additional details - Deployment Model: Resource Manager, Location: eastus, "
    "Current Limit: 240, Current Usage: 240, Additional Required: 120, (Minimum) New Limit "
    "Required: 360. Submit a request for Quota increase at ")


# --- availability sets ----------------------------------------------------------------

def test_availability_set_put_is_synchronous_200(emu, rg):
    r = emu.put_avset(rg, "set1")
    assert r.status == 200
    assert r.header("Azure-AsyncOperation") is None and r.header("Location") is None
    assert r.json["sku"] == {"name": "Aligned"}
    assert r.json["properties"]["platformFaultDomainCount"] == 2
    assert r.json["properties"]["virtualMachines"] == []
    assert emu.put_avset(rg, "set1").status == 200  # update is 200 too


def test_availability_set_lists_its_vms_with_upper_case_ids(emu, rg):
    emu.put_avset(rg, "set1")
    emu.create_vm(rg, "vm1", avset="set1")
    r = emu.arm("GET", emu.avset_path(rg, "set1"))
    assert r.json["properties"]["virtualMachines"] == [
        {"id": f"/subscriptions/{SUB}/resourceGroups/{rg.upper()}/providers/"
               "Microsoft.Compute/virtualMachines/VM1"}]
    vm = emu.arm("GET", emu.vm_path(rg, "vm1")).json
    assert vm["properties"]["availabilitySet"]["id"].lower() == emu.avset_path(rg, "set1").lower()


def test_availability_set_with_vms_cannot_be_deleted(emu, rg):
    emu.put_avset(rg, "set1")
    emu.create_vm(rg, "vm1", avset="set1")
    r = emu.arm("DELETE", emu.avset_path(rg, "set1"))
    assert r.status == 409
    assert r.error == {"code": "OperationNotAllowed",
                       "message": "Availability Set set1 cannot be deleted. Before deleting an "
                                  "Availability Set please ensure that it does not contain any VM."}
    emu.wait_op(emu.arm("DELETE", emu.vm_path(rg, "vm1")))
    assert emu.arm("DELETE", emu.avset_path(rg, "set1")).status == 200
    assert emu.arm("GET", emu.avset_path(rg, "set1")).status == 404
    assert emu.arm("DELETE", emu.avset_path(rg, "set1")).status == 204


def test_vm_and_its_set_share_resource_group_and_location(emu, rg):
    emu.put_avset(rg, "set1")
    other = rg + "-b"
    emu.put_nic(other, "vm1-nic")
    body = emu.vm_body(other, "vm1")
    body["properties"]["availabilitySet"] = {"id": emu.avset_path(rg, "set1")}
    r = emu.arm("PUT", emu.vm_path(other, "vm1"), body)
    assert r.status == 400 and r.error["code"] == "InvalidParameter"
    emu.put_nic(rg, "vm2-nic", location="westeurope")
    r = emu.arm("PUT", emu.vm_path(rg, "vm2"),
                emu.vm_body(rg, "vm2", avset="set1", location="westeurope"))
    assert r.status == 400 and r.error["code"] == "InvalidParameter"


def test_missing_availability_set_is_not_found(emu, rg):
    emu.put_nic(rg, "vm1-nic")
    r = emu.arm("PUT", emu.vm_path(rg, "vm1"), emu.vm_body(rg, "vm1", avset="nope"))
    assert r.status == 404 and r.error["code"] == "NotFound"


# --- fabric pinning -------------------------------------------------------------------

def test_vms_of_a_set_share_one_fabric_and_loners_get_their_own(emu, rg):
    emu.put_avset(rg, "a")
    emu.put_avset(rg, "b")
    for name, avset in (("a1", "a"), ("a2", "a"), ("b1", "b"), ("solo1", None), ("solo2", None)):
        r = emu.create_vm(rg, name, avset=avset)
        assert r.final["status"] == "Succeeded", r.final
    vms = emu.vms()
    assert vms["a1"]["fabric"] == vms["a2"]["fabric"]
    fabrics = {vms[n]["fabric"] for n in ("a1", "b1", "solo1", "solo2")}
    assert len(fabrics) == 4
    rdma = [vms[n]["rdmaIp"] for n in ("a1", "a2", "b1", "solo1", "solo2")]
    assert len(set(rdma)) == 5  # unique across fabrics


def test_a_set_is_re_pinned_once_all_its_vms_are_deallocated(emu, rg):
    emu.put_avset(rg, "a")
    emu.create_vm(rg, "a1", avset="a")
    emu.create_vm(rg, "a2", avset="a")
    first = emu.vms()["a1"]["fabric"]
    # One VM deallocated and back: it restarts in the set's (still pinned) fabric.
    emu.vm_action(rg, "a1", "deallocate")
    assert emu.vms()["a1"]["fabric"] is None
    emu.vm_action(rg, "a1", "start")
    assert emu.vms()["a1"]["fabric"] == first == emu.vms()["a2"]["fabric"]
    # Every VM deallocated: the set may land on another fabric; both follow it.
    emu.vm_action(rg, "a1", "deallocate")
    emu.vm_action(rg, "a2", "deallocate")
    emu.vm_action(rg, "a2", "start")
    emu.vm_action(rg, "a1", "start")
    vms = emu.vms()
    assert vms["a1"]["fabric"] == vms["a2"]["fabric"] != first
    assert vms["a1"]["availabilitySet"] == "a"


def test_a_pinned_set_only_takes_sizes_of_its_cluster(emu, rg):
    emu.put_avset(rg, "a")
    emu.create_vm(rg, "a1", avset="a", size="Standard_HB120rs_v3")
    ok = emu.create_vm(rg, "a2", avset="a", size="Standard_HB120-32rs_v3")
    assert ok.status == 201
    emu.put_nic(rg, "a3-nic")
    r = emu.arm("PUT", emu.vm_path(rg, "a3"),
                emu.vm_body(rg, "a3", avset="a", size="Standard_HC44rs"))
    assert r.status == 400
    assert r.error["message"].startswith("Unable to create the VM because the requested size "
                                         "Standard_HC44rs is not available in the cluster")


# --- capacity -------------------------------------------------------------------------

def test_set_capacity_exhausted_fails_the_operation_with_allocation_failed(emu, rg):
    emu.put_avset(rg, "cap")
    emu.admin("POST", "capacity", {"availabilitySet": "cap", "remaining": 1})
    assert emu.create_vm(rg, "c1", avset="cap").final["status"] == "Succeeded"
    r = emu.create_vm(rg, "c2", avset="cap")
    assert r.status == 201  # accepted: the failure is asynchronous
    assert r.final["status"] == "Failed"
    assert r.final["error"]["code"] == "AllocationFailed"
    assert r.final["error"]["message"] == (
        "Allocation failed. Please try reducing the VM size or number of VMs, retry later, or "
        "try deploying to a different Availability Set or different Azure location.")
    vm = emu.arm("GET", emu.vm_path(rg, "c2") + "?$expand=instanceView").json
    assert vm["properties"]["provisioningState"] == "Failed"
    statuses = vm["properties"]["instanceView"]["statuses"]
    assert statuses[0]["code"] == "ProvisioningState/failed/AllocationFailed"
    assert statuses[0]["level"] == "Error"
    assert statuses[1]["code"] == "PowerState/deallocated"
    # Deallocating c1 gives its slot back; starting c2 then succeeds.
    emu.vm_action(rg, "c1", "deallocate")
    assert emu.vm_action(rg, "c2", "start").final["status"] == "Succeeded"
    vm = emu.arm("GET", emu.vm_path(rg, "c2")).json
    assert vm["properties"]["provisioningState"] == "Succeeded"


def test_region_size_capacity(emu, rg):
    emu.admin("POST", "capacity",
              {"region": "eastus", "vmSize": "Standard_HX176rs", "remaining": 0})
    r = emu.create_vm(rg, "x1", size="Standard_HX176rs")
    assert r.final["status"] == "Failed"
    assert r.final["error"]["message"].startswith(
        "Allocation failed. We do not have sufficient capacity for the requested VM size in "
        "this region.")
    assert emu.create_vm(rg, "x2", size="Standard_HX176rs", location="westeurope").final["status"] \
        == "Succeeded"


def test_failed_create_is_retried_by_a_new_put(emu, rg):
    emu.admin("POST", "capacity",
              {"region": "eastus", "vmSize": "Standard_HB176rs_v4", "remaining": 0})
    assert emu.create_vm(rg, "r1", size="Standard_HB176rs_v4").final["status"] == "Failed"
    emu.admin("POST", "capacity",
              {"region": "eastus", "vmSize": "Standard_HB176rs_v4", "remaining": None})
    r = emu.arm("PUT", emu.vm_path(rg, "r1"), emu.vm_body(rg, "r1", size="Standard_HB176rs_v4"))
    assert r.status == 200
    assert emu.wait_op(r)["status"] == "Succeeded"


# --- quota ----------------------------------------------------------------------------

# Quota is per subscription and region, so these tests use an emulator of their own.

def test_quota_is_a_synchronous_409_with_the_real_message(make_emulator, rg):
    emu = make_emulator()
    emu.admin("POST", "quota", {"family": "standardHBrsv3Family", "limit": 240})
    emu.create_vm(rg, "q1")
    emu.create_vm(rg, "q2")
    emu.put_nic(rg, "q3-nic")
    r = emu.arm("PUT", emu.vm_path(rg, "q3"), emu.vm_body(rg, "q3"))
    assert r.status == 409
    assert r.error["code"] == "OperationNotAllowed"
    assert r.error["message"].startswith(QUOTA_MESSAGE), r.error["message"]
    assert emu.arm("GET", emu.vm_path(rg, "q3")).status == 404  # nothing was created


def test_deallocated_vms_do_not_count_against_quota(make_emulator, rg):
    emu = make_emulator()
    emu.admin("POST", "quota", {"family": "standardHBrsv3Family", "limit": 240})
    emu.create_vm(rg, "q1")
    emu.create_vm(rg, "q2")
    emu.vm_action(rg, "q1", "deallocate")
    assert emu.create_vm(rg, "q3").final["status"] == "Succeeded"
    r = emu.arm("POST", emu.vm_path(rg, "q1") + "/start")
    assert r.status == 409 and r.error["code"] == "OperationNotAllowed"


def test_total_regional_cores_quota(make_emulator, rg):
    emu = make_emulator()
    emu.admin("POST", "quota", {"family": "cores", "limit": 4})
    emu.create_vm(rg, "d1", size="Standard_D2s_v5")
    emu.create_vm(rg, "d2", size="Standard_D2s_v5")
    emu.put_nic(rg, "d3-nic")
    r = emu.arm("PUT", emu.vm_path(rg, "d3"), emu.vm_body(rg, "d3", size="Standard_D2s_v5"))
    assert r.status == 409
    assert "exceeding approved Total Regional Cores quota" in r.error["message"]


# --- proximity placement groups -------------------------------------------------------

def test_proximity_placement_group_life_cycle(emu, rg):
    path = emu.rg_path(rg) + "/providers/Microsoft.Compute/proximityPlacementGroups/ppg1"
    body = {"location": "eastus", "properties": {"proximityPlacementGroupType": "Standard"}}
    r = emu.arm("PUT", path, body)
    assert r.status == 201 and r.header("Azure-AsyncOperation") is None
    assert r.header("x-ms-ratelimit-remaining-resource").startswith(
        "Microsoft.Compute/PutDeletePPGSubscriptionMaximum;")
    assert emu.arm("PUT", path, body).status == 200
    r = emu.arm("GET", path + "?includeColocationStatus=true")
    assert r.status == 200
    assert r.json["properties"]["colocationStatus"]["code"] == "ColocationStatus/Aligned"
    assert r.json["properties"]["virtualMachines"] == []
    assert emu.arm("DELETE", path).status == 200
    assert emu.arm("GET", path).status == 404


def test_scenario_sets_capacity_and_quota(make_emulator, rg):
    emu = make_emulator({"capacity": {"availabilitySets": {"tiny": 1}, "perSet": 5},
                         "quota": {"families": {"standardHCSFamily": 44}}})
    emu.put_avset(rg, "tiny")
    ok = emu.create_vm(rg, "t1", avset="tiny", size="Standard_D2s_v5")
    assert ok.final["status"] == "Succeeded"
    assert emu.create_vm(rg, "t2", avset="tiny", size="Standard_D2s_v5").final["error"]["code"] \
        == "AllocationFailed"
    assert emu.create_vm(rg, "h1", size="Standard_HC44rs").final["status"] == "Succeeded"
    emu.put_nic(rg, "h2-nic")
    r = emu.arm("PUT", emu.vm_path(rg, "h2"), emu.vm_body(rg, "h2", size="Standard_HC44-16rs"))
    assert r.status == 409  # constrained-core sizes are charged their parent's 44 cores
    # A reset goes back to the scenario's values.
    emu.admin("POST", "capacity", {"availabilitySet": "tiny", "remaining": 9})
    emu.admin("POST", "reset")
    assert emu.admin("GET", "capacity")["availabilitySets"] == {"tiny": 1}


def test_set_holds_at_most_per_set_vms(make_emulator, rg):
    emu = make_emulator({"capacity": {"perSet": 2}})
    emu.put_avset(rg, "s")
    results = [emu.create_vm(rg, f"p{i}", avset="s", size="Standard_D2s_v5").final["status"]
               for i in range(3)]
    assert results == ["Succeeded", "Succeeded", "Failed"]
