"""The RDMA network connects the VMs of one availability set, and only those."""

import pytest


@pytest.fixture(scope="module")
def hosts(cloud):
    """f1n3, f1n4 (fab1) and f2n2 (fab2) powered up and held by a job; their VM records."""
    nodes = ["f1n3", "f1n4", "f2n2"]
    job_id = cloud.submit("-p", "all", "-N", "3", "-w", ",".join(nodes),
                          wrap="sleep 600")
    try:
        cloud.wait_job_running(job_id, timeout=120)
        vms = cloud.vms()
        yield {n: vms[n] for n in nodes}
    finally:
        cloud.run_ctl("scancel", str(job_id))


def test_vms_sit_in_their_domain_availability_set(cloud, hosts):
    assert hosts["f1n3"]["availabilitySet"].lower() == f"{cloud.prefix}-fab1"
    assert hosts["f1n4"]["availabilitySet"].lower() == f"{cloud.prefix}-fab1"
    assert hosts["f2n2"]["availabilitySet"].lower() == f"{cloud.prefix}-fab2"


def test_same_availability_set_reaches_over_rdma(cloud, hosts):
    assert cloud.vm_can_connect("f1n3", hosts["f1n4"]["rdmaIp"])
    assert cloud.vm_can_connect("f1n4", hosts["f1n3"]["rdmaIp"])


def test_different_availability_sets_cannot_reach_over_rdma(cloud, hosts):
    assert not cloud.vm_can_connect("f1n3", hosts["f2n2"]["rdmaIp"])
    assert not cloud.vm_can_connect("f2n2", hosts["f1n4"]["rdmaIp"])


def test_cluster_network_reaches_across_availability_sets(cloud, hosts):
    assert cloud.vm_can_connect("f1n3", hosts["f2n2"]["privateIp"])
    assert cloud.vm_can_connect("f2n2", hosts["f1n4"]["privateIp"])
    assert cloud.vm_can_connect("f2n2", "10.123.0.1", port=6817)
