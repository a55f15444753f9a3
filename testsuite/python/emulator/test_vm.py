"""Virtual machines: create, read, update, power operations, delete, list, and the
long-running-operation contract (Azure-AsyncOperation and Location)."""

import base64
import re

from conftest import COMPUTE_API, SUB, wait_for

OP_URL = re.compile(rf"^https://127\.0\.0\.1:\d+/subscriptions/{SUB}/providers/Microsoft\.Compute/"
                    r"locations/eastus/operations/[0-9a-f-]{36}\?p=[0-9a-f-]{36}"
                    r"&api-version=2024-11-01$")
ISO7 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}\+00:00$")


def test_create_is_201_creating_with_async_operation(emu, rg):
    r = emu.create_vm(rg, "vm1", wait=False)
    assert r.status == 201, r
    assert OP_URL.match(r.header("Azure-AsyncOperation")), r.header("Azure-AsyncOperation")
    assert r.header("azure-asyncnotification") == "Enabled"
    assert r.header("Location") is None
    body = r.json
    assert body["properties"]["provisioningState"] == "Creating"
    assert body["id"] == emu.vm_path(rg, "vm1")
    assert body["type"] == "Microsoft.Compute/virtualMachines"
    assert body["properties"]["hardwareProfile"]["vmSize"] == "Standard_HB120rs_v3"
    assert "customData" not in body["properties"]["osProfile"]
    assert body["properties"]["vmId"]


def test_create_operation_goes_in_progress_then_succeeded(emu, rg):
    emu.admin("POST", "timing", {"create": 1.0})
    r = emu.create_vm(rg, "vm1", wait=False)
    first = emu.arm("GET", r.header("Azure-AsyncOperation"))
    assert first.status == 200
    assert first.json["status"] == "InProgress"
    assert set(first.json) == {"startTime", "status", "name"}
    assert ISO7.match(first.json["startTime"])
    final = emu.wait_op(r)
    assert final["status"] == "Succeeded"
    assert set(final) == {"startTime", "endTime", "status", "name"}
    assert final["name"] == first.json["name"]
    emu.admin("POST", "timing", {"create": 0.2})


def test_get_with_instance_view_shows_provisioning_and_power_state(emu, rg):
    emu.create_vm(rg, "vm1")
    r = emu.arm("GET", emu.vm_path(rg, "vm1") + "?$expand=instanceView")
    assert r.status == 200
    statuses = r.json["properties"]["instanceView"]["statuses"]
    assert statuses[0]["code"] == "ProvisioningState/succeeded"
    assert statuses[0]["displayStatus"] == "Provisioning succeeded"
    assert statuses[1] == {"code": "PowerState/running", "level": "Info",
                           "displayStatus": "VM running"}
    assert r.json["properties"]["provisioningState"] == "Succeeded"
    plain = emu.arm("GET", emu.vm_path(rg, "vm1"))
    assert "instanceView" not in plain.json["properties"]


def test_instance_view_resource(emu, rg):
    emu.create_vm(rg, "vm1")
    r = emu.arm("GET", emu.vm_path(rg, "vm1") + "/instanceView")
    assert r.status == 200 and r.json["statuses"][1]["code"] == "PowerState/running"


def test_put_on_existing_vm_is_200(emu, rg):
    emu.create_vm(rg, "vm1")
    body = emu.vm_body(rg, "vm1")
    body["tags"] = {"changed": "yes"}
    r = emu.arm("PUT", emu.vm_path(rg, "vm1"), body)
    assert r.status == 200, r
    assert r.header("Azure-AsyncOperation")
    assert r.json["tags"] == {"changed": "yes"}
    assert emu.wait_op(r)["status"] == "Succeeded"


