"""node_features/azrdma with azrdma-resume: a job asking -C img_<other> gets
its nodes reprovisioned with that image, in their availability set, and runs
there; the booted host and the emulator both show the new image.  Powered
down afterwards, the nodes keep that image as their active feature: their
deallocated disks hold it, as azrdma-resume's record in StateDir says."""

import os
import re

import pytest

from lib.azrdma_world import azrdma_power_save, have_programs
from lib.wait import wait_for

pytestmark = pytest.mark.skipif(
    not have_programs(), reason="azrdma power-save programs not built "
    "(set AZRDMA_BUILDDIR)")

PLUGIN = "node_features_azrdma.so"
NODES = ["f5n1", "f5n2"]
SLES_URN = "SUSE:SLES-HPC:15-SP5:latest"


@pytest.fixture(scope="module")
def reprovision(cloud):
    d = os.environ.get("AZRDMA_PLUGINDIR")
    if not d or not os.path.exists(os.path.join(d, PLUGIN)):
        pytest.skip(f"AZRDMA_PLUGINDIR does not hold {PLUGIN}")
    extra = (f"Image=sles Urn={SLES_URN}\n"
             f"NodeImageFile={cloud.path('vms')}/%n/image\n")
    with azrdma_power_save(cloud, extra_conf=extra,
                           slurm_overrides={"NodeFeaturesPlugins": "azrdma"}
                           ) as setup:
        yield setup


def _active(world, node):
    return world.node(node).get("ActiveFeatures", "").split(",")


def test_default_image_job_then_other_image_job(cloud, reprovision):
    cloud.wait_powered_down(NODES)
    first = cloud.submit("-N", "2", "-p", "fab5", "-w", ",".join(NODES),
                         wrap="srun cat /proc/sys/kernel/hostname")
    cloud.wait_job(first, timeout=150)
    vms = cloud.vms()
    for node in NODES:
        assert vms[node]["image"].startswith("almalinux:"), vms[node]
        assert "img_alma" in _active(cloud, node)

    second = cloud.submit("-N", "2", "-p", "fab5", "-w", ",".join(NODES),
                          "-C", "img_sles",
                          wrap=f"srun cat {cloud.path('vms')}/$(hostname)/image")
    job = cloud.wait_job(second, timeout=200)
    assert job["JobState"] == "COMPLETED", job
    vms = cloud.vms()
    for node in NODES:
        # Same availability set, new image, and the host reads it.
        assert vms[node]["image"] == SLES_URN, vms[node]
        assert vms[node]["availabilitySet"].lower() == f"{cloud.prefix}-fab5"
        assert "img_sles" in _active(cloud, node)
        assert "img_alma" not in _active(cloud, node)
    out = cloud.job_output(second).split()
    assert out == ["sles", "sles"], out


def _tokens(world, node, key):
    return [t for t in world.node(node).get(key, "").split(",") if t]


def test_powered_down_node_shows_the_image_its_disk_holds(cloud, reprovision):
    """After the img_sles job the VMs are deallocated: their disks hold sles,
    azrdma-resume recorded it in StateDir/images/<node>, and that (not the
    Default) is the node's active image, even once slurmctld has forgotten
    what slurmd last reported."""
    if cloud.slurm.at_least(23, 2):
        pytest.skip("from Slurm 23.02 a powered-down node has no active "
                    "image (see the test below)")
    vms = cloud.vms()
    for node in NODES:
        assert vms[node]["image"] == SLES_URN, "needs the img_sles job above"
    cloud.wait_powered_down(NODES)
    for node in NODES:
        assert cloud.vm_power(node) == "deallocated"
        record = os.path.join(reprovision.state_dir, "images", node)
        with open(record) as f:
            assert f.read() == "sles\n"
        assert not os.stat(record).st_mode & 0o022, oct(os.stat(record).st_mode)
        # slurmctld loses the image (as after a lost state file): the
        # plugin's publisher must take it from the record again.
        static = [t for t in _tokens(cloud, node, "ActiveFeatures")
                  if not t.startswith("img_")]
        cloud.scontrol("update", f"NodeName={node}",
                       f"ActiveFeatures={','.join(static)}")
        assert not [t for t in _tokens(cloud, node, "ActiveFeatures")
                    if t.startswith("img_")]
    cloud.reconfigure()
    wait_for(lambda: all("img_sles" in _tokens(cloud, n, "ActiveFeatures")
                         for n in NODES),
             60, "the recorded image published as active")
    for node in NODES:
        active = _tokens(cloud, node, "ActiveFeatures")
        avail = _tokens(cloud, node, "AvailableFeatures")
        assert "img_alma" not in active, active
        assert len(active) == len(set(active)), active
        assert len(avail) == len(set(avail)), avail
        assert {"img_alma", "img_sles"} <= set(avail), avail


def _vm_calls(entries, node):
    """(method, last path segment) of the ARM calls on the node's VM."""
    calls = []
    for e in entries:
        path = e["path"].split("?")[0]
        m = re.search(rf"/virtualMachines/{node}(/[a-z]+)?$", path)
        if m:
            calls.append((e["method"], m.group(1) or ""))
    return calls


def test_a_job_asking_the_image_the_disk_holds_starts_it_again(cloud,
                                                               reprovision):
    """From Slurm 23.02 a powered-down node has no active image, and a job's
    constraint reaches azrdma-resume in SLURM_RESUME_FILE: a job asking
    img_sles of nodes whose deallocated disks hold sles (azrdma-resume's
    record) gets them started, not deleted and created again."""
    if not cloud.slurm.at_least(23, 2):
        pytest.skip("22.05 keeps the disk's image active (test above)")
    vms = cloud.vms()
    for node in NODES:
        assert vms[node]["image"] == SLES_URN, "needs the img_sles job above"
    cloud.wait_powered_down(NODES)
    for node in NODES:
        assert cloud.vm_power(node) == "deallocated"
        assert not [t for t in _tokens(cloud, node, "ActiveFeatures")
                    if t.startswith("img_")]
        with open(os.path.join(reprovision.state_dir, "images", node)) as f:
            assert f.read() == "sles\n"
    seen = len(cloud.emulator_admin("GET", "log"))
    job = cloud.submit("-N", "2", "-p", "fab5", "-w", ",".join(NODES),
                       "-C", "img_sles",
                       wrap=f"srun cat {cloud.path('vms')}/$(hostname)/image")
    cloud.wait_job(job, timeout=200)
    assert cloud.job_output(job).split() == ["sles", "sles"]
    entries = cloud.emulator_admin("GET", "log")[seen:]
    for node in NODES:
        calls = _vm_calls(entries, node)
        assert ("POST", "/start") in calls, calls
        assert not [c for c in calls if c[0] in ("PUT", "DELETE")], calls
        assert "img_sles" in _tokens(cloud, node, "ActiveFeatures")
