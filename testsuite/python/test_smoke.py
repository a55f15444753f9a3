"""A batch job powers cloud nodes up, runs on their VM hosts, and they power down."""

import pytest

from lib.world import SUSPEND_TIME

NODES = ["f1n1", "f1n2"]


@pytest.fixture(scope="module")
def finished_job(cloud):
    """`sbatch -N 2 --wrap 'srun hostname'` on two powered-down nodes of fab1, run to the end."""
    cloud.wait_powered_down(NODES)
    assert not any(cloud.vm_power(n) == "running" for n in NODES)
    job_id = cloud.submit("-N", "2", "-p", "fab1", "-w", ",".join(NODES),
                          wrap="srun hostname")
    job = cloud.wait_job(job_id, timeout=120)
    return {"id": job_id, "nodes": cloud.hostnames(job["NodeList"]),
            "output": cloud.job_output(job_id)}


def test_job_powers_up_two_vms_in_the_domain_availability_set(cloud, finished_job):
    assert finished_job["nodes"] == NODES
    vms = cloud.vms()
    for node in NODES:
        assert node in vms, f"no VM was created for {node}"
        assert vms[node]["availabilitySet"].lower() == f"{cloud.prefix}-fab1"


def test_job_runs_on_both_vm_hosts(cloud, finished_job):
    printed = sorted(finished_job["output"].split())
    assert printed == NODES, finished_job["output"]


def test_nodes_power_down_after_suspend_time(cloud, finished_job):
    cloud.wait_powered_down(NODES, timeout=SUSPEND_TIME + 60)
    for node in NODES:
        assert cloud.vm_power(node) == "deallocated"
        assert not cloud.vm_host_exists(node), f"host of {node} is still there"


def test_powered_down_node_restarts_its_vm_and_powers_down_on_request(cloud, finished_job):
    node = NODES[0]
    before = cloud.vms()[node]
    cloud.scontrol("update", f"nodename={node}", "state=power_up")
    cloud.wait_up([node])
    vm = cloud.vms()[node]
    cloud.wait_vm_running(node)
    assert vm["privateIp"] == before["privateIp"]
    assert cloud.node(node)["NodeAddr"] == vm["privateIp"]
    starts = [e for e in cloud.emulator_admin("GET", "log")
              if e["method"] == "POST" and e["path"].endswith(f"/virtualMachines/{node}/start")]
    assert starts, "the VM was not started again"

    cloud.scontrol("update", f"nodename={node}", "state=power_down")
    cloud.wait_powered_down([node])
    assert cloud.vm_power(node) == "deallocated"
