"""node_features/azrdma with azrdma-resume: a job asking -C img_<other> gets
its nodes reprovisioned with that image, in their availability set, and runs
there; the booted host and the emulator both show the new image."""

import os

import pytest

from lib.azrdma_world import azrdma_power_save, have_programs

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
