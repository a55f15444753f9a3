"""Network interfaces: creation with an address from the cluster subnet, the network
operation resources, and NicInUse."""

import re

from conftest import NETWORK_API, SUB, private_ip, wait_for

NET_OP = re.compile(rf"^https://127\.0\.0\.1:\d+/subscriptions/{SUB}/providers/Microsoft\.Network/"
                    r"locations/eastus/operations/[0-9a-f-]{36}\?api-version=" + NETWORK_API + "$")


def test_nic_put_is_201_with_the_address_already_allocated(make_emulator, rg):
    emu = make_emulator(args=["--cluster-cidr", "10.50.0.0/16"])
    r = emu.put_nic(rg, "n1")
    assert r.status == 201, r
    assert NET_OP.match(r.header("Azure-AsyncOperation")), r.header("Azure-AsyncOperation")
    ipc = r.json["properties"]["ipConfigurations"][0]
    assert ipc["properties"]["privateIPAddress"] == "10.50.0.4"
    assert ipc["properties"]["privateIPAllocationMethod"] == "Dynamic"
    assert ipc["properties"]["primary"] is True
    assert ipc["id"] == emu.nic_path(rg, "n1") + "/ipConfigurations/ipconfig1"
    assert r.json["etag"].startswith('W/"')
    assert r.json["properties"]["provisioningState"] == "Succeeded"
    assert private_ip(emu.put_nic(rg, "n2").json) == "10.50.0.5"
    # An update keeps the address and is 200.
    again = emu.put_nic(rg, "n1")
    assert again.status == 200
    assert private_ip(again.json) == "10.50.0.4"


def test_network_operation_status_is_just_status(emu, rg):
    r = emu.put_nic(rg, "n1")
    status = wait_for(lambda: (lambda x: x.json if x.json["status"] != "InProgress" else None)(
        emu.arm("GET", r.header("Azure-AsyncOperation"))), 10, "NIC operation")
    assert status == {"status": "Succeeded"}


def test_static_address_and_conflicts(emu, rg):
    r = emu.put_nic(rg, "s1", ip="10.0.200.10")
    assert r.status == 201
    assert private_ip(r.json) == "10.0.200.10"
    clash = emu.put_nic(rg, "s2", ip="10.0.200.10")
    assert clash.status == 400 and clash.error["code"] == "PrivateIPAddressInUse"
    outside = emu.put_nic(rg, "s3", ip="192.168.1.1")
    assert outside.status == 400 and outside.error["code"] == "PrivateIPAddressNotInSubnet"


def test_nic_attached_to_a_vm_cannot_be_deleted(emu, rg):
    emu.create_vm(rg, "vm1")
    r = emu.arm("DELETE", emu.nic_path(rg, "vm1-nic"), api=NETWORK_API)
    assert r.status == 400
    assert r.error["code"] == "NicInUse"
    assert r.error["message"] == (
        f"Network Interface {emu.nic_path(rg, 'vm1-nic')} is used by existing resource "
        f"{emu.vm_path(rg, 'vm1')}. In order to delete the network interface, it must be "
        "dissociated from the resource. To learn more, see aka.ms/deletenic.")
    nic = emu.arm("GET", emu.nic_path(rg, "vm1-nic"), api=NETWORK_API).json
    assert nic["properties"]["virtualMachine"]["id"] == emu.vm_path(rg, "vm1")
    assert re.fullmatch(r"00-0D-3A(-[0-9A-F]{2}){3}", nic["properties"]["macAddress"])


def test_nic_delete_is_202_with_location(emu, rg):
    emu.put_nic(rg, "d1")
    r = emu.arm("DELETE", emu.nic_path(rg, "d1"), api=NETWORK_API)
    assert r.status == 202
    assert "/operationResults/" in r.header("Location")
    wait_for(lambda: emu.arm("GET", r.header("Location")).status == 204, 10, "NIC delete result")
    assert emu.arm("GET", emu.nic_path(rg, "d1"), api=NETWORK_API).status == 404
    assert emu.arm("DELETE", emu.nic_path(rg, "d1"), api=NETWORK_API).status == 204


def test_nic_of_a_deleted_vm_is_free_again(emu, rg):
    emu.create_vm(rg, "vm1", nic="keep")
    vm = emu.arm("GET", emu.vm_path(rg, "vm1")).json
    ref = vm["properties"]["networkProfile"]["networkInterfaces"][0]
    assert ref["properties"]["deleteOption"] == "Delete"
    body = emu.vm_body(rg, "vm2", nic="keep2")
    ref = body["properties"]["networkProfile"]["networkInterfaces"][0]
    ref["properties"]["deleteOption"] = "Detach"
    emu.put_nic(rg, "keep2")
    emu.wait_op(emu.arm("PUT", emu.vm_path(rg, "vm2"), body))
    emu.wait_op(emu.arm("DELETE", emu.vm_path(rg, "vm2")))
    nic = emu.arm("GET", emu.nic_path(rg, "keep2"), api=NETWORK_API)
    assert nic.status == 200 and "virtualMachine" not in nic.json["properties"]
    assert emu.arm("DELETE", emu.nic_path(rg, "keep2"), api=NETWORK_API).status == 202


def test_nic_list_pages(emu, rg):
    for i in range(4):
        emu.put_nic(rg, f"l{i}")
    r = emu.arm("GET", emu.rg_path(rg) + "/providers/Microsoft.Network/networkInterfaces",
                api=NETWORK_API)
    assert [n["name"] for n in r.json["value"]] == ["l0", "l1", "l2"]
    r = emu.arm("GET", r.json["nextLink"])
    assert [n["name"] for n in r.json["value"]] == ["l3"] and "nextLink" not in r.json