def test_availability_set_can_only_be_set_at_creation(emu, rg):
    emu.put_avset(rg, "set1")
    emu.create_vm(rg, "vm1")
    r = emu.arm("PUT", emu.vm_path(rg, "vm1"), emu.vm_body(rg, "vm1", avset="set1"))
    assert r.status == 409
    assert r.error == {"code": "PropertyChangeNotAllowed",
                       "message": "Changing property 'availabilitySet.id' is not allowed.",
                       "target": "availabilitySet.id"}


def test_custom_data_cannot_change(emu, rg):
    emu.create_vm(rg, "vm1")
    r = emu.arm("PUT", emu.vm_path(rg, "vm1"), emu.vm_body(rg, "vm1", custom_data="other"))
    assert r.status == 409 and r.error["code"] == "PropertyChangeNotAllowed"


def test_custom_data_must_be_base64(emu, rg):
    emu.put_nic(rg, "vm1-nic")
    body = emu.vm_body(rg, "vm1")
    body["properties"]["osProfile"]["customData"] = "not base64!"
    r = emu.arm("PUT", emu.vm_path(rg, "vm1"), body)
    assert r.status == 400 and r.error["code"] == "InvalidParameter"
    assert r.error["target"] == "customData"


def test_unknown_size_is_invalid_parameter_with_the_available_sizes(emu, rg):
    emu.put_nic(rg, "vm1-nic")
    r = emu.arm("PUT", emu.vm_path(rg, "vm1"), emu.vm_body(rg, "vm1", size="Standard_X99"))
    assert r.status == 400
    assert r.error["code"] == "InvalidParameter"
    assert r.error["target"] == "vmSize"
    assert r.error["message"].startswith(
        "The requested VM size Standard_X99 is not available in the current region. The sizes "
        "available in the current region are: Standard_A8,Standard_A9,")
    assert r.error["message"].endswith(
        ".\r\nFind out more on the available VM sizes in each region at "
        "https://aka.ms/azure-regions.")


def test_legacy_rdma_sizes_are_accepted(emu, rg):
    for i, size in enumerate(("Standard_A8", "Standard_A9", "Standard_H16r", "Standard_H16mr")):
        r = emu.create_vm(rg, f"old{i}", size=size)
        assert r.status == 201 and r.final["status"] == "Succeeded", (size, r)


def test_vm_needs_an_existing_nic(emu, rg):
    r = emu.arm("PUT", emu.vm_path(rg, "vm1"), emu.vm_body(rg, "vm1", nic="missing"))
    assert r.status == 400 and r.error["code"] == "InvalidResourceReference"


def test_deallocate_is_202_with_async_operation_and_location(emu, rg):
    emu.create_vm(rg, "vm1")
    emu.admin("POST", "timing", {"deallocate": 1.0})
    r = emu.arm("POST", emu.vm_path(rg, "vm1") + "/deallocate")
    assert r.status == 202
    assert r.body == b""
    location = r.header("Location")
    assert location == r.header("Azure-AsyncOperation") + "&monitor=true"
    assert emu.power(rg, "vm1") == "PowerState/deallocating"
    # Location: 202 while running, then 200 with an empty body.
    first = emu.arm("GET", location)
    assert first.status == 202 and first.header("Location")
    final = wait_for(lambda: (lambda x: x if x.status != 202 else None)(emu.arm("GET", location)),
                     10, "the Location URL to finish")
    assert final.status == 200 and final.body == b""
    assert emu.power(rg, "vm1") == "PowerState/deallocated"
    emu.admin("POST", "timing", {"deallocate": 0.2})


def test_start_power_off_and_start_again(emu, rg):
    emu.create_vm(rg, "vm1")
    assert emu.vm_action(rg, "vm1", "powerOff").final["status"] == "Succeeded"
    assert emu.power(rg, "vm1") == "PowerState/stopped"
    assert emu.vm_action(rg, "vm1", "start").final["status"] == "Succeeded"
    assert emu.power(rg, "vm1") == "PowerState/running"
    assert emu.vm_action(rg, "vm1", "deallocate").final["status"] == "Succeeded"
    assert emu.power(rg, "vm1") == "PowerState/deallocated"
    assert emu.vm_action(rg, "vm1", "start").final["status"] == "Succeeded"
    assert emu.power(rg, "vm1") == "PowerState/running"


