"""The RDMA network connects the VMs of one availability set, and only those."""

import pytest


@pytest.fixture(scope="module")
def hosts(cloud):
    """f1n5, f1n6 (fab1) and f2n1 (fab2) powered up and held by a job; their VM records."""
    nodes = ["f1n5", "f1n6", "f2n1"]
    job_id = cloud.submit("-p", "all", "-N", "3", "-w", ",".join(nodes),
                          wrap="sleep 600")
    try:
        cloud.wait_job_running(job_id, timeout=120)
        vms = cloud.vms()
        yield {n: vms[n] for n in nodes}
    finally:
        cloud.run_ctl("scancel", str(job_id))


def test_vms_sit_in_their_domain_availability_set(cloud, hosts):
    assert hosts["f1n5"]["availabilitySet"].lower() == f"{cloud.prefix}-fab1"
    assert hosts["f1n6"]["availabilitySet"].lower() == f"{cloud.prefix}-fab1"
    assert hosts["f2n1"]["availabilitySet"].lower() == f"{cloud.prefix}-fab2"
    assert hosts["f1n5"]["fabric"] == hosts["f1n6"]["fabric"] != hosts["f2n1"]["fabric"]


def test_same_availability_set_reaches_over_rdma(cloud, hosts):
    assert cloud.vm_can_connect("f1n5", hosts["f1n6"]["rdmaIp"])
    assert cloud.vm_can_connect("f1n6", hosts["f1n5"]["rdmaIp"])


def test_different_availability_sets_cannot_reach_over_rdma(cloud, hosts):
    assert not cloud.vm_can_connect("f1n5", hosts["f2n1"]["rdmaIp"])
    assert not cloud.vm_can_connect("f2n1", hosts["f1n6"]["rdmaIp"])


def test_cluster_network_reaches_across_availability_sets(cloud, hosts):
    assert cloud.vm_can_connect("f1n5", hosts["f2n1"]["privateIp"])
    assert cloud.vm_can_connect("f2n1", hosts["f1n6"]["privateIp"])
    assert cloud.vm_can_connect("f2n1", "10.123.0.1", port=6817)
