"""SuspendAction=Delete: azrdma-suspend deletes the node's VM, its NIC and its
OS disk; the node is powered down (idle~) with the NodeAddr of a node without a VM and
no image record; the next job creates the VM anew."""

import os
import re

import pytest

from lib.azrdma_world import azrdma_power_save, have_programs

pytestmark = pytest.mark.skipif(
    not have_programs(), reason="azrdma power-save programs not built "
    "(set AZRDMA_BUILDDIR)")

NODE = "f3n4"


@pytest.fixture(scope="module")
def azrdma(cloud):
    with azrdma_power_save(cloud, extra_conf="SuspendAction=Delete\n") as setup:
        yield setup
        cloud.wait_powered_down([NODE])
        setup.wait_programs_done()


def _nic(world):
    return [n for n in world.emulator_admin("GET", "nics")
            if n["name"].lower() == f"{NODE}-nic"]


def _disks(world):
    return [d for d in world.emulator_admin("GET", "disks")
            if d["name"].lower().startswith(f"{NODE.lower()}_osdisk")]


def _vm_puts(world):
    pat = re.compile(rf"/virtualMachines/{NODE}$", re.I)
    return [e for e in world.emulator_admin("GET", "log")
            if e["method"] == "PUT" and pat.search(e["path"]) and e["status"] < 300]


def _image_record(setup):
    return os.path.join(setup.state_dir, "images", NODE)


def test_suspend_deletes_vm_nic_and_disk_and_the_next_job_creates_the_vm(
        cloud, azrdma):
    cloud.wait_powered_down([NODE])
    cloud.scontrol("update", f"nodename={NODE}", "state=power_up")
    cloud.wait_up([NODE])
    cloud.wait_vm_running(NODE)
    assert _nic(cloud) and _disks(cloud), "the VM has no NIC or disk to delete"
    assert _disks(cloud)[0]["diskState"] == "Attached"

    # Idle for SuspendTime: slurmctld runs azrdma-suspend, which deletes.
    cloud.wait_powered_down([NODE])
    azrdma.wait_programs_done()
    assert NODE not in cloud.vms()
    assert not _nic(cloud), _nic(cloud)
    assert not _disks(cloud), f"OS disk left behind: {_disks(cloud)}"
    assert not os.path.exists(_image_record(azrdma))
    rec = cloud.node(NODE)
    assert rec["NodeAddr"] == cloud.slurm.powered_down_addr(NODE), rec
    assert rec["NodeHostName"] == NODE, rec
    assert rec["State"].split("+")[0] == "IDLE", rec
    assert f"{NODE}: VM and NIC deleted" in azrdma.log_text()

    creates = len(_vm_puts(cloud))
    job_id = cloud.submit("-N", "1", "-p", "fab3", "-w", NODE, wrap="hostname")
    job = cloud.wait_job(job_id, timeout=150)
    assert cloud.job_output(job_id).split() == [NODE], job
    assert len(_vm_puts(cloud)) == creates + 1, "the VM was not created anew"
    assert cloud.vms()[NODE]["tags"]["azrdma-job"] == str(job_id)
    with open(_image_record(azrdma)) as f:
        assert f.read() == "alma\n"
