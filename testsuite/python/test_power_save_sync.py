"""azrdma-sync: orphans deallocated after the grace period (and only reported
with --dry-run), zombies set DOWN with a reason, stale addresses reset, and
empty availability sets of the cluster deleted."""

import re

import pytest

from lib.azrdma_world import (HB120_FAMILY, azrdma_power_save, have_programs,
                              program)

pytestmark = pytest.mark.skipif(
    not have_programs() or not program("azrdma-sync"),
    reason="azrdma power-save programs not built (set AZRDMA_BUILDDIR)")

ORPHAN = "spare2"   # its node was taken out of slurm.conf, its VM runs on
STALE = "f3n5"
ZOMBIE = "f3n3"
# A domain only azrdma.conf knows: its set must end up empty.
GHOST_DOMAIN = "Domain=fab8 Nodes=spare[1-2] VmSize=Standard_HB120rs_v3"


@pytest.fixture(scope="module")
def azrdma(cloud):
    extra = GHOST_DOMAIN + f" AvailabilitySet={cloud.prefix}-fab8\n"
    with azrdma_power_save(cloud, extra_conf=extra) as setup:
        yield setup


def _as_slurm(world, name, *args, check=True):
    """Run a power-save program by hand, as SlurmUser, on the controller."""
    return world.run_ctl("setpriv", "--reuid=slurm", "--regid=slurm",
                         "--init-groups", program(name), *args, check=check,
                         timeout=180)


def _sync(world, *args):
    res = _as_slurm(world, "azrdma-sync", *args, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_sync_deletes_an_empty_availability_set_of_the_cluster(cloud, azrdma):
    avset = f"{cloud.prefix}-fab8"
    cloud.emulator_admin("POST", "quota", {"family": HB120_FAMILY, "limit": 0})
    try:
        res = _as_slurm(cloud, "azrdma-resume", "spare1", check=False)
        assert res.returncode != 0
    finally:
        cloud.emulator_admin("POST", "reset")
    assert "spare1" not in cloud.vms()
    out = _sync(cloud, "--dry-run")
    assert f"would {avset}: delete empty availability set" in out, out
    out = _sync(cloud)
    assert f"{avset}: delete empty availability set" in out, out
    deletes = [e for e in cloud.emulator_admin("GET", "log")
               if e["method"] == "DELETE"
               and e["path"].lower().endswith(f"/availabilitysets/{avset}")]
    assert deletes and deletes[-1]["status"] < 300, deletes
    # The set of fab3 holds (deallocated) VMs and stays.
    assert f"{cloud.prefix}-fab3: delete" not in out


@pytest.fixture(scope="module")
def orphan(cloud, azrdma):
    """A VM of the cluster running for a node Slurm does not know."""
    _as_slurm(cloud, "azrdma-resume", ORPHAN, check=False)
    assert cloud.vm_power(ORPHAN) == "running"
    return ORPHAN


def test_sync_leaves_an_orphan_alone_within_the_grace_period(cloud, orphan):
    out = _sync(cloud, "--grace", "3600")
    assert "deallocate" not in out, out
    assert cloud.vm_power(orphan) == "running"


def test_sync_dry_run_reports_the_orphan_and_changes_nothing(cloud, orphan):
    out = _sync(cloud, "--dry-run", "--grace", "0")
    assert re.search(rf"^would {orphan}: deallocate VM \(node unknown to Slurm",
                     out, re.M), out
    assert "(dry run)" in out
    assert cloud.vm_power(orphan) == "running"


def test_sync_deallocates_the_orphan(cloud, orphan):
    out = _sync(cloud, "--grace", "0")
    assert re.search(rf"^{orphan}: deallocate VM", out, re.M), out
    assert cloud.vm_power(orphan) == "deallocated"


def test_sync_resets_the_address_of_a_powered_down_node(cloud, azrdma):
    cloud.wait_powered_down([STALE])
    cloud.scontrol("update", f"nodename={STALE}", "nodeaddr=10.123.250.250")
    out = _sync(cloud)
    assert f"{STALE}: reset NodeAddr 10.123.250.250" in out, out
    assert cloud.node(STALE)["NodeAddr"] == STALE


def test_sync_downs_a_node_whose_vm_went_away_behind_slurms_back(cloud, azrdma):
    cloud.wait_powered_down([ZOMBIE])
    job_id = cloud.submit("-N", "1", "-p", "fab3", "-w", ZOMBIE, wrap="sleep 300")
    try:
        cloud.wait_job_running(job_id, timeout=120)
        _as_slurm(cloud, "azrdma-suspend", ZOMBIE)
        assert cloud.vm_power(ZOMBIE) == "deallocated"
        out = _sync(cloud)
        assert f"{ZOMBIE}: set DOWN (VM deallocated while the node is up)" in out
        rec = cloud.node(ZOMBIE)
        assert "DOWN" in rec["State"]
        assert rec["Reason"].startswith("azrdma: sync: VM deallocated")
    finally:
        cloud.run_ctl("scancel", str(job_id))
        cloud.wait_nodes([ZOMBIE], lambda f: "POWERING_DOWN" not in f, 90,
                         "not powering down")
        azrdma.wait_programs_done()
        if "DOWN" in cloud.node_flags(ZOMBIE):
            cloud.scontrol("update", f"nodename={ZOMBIE}", "state=power_down_force")
            cloud.wait_nodes([ZOMBIE], lambda f: "POWERED_DOWN" in f, 90,
                             "powered down")
            azrdma.wait_programs_done()
            if "DOWN" in cloud.node_flags(ZOMBIE):
                cloud.scontrol("update", f"nodename={ZOMBIE}", "state=resume")