def test_start_shows_starting_while_in_progress(emu, rg):
    emu.create_vm(rg, "vm1")
    emu.vm_action(rg, "vm1", "deallocate")
    emu.admin("POST", "timing", {"start": 1.0})
    r = emu.vm_action(rg, "vm1", "start", wait=False)
    assert emu.power(rg, "vm1") == "PowerState/starting"
    vm = emu.arm("GET", emu.vm_path(rg, "vm1")).json
    assert vm["properties"]["provisioningState"] == "Updating"
    assert emu.wait_op(r)["status"] == "Succeeded"
    emu.admin("POST", "timing", {"start": 0.2})


def test_deallocate_preempts_a_create_in_progress(emu, rg):
    emu.admin("POST", "timing", {"create": 2.0})
    create = emu.create_vm(rg, "vm1", wait=False)
    dealloc = emu.vm_action(rg, "vm1", "deallocate")
    assert dealloc.final["status"] == "Succeeded"
    final = emu.wait_op(create)
    assert final["status"] == "Canceled"
    assert final["error"]["code"] == "OperationPreempted"
    assert emu.power(rg, "vm1") == "PowerState/deallocated"
    emu.admin("POST", "timing", {"create": 0.2})


def test_delete_is_202_and_the_vm_is_gone(emu, rg):
    emu.create_vm(rg, "vm1")
    r = emu.arm("DELETE", emu.vm_path(rg, "vm1") + "?forceDeletion=false")
    assert r.status == 202
    assert r.header("Location").endswith("&monitor=true")
    assert emu.wait_op(r)["status"] == "Succeeded"
    gone = emu.arm("GET", emu.vm_path(rg, "vm1"))
    assert gone.status == 404
    assert gone.error == {
        "code": "ResourceNotFound",
        "message": f"The Resource 'Microsoft.Compute/virtualMachines/vm1' under resource group "
                   f"'{rg}' was not found. For more details please go to "
                   "https://aka.ms/ARMResourceNotFoundFix"}
    # The NIC had deleteOption Delete.
    assert emu.arm("GET", emu.nic_path(rg, "vm1-nic"), api="2024-05-01").status == 404
    # Deleting what is not there is 204.
    assert emu.arm("DELETE", emu.vm_path(rg, "vm1")).status == 204


def test_list_pages_with_next_link(emu, rg):
    names = [f"vm{i}" for i in range(7)]
    for name in names:
        emu.create_vm(rg, name, size="Standard_D2s_v5", wait=False)
    seen = []
    url = f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines"
    r = emu.arm("GET", url)
    pages = 0
    while True:
        assert r.status == 200, r
        pages += 1
        seen += [vm["name"] for vm in r.json["value"]]
        link = r.json.get("nextLink")
        if not link:
            break
        assert "api-version=" + COMPUTE_API in link and "$skiptoken=" in link
        r = emu.arm("GET", link)
    assert sorted(seen) == names and pages == 3  # page size 3 in this module's scenario


def test_list_with_expand_needs_a_filter(emu, rg):
    url = f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines"
    assert emu.arm("GET", url + "?$expand=instanceView").status == 400


def test_list_all_with_status_only_has_instance_views(emu, rg):
    emu.create_vm(rg, "vm1")
    r = emu.arm("GET", f"/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines"
                       "?statusOnly=true")
    assert r.status == 200
    vms = []
    while True:
        vms += r.json["value"]
        if "nextLink" not in r.json:
            break
        r = emu.arm("GET", r.json["nextLink"])
    mine = [vm for vm in vms if vm["id"] == emu.vm_path(rg, "vm1")]
    assert mine and "instanceView" in mine[0]["properties"]


def test_admin_vms_shows_the_world_view(emu, rg):
    emu.put_avset(rg, "set1")
    emu.create_vm(rg, "vmadm", avset="set1", custom_data="# azrdma:node=n1\n")
    vm = emu.vms()["vmadm"]
    assert vm["resourceGroup"] == rg
    assert vm["powerState"] == "running" and vm["provisioningState"] == "Succeeded"
    assert vm["vmSize"] == "Standard_HB120rs_v3"
    assert vm["image"] == "almalinux:almalinux-hpc:8_7-hpc-gen2:latest"
    assert vm["availabilitySet"] == "set1"
    assert isinstance(vm["fabric"], int)
    assert vm["privateIp"].startswith("10.0.")
    assert vm["rdmaIp"].startswith("172.16.") and vm["rdmaIf"] == "ib0"
    assert vm["netns"] is None and vm["tags"] == {"t": "vmadm"}


def test_custom_data_is_not_returned_but_kept(emu, rg):
    data = "#cloud-config\n# azrdma:node=hb-001\n"
    emu.create_vm(rg, "vm1", custom_data=data)
    r = emu.arm("GET", emu.vm_path(rg, "vm1"))
    assert "customData" not in r.json["properties"]["osProfile"]
    assert base64.b64encode(data.encode()).decode()  # sanity of the fixture


def test_patch_changes_tags(emu, rg):
    emu.create_vm(rg, "vm1")
    r = emu.arm("PATCH", emu.vm_path(rg, "vm1"), {"tags": {"k": "v"}})
    assert r.status == 200, r
    assert r.json["tags"] == {"k": "v"}
    assert emu.wait_op(r)["status"] == "Succeeded"
    assert emu.arm("GET", emu.vm_path(rg, "vm1")).json["tags"] == {"k": "v"}


def test_resize_within_the_cluster_and_across_when_deallocated(emu, rg):
    emu.create_vm(rg, "vm1")
    small = emu.vm_body(rg, "vm1", size="Standard_HB120-16rs_v3")
    assert emu.wait_op(emu.arm("PUT", emu.vm_path(rg, "vm1"), small))["status"] == "Succeeded"
    other = emu.vm_body(rg, "vm1", size="Standard_HX176rs")
    r = emu.arm("PUT", emu.vm_path(rg, "vm1"), other)
    assert r.status == 409 and r.error["message"].startswith(
        "Unable to resize the VM because the requested size Standard_HX176rs is not available")
    emu.vm_action(rg, "vm1", "deallocate")
    assert emu.wait_op(emu.arm("PUT", emu.vm_path(rg, "vm1"), other))["status"] == "Succeeded"
    emu.vm_action(rg, "vm1", "start")
    assert emu.vms()["vm1"]["vmSize"] == "Standard_HX176rs"


def test_power_off_of_a_deallocated_vm_is_refused(emu, rg):
    emu.create_vm(rg, "vm1", size="Standard_D2s_v5")
    emu.vm_action(rg, "vm1", "deallocate")
    r = emu.arm("POST", emu.vm_path(rg, "vm1") + "/powerOff")
    assert r.status == 409 and r.error["code"] == "OperationNotAllowed"


def test_repeated_start_joins_the_running_operation(emu, rg):
    emu.create_vm(rg, "vm1", size="Standard_D2s_v5")
    emu.vm_action(rg, "vm1", "deallocate")
    emu.admin("POST", "timing", {"start": 1.0})
    first = emu.vm_action(rg, "vm1", "start", wait=False)
    second = emu.vm_action(rg, "vm1", "start", wait=False)
    assert first.header("Azure-AsyncOperation") == second.header("Azure-AsyncOperation")
    busy = emu.arm("POST", emu.vm_path(rg, "vm1") + "/restart")
    assert busy.status == 409
    assert emu.wait_op(second)["status"] == "Succeeded"
    emu.admin("POST", "timing", {"start": 0.2})
    assert emu.vm_action(rg, "vm1", "restart").final["status"] == "Succeeded"
